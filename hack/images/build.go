package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// versionPkg is the package whose Version and Commit the linker sets; the
// binaries print them with --version.
const versionPkg = "github.com/presencekit/presence-operator/internal/version"

// goBuild cross-compiles pkg for p into out: a static binary (no cgo),
// without paths of this machine (-trimpath), symbols or DWARF (-s -w), and
// with the version and commit --version prints.
func goBuild(ctx context.Context, root, pkg string, p v1.Platform, in inputs, out string) error {
	ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Commit=%s", versionPkg, in.version, versionPkg, in.commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w", pkg, p.OS, p.Architecture, err)
	}
	return nil
}
