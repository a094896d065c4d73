package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecode checks that no frame makes Decode panic and that every frame
// it accepts satisfies the limits the rest of the gateway relies on. Its
// seed corpus (testdata/fuzz/FuzzDecode and the f.Add calls) runs with
// every plain `go test`.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"ping", `{"type":"ping","id":1}`, `{"type":"query","userIds":["a","b"]}`,
		`{"type":"subscribe","id":"s","userIds":["a"]}`, `{"type":"status","status":"away","text":"x"}`,
		`{"type":"unsubscribe","userIds":["a"]}`, `{`, `[]`, `null`, `{"type":"status","status":"offline"}`,
		`{"type":"refresh","id":1,"token":"a.b.c"}`, `{"TYPE":"ping"}`, `{"type":"ping","type":"ping"}`,
		`{"type":1,"id":8}`, `{"id":"q","type":"ping",`, `{"type":"status","status":"away","text":"\ud800"}`,
		"{\"type\":\"status\",\"status\":\"away\",\"text\":\"\xff\xfe\"}", `{"type":"ping","x":1,"x":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, e := Decode(data)
		if e == nil && !utf8.Valid(data) {
			t.Fatalf("accepted a frame that is not UTF-8: %q", data)
		}
		if e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("error without code or message: %+v", e)
			}
			var v map[string]any
			if err := json.Unmarshal(EncodeError(e), &v); err != nil {
				t.Fatalf("error frame is not JSON: %v", err)
			}
			return
		}
		switch r.Type {
		case TypePing:
		case TypeQuery, TypeSubscribe, TypeUnsubscribe:
			if len(r.UserIDs) == 0 || len(r.UserIDs) > MaxIDsPerRequest {
				t.Fatalf("accepted %d user ids", len(r.UserIDs))
			}
			seen := map[string]bool{}
			for _, id := range r.UserIDs {
				if ValidateUserID(id) != nil || seen[id] {
					t.Fatalf("accepted bad or duplicate id %q", id)
				}
				seen[id] = true
			}
		case TypeStatus:
			if !r.Status.Settable() || len(r.Text) > MaxStatusTextLen {
				t.Fatalf("accepted status %q text %d bytes", r.Status, len(r.Text))
			}
		case TypeRefresh:
			if r.Token == "" {
				t.Fatal("accepted a refresh without token")
			}
		default:
			t.Fatalf("accepted unknown type %q", r.Type)
		}
		// The id is echoed inside our frames: it must encode.
		if !json.Valid(EncodeOK(r.ID)) || !json.Valid(EncodePong(r.ID)) {
			t.Fatalf("id %q does not round-trip", r.ID)
		}
	})
}

// FuzzScanObjectMatchesDecoder: on every valid JSON object, the
// allocation-free scan gives exactly what the encoding/json Decoder walk
// gives (the raw value of each known key, and the same error).
func FuzzScanObjectMatchesDecoder(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","id":1}`, ` { "type" : "status" , "status":"away", "text":"a\"b\\c" } `,
		`{"type":"query","userIds":["a","b"],"x":{"y":[1,{"z":"]}"}]}}`, `{}`, `{"typ\u0065":"ping"}`,
		`{"type":"ping","type":"ping"}`, `{"id":1,"id":2,"type":"ping"}`, `{"x":1,"x":2}`,
		`{"id":-1.5e3,"type":"ping","t":true,"f":false,"n":null}`, "{\"type\":\"ping\",\"id\":\"\u00e9\"}\n",
		`{"text":"\ud800","status":"away","type":"status"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		if t := skipSpace(data, 0); t >= len(data) || data[t] != '{' {
			return
		}
		fast, ferr := scanObject(data)
		slow, serr := decodeObject(data)
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("%q: scan error %v, decoder error %v", data, ferr, serr)
		}
		for k := range fast.fields {
			if !bytes.Equal(fast.fields[k], slow.fields[k]) || (fast.fields[k] == nil) != (slow.fields[k] == nil) {
				t.Fatalf("%q: %s: scan %q, decoder %q", data, fieldNames[k], fast.fields[k], slow.fields[k])
			}
		}
	})
}
