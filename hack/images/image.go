package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// caBundlePath is where Go's crypto/x509 looks first for the system
	// roots on Linux. The gateway needs them to fetch a JWKS over https
	// (AUTH_JWT_JWKS_URL) and to verify Redis over TLS without
	// REDIS_TLS_CA_FILE; the operator to reach a Redis over TLS.
	caBundlePath = "etc/ssl/certs/ca-certificates.crt"
	// defaultCABundle is the host's bundle, from Debian's ca-certificates.
	defaultCABundle = "/etc/ssl/certs/ca-certificates.crt"
	// nonroot is the user and group the binaries run as, distroless' nonroot
	// (65532), named in /etc/passwd and /etc/group.
	nonroot = "65532:65532"
	// refNameAnnotation tags the index in the OCI layout's index.json, what
	// `skopeo copy oci:<dir>:<tag>` selects by.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// The users the images know: root (the files' owner) and nonroot, with no
// home and no shell (there is none in the images).
const (
	etcPasswd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
	etcGroup  = "root:x:0:\nnonroot:x:65532:\n"
)

// platformImage is the image of one platform, before it goes into the index.
type platformImage struct {
	platform v1.Platform
	image    v1.Image
}

// file is one entry of a layer: a directory when body is nil and dir is set.
type file struct {
	name string
	mode int64
	dir  bool
	body []byte
}

// newImage builds spec's image for p from the binary at bin: two layers on
// an empty image, the files every image shares (CA bundle, /etc/passwd,
// /etc/group; the same layer digest in both images, stored once) and the
// binary at /<name>.
func newImage(spec imageSpec, p v1.Platform, in inputs, bin string) (v1.Image, error) {
	base, err := newLayer(in.created,
		file{name: "etc/", mode: 0o755, dir: true},
		file{name: "etc/group", mode: 0o644, body: []byte(etcGroup)},
		file{name: "etc/passwd", mode: 0o644, body: []byte(etcPasswd)},
		file{name: "etc/ssl/", mode: 0o755, dir: true},
		file{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		file{name: caBundlePath, mode: 0o644, body: in.caBundle},
	)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	app, err := newLayer(in.created, file{name: spec.name, mode: 0o755, body: b})
	if err != nil {
		return nil, err
	}

	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Created:      v1.Time{Time: in.created},
		Config: v1.Config{
			Entrypoint: []string{"/" + spec.name},
			User:       nonroot,
			WorkingDir: "/",
			Labels:     labels(spec, in),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if len(spec.ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range spec.ports {
			cfg.Config.ExposedPorts[port] = struct{}{}
		}
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	history := func(by string) v1.History {
		return v1.History{Created: v1.Time{Time: in.created}, CreatedBy: by, Comment: "hack/images"}
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: history("CA certificates, /etc/passwd and /etc/group with nonroot 65532")},
		mutate.Addendum{Layer: app, History: history("CGO_ENABLED=0 go build -trimpath " + spec.pkg)},
	)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// labels are the image's OCI labels, also the index's annotations.
func labels(spec imageSpec, in inputs) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       spec.name,
		"org.opencontainers.image.description": spec.description,
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.version":     in.version,
		"org.opencontainers.image.revision":    in.commit,
		"org.opencontainers.image.created":     in.created.Format(time.RFC3339),
	}
	if license != "" {
		l["org.opencontainers.image.licenses"] = license
	}
	return l
}

// newLayer is a gzip'd tar layer of files, all owned by root, with the
// mtime created: the same files give the same digest.
func newLayer(created time.Time, files ...file) (v1.Layer, error) {
	var tarBytes bytes.Buffer
	tw := tar.NewWriter(&tarBytes)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: created, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Compressed once here (no name, no mtime in the gzip header), not by
	// ggcr on each read of the layer.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBytes.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// newIndex is the OCI image index of spec's platform images, annotated
// with the labels.
func newIndex(spec imageSpec, in inputs, built []platformImage) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, 0, len(built))
	for _, b := range built {
		adds = append(adds, mutate.IndexAddendum{Add: b.image, Descriptor: v1.Descriptor{Platform: &b.platform}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	annotated, ok := mutate.Annotations(idx, labels(spec, in)).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating the index of %s gave no index", spec.name)
	}
	return annotated, nil
}

// writeLayout replaces the OCI layout at dir with one holding idx, tagged
// tag in index.json (the layout's index lists idx, which lists the
// platforms: crane push <dir> <ref> pushes idx). It is written next to dir
// and renamed, so dir is either the old layout or the new one.
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
