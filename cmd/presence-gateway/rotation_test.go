package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/internal/gatewayproc"
	"github.com/presencekit/presence-operator/internal/poll"
)

// kubeletVolume lays out a directory the way the kubelet writes a Secret or
// ConfigMap volume (its atomic writer): the data sits in a timestamped
// directory, "..data" is a symlink to it, and each key is a symlink through
// "..data". An update writes a new directory and swaps "..data" with one
// rename, so a reader sees the old or the new content, never a mix.
type kubeletVolume struct {
	dir, key string
	n        int
}

func newKubeletVolume(t *testing.T, key string, content []byte) *kubeletVolume {
	t.Helper()
	v := &kubeletVolume{dir: t.TempDir(), key: key}
	v.update(t, content)
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(v.dir, key)); err != nil {
		t.Fatal(err)
	}
	return v
}

// path is the file the pod's environment names (what the operator sets).
func (v *kubeletVolume) path() string { return filepath.Join(v.dir, v.key) }

func (v *kubeletVolume) update(t *testing.T, content []byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_12_03_07_00_00.%09d", v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, ts, v.key), content, 0o440); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyRotationInMountedVolume: the operator gives the gateway its JWT key
// as a file in a mounted Secret or ConfigMap (spec.auth.jwtSecretRef,
// spec.auth.jwtPublicKeyRef). Rotating that object makes the kubelet swap
// the volume's content; the same gateway process (a pod is not restarted)
// must then accept tokens of the new key and refuse the old one, and a
// connection opened before the rotation must stay open.
func TestKeyRotationInMountedVolume(t *testing.T) {
	type key struct {
		content []byte // what the Secret or ConfigMap holds
		sign    any    // what signs tokens
	}
	hs := func(s string) key { return key{[]byte(s + "\n"), []byte(s)} }
	es := func() key {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return key{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), k}
	}
	for _, tc := range []struct {
		name, env, file string
		method          jwt.SigningMethod
		oldKey, newKey  key
	}{
		{"jwtSecretRef, HS256", "AUTH_JWT_SECRET_FILE", "secret", jwt.SigningMethodHS256, hs("before-rotation"), hs("after-rotation")},
		{"jwtPublicKeyRef, ES256", "AUTH_JWT_PUBLIC_KEY_FILE", "key.pem", jwt.SigningMethodES256, es(), es()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := newKubeletVolume(t, tc.file, tc.oldKey.content)
			p := run(t, tc.env+"="+vol.path())
			token := func(k key, sub string) string {
				s, err := jwt.NewWithClaims(tc.method, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(k.sign)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			presence := func(tok string) int { return gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + tok) }
			if got := presence(token(tc.oldKey, "alice")); got != http.StatusOK {
				t.Fatalf("a token of the mounted key: %d, want 200", got)
			}
			if got := presence(token(tc.newKey, "alice")); got != http.StatusUnauthorized {
				t.Fatalf("a token of the next key before the rotation: %d, want 401", got)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := dial(ctx, p.WS+"/?token="+token(tc.oldKey, "alice"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.CloseNow() }()
			if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"welcome"`) {
				t.Fatalf("welcome: %q %v", b, err)
			}

			vol.update(t, tc.newKey.content)
			poll.Eventually(t, 10*time.Second, "the rotated key in use", func() (bool, string) {
				got := presence(token(tc.newKey, "bob"))
				return got == http.StatusOK, http.StatusText(got)
			})
			if got := presence(token(tc.oldKey, "bob")); got != http.StatusUnauthorized {
				t.Fatalf("a token of the old key after the rotation: %d, want 401", got)
			}
			nc, err := dial(ctx, p.WS+"/?token="+token(tc.newKey, "bob"))
			if err != nil {
				t.Fatalf("a WebSocket with a token of the new key: %v", err)
			}
			_ = nc.Close(websocket.StatusNormalClosure, "")

			// The connection opened under the old key is still served.
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
				t.Fatalf("the connection opened before the rotation: %v", err)
			}
			if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"pong"`) {
				t.Fatalf("the connection opened before the rotation, after it: %q %v", b, err)
			}
			select {
			case <-p.Exited:
				t.Fatalf("the gateway exited: %v", p.ExitErr())
			default:
			}
		})
	}
}
