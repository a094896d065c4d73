package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/filewatch"
)

// keySet is the parsed content of a key file.
type keySet struct {
	keys []jwt.VerificationKey
}

func (k *keySet) keyfunc() any {
	if len(k.keys) == 1 {
		return k.keys[0]
	}
	return jwt.VerificationKeySet{Keys: k.keys}
}

// staticKeys is a key given at start (AUTH_JWT_SECRET).
type staticKeys struct{ set keySet }

func (s *staticKeys) keyfunc(*jwt.Token) (any, error) { return s.set.keyfunc(), nil }
func (s *staticKeys) methods() []string               { return hsMethods }

var (
	hsMethods = []string{jwt.SigningMethodHS256.Alg()}
	// pemMethods: the library checks that each key suits the token's
	// algorithm (an RSA key never verifies ES256), so a file may rotate
	// from one key type to the other. HMAC is never among them: a public
	// key must not be usable as an HMAC secret.
	pemMethods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}
)

// NewHS256 returns a verifier of HS256 tokens signed with secret.
func NewHS256(secret string, o Options) (*Verifier, error) {
	if secret == "" {
		return nil, errors.New("AUTH_JWT_SECRET is empty")
	}
	return newVerifier(&staticKeys{keySet{keys: []jwt.VerificationKey{[]byte(secret)}}}, o), nil
}

// NewFromSecretFile returns a verifier of HS256 tokens signed with the
// secret held in a file (a mounted Secret; trailing newlines are not part
// of it). The file is re-read when it changes.
func NewFromSecretFile(path string, o Options) (*Verifier, error) {
	f, err := newWatchedFile("AUTH_JWT_SECRET_FILE", path, parseSecret, hsMethods, o.withDefaults())
	if err != nil {
		return nil, err
	}
	return newVerifier(f, o), nil
}

// NewFromPublicKeyFile returns a verifier of RS256 (RSA key) or ES256
// (ECDSA P-256 key) tokens, from a PEM file of one or more public keys
// ("PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" blocks): during a
// rotation the file holds the old key and the new one. The file is re-read
// when it changes.
func NewFromPublicKeyFile(path string, o Options) (*Verifier, error) {
	f, err := newWatchedFile("AUTH_JWT_PUBLIC_KEY_FILE", path, parsePublicKeys, pemMethods, o.withDefaults())
	if err != nil {
		return nil, err
	}
	return newVerifier(f, o), nil
}

func parseSecret(b []byte) (keySet, error) {
	s := bytes.TrimRight(b, "\r\n")
	if len(s) == 0 {
		return keySet{}, errors.New("the file is empty")
	}
	return keySet{keys: []jwt.VerificationKey{s}}, nil
}

// parsePublicKeys reads every PEM block of a public key file.
func parsePublicKeys(b []byte) (keySet, error) {
	var ks keySet
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return keySet{}, fmt.Errorf("PEM block %d is a %q, not a public key", n, blk.Type)
		}
		if err != nil {
			return keySet{}, fmt.Errorf("PEM block %d: %w", n, err)
		}
		switch k := pub.(type) {
		case *rsa.PublicKey:
		case *ecdsa.PublicKey:
			if k.Curve.Params().Name != "P-256" {
				return keySet{}, fmt.Errorf("PEM block %d: ECDSA curve %s; ES256 needs P-256", n, k.Curve.Params().Name)
			}
		default:
			return keySet{}, fmt.Errorf("PEM block %d: a %T key; want RSA or ECDSA P-256", n, pub)
		}
		ks.keys = append(ks.keys, pub)
	}
	if len(ks.keys) == 0 {
		return keySet{}, errors.New("neither an RSA nor an ECDSA PEM public key")
	}
	return ks, nil
}

// watchedFile is a key file re-read when it changes (see
// gateway/filewatch: the first verification after FileCheckInterval stats
// it; a file that cannot be used keeps the keys that were last good).
type watchedFile struct {
	file *filewatch.File[keySet]
	algs []string
}

func newWatchedFile(what, path string, parse func([]byte) (keySet, error), algs []string, o Options) (*watchedFile, error) {
	f, err := filewatch.New(what, path, parse, filewatch.Options{Every: o.FileCheckInterval, Now: o.Now})
	if err != nil {
		return nil, err
	}
	return &watchedFile{file: f, algs: algs}, nil
}

func (f *watchedFile) keyfunc(*jwt.Token) (any, error) {
	set := f.file.Current()
	return set.keyfunc(), nil
}

func (f *watchedFile) methods() []string { return f.algs }
