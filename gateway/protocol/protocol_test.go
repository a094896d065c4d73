package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/gateway/presence"
)

func TestDecode(t *testing.T) {
	ids101 := make([]string, 101)
	for i := range ids101 {
		ids101[i] = `"u` + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + `"`
	}
	tests := []struct {
		name    string
		in      string
		want    Request
		code    string // error code, empty when the frame is good
		errID   string // the id echoed in the error
		message string // a substring of the error message
	}{
		{name: "text ping", in: "ping", want: Request{Type: TypePing, TextPing: true}},
		{name: "json ping with number id", in: `{"type":"ping","id":7}`, want: Request{Type: TypePing, ID: json.RawMessage("7")}},
		{name: "json ping with string id", in: `{"type":"ping","id":"a-1"}`, want: Request{Type: TypePing, ID: json.RawMessage(`"a-1"`)}},
		{name: "json ping without id", in: `{"type":"ping"}`, want: Request{Type: TypePing}},
		{name: "null id is no id", in: `{"type":"ping","id":null}`, want: Request{Type: TypePing}},
		{name: "query", in: `{"type":"query","id":1,"userIds":["a","b.c","x:y@z-_"]}`,
			want: Request{Type: TypeQuery, ID: json.RawMessage("1"), UserIDs: []string{"a", "b.c", "x:y@z-_"}}},
		{name: "duplicates dropped, order kept", in: `{"type":"subscribe","userIds":["b","a","b"]}`,
			want: Request{Type: TypeSubscribe, UserIDs: []string{"b", "a"}}},
		{name: "unsubscribe", in: `{"type":"unsubscribe","id":"u","userIds":["a"]}`,
			want: Request{Type: TypeUnsubscribe, ID: json.RawMessage(`"u"`), UserIDs: []string{"a"}}},
		{name: "status with text", in: `{"type":"status","id":3,"status":"away","text":"lunch"}`,
			want: Request{Type: TypeStatus, ID: json.RawMessage("3"), Status: presence.StatusAway, Text: "lunch"}},
		{name: "status without text", in: `{"type":"status","status":"busy"}`,
			want: Request{Type: TypeStatus, Status: presence.StatusBusy}},
		{name: "unknown fields ignored", in: `{"type":"ping","extra":{"a":1}}`, want: Request{Type: TypePing}},
		{name: "whitespace around", in: " \n{\"type\":\"ping\"}\n", want: Request{Type: TypePing}},
		{name: "exactly 100 ids", in: `{"type":"query","userIds":[` + strings.Join(ids101[:100], ",") + `]}`, code: ""},

		{name: "empty frame", in: "", code: CodeBadRequest},
		{name: "text other than ping", in: "PING", code: CodeBadRequest},
		{name: "not json", in: "{nope", code: CodeBadRequest, message: "not a valid JSON"},
		{name: "array", in: `[1,2]`, code: CodeBadRequest},
		{name: "trailing data", in: `{"type":"ping"}{"type":"ping"}`, code: CodeBadRequest},
		{name: "missing type", in: `{"id":5}`, code: CodeBadRequest, errID: "5", message: `missing "type"`},
		{name: "type not a string", in: `{"type":5}`, code: CodeBadRequest},
		{name: "unknown type", in: `{"type":"dance","id":"x"}`, code: CodeUnknownType, errID: `"x"`, message: `"dance"`},
		{name: "object id", in: `{"type":"ping","id":{"a":1}}`, code: CodeBadRequest, message: `"id"`},
		{name: "bool id", in: `{"type":"ping","id":true}`, code: CodeBadRequest},
		{name: "query without userIds", in: `{"type":"query","id":2}`, code: CodeBadRequest, errID: "2", message: "userIds"},
		{name: "userIds not array", in: `{"type":"query","userIds":"a"}`, code: CodeBadRequest},
		{name: "userIds null", in: `{"type":"query","userIds":null}`, code: CodeBadRequest},
		{name: "userIds empty", in: `{"type":"subscribe","userIds":[]}`, code: CodeBadRequest, message: "empty"},
		{name: "userId not string", in: `{"type":"query","userIds":["a",1]}`, code: CodeBadRequest, message: `[1]`},
		{name: "userId empty", in: `{"type":"query","userIds":[""]}`, code: CodeBadRequest, message: "empty"},
		{name: "userId bad char", in: `{"type":"query","userIds":["a b"]}`, code: CodeBadRequest, message: "not one of"},
		{name: "userId unicode", in: `{"type":"query","userIds":["é"]}`, code: CodeBadRequest},
		{name: "userId too long", in: `{"type":"query","userIds":["` + strings.Repeat("a", 129) + `"]}`, code: CodeBadRequest, message: "129 bytes"},
		{name: "101 ids", in: `{"type":"query","id":9,"userIds":[` + strings.Join(ids101, ",") + `]}`, code: CodeTooManyIDs, errID: "9"},
		{name: "status missing", in: `{"type":"status","text":"x"}`, code: CodeBadRequest},
		{name: "status offline", in: `{"type":"status","status":"offline"}`, code: CodeBadRequest, message: "online, away, busy"},
		{name: "status unknown", in: `{"type":"status","status":"sleepy"}`, code: CodeBadRequest},
		{name: "refresh", in: `{"type":"refresh","id":2,"token":"a.b.c"}`, want: Request{Type: TypeRefresh, ID: json.RawMessage("2"), Token: "a.b.c"}},
		{name: "refresh without token", in: `{"type":"refresh","id":2}`, code: CodeBadRequest, errID: "2", message: `"token"`},
		{name: "refresh empty token", in: `{"type":"refresh","token":""}`, code: CodeBadRequest, message: "empty"},
		{name: "refresh token not a string", in: `{"type":"refresh","token":5}`, code: CodeBadRequest, message: `"token" must be a string`},

		// Strict decoding (issue 9, defect 7).
		{name: "keys are case-sensitive", in: `{"TYPE":"ping"}`, code: CodeBadRequest, message: `missing "type"`},
		{name: "a miscased key is unknown", in: `{"Type":"ping","id":4}`, code: CodeBadRequest, errID: "4", message: `missing "type"`},
		{name: "miscased userIds", in: `{"type":"query","id":1,"userids":["a"]}`, code: CodeBadRequest, errID: "1", message: "userIds"},
		{name: "duplicate type", in: `{"type":"ping","type":"query","id":3}`, code: CodeBadRequest, errID: "3", message: `"type" appears twice`},
		{name: "duplicate unknown key", in: `{"type":"ping","x":1,"x":2}`, code: CodeBadRequest, message: `"x" appears twice`},
		{name: "duplicate id echoes none", in: `{"type":"ping","id":1,"id":2}`, code: CodeBadRequest, message: `"id" appears twice`},
		{name: "type a number echoes the id", in: `{"type":1,"id":8}`, code: CodeBadRequest, errID: "8", message: `"type" must be a string`},
		{name: "id before a syntax error is echoed", in: `{"id":"q","type":"ping",`, code: CodeBadRequest, errID: `"q"`, message: "not a valid JSON"},
		{name: "status not a string echoes the id", in: `{"type":"status","id":5,"status":true}`, code: CodeBadRequest, errID: "5", message: `"status" must be a string`},
		{name: "text not a string", in: `{"type":"status","status":"away","text":1}`, code: CodeBadRequest, message: `"text" must be a string`},
		{name: "invalid UTF-8 in the frame", in: "{\"type\":\"status\",\"status\":\"away\",\"text\":\"\xff\xfe\"}", code: CodeBadRequest, message: "UTF-8"},
		{name: "lone surrogate in text", in: `{"type":"status","id":6,"status":"away","text":"a\ud800b"}`, code: CodeBadRequest, errID: "6", message: "not valid Unicode"},
		{name: "escaped replacement character is fine", in: `{"type":"status","status":"away","text":"\ufffd"}`,
			want: Request{Type: TypeStatus, Status: presence.StatusAway, Text: "\ufffd"}},
		{name: "replacement character itself is fine", in: "{\"type\":\"status\",\"status\":\"away\",\"text\":\"\uFFFD\"}",
			want: Request{Type: TypeStatus, Status: presence.StatusAway, Text: "\uFFFD"}},
		{name: "lone surrogate in a user id", in: `{"type":"query","userIds":["\udc00"]}`, code: CodeBadRequest},
		{name: "status text too long", in: `{"type":"status","status":"away","text":"` + strings.Repeat("t", 257) + `"}`, code: CodeBadRequest, message: "257 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if tc.code != "" {
				if err == nil {
					t.Fatalf("Decode(%q) = %+v, want error %s", tc.in, got, tc.code)
				}
				if err.Code != tc.code || string(err.ID) != tc.errID || !strings.Contains(err.Message, tc.message) {
					t.Fatalf("Decode(%q) error = {code %s id %s message %q}, want code %s id %q message containing %q",
						tc.in, err.Code, err.ID, err.Message, tc.code, tc.errID, tc.message)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): unexpected error %v", tc.in, err)
			}
			if tc.want.Type == "" {
				return
			}
			if got.Type != tc.want.Type || got.TextPing != tc.want.TextPing || string(got.ID) != string(tc.want.ID) ||
				strings.Join(got.UserIDs, ",") != strings.Join(tc.want.UserIDs, ",") ||
				got.Status != tc.want.Status || got.Text != tc.want.Text || got.Token != tc.want.Token {
				t.Fatalf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	u := presence.User{UserID: "a", Online: true, Status: presence.StatusOnline, Connections: 2, LastSeen: 1764190000000, Version: 7}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"welcome", EncodeWelcome("u1", "c1", 20000, 60000),
			`{"type":"welcome","userId":"u1","connectionId":"c1","heartbeatMs":20000,"ttlMs":60000}`},
		{"presence with id", EncodePresence(json.RawMessage(`"q"`), []presence.User{u}),
			`{"type":"presence","id":"q","users":[{"userId":"a","online":true,"status":"online","text":"","connections":2,"lastSeen":1764190000000,"version":7}]}`},
		{"event without id", EncodePresence(nil, nil), `{"type":"presence","users":[]}`},
		{"pong", EncodePong(json.RawMessage("1")), `{"type":"pong","id":1}`},
		{"pong without id", EncodePong(nil), `{"type":"pong"}`},
		{"ok", EncodeOK(json.RawMessage(`"x"`)), `{"type":"ok","id":"x"}`},
		{"error", EncodeError(&Error{ID: json.RawMessage("4"), Code: CodeTooManyIDs, Message: "m"}),
			`{"type":"error","id":4,"code":"too_many_ids","message":"m"}`},
	}
	for _, tc := range tests {
		if string(tc.got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

func TestMetricType(t *testing.T) {
	tests := map[string]string{
		"ping":                         "ping_text",
		`{"type":"ping"}`:              "ping",
		`{"type":"zzz"}`:               "unknown",
		`garbage`:                      "invalid",
		`{"type":"query","userIds":1}`: "query",
	}
	for in, want := range tests {
		r, err := Decode([]byte(in))
		if got := MetricType(r, err); got != want {
			t.Errorf("MetricType(%q) = %q, want %q", in, got, want)
		}
	}
}
