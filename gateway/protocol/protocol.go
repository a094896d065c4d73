// Package protocol is the gateway's wire format: the client frames it
// decodes and validates, and the server frames it encodes. It does no I/O.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/presencekit/presence-operator/gateway/excerpt"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/userid"
)

// Limits of one request.
const (
	// MaxIDsPerRequest is the most user ids one query/subscribe/unsubscribe
	// may name; past it the answer is a too_many_ids error.
	MaxIDsPerRequest = 100
	// MaxUserIDLen is the longest user id, in bytes.
	MaxUserIDLen = userid.MaxLen
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
	// TypeRefresh replaces the connection's token before it expires.
	TypeRefresh = "refresh"
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
	// CodeInvalidToken answers a refresh whose token does not verify
	// (bad signature, expired, wrong audience...); the connection keeps
	// its old token until that one expires.
	CodeInvalidToken = "invalid_token"
	// CodeForbidden answers a refresh whose token names another user, and
	// a query or subscribe naming users that the connection's token may
	// not watch (its "watch" claim); Error.UserIDs lists those.
	CodeForbidden = "forbidden"
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
	// Token (refresh): the new JWT, not yet verified.
	Token string
}

// Error is a request that gets an error frame; the connection stays open.
type Error struct {
	ID      json.RawMessage
	Code    string
	Message string
	// UserIDs are the users a forbidden request may not watch.
	UserIDs []string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

var textPing = []byte("ping")

// Decode parses and validates one text frame. Decoding is strict: the
// frame is valid UTF-8, one JSON object whose keys match case-sensitively
// and appear at most once (unknown keys are ignored), and every string is
// valid Unicode (no lone surrogate escapes). The request's "id" is echoed
// in the error whenever it could be read, even when other fields are
// wrong.
func Decode(data []byte) (Request, *Error) {
	if bytes.Equal(data, textPing) {
		return Request{Type: TypePing, TextPing: true}, nil
	}
	if !utf8.Valid(data) {
		// The server closes such a frame with 1007 before decoding it;
		// this keeps Decode strict on its own.
		return Request{}, &Error{Code: CodeBadRequest, Message: "frame is not valid UTF-8"}
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return Request{}, &Error{Code: CodeBadRequest, Message: `frame is neither the text "ping" nor a JSON object`}
	}
	w, werr := readObject(data)
	// The id first, so that every later error can carry it.
	id, err := validID(w.fields[fieldID])
	if err != nil {
		return Request{}, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	r := Request{ID: id}
	fail := func(code, format string, args ...any) (Request, *Error) {
		// The type stays known for metrics (it is one of ours, or the error
		// is unknown_type).
		return Request{Type: r.Type}, &Error{ID: id, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	if werr != nil {
		return Request{}, &Error{ID: id, Code: CodeBadRequest, Message: werr.Error()}
	}
	if w.fields[fieldType] == nil {
		return fail(CodeBadRequest, `missing "type"`)
	}
	typ, err := stringField(w.fields[fieldType], "type")
	if err != nil {
		return fail(CodeBadRequest, "%v", err)
	}
	r.Type = typ
	switch r.Type {
	case TypePing:
	case TypeQuery, TypeSubscribe, TypeUnsubscribe:
		raw := w.fields[fieldUserIDs]
		if raw == nil {
			return fail(CodeBadRequest, `%s needs "userIds", an array of user ids`, r.Type)
		}
		var ids []string
		if err := json.Unmarshal(raw, &ids); err != nil || ids == nil {
			// The slow path only finds which element is wrong.
			var elems []json.RawMessage
			if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
				return fail(CodeBadRequest, `"userIds" must be an array of strings`)
			}
			if len(elems) > MaxIDsPerRequest {
				return fail(CodeTooManyIDs, "%d user ids in one request; at most %d", len(elems), MaxIDsPerRequest)
			}
			for i, v := range elems {
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
			// A lone surrogate escape decodes to U+FFFD, which the id rule
			// refuses like any character outside its set.
			if err := userid.Validate(s); err != nil {
				return fail(CodeBadRequest, `"userIds"[%d]: %v`, i, err)
			}
			if _, dup := seen[s]; dup {
				continue
			}
			seen[s] = struct{}{}
			r.UserIDs = append(r.UserIDs, s)
		}
	case TypeStatus:
		if w.fields[fieldStatus] == nil {
			return fail(CodeBadRequest, `status needs "status": one of online, away, busy, invisible`)
		}
		st, err := stringField(w.fields[fieldStatus], "status")
		if err != nil {
			return fail(CodeBadRequest, "%v", err)
		}
		r.Status = presence.Status(st)
		if !r.Status.Settable() {
			return fail(CodeBadRequest, `"status" %q: must be one of online, away, busy, invisible`, excerpt.Of(st))
		}
		if raw := w.fields[fieldText]; raw != nil {
			if r.Text, err = stringField(raw, "text"); err != nil {
				return fail(CodeBadRequest, "%v", err)
			}
		}
		if len(r.Text) > MaxStatusTextLen {
			return fail(CodeBadRequest, `"text" is %d bytes; at most %d`, len(r.Text), MaxStatusTextLen)
		}
	case TypeRefresh:
		if w.fields[fieldToken] == nil {
			return fail(CodeBadRequest, `refresh needs "token", the new JWT`)
		}
		if r.Token, err = stringField(w.fields[fieldToken], "token"); err != nil {
			return fail(CodeBadRequest, "%v", err)
		}
		if r.Token == "" {
			return fail(CodeBadRequest, `"token" is empty`)
		}
	default:
		return fail(CodeUnknownType, "unknown message type %q", excerpt.Of(r.Type))
	}
	return r, nil
}

// The keys of a client frame, matched case-sensitively.
const (
	fieldType = iota
	fieldID
	fieldUserIDs
	fieldStatus
	fieldText
	fieldToken
	numFields
)

var fieldNames = [numFields]string{"type", "id", "userIds", "status", "text", "token"}

// wireObject is a client frame's known keys and their raw values (nil
// when absent).
type wireObject struct {
	fields [numFields]json.RawMessage
}

// readObject reads one JSON object, keeping the raw value of each known
// key. Unlike json.Unmarshal it matches keys case-sensitively, refuses a
// key given twice, and refuses anything after the object. On error the
// fields read so far are kept (the id can still be echoed).
//
// A valid frame (json.Valid: one JSON value and nothing after it) takes
// scanObject, which walks the bytes once without allocating; the
// json.Decoder walk below (about 40 allocations for a status frame: each
// Token and each Decode of a value inside the object) is left for the
// invalid ones, where it finds the id and says what is wrong.
func readObject(data []byte) (wireObject, error) {
	if json.Valid(data) {
		return scanObject(data)
	}
	return decodeObject(data)
}

// scanObject is readObject for a frame json.Valid accepted whose first
// non-space byte is '{' (Decode checks): one object, so every step below
// finds the byte the grammar promises. The raw values alias data.
func scanObject(data []byte) (wireObject, error) {
	var w wireObject
	var others map[string]struct{} // unknown keys, for duplicates
	var dup error                  // the first key given twice
	idTwice := false
	i := skipSpace(data, 0) + 1 // past '{'
	for {
		i = skipSpace(data, i)
		if data[i] == '}' {
			break
		}
		kEnd := endOfString(data, i)
		key, err := unquote(data[i:kEnd])
		if err != nil {
			return w, fmt.Errorf("frame is not a valid JSON object: %s", excerpt.Of(err.Error()))
		}
		i = skipSpace(data, kEnd) + 1 // past ':'
		i = skipSpace(data, i)
		vEnd := endOfValue(data, i)
		raw := json.RawMessage(data[i:vEnd])
		known := -1
		for k, name := range fieldNames {
			if key == name {
				known = k
				break
			}
		}
		switch {
		case known >= 0 && w.fields[known] == nil:
			w.fields[known] = raw
		case known >= 0:
			idTwice = idTwice || known == fieldID
			if dup == nil {
				dup = fmt.Errorf("key %q appears twice", key)
			}
		default:
			if others == nil {
				others = make(map[string]struct{})
			}
			if _, seen := others[key]; seen && dup == nil {
				dup = fmt.Errorf("key %q appears twice", excerpt.Of(key))
			}
			others[key] = struct{}{}
		}
		i = skipSpace(data, vEnd)
		if data[i] == ',' {
			i++
			continue
		}
		break // '}'
	}
	if idTwice {
		w.fields[fieldID] = nil // no way to tell which id to echo
	}
	return w, dup
}

// skipSpace returns the index of the first byte from i that is not JSON
// whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string that starts at
// data[i] ('"'), in valid JSON.
func endOfString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++ // the escaped byte (a quote or a backslash among them)
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// endOfValue returns the index just past the value that starts at data[i],
// in valid JSON.
func endOfValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return endOfString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = endOfString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(data)
	}
	for i < len(data) { // number, true, false, null
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// unquote returns the text of a JSON string of valid JSON: its bytes when
// it has no escape (the frame is valid UTF-8, checked by Decode), else
// what encoding/json makes of it.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// decodeObject is readObject with encoding/json's Decoder: for frames that
// are not valid JSON, read as far as they go.
func decodeObject(data []byte) (wireObject, error) {
	var w wireObject
	dec := json.NewDecoder(bytes.NewReader(data))
	invalid := func(err error) error {
		return fmt.Errorf("frame is not a valid JSON object: %s", excerpt.Of(err.Error()))
	}
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return w, invalid(err)
	}
	var others map[string]struct{} // unknown keys, for duplicates
	var dup error                  // the first key given twice
	idTwice := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return w, invalid(err)
		}
		key, _ := t.(string) // inside an object, More means a key
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return w, invalid(err)
		}
		known := -1
		for i, name := range fieldNames {
			if key == name {
				known = i
				break
			}
		}
		switch {
		case known >= 0 && w.fields[known] == nil:
			w.fields[known] = raw
		case known >= 0:
			// Reading goes on, so that an id after the duplicate is echoed.
			idTwice = idTwice || known == fieldID
			if dup == nil {
				dup = fmt.Errorf("key %q appears twice", key)
			}
		default:
			if others == nil {
				others = make(map[string]struct{})
			}
			if _, seen := others[key]; seen && dup == nil {
				dup = fmt.Errorf("key %q appears twice", excerpt.Of(key))
			}
			others[key] = struct{}{}
		}
	}
	if idTwice {
		w.fields[fieldID] = nil // no way to tell which id to echo
	}
	if _, err := dec.Token(); err != nil { // '}'
		return w, invalid(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return w, errors.New("frame is not a valid JSON object: data after the object")
	}
	return w, dup
}

// stringField decodes a JSON string value strictly: a lone surrogate
// escape ("\ud800"), which encoding/json turns into U+FFFD silently, is
// refused.
func stringField(raw json.RawMessage, name string) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", fmt.Errorf("%q must be a string", name)
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		// No escape, so no U+FFFD the decoder could have made up either;
		// json.Valid refused control characters, Decode invalid UTF-8.
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%q must be a string", name)
	}
	if n := strings.Count(s, "\uFFFD"); n > 0 {
		// Each U+FFFD in the result must be one the client wrote, as the
		// character itself or as the escape \ufffd.
		written := bytes.Count(raw, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(raw), []byte(`\ufffd`))
		if n > written {
			return "", fmt.Errorf("%q is not valid Unicode (a lone surrogate escape)", name)
		}
	}
	return s, nil
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

// ValidateUserID checks a user id with the rule of package userid.
func ValidateUserID(id string) error { return userid.Validate(id) }

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
