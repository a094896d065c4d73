package main

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testInputs are fixed inputs for images of a fake binary.
func testInputs(t *testing.T) (inputs, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	return inputs{
		version:  "1.2.3",
		commit:   "0123456789abcdef0123456789abcdef01234567",
		created:  time.Unix(1_700_000_000, 0).UTC(),
		caBundle: []byte("-----BEGIN CERTIFICATE-----\n"),
	}, bin
}

// TestImagesAreReproducible: the same inputs give the same digests, and the
// layer both images share has one digest, so a registry stores it once.
func TestImagesAreReproducible(t *testing.T) {
	in, bin := testInputs(t)
	p := v1.Platform{OS: "linux", Architecture: "arm64"}
	digest := func(spec imageSpec, in inputs) (v1.Hash, v1.Hash) {
		img, err := newImage(spec, p, in, bin)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := newIndex(spec, in, []platformImage{{platform: p, image: img}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		base, err := layers[0].Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d, base
	}
	gw, gwBase := digest(images[0], in)
	again, _ := digest(images[0], in)
	if gw != again {
		t.Fatalf("two builds of the same inputs: %s and %s", gw, again)
	}
	op, opBase := digest(images[1], in)
	if op == gw || opBase != gwBase {
		t.Fatalf("gateway %s (base layer %s), operator %s (base layer %s): want two images sharing one base layer", gw, gwBase, op, opBase)
	}
	later := in
	later.created = in.created.Add(time.Second)
	if d, _ := digest(images[0], later); d == gw {
		t.Fatal("another created time gave the same digest")
	}
}

// TestPushIndex pushes an index the way make images IMAGE_REGISTRY=...
// does, to a registry in this process, and pulls it back by tag.
func TestPushIndex(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	in, bin := testInputs(t)
	var built []platformImage
	for _, arch := range []string{"amd64", "arm64"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		img, err := newImage(images[0], p, in, bin)
		if err != nil {
			t.Fatal(err)
		}
		built = append(built, platformImage{platform: p, image: img})
	}
	idx, err := newIndex(images[0], in, built)
	if err != nil {
		t.Fatal(err)
	}
	registryPrefix := strings.TrimPrefix(srv.URL, "http://") + "/presencekit/"
	ref, err := pushIndex(context.Background(), idx, registryPrefix, "presence-gateway", in.version)
	if err != nil {
		t.Fatal(err)
	}
	if want := registryPrefix + "presence-gateway:1.2.3"; ref.String() != want {
		t.Errorf("pushed to %s, want %s", ref, want)
	}
	tag, err := name.NewTag(ref.String())
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(tag)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pulled.Digest()
	want, _ := idx.Digest()
	if got != want {
		t.Fatalf("pulled %s, pushed %s", got, want)
	}
	arm, err := remote.Image(tag, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := arm.ConfigFile(); err != nil || cf.Architecture != "arm64" || cf.Config.User != nonroot {
		t.Fatalf("the pulled linux/arm64 image: %+v %v", cf, err)
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil || len(ps) != 2 || ps[1].Architecture != "arm64" {
		t.Fatalf("parsePlatforms: %v %v", ps, err)
	}
	for _, bad := range []string{"", "amd64", "windows/amd64", "linux/arm/v7", "linux/"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("parsePlatforms(%q) accepted it", bad)
		}
	}
}
