package server

import (
	"fmt"
	"strings"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// The "watch" claim of a connection's token (auth.WatchList) restricts
// whom it may subscribe to and query; /v1/presence applies its caller's
// the same way. A request naming anybody else is refused whole, listing
// them, so that a client never holds half of what it asked for.

// checkWatch refuses a query or subscribe that names users the
// connection's token may not watch.
func (c *client) checkWatch(req protocol.Request) *protocol.Error {
	bad := c.watch.Forbidden(req.UserIDs)
	if len(bad) == 0 {
		return nil
	}
	return &protocol.Error{ID: req.ID, Code: protocol.CodeForbidden, Message: forbiddenMessage(bad), UserIDs: bad}
}

// forbiddenMessage says which users a token may not watch, and why.
func forbiddenMessage(bad []string) string {
	const show = 5
	names := bad[:min(len(bad), show)]
	more := ""
	if len(bad) > show {
		more = fmt.Sprintf(" and %d more", len(bad)-show)
	}
	return fmt.Sprintf(`the token's "watch" claim does not allow %s%s (all listed in userIds); nothing of this request was done`,
		strings.Join(names, ", "), more)
}
