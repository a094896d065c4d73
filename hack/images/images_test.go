package main

// The tests of the images make images wrote (make test-images builds them
// first): they open the OCI layouts in IMAGES_DIR with go-containerregistry
// and check what a user of the images would notice.

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// repoRoot is the repository, from hack/images.
const repoRoot = "../.."

// shells are names no file of an image may have.
var shells = []string{"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox", "toybox"}

// expected is what the tests compare the images with, read the way make
// images reads it.
type expected struct {
	version, commit string
	in              inputs
}

func expect(t *testing.T) expected {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	in, err := readInputs(root, "", defaultCABundle)
	if err != nil {
		t.Fatal(err)
	}
	return expected{version: in.version, commit: in.commit, in: in}
}

// imagesDir is where make images wrote the layouts: IMAGES_DIR, which make
// test-images sets, else bin/images.
func imagesDir() string {
	if d := os.Getenv("IMAGES_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, "bin", "images")
}

// openIndex opens the OCI layout of the image called name and returns the
// descriptor its index.json lists and the image index it points to.
func openIndex(t *testing.T, name string) (v1.Descriptor, v1.ImageIndex) {
	t.Helper()
	dir := filepath.Join(imagesDir(), name)
	l, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("no OCI layout of %s at %s (make test-images builds the layouts, then runs these tests): %v", name, dir, err)
	}
	m, err := l.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("%s/index.json lists %d manifests, want the one image index (what crane push <dir> pushes)", dir, len(m.Manifests))
	}
	desc := m.Manifests[0]
	if desc.MediaType != types.OCIImageIndex {
		t.Fatalf("%s/index.json lists a %s, want an OCI image index", dir, desc.MediaType)
	}
	idx, err := l.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return desc, idx
}

// platformImages are the images of idx by "os/arch".
func platformImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	imgs := map[string]v1.Image{}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs[d.Platform.OS+"/"+d.Platform.Architecture] = img
	}
	return imgs
}

// imageFile is one file of an image's layers.
type imageFile struct {
	hdr  *tar.Header
	body []byte
}

// imageFiles reads every layer of img, oldest first; a later layer's file
// replaces an earlier one.
func imageFiles(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]imageFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = imageFile{hdr: h, body: body}
		}
		_ = rc.Close()
	}
	return files
}

// extractBinary writes the binary of the image for this machine's platform
// to a temporary file and returns its path.
func extractBinary(t *testing.T, spec imageSpec) string {
	t.Helper()
	_, idx := openIndex(t, spec.name)
	img, ok := platformImages(t, idx)["linux/"+runtime.GOARCH]
	if !ok {
		t.Fatalf("%s has no linux/%s image to run here", spec.name, runtime.GOARCH)
	}
	f, ok := imageFiles(t, img)[spec.name]
	if !ok {
		t.Fatalf("%s has no /%s", spec.name, spec.name)
	}
	bin := filepath.Join(t.TempDir(), spec.name)
	if err := os.WriteFile(bin, f.body, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runVersion runs bin --version and returns its one line.
func runVersion(t *testing.T, bin string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--version")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --version: %v; stderr %q", bin, err, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("%s --version printed %q, want one line", bin, out)
	}
	return strings.TrimSuffix(out, "\n")
}

func TestImages(t *testing.T) {
	want := expect(t)
	_, licenseErr := os.Stat(filepath.Join(repoRoot, "LICENSE"))
	if (licenseErr == nil) != (license != "") {
		t.Errorf("a LICENSE file exists: %v, the licenses label is %q: set license in inputs.go to the LICENSE's SPDX id", licenseErr == nil, license)
	}
	for _, spec := range images {
		t.Run(spec.name, func(t *testing.T) {
			desc, idx := openIndex(t, spec.name)
			if got := desc.Annotations[refNameAnnotation]; got != want.version {
				t.Errorf("the layout tags the index %q, want the chart's appVersion %q", got, want.version)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if im.MediaType != types.OCIImageIndex {
				t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
			}
			checkLabels(t, "index annotation", im.Annotations, spec, want)

			imgs := platformImages(t, idx)
			if got := slices.Sorted(maps.Keys(imgs)); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
				t.Fatalf("index platforms %v, want linux/amd64 and linux/arm64", got)
			}
			for platform, img := range imgs {
				t.Run(platform, func(t *testing.T) { checkImage(t, spec, platform, img, want) })
			}
		})
	}
}

// checkImage checks one platform's image: manifest, config, files.
func checkImage(t *testing.T, spec imageSpec, platform string, img v1.Image, want expected) {
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s (%v), want %s", mt, err, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("config platform %s in the index's %s entry", got, platform)
	}
	if !cf.Created.Equal(want.in.created) {
		t.Errorf("created %s, want %s (the commit's time, or SOURCE_DATE_EPOCH)", cf.Created.Time, want.in.created)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/" + spec.name}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/%s] and no cmd", c.Entrypoint, c.Cmd, spec.name)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	checkLabels(t, "label", c.Labels, spec, want)
	if got := slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(got, spec.ports) {
		t.Errorf("exposed ports %v, want %v", got, spec.ports)
	}

	files := imageFiles(t, img)
	wantNames := []string{"etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", caBundlePath, spec.name}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, slices.Sorted(slices.Values(wantNames))) {
		t.Errorf("files %q, want only %q", got, wantNames)
	}
	for name, f := range files {
		if slices.Contains(shells, path.Base(strings.TrimSuffix(name, "/"))) || strings.HasPrefix(name, "bin/") {
			t.Errorf("the image has %s: no shell, no /bin", name)
		}
		if !f.hdr.ModTime.Equal(want.in.created) || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
			t.Errorf("%s: mtime %s, owner %d:%d, want %s, 0:0", name, f.hdr.ModTime, f.hdr.Uid, f.hdr.Gid, want.in.created)
		}
	}
	if !bytes.Equal(files[caBundlePath].body, want.in.caBundle) {
		t.Errorf("%s is not this machine's %s", caBundlePath, defaultCABundle)
	}
	if !strings.Contains(string(files["etc/passwd"].body), "nonroot:x:65532:65532:") ||
		!strings.Contains(string(files["etc/group"].body), "nonroot:x:65532:") {
		t.Errorf("/etc/passwd or /etc/group lacks nonroot 65532:\n%s%s", files["etc/passwd"].body, files["etc/group"].body)
	}
	bin := files[spec.name]
	if bin.hdr == nil {
		t.Fatalf("no /%s", spec.name)
	}
	if bin.hdr.Mode&0o111 == 0 {
		t.Errorf("/%s has mode %o, not executable", spec.name, bin.hdr.Mode)
	}
	checkStaticELF(t, bin.body, strings.TrimPrefix(platform, "linux/"))
}

// checkLabels checks the OCI labels (or the index's annotations).
func checkLabels(t *testing.T, what string, got map[string]string, spec imageSpec, want expected) {
	t.Helper()
	for k, v := range map[string]string{
		"org.opencontainers.image.title":    spec.name,
		"org.opencontainers.image.version":  want.version,
		"org.opencontainers.image.revision": want.commit,
		"org.opencontainers.image.source":   sourceURL,
	} {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", what, k, got[k], v)
		}
	}
	if got["org.opencontainers.image.description"] == "" {
		t.Errorf("%s org.opencontainers.image.description is empty", what)
	}
	if got["org.opencontainers.image.licenses"] != license {
		t.Errorf("%s org.opencontainers.image.licenses = %q, want %q", what, got["org.opencontainers.image.licenses"], license)
	}
}

// checkStaticELF checks that b is a Linux executable for arch that needs
// no dynamic loader or shared library: it runs on an empty image.
func checkStaticELF(t *testing.T, b []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine || f.Type != elf.ET_EXEC {
		t.Errorf("the binary is %s %s, want %s ET_EXEC", f.Machine, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader (PT_INTERP): built with cgo?")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}

// TestBinariesPrintTheirVersion runs each image's binary for this machine
// with --version: the version and commit make images set with the linker.
func TestBinariesPrintTheirVersion(t *testing.T) {
	want := expect(t)
	for _, spec := range images {
		got := runVersion(t, extractBinary(t, spec))
		prefix := spec.name + " version " + want.version + ", commit " + want.commit + ", go"
		if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, " linux/"+runtime.GOARCH) {
			t.Errorf("%s --version = %q, want %q... linux/%s", spec.name, got, prefix, runtime.GOARCH)
		}
	}
}
