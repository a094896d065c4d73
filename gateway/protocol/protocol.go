// Package protocol is the gateway's wire format: the client frames it
// decodes and validates, and the server frames it encodes. It does no I/O.
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// Limits of one request.
const (
	// MaxIDsPerRequest is the most user ids one query/subscribe/unsubscribe
	// may name; past it the answer is a too_many_ids error.
	MaxIDsPerRequest = 100
	// MaxUserIDLen is the longest user id, in bytes.
	MaxUserIDLen = 128
	// MaxStatusTextLen is the longest status text, in bytes.
	MaxStatusTextLen = 256
)

// Message types a client sends.
const (
	TypePing        = "ping"
	TypeQuery       = "query"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeStatus      = "status"
)

// Error codes of the error frame. Every one keeps the connection open.
const (
	CodeBadRequest           = "bad_request"
	CodeUnknownType          = "unknown_type"
	CodeTooManyIDs           = "too_many_ids"
	CodeTooManySubscriptions = "too_many_subscriptions"
	CodeRateLimited          = "rate_limited"
	CodeInternal             = "internal"
	CodeUnavailable          = "unavailable"
)

// Request is one decoded, validated client frame.
type Request struct {
	// Type is one of the Type constants.
	Type string
	// TextPing is set for the bare text "ping", answered with the text "pong".
	TextPing bool
	// ID is the raw JSON of the optional "id" (a string or a number), echoed
	// as given; nil when absent.
	ID json.RawMessage
	// UserIDs (query, subscribe, unsubscribe): valid, without duplicates,
	// in the order given, at most MaxIDsPerRequest.
	UserIDs []string
	// Status and Text (status).
	Status presence.Status
	Text   string
}

// Error is a request that gets an error frame; the connection stays open.
type Error struct {
	ID      json.RawMessage
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// wireRequest is the JSON shape of a client frame.
type wireRequest struct {
	Type    *string          `json:"type"`
	ID      json.RawMessage  `json:"id"`
	UserIDs *json.RawMessage `json:"userIds"`
	Status  *string          `json:"status"`
	Text    *string          `json:"text"`
}

var textPing = []byte("ping")

// Decode parses and validates one text frame.
func Decode(data []byte) (Request, *Error) {
	if bytes.Equal(data, textPing) {
		return Request{Type: TypePing, TextPing: true}, nil
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return Request{}, &Error{Code: CodeBadRequest, Message: `frame is neither the text "ping" nor a JSON object`}
	}
	var w wireRequest
	if err := json.Unmarshal(data, &w); err != nil {
		return Request{}, &Error{Code: CodeBadRequest, Message: "frame is not a valid JSON object: " + truncate(err.Error())}
	}
	id, err := validID(w.ID)
	if err != nil {
		return Request{}, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	r := Request{ID: id}
	fail := func(code, format string, args ...any) (Request, *Error) {
		// The type stays known for metrics (it is one of ours, or the error
		// is unknown_type).
		return Request{Type: r.Type}, &Error{ID: id, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	if w.Type == nil {
		return fail(CodeBadRequest, `missing "type"`)
	}
	r.Type = *w.Type
	switch r.Type {
	case TypePing:
	case TypeQuery, TypeSubscribe, TypeUnsubscribe:
		if w.UserIDs == nil {
			return fail(CodeBadRequest, `%s needs "userIds", an array of user ids`, r.Type)
		}
		var ids []string
		if err := json.Unmarshal(*w.UserIDs, &ids); err != nil || ids == nil {
			// The slow path only finds which element is wrong.
			var raw []json.RawMessage
			if err := json.Unmarshal(*w.UserIDs, &raw); err != nil || raw == nil {
				return fail(CodeBadRequest, `"userIds" must be an array of strings`)
			}
			if len(raw) > MaxIDsPerRequest {
				return fail(CodeTooManyIDs, "%d user ids in one request; at most %d", len(raw), MaxIDsPerRequest)
			}
			for i, v := range raw {
				var s string
				if json.Unmarshal(v, &s) != nil {
					return fail(CodeBadRequest, `"userIds"[%d] is not a string`, i)
				}
			}
			return fail(CodeBadRequest, `"userIds" must be an array of strings`)
		}
		if len(ids) == 0 {
			return fail(CodeBadRequest, `"userIds" is empty`)
		}
		if len(ids) > MaxIDsPerRequest {
			return fail(CodeTooManyIDs, "%d user ids in one request; at most %d", len(ids), MaxIDsPerRequest)
		}
		seen := make(map[string]struct{}, len(ids))
		r.UserIDs = ids[:0]
		for i, s := range ids {
			if err := ValidateUserID(s); err != nil {
				return fail(CodeBadRequest, `"userIds"[%d]: %v`, i, err)
			}
			if _, dup := seen[s]; dup {
				continue
			}
			seen[s] = struct{}{}
			r.UserIDs = append(r.UserIDs, s)
		}
	case TypeStatus:
		if w.Status == nil {
			return fail(CodeBadRequest, `status needs "status": one of online, away, busy`)
		}
		r.Status = presence.Status(*w.Status)
		if !r.Status.Settable() {
			return fail(CodeBadRequest, `"status" %q: must be one of online, away, busy`, truncate(*w.Status))
		}
		if w.Text != nil {
			r.Text = *w.Text
		}
		if len(r.Text) > MaxStatusTextLen {
			return fail(CodeBadRequest, `"text" is %d bytes; at most %d`, len(r.Text), MaxStatusTextLen)
		}
	default:
		return fail(CodeUnknownType, "unknown message type %q", truncate(r.Type))
	}
	return r, nil
}

// validID accepts an absent or null id, a string or a number.
func validID(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	switch c := t[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return append(json.RawMessage(nil), t...), nil
	}
	return nil, fmt.Errorf(`"id" must be a string or a number`)
}

// ValidateUserID checks a user id: 1 to 128 bytes of [A-Za-z0-9._:@-].
func ValidateUserID(id string) error {
	if id == "" {
		return fmt.Errorf("user id is empty")
	}
	if len(id) > MaxUserIDLen {
		return fmt.Errorf("user id is %d bytes; at most %d", len(id), MaxUserIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
		if !ok {
			return fmt.Errorf("user id %q: character %q at byte %d is not one of [A-Za-z0-9._:@-]", truncate(id), c, i)
		}
	}
	return nil
}

// MetricType is the bounded label of messages_received_total for a frame.
func MetricType(r Request, e *Error) string {
	switch {
	case e != nil && e.Code == CodeUnknownType:
		return "unknown"
	case e != nil && r.Type == "":
		return "invalid"
	case r.TextPing:
		return "ping_text"
	}
	return r.Type
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
