package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// chartFile holds appVersion, the default tag of both images.
const chartFile = "charts/presence-operator/Chart.yaml"

// inputs are what an image is made of besides its binary: the same inputs
// and toolchain give the same digests.
type inputs struct {
	version  string    // the tag, the binaries' --version, the version label
	commit   string    // git HEAD: the binaries' --version, the revision label
	dirty    bool      // uncommitted changes in the tree
	created  time.Time // the config's created time and every file's mtime
	caBundle []byte    // put at caBundlePath
}

// license is the SPDX id of the repository's LICENSE, the images'
// org.opencontainers.image.licenses label; empty (no label) while the
// repository has no LICENSE. The tests fail when one of the two is missing.
const license = ""

// readInputs reads the inputs from the repository at root. version, when
// empty, is the chart's appVersion.
func readInputs(root, version, caBundleFile string) (inputs, error) {
	in := inputs{version: version}
	var err error
	if in.version == "" {
		if in.version, err = chartAppVersion(root); err != nil {
			return inputs{}, err
		}
	}
	if in.commit, err = git(root, "rev-parse", "HEAD"); err != nil {
		return inputs{}, err
	}
	status, err := git(root, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return inputs{}, err
	}
	in.dirty = status != ""
	if in.created, err = createdTime(root); err != nil {
		return inputs{}, err
	}
	if in.caBundle, err = os.ReadFile(caBundleFile); err != nil {
		return inputs{}, fmt.Errorf("CA bundle (the gateway needs it for JWKS over https and Redis TLS; apt-get install ca-certificates): %w", err)
	}
	return in, nil
}

// chartAppVersion reads appVersion from the chart's Chart.yaml.
func chartAppVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, chartFile))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "appVersion:"); ok {
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if v == "" {
				break
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no appVersion", chartFile)
}

// createdTime is SOURCE_DATE_EPOCH when set (reproducible-builds.org),
// else the time of the HEAD commit: a rebuild of the same commit gives the
// same images.
func createdTime(root string) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	from := "SOURCE_DATE_EPOCH"
	if s == "" {
		var err error
		if s, err = git(root, "log", "-1", "--format=%ct", "HEAD"); err != nil {
			return time.Time{}, err
		}
		from = "the commit time"
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("%s=%q: not seconds since 1970", from, s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
