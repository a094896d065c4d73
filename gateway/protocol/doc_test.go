package protocol_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// specPath is the protocol specification whose examples this test checks.
const specPath = "../../docs/protocol.md"

// An example in the specification is a fenced block (```json or ```text)
// right after a marker comment saying what it is:
//
//	client-frame     a frame a client sends: protocol.Decode accepts it
//	server-frame     a JSON frame the gateway sends: it decodes into the
//	                 package's frame type for its "type" with no unknown
//	                 field, and encodes back to the same bytes
//	server-text      a bare text frame the gateway sends (pong)
//	server-user      one user object, as in a presence frame
//	http-body        a JSON body of the HTTP API
//
// "client-frame: pending" and "server-frame: pending" mark examples of
// frames this branch does not implement yet: they must be JSON objects with
// a "type", and the test fails once the package accepts them, so that the
// marker is flipped when the implementation lands.
var exampleRE = regexp.MustCompile("(?s)<!-- ([a-z-]+)(: pending)? -->\n```(json|text)\n(.*?)\n```")

type example struct {
	kind    string
	pending bool
	lang    string
	body    string
	line    int
}

func readSpec(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatalf("reading the protocol specification: %v", err)
	}
	return string(b)
}

func examples(t *testing.T, spec string) []example {
	t.Helper()
	var out []example
	for _, m := range exampleRE.FindAllStringSubmatchIndex(spec, -1) {
		out = append(out, example{
			kind:    spec[m[2]:m[3]],
			pending: m[4] >= 0,
			lang:    spec[m[6]:m[7]],
			body:    spec[m[8]:m[9]],
			line:    strings.Count(spec[:m[0]], "\n") + 1,
		})
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no marked example", specPath)
	}
	return out
}

// TestSpecExamples checks every marked example of the specification against
// the code.
func TestSpecExamples(t *testing.T) {
	spec := readSpec(t)
	for _, ex := range examples(t, spec) {
		where := specPath + ":" + strconv.Itoa(ex.line)
		switch {
		case ex.pending:
			checkPending(t, where, ex)
		case ex.kind == "client-frame":
			body := []byte(ex.body)
			if ex.lang == "json" {
				body = compact(t, where, ex.body)
			}
			if _, err := protocol.Decode(body); err != nil {
				t.Errorf("%s: client frame %s: Decode says %v", where, ex.body, err)
			}
		case ex.kind == "server-frame":
			checkServerFrame(t, where, ex.body)
		case ex.kind == "server-text":
			if ex.body != string(protocol.PongText) {
				t.Errorf("%s: server text frame %q: the gateway sends only %q", where, ex.body, protocol.PongText)
			}
		case ex.kind == "server-user":
			checkServerFrame(t, where, `{"type":"presence","users":[`+ex.body+`]}`)
		case ex.kind == "http-body":
			checkHTTPBody(t, where, ex.body)
		default:
			t.Errorf("%s: unknown example marker %q", where, ex.kind)
		}
	}
}

// TestSpecMarksEveryJSONBlock makes sure no JSON example escapes the
// checks by missing its marker.
func TestSpecMarksEveryJSONBlock(t *testing.T) {
	spec := readSpec(t)
	blocks := strings.Count(spec, "```json\n")
	marked := 0
	for _, ex := range examples(t, spec) {
		if ex.lang == "json" {
			marked++
		}
	}
	if blocks != marked {
		t.Errorf("%s has %d ```json blocks but only %d follow a marker comment (<!-- client-frame -->, <!-- server-frame -->, ...)",
			specPath, blocks, marked)
	}
}

// TestSpecCoversThePackage fails when the package defines a client frame
// type without an example in the specification, or an error code the
// specification's table does not list.
func TestSpecCoversThePackage(t *testing.T) {
	spec := readSpec(t)
	documented := map[string]bool{}
	for _, ex := range examples(t, spec) {
		if ex.kind == "client-frame" && ex.lang == "json" {
			documented[frameType(t, specPath, ex.body)] = true
		}
	}
	types, codes := packageConstants(t)
	if len(types) == 0 || len(codes) == 0 {
		t.Fatalf("found %d Type and %d Code constants in package protocol; the test's reading of the package is broken", len(types), len(codes))
	}
	for name, v := range types {
		if !documented[v] {
			t.Errorf("protocol.%s = %q has no <!-- client-frame --> example in %s", name, v, specPath)
		}
	}
	_, errorsSection, _ := strings.Cut(spec, "\n## Errors\n")
	errorsSection, _, _ = strings.Cut(errorsSection, "\n## ")
	for name, v := range codes {
		if !strings.Contains(errorsSection, "\n| `"+v+"` |") {
			t.Errorf("protocol.%s = %q is not a row of the table in the section Errors of %s", name, v, specPath)
		}
	}
}

// checkPending accepts an example of a frame not implemented on this
// branch, and fails once it is implemented.
func checkPending(t *testing.T, where string, ex example) {
	t.Helper()
	typ := frameType(t, where, ex.body)
	switch ex.kind {
	case "client-frame":
		if _, err := protocol.Decode(compact(t, where, ex.body)); err == nil {
			t.Errorf("%s: the %q frame decodes now: change its marker to <!-- client-frame -->", where, typ)
		}
	case "server-frame":
		var f protocol.ErrorFrame
		if err := json.Unmarshal([]byte(ex.body), &f); err == nil && typ == "error" {
			_, codes := packageConstants(t)
			for _, v := range codes {
				if v == f.Code {
					t.Errorf("%s: error code %q exists now: change its marker to <!-- server-frame -->", where, f.Code)
				}
			}
		}
	default:
		t.Errorf("%s: only client-frame and server-frame examples can be pending", where)
	}
}

// checkServerFrame decodes a server frame into the package's type for it,
// refusing unknown fields, and checks it encodes back to the same bytes.
func checkServerFrame(t *testing.T, where, body string) {
	t.Helper()
	var v any
	switch typ := frameType(t, where, body); typ {
	case "welcome":
		v = &protocol.Welcome{}
	case "presence":
		v = &protocol.Presence{}
	case "pong", "ok":
		v = &protocol.Reply{}
	case "error":
		v = &protocol.ErrorFrame{}
	default:
		t.Errorf("%s: %q is not a server frame type", where, typ)
		return
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s: server frame %s: %v", where, body, err)
		return
	}
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := compact(t, where, body); !bytes.Equal(got, want) {
		t.Errorf("%s: the gateway would encode this frame as\n%s\nnot\n%s", where, got, want)
	}
	if f, ok := v.(*protocol.ErrorFrame); ok {
		_, codes := packageConstants(t)
		known := false
		for _, c := range codes {
			known = known || c == f.Code
		}
		if !known {
			t.Errorf("%s: error code %q is not defined by package protocol", where, f.Code)
		}
	}
}

// checkHTTPBody accepts the two shapes of the HTTP API: {"users":[...]} and
// the error body {"error":...,"message":...}.
func checkHTTPBody(t *testing.T, where, body string) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &keys); err != nil {
		t.Errorf("%s: HTTP body %s: %v", where, body, err)
		return
	}
	if users, ok := keys["users"]; ok && len(keys) == 1 {
		checkServerFrame(t, where, `{"type":"presence","users":`+string(users)+`}`)
		return
	}
	var e struct {
		Error, Message string
		UserIDs        []string `json:"userIds"` // with forbidden
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" || e.Message == "" {
		t.Errorf(`%s: HTTP body %s is neither {"users":[...]} nor {"error":"...","message":"..."}`, where, body)
	}
}

// frameType returns the "type" of a JSON object example.
func frameType(t *testing.T, where, body string) string {
	t.Helper()
	var f struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil || f.Type == nil {
		t.Errorf("%s: %s is not a JSON object with a string \"type\" (%v)", where, body, err)
		return ""
	}
	return *f.Type
}

func compact(t *testing.T, where, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Errorf("%s: %s is not JSON: %v", where, body, err)
	}
	return b.Bytes()
}

// packageConstants reads the string constants named Type* (client frame
// types) and Code* (error codes) from the package's source, so that a type
// or code added later is checked without editing this test.
func packageConstants(t *testing.T) (types, codes map[string]string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	types, codes = map[string]string{}, map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parsing package protocol: %v", err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						continue
					}
					switch {
					case strings.HasPrefix(n.Name, "Type"):
						types[n.Name] = v
					case strings.HasPrefix(n.Name, "Code"):
						codes[n.Name] = v
					}
				}
			}
		}
	}
	return types, codes
}
