// Package filewatchtest writes files the way the kubelet updates a
// ConfigMap or Secret volume, for the tests of the code that watches them.
package filewatchtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Volume is a directory laid out like a ConfigMap or Secret volume: each
// key is a symlink "key -> ..data/key", and "..data" is a symlink to a
// timestamped directory holding this version's files. Set swaps "..data"
// to a new directory with one rename, as the kubelet's atomic writer does,
// so a reader sees the old files or the new ones, never a mix.
type Volume struct {
	t   testing.TB
	Dir string
	n   int
}

// NewVolume makes an empty volume in a temporary directory of t.
func NewVolume(t testing.TB) *Volume {
	t.Helper()
	return &Volume{t: t, Dir: t.TempDir()}
}

// Path is the path of key's file.
func (v *Volume) Path(key string) string { return filepath.Join(v.Dir, key) }

// Set makes data the volume's content: keys missing from data disappear.
func (v *Volume) Set(data map[string]string) {
	v.t.Helper()
	v.n++
	version := fmt.Sprintf("..v%04d", v.n)
	dir := filepath.Join(v.Dir, version)
	if err := os.Mkdir(dir, 0o755); err != nil {
		v.t.Fatal(err)
	}
	for k, val := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(val), 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		v.t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			if name != version && name != "..data" {
				if err := os.RemoveAll(filepath.Join(v.Dir, name)); err != nil {
					v.t.Fatal(err)
				}
			}
			continue
		}
		if _, ok := data[name]; !ok {
			if err := os.Remove(filepath.Join(v.Dir, name)); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	for k := range data {
		link := filepath.Join(v.Dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
			v.t.Fatal(err)
		}
	}
}
