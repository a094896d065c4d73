#!/usr/bin/env bash
# hack/build-k8s.sh [BINARY...]
#
# Builds Kubernetes binaries from source, offline (Go module proxy only), out
# of the tools module in hack/tools, into bin/k8s/<version>/:
#
#   kube-apiserver, etcd           what envtest needs (KUBEBUILDER_ASSETS)
#   kubectl, kube-controller-manager, kube-scheduler
#                                  for an e2e control plane
#
# With no argument it builds the envtest pair (kube-apiserver etcd). A binary
# already present is left alone (delete it, or the directory, to rebuild).
# The version ldflags make `kube-apiserver --version` and the /version
# endpoint report v1.37.2 rather than v0.0.0, which clients (kubectl, helm)
# check.
#
#   K8S_VERSION   default 1.37.2 (must match hack/tools/go.mod)
#   K8S_BIN_DIR   default <repo>/bin/k8s/$K8S_VERSION
#
# A cold kube-apiserver build takes ~6-10 minutes on two cores.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
OUT="${K8S_BIN_DIR:-$ROOT/bin/k8s/$K8S_VERSION}"

die() { echo "build-k8s: $*" >&2; exit 1; }
log() { echo "build-k8s: $*" >&2; }

case "$K8S_VERSION" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) die "K8S_VERSION=\"$K8S_VERSION\": want MAJOR.MINOR.PATCH, e.g. 1.37.2" ;;
esac
grep -Eq "^(require )?[[:space:]]*k8s.io/kubernetes v${K8S_VERSION}( |$)" "$ROOT/hack/tools/go.mod" \
  || die "K8S_VERSION=$K8S_VERSION does not match hack/tools/go.mod (requires $(grep -o 'k8s.io/kubernetes v[0-9.]*' "$ROOT/hack/tools/go.mod"))"

major="${K8S_VERSION%%.*}"
rest="${K8S_VERSION#*.}"
minor="${rest%%.*}"
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=$major"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=$major"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# package NAME: the Go package that builds binary NAME.
package() {
  case "$1" in
    kube-apiserver|kubectl|kube-controller-manager|kube-scheduler) echo "k8s.io/kubernetes/cmd/$1" ;;
    etcd) echo "go.etcd.io/etcd/server/v3" ;;
    *) die "unknown binary \"$1\": want one of kube-apiserver etcd kubectl kube-controller-manager kube-scheduler" ;;
  esac
}

names=("$@")
if (( ${#names[@]} == 0 )); then names=(kube-apiserver etcd); fi
for name in "${names[@]}"; do package "$name" >/dev/null; done # validate all first

mkdir -p "$OUT"
for name in "${names[@]}"; do
  if [[ -x "$OUT/$name" ]]; then
    continue
  fi
  pkg="$(package "$name")"
  log "building $name ($pkg) into $OUT (cold: several minutes)"
  start=$SECONDS
  # Build to a temporary name and rename, so an interrupted build never
  # leaves a half-written binary that the cache check would accept.
  (cd "$ROOT/hack/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/.$name.tmp" "$pkg")
  mv "$OUT/.$name.tmp" "$OUT/$name"
  log "built $name in $((SECONDS - start))s"
done
