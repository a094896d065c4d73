package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Event is what Events delivers: *PresenceEvent, *StaleEvent, *StateEvent,
// *WelcomeEvent or *ErrorEvent.
type Event interface{ isEvent() }

// PresenceEvent is a watched user's newer state.
type PresenceEvent struct {
	User User
	// Previous is the state held before, if any.
	Previous *User
	// Snapshot is true for the answer to a request, false for a change event.
	Snapshot bool
}

// StaleEvent is a state dropped because its version is not newer than the
// one held (Current).
type StaleEvent struct {
	User    User
	Current User
}

// StateEvent is a change of the connection state.
type StateEvent struct {
	State State
	// Attempt (connecting, waiting) numbers the reconnect attempts, 0 first.
	Attempt int
	// Delay (waiting) is the time until the next attempt.
	Delay time.Duration
	// Code and Reason (waiting) are the close code and reason of the
	// connection that ended; Code is 0 when the attempt failed before a
	// connection opened, and Err says why.
	Code   int
	Reason string
	Err    error
}

// WelcomeEvent is the welcome frame of a new connection.
type WelcomeEvent struct{ Welcome Welcome }

// ErrorEvent is an error not tied to a call: a gateway error frame without
// an id, a refused re-subscription after a reconnect, a failed token refresh.
type ErrorEvent struct{ Err error }

func (*PresenceEvent) isEvent() {}
func (*StaleEvent) isEvent()    {}
func (*StateEvent) isEvent()    {}
func (*WelcomeEvent) isEvent()  {}
func (*ErrorEvent) isEvent()    {}

// State is the connection state.
type State int

// The connection states.
const (
	// StateClosed: before Dial returned, and after Close.
	StateClosed State = iota
	// StateConnecting: an attempt is under way.
	StateConnecting
	// StateOpen: connected, welcome received.
	StateOpen
	// StateWaiting: a reconnect is scheduled.
	StateWaiting
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateConnecting:
		return "connecting"
	case StateOpen:
		return "open"
	case StateWaiting:
		return "waiting"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Error is an error answer of the gateway (Code is the protocol's error
// code: bad_request, forbidden, rate_limited, unavailable, ...), or its
// refusal of the upgrade (HTTPStatus set, Code from the JSON body).
type Error struct {
	Code    string
	Message string
	// HTTPStatus is the status of a refused upgrade; 0 for error frames.
	HTTPStatus int
	// UserIDs (subscribe) are the ids of the refused request.
	UserIDs []string
	// Forbidden (code forbidden, for a query or subscribe) are the ids of
	// the request that the token's "watch" claim does not allow.
	Forbidden []string
}

func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("gateway refused the connection: %d %s: %s", e.HTTPStatus, e.Code, e.Message)
	}
	return fmt.Sprintf("gateway error %s: %s", e.Code, e.Message)
}

// Errors of calls that got no answer. A call whose context ends first
// returns an error wrapping the context's error (context.DeadlineExceeded
// for a timeout).
var (
	// ErrNotConnected: there is no open connection to send the request on.
	ErrNotConnected = errors.New("client: not connected")
	// ErrDisconnected: the connection closed before the answer came.
	ErrDisconnected = errors.New("client: the connection closed before the answer")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("client: closed")
)

// permanentSubscribeError reports whether the gateway would refuse the same
// subscribe again after a reconnect: such ids leave the watchlist. Other
// codes (unavailable, rate_limited, internal, unknown ones) are transient:
// the ids stay and are sent again after the next reconnect.
func permanentSubscribeError(code string) bool {
	switch code {
	case protocol.CodeBadRequest, protocol.CodeTooManyIDs, protocol.CodeTooManySubscriptions, protocol.CodeForbidden:
		return true
	}
	return false
}
