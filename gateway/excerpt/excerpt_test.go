package excerpt

import (
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	long := strings.Repeat("x", MaxLen)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{long, long},
		{long + "y", long + "..."},
	} {
		if got := Of(tc.in); got != tc.want {
			t.Errorf("Of(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
