package shardsub

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
		err  bool
	}{
		{in: "+OK\r\n", want: "OK"},
		{in: "-MOVED 1 127.0.0.1:7001\r\n", want: respError("MOVED 1 127.0.0.1:7001")},
		{in: ":42\r\n", want: int64(42)},
		{in: "$5\r\nhello\r\n", want: "hello"},
		{in: "$-1\r\n", want: nil},
		{in: "*-1\r\n", want: nil},
		{in: "*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$3\r\na\nb\r\n", want: []any{"smessage", "ch", "a\nb"}},
		{in: "*2\r\n*1\r\n:1\r\n$0\r\n\r\n", want: []any{[]any{int64(1)}, ""}},
		{in: "", err: true},
		{in: "+OK\n", err: true},
		{in: "$5\r\nhelloXY", err: true},
		{in: "$3\r\nab\r\n", err: true},
		{in: ":x\r\n", err: true},
		{in: "$99999999\r\n", err: true},
		{in: "*99999999\r\n", err: true},
		{in: "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", err: true}, // too deep
		{in: "?\r\n", err: true},
		{in: "*2\r\n:1\r\n", err: true}, // truncated
	} {
		got, err := readValue(bufio.NewReader(strings.NewReader(tc.in)))
		if (err != nil) != tc.err {
			t.Errorf("readValue(%q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("readValue(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestWriteCommandRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	args := []string{"SSUBSCRIBE", "presence:{a b\r\n}:events", ""}
	if err := writeCommand(w, args...); err != nil {
		t.Fatal(err)
	}
	got, err := readValue(bufio.NewReader(&b))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{args[0], args[1], args[2]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %#v, want %#v", got, want)
	}
}

// FuzzReadValue feeds the reader arbitrary streams: it must return a value
// or an error, never panic or hang, and whatever it accepts must survive a
// round trip through writeValue.
func FuzzReadValue(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
		"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$1\r\np\r\n",
		"*3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:1\r\n",
		"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 64 {
			v, err := readValue(r)
			if err != nil {
				return
			}
			var b bytes.Buffer
			w := bufio.NewWriter(&b)
			writeValue(w, v)
			_ = w.Flush()
			again, err := readValue(bufio.NewReader(&b))
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%#v does not survive a round trip: %#v, %v (wire %q)", v, again, err, b.String())
			}
		}
	})
}
