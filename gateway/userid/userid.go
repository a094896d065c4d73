// Package userid is the rule for a user id, shared by the wire protocol,
// the JWT subject check and the HTTP API, so that none of them imports
// another just to validate an id.
package userid

import (
	"fmt"

	"github.com/presencekit/presence-operator/gateway/excerpt"
)

// MaxLen is the longest user id, in bytes.
const MaxLen = 128

// Validate checks a user id: 1 to MaxLen bytes of [A-Za-z0-9._:@-].
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("user id is empty")
	}
	if len(id) > MaxLen {
		return fmt.Errorf("user id is %d bytes; at most %d", len(id), MaxLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
		if !ok {
			return fmt.Errorf("user id %q: character %q at byte %d is not one of [A-Za-z0-9._:@-]", excerpt.Of(id), c, i)
		}
	}
	return nil
}
