// Command images builds the presence-gateway and presence-operator container
// images without a container engine or a base image (make images): for each
// platform it cross-compiles the static binary with go build, puts it on an
// empty image next to a CA bundle and a nonroot user, and writes the
// platforms' images as one OCI image index, an OCI layout per image under
// -out. With -push it also pushes each index to <registry>/<name>:<version>.
//
// It has a module of its own (hack/images/go.mod) so that the main module
// does not depend on go-containerregistry.
//
// The images are reproducible: the same commit, version, created time
// (SOURCE_DATE_EPOCH, else the commit's time), Go toolchain and CA bundle
// give the same digests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// sourceURL is the repository, the images' org.opencontainers.image.source.
const sourceURL = "https://github.com/presencekit/presence-operator"

// imageSpec is one image: the main package it runs and what its labels say.
type imageSpec struct {
	name        string   // image and binary name; the entrypoint is /<name>
	pkg         string   // main package, relative to the repository root
	description string   // org.opencontainers.image.description
	ports       []string // ExposedPorts, "8080/tcp"
}

// images are the images make images builds: the two binaries, nothing else.
var images = []imageSpec{
	{
		name:        "presence-gateway",
		pkg:         "./cmd/presence-gateway",
		description: "WebSocket presence gateway: who is online, across replicas, backed by a Redis Cluster",
		ports:       []string{"8080/tcp", "9090/tcp"}, // WS_PORT (WebSocket, HTTP API), METRICS_PORT
	},
	{
		name:        "presence-operator",
		pkg:         "./cmd/presence-operator",
		description: "Kubernetes operator for PresenceGateway and RedisCluster resources",
	},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", "../..", "the repository root")
	out := flag.String("out", "", "directory of the OCI layouts, one per image (default <root>/bin/images)")
	versionFlag := flag.String("version", "", "the images' version and tag (default the chart's appVersion)")
	push := flag.String("push", "", "registry and prefix to push <name>:<version> to, e.g. ghcr.io/presencekit; empty = no push")
	platformsFlag := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	caBundle := flag.String("ca-bundle", defaultCABundle, "the CA certificates put at "+caBundlePath+" (Debian's ca-certificates)")
	flag.Parse()

	rootDir, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(rootDir, "bin", "images")
	}
	platforms, err := parsePlatforms(*platformsFlag)
	if err != nil {
		return err
	}
	in, err := readInputs(rootDir, *versionFlag, *caBundle)
	if err != nil {
		return err
	}
	if in.dirty {
		fmt.Fprintf(os.Stderr, "images: warning: the tree has uncommitted changes; the images still say revision %s\n", in.commit)
	}
	fmt.Printf("images: version %s, commit %s, created %s\n", in.version, in.commit, in.created.UTC().Format(time.RFC3339))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	work, err := os.MkdirTemp("", "presencekit-images-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	for _, spec := range images {
		var built []platformImage
		for _, p := range platforms {
			start := time.Now()
			bin := filepath.Join(work, spec.name+"-"+p.OS+"-"+p.Architecture)
			if err := goBuild(ctx, rootDir, spec.pkg, p, in, bin); err != nil {
				return err
			}
			img, err := newImage(spec, p, in, bin)
			if err != nil {
				return fmt.Errorf("%s %s: %w", spec.name, platformString(p), err)
			}
			built = append(built, platformImage{platform: p, image: img})
			fmt.Printf("images: %s %s built in %.1fs\n", spec.name, platformString(p), time.Since(start).Seconds())
		}
		idx, err := newIndex(spec, in, built)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.name, err)
		}
		dir := filepath.Join(*out, spec.name)
		start := time.Now()
		if err := writeLayout(dir, idx, in.version); err != nil {
			return fmt.Errorf("%s: write the OCI layout %s: %w", spec.name, dir, err)
		}
		digest, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("images: %s %s written to %s in %.1fs\n", spec.name, digest, dir, time.Since(start).Seconds())
		if *push != "" {
			ref, err := pushIndex(ctx, idx, *push, spec.name, in.version)
			if err != nil {
				return err
			}
			fmt.Printf("images: pushed %s@%s\n", ref, digest)
		}
	}
	return nil
}

// pushIndex pushes idx to <registry>/<name>:<tag> with the credentials of
// the Docker config (docker login, crane auth login) or credential helpers.
func pushIndex(ctx context.Context, idx v1.ImageIndex, registry, imageName, tag string) (name.Reference, error) {
	ref, err := name.NewTag(strings.TrimSuffix(registry, "/") + "/" + imageName + ":" + tag)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", imageName, err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// parsePlatforms parses "linux/amd64,linux/arm64".
func parsePlatforms(list string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for s := range strings.SplitSeq(list, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(s), "/")
		if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("-platforms entry %q: want linux/<arch>", s)
		}
		ps = append(ps, v1.Platform{OS: osName, Architecture: arch})
	}
	return ps, nil
}

func platformString(p v1.Platform) string { return p.OS + "/" + p.Architecture }
