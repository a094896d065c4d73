// Package version is the build's identity, printed by --version: the
// release, the commit it was built from and the Go toolchain. make images
// (hack/images) and make build set Version and Commit with the linker:
//
//	go build -ldflags "-X github.com/presencekit/presence-operator/internal/version.Version=0.1.0 \
//	  -X github.com/presencekit/presence-operator/internal/version.Commit=$(git rev-parse HEAD)"
//
// A plain go build or go run leaves the defaults, "dev" and "unknown".
package version

import (
	"fmt"
	"runtime"
)

// Version is the release the binary was built as (the chart's appVersion
// for make images); "dev" when not set at build time.
var Version = "dev"

// Commit is the git commit the binary was built from; "unknown" when not
// set at build time.
var Commit = "unknown"

// String is the line --version prints for program, e.g.
// "presence-gateway version 0.1.0, commit 3f2a..., go1.26.8 linux/amd64".
func String(program string) string {
	return fmt.Sprintf("%s version %s, commit %s, %s %s/%s",
		program, Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
