package userid

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{"a", "u1", "A.b_c:d@e-f", strings.Repeat("z", MaxLen), "0"}
	bad := []string{"", " ", "a/b", "a?b", "a&b", "ü", strings.Repeat("z", MaxLen+1), "a\x00"}
	for _, id := range good {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want ok", id, err)
		}
	}
	for _, id := range bad {
		if err := Validate(id); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", id)
		}
	}
}
