package protocol

import (
	"encoding/json"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// Welcome is the first frame of every connection.
type Welcome struct {
	Type         string `json:"type"`
	UserID       string `json:"userId"`
	ConnectionID string `json:"connectionId"`
	HeartbeatMs  int64  `json:"heartbeatMs"`
	TTLMs        int64  `json:"ttlMs"`
}

// User is one user's presence on the wire: the "U" object of the
// protocol, in presence frames and in the HTTP API's answer. The store's
// presence.User carries no wire names; this is where they are decided.
type User struct {
	UserID      string          `json:"userId"`
	Online      bool            `json:"online"`
	Status      presence.Status `json:"status"`
	Text        string          `json:"text"`
	Connections int             `json:"connections"`
	LastSeen    int64           `json:"lastSeen"`
	Version     int64           `json:"version"`
}

// WireUsers maps the store's users to their wire form (never nil).
func WireUsers(users []presence.User) []User {
	out := make([]User, len(users))
	for i, u := range users {
		out[i] = User{UserID: u.UserID, Online: u.Online, Status: u.Status, Text: u.Text,
			Connections: u.Connections, LastSeen: u.LastSeen, Version: u.Version}
	}
	return out
}

// Presence answers a query or subscribe (with the request's id) and
// carries each change of a watched user (without id).
type Presence struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id,omitempty"`
	Users []User          `json:"users"`
}

// Reply is a pong or an ok.
type Reply struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
}

// ErrorFrame is an error answer; the connection stays open.
type ErrorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// UserIDs lists, with code "forbidden" for a query or subscribe, the
	// users the connection may not watch.
	UserIDs []string `json:"userIds,omitempty"`
}

// PongText is the answer to the text frame "ping".
var PongText = []byte("pong")

// EncodeWelcome renders the welcome frame.
func EncodeWelcome(userID, connID string, heartbeatMs, ttlMs int64) []byte {
	return mustMarshal(Welcome{Type: "welcome", UserID: userID, ConnectionID: connID, HeartbeatMs: heartbeatMs, TTLMs: ttlMs})
}

// EncodePresence renders a presence frame; id may be nil.
func EncodePresence(id json.RawMessage, users []presence.User) []byte {
	return mustMarshal(Presence{Type: "presence", ID: id, Users: WireUsers(users)})
}

// EncodePong renders the JSON pong.
func EncodePong(id json.RawMessage) []byte { return mustMarshal(Reply{Type: "pong", ID: id}) }

// EncodeOK renders an ok.
func EncodeOK(id json.RawMessage) []byte { return mustMarshal(Reply{Type: "ok", ID: id}) }

// EncodeError renders an error frame.
func EncodeError(e *Error) []byte {
	return mustMarshal(ErrorFrame{Type: "error", ID: e.ID, Code: e.Code, Message: e.Message, UserIDs: e.UserIDs})
}

// mustMarshal encodes the frame types above, which cannot fail: their
// fields are strings, numbers and RawMessages that Decode validated.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("protocol: encoding a frame: " + err.Error())
	}
	return b
}
