package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestWatchListAllows(t *testing.T) {
	tests := []struct {
		claim   string
		allowed []string
		denied  []string
	}{
		{`["bob","carol"]`, []string{"bob", "carol"}, []string{"bo", "bobby", "dave"}},
		{`["team:*"]`, []string{"team:", "team:1", "team:a:b"}, []string{"team", "teams:1", "xteam:1"}},
		{`["*"]`, []string{"anybody", "a"}, nil},
		{`[]`, nil, []string{"bob"}},
		{`["bob","team-1:*","team-2:*"]`, []string{"bob", "team-2:x"}, []string{"team-3:x"}},
	}
	for _, tt := range tests {
		w, err := parseWatch([]byte(tt.claim))
		if err != nil {
			t.Fatalf("parseWatch(%s): %v", tt.claim, err)
		}
		for _, id := range tt.allowed {
			if !w.Allows(id) {
				t.Errorf("%s does not allow %q", tt.claim, id)
			}
		}
		if got := w.Forbidden(append(slices.Clone(tt.allowed), tt.denied...)); !slices.Equal(got, tt.denied) {
			t.Errorf("%s: Forbidden = %v, want %v", tt.claim, got, tt.denied)
		}
	}
	var none *WatchList
	if !none.Allows("anybody") || none.Forbidden([]string{"a", "b"}) != nil {
		t.Error("a nil WatchList (no claim) must allow everybody")
	}
}

func TestParseWatchRefusesBadShapes(t *testing.T) {
	tests := map[string]string{
		`"bob"`:                                 "must be an array of strings",
		`null`:                                  "must be an array of strings",
		`{"bob":true}`:                          "must be an array of strings",
		`["bob",7]`:                             "must be an array of strings",
		`["te*am"]`:                             `"*" may only end an entry`,
		`["*bob"]`:                              `"*" may only end an entry`,
		`["team**"]`:                            `"*" may only end an entry`,
		`["bob smith"]`:                         `"watch"[0]`,
		`["bob","/*"]`:                          `"watch"[1]`,
		`[""]`:                                  `"watch"[0]: user id is empty`,
		`["` + strings.Repeat("b", 128) + `*"]`: "not the start of a valid user id",
	}
	for claim, want := range tests {
		_, err := parseWatch([]byte(claim))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseWatch(%.40s) = %v, want an error containing %q", claim, err, want)
		}
	}
}
