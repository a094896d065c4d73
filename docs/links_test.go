// Package docs_test checks the project's documents: every relative link in
// docs/*.md and README.md names a file of the repository and, with a
// #fragment, a heading of that file.
package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// linkRE matches a Markdown link's target: [text](target).
var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// headingRE matches a Markdown heading line.
var headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)

func TestRelativeLinksResolve(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "README.md"))
	checked := 0
	for _, f := range files {
		text := readFile(t, f)
		for _, m := range linkRE.FindAllStringSubmatchIndex(text, -1) {
			target := text[m[2]:m[3]]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			line := strings.Count(text[:m[0]], "\n") + 1
			path, fragment, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s:%d: link %q: %v", f, line, target, err)
					continue
				}
			}
			if fragment != "" && strings.HasSuffix(dest, ".md") {
				if !anchors(readFile(t, dest))[fragment] {
					t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", f, line, target, dest, fragment)
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the test's reading of the documents is broken")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// anchors returns the fragment ids GitHub gives the headings of a Markdown
// text: lower case, punctuation other than '-' and '_' dropped, spaces
// turned into '-', and "-1", "-2"... appended to repeats. Headings inside
// fenced code blocks are not headings.
func anchors(text string) map[string]bool {
	var prose strings.Builder
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			prose.WriteString(line + "\n")
		}
	}
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingRE.FindAllStringSubmatch(prose.String(), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			seen[id]++
			id = fmt.Sprintf("%s-%d", id, n)
		} else {
			seen[id] = 1
		}
		out[id] = true
	}
	return out
}
