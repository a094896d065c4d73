// Package gomod finds files that third-party projects publish inside their
// Go modules (CustomResourceDefinitions, mostly), so that tests use a pinned
// upstream copy from the Go module proxy instead of one pasted into testdata.
//
// It runs `go mod download -json`, which fills the module cache once per
// machine and answers from it afterwards; the go command is always there
// when tests run. A module that is never imported stays out of go.mod and
// go.sum, so a test's need for, say, prometheus-operator's CRDs costs the
// main module nothing.
package gomod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Dir downloads module@version (when not already in the module cache) and
// returns the directory of its extracted source.
func Dir(ctx context.Context, module, version string) (string, error) {
	if module == "" || version == "" || strings.ContainsAny(module+version, "@ \t\n") {
		return "", fmt.Errorf("gomod: want a module path and a version, got %q@%q", module, version)
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
	// Outside any module, so the caller's go.mod (and its replaces) play no part.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct {
		Dir   string
		Error string
	}
	// go mod download -json reports a module's own error in the JSON and
	// exits non-zero; decode first so that message is the one returned.
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("gomod: %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("gomod: go mod download %s@%s: %w: %s", module, version, err, strings.TrimSpace(stderr.String()))
	}
	if info.Dir == "" {
		return "", fmt.Errorf("gomod: go mod download %s@%s named no directory", module, version)
	}
	return info.Dir, nil
}

// File returns the path of rel (slash-separated) inside module@version,
// downloading the module when needed, and fails when the file is not there.
func File(ctx context.Context, module, version, rel string) (string, error) {
	dir, err := Dir(ctx, module, version)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("gomod: %s@%s has no %s", module, version, rel)
		}
		return "", fmt.Errorf("gomod: %w", err)
	}
	return p, nil
}
