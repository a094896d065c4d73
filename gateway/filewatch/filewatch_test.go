package filewatch_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/filewatch"
	"github.com/presencekit/presence-operator/gateway/filewatch/filewatchtest"
)

func parseWord(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if s == "" || strings.Contains(s, "bad") {
		return "", errors.New("not a word")
	}
	return s, nil
}

// clock is a manual clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time       { return c.t }
func (c *clock) step(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                { return &clock{t: time.Unix(1_000_000, 0)} }
func want(t *testing.T, got, w, stage string) {
	t.Helper()
	if got != w {
		t.Fatalf("%s: Current() = %q, want %q", stage, got, w)
	}
}

// A volume updated as the kubelet does (a new directory, one symlink
// swap) is seen at the first check after Every, not before; a change
// that cannot be parsed, or a removed file, keeps the last good content.
func TestSymlinkSwapIsSeen(t *testing.T) {
	v := filewatchtest.NewVolume(t)
	v.Set(map[string]string{"word": "one\n"})
	c := newClock()
	f, err := filewatch.New("WORD_FILE", v.Path("word"), parseWord, filewatch.Options{Every: time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.Current(), "one", "start")
	v.Set(map[string]string{"word": "two"})
	want(t, f.Current(), "one", "before Every has passed")
	c.step(time.Second)
	want(t, f.Current(), "two", "after the swap")
	v.Set(map[string]string{"word": "bad"})
	c.step(time.Second)
	want(t, f.Current(), "two", "an unparsable change")
	v.Set(map[string]string{})
	c.step(time.Second)
	want(t, f.Current(), "two", "a removed file")
	v.Set(map[string]string{"word": "three"})
	c.step(time.Second)
	want(t, f.Current(), "three", "written again")
}

// With AllowMissing an absent file is the zero value, at start and when
// the key is removed later; without it, New fails.
func TestAllowMissing(t *testing.T) {
	v := filewatchtest.NewVolume(t)
	v.Set(map[string]string{"other": "x"})
	if _, err := filewatch.New("WORD_FILE", v.Path("word"), parseWord, filewatch.Options{}); err == nil || !strings.Contains(err.Error(), "WORD_FILE") {
		t.Fatalf("a missing file without AllowMissing: %v, want an error naming WORD_FILE", err)
	}
	c := newClock()
	f, err := filewatch.New("WORD_FILE", v.Path("word"), parseWord, filewatch.Options{Now: c.now, AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.Current(), "", "absent at start")
	v.Set(map[string]string{"word": "one"})
	c.step(time.Second)
	want(t, f.Current(), "one", "added")
	v.Set(map[string]string{"other": "x"})
	c.step(time.Second)
	want(t, f.Current(), "", "removed")
}

// A file that cannot be parsed at start is an error naming the setting.
func TestBadAtStart(t *testing.T) {
	v := filewatchtest.NewVolume(t)
	v.Set(map[string]string{"word": "bad"})
	_, err := filewatch.New("WORD_FILE", v.Path("word"), parseWord, filewatch.Options{})
	if err == nil || !strings.Contains(err.Error(), "WORD_FILE") || !strings.Contains(err.Error(), "not a word") {
		t.Fatalf("New = %v, want the parse error naming WORD_FILE", err)
	}
}
