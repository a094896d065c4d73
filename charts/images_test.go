package charts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfiles checks the images' Dockerfiles without a Docker engine:
// each builds a main package that exists, as a static (CGO_ENABLED=0,
// -trimpath) binary, onto distroless static, run as the non-root user.
func TestDockerfiles(t *testing.T) {
	for _, tc := range []struct{ file, binary string }{
		{"Dockerfile.operator", "presence-operator"},
		{"Dockerfile.gateway", "presence-gateway"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			froms := regexp.MustCompile(`(?m)^FROM\s+(\S+\s+)*?(\S+)(\s+AS\s+\S+)?\s*$`).FindAllStringSubmatch(text, -1)
			if len(froms) < 2 {
				t.Fatalf("%s has %d stages, want a multi-stage build", tc.file, len(froms))
			}
			if final := froms[len(froms)-1][2]; final != "gcr.io/distroless/static:nonroot" {
				t.Errorf("%s's final image is %s, want gcr.io/distroless/static:nonroot", tc.file, final)
			}
			for _, want := range []string{
				"CGO_ENABLED=0",
				"-trimpath",
				"-o /out/" + tc.binary + " ./cmd/" + tc.binary + "\n",
				"COPY --from=build /out/" + tc.binary + " /" + tc.binary + "\n",
				"USER 65532:65532\n",
				`ENTRYPOINT ["/` + tc.binary + `"]`,
			} {
				if !strings.Contains(text, want) {
					t.Errorf("%s lacks %q", tc.file, want)
				}
			}

			// The package it builds is a main package of this module.
			cmd := exec.Command("go", "list", "-f", "{{.Name}}", "./cmd/"+tc.binary)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "main" {
				t.Errorf("%s builds ./cmd/%s, which is not a main package: %v %s", tc.file, tc.binary, err, out)
			}
		})
	}
}
