#!/usr/bin/env bash
# Build the local cluster's binaries from pinned Go modules and place upstream artifacts.
#
#   tests/cluster/build.sh [component...]     (default: all)
#
# Components: kubernetes etcd kwok helm karpenter nvidia nvidia-real artifacts
# Output: ${GPU_SLICING_CACHE:-$HOME/.cache/gpu-slicing-eks}/{bin,nvml,artifacts}
# Cached: each component has a stamp keyed by a hash of its go.mod/go.sum (or sources),
# its build recipe and the Go version; a warm run does nothing.
# The last two lines printed are `export GPU_SLICING_BIN=...` and `export GPU_SLICING_ARTIFACTS=...`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_DIR="$HERE/go"
CACHE="${GPU_SLICING_CACHE:-$HOME/.cache/gpu-slicing-eks}"
BIN="$CACHE/bin"
ART="$CACHE/artifacts"
STAMPS="$CACHE/stamps"
mkdir -p "$BIN" "$ART" "$STAMPS"
# One build at a time per cache (tests and people may run this concurrently).
exec 9>"$CACHE/build.lock"
flock 9

# Bump to force every component to rebuild.
SCHEMA=1

export CGO_ENABLED=0
GOVERSION="$(go env GOVERSION)"

K8S_VERSION=v1.36.3
K8S_BUILD_DATE=2026-01-01T00:00:00Z
K8S_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$K8S_BUILD_DATE"
done
K8S_LDFLAGS="-s -w$K8S_LDFLAGS"

HELM_VERSION=v3.22.0
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# helm's lint/template default to the client-go version vars for .Capabilities.KubeVersion.
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=36"
HELM_LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36"

# consts.Version already reads 0.8.0; KubeVersion tells kwokctl which flags the kube-* binaries take.
KWOK_LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# hash_inputs RECIPE FILE... -> sha256 over the recipe, the Go version and the files' contents
hash_inputs() {
  local recipe="$1"; shift
  { echo "schema=$SCHEMA go=$GOVERSION"; echo "$recipe"; cat "$@"; } | sha256sum | cut -c1-32
}

# run_component NAME KEY OUTPUT... -- COMMAND...
# Skips when the stamp matches KEY and every OUTPUT exists.
run_component() {
  local name="$1" key="$2"; shift 2
  local outputs=()
  while [[ "$1" != "--" ]]; do outputs+=("$1"); shift; done
  shift
  local stamp="$STAMPS/$name"
  local ok=1 o
  for o in "${outputs[@]}"; do [[ -e "$o" ]] || ok=0; done
  if [[ $ok == 1 && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    log "$name: up to date"
    return 0
  fi
  log "$name: building"
  local t0=$SECONDS
  rm -f "$stamp"
  "$@"
  for o in "${outputs[@]}"; do
    [[ -e "$o" ]] || { log "$name: expected output $o missing"; return 1; }
  done
  echo "$key" > "$stamp"
  log "$name: done in $((SECONDS - t0))s"
  echo "$name $((SECONDS - t0))s $(date -u +%FT%TZ)" >> "$CACHE/build-times.log"
}

gobuild() { # gobuild MODULE_DIR LDFLAGS OUT PKG...   (OUT: file, or dir ending in /)
  local dir="$1" ldflags="$2" out="$3"; shift 3
  go build -C "$dir" -trimpath -ldflags "$ldflags" -o "$out" "$@"
}

mod_dir_files() { echo "$1/go.mod" "$1/go.sum"; ls "$1"/*.go 2>/dev/null || true; }

build_kubernetes() {
  local d="$GO_DIR/kubernetes"
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
              k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  # shellcheck disable=SC2046
  run_component kubernetes "$(hash_inputs "$K8S_LDFLAGS ${pkgs[*]}" $(mod_dir_files "$d"))" \
    "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$BIN/kube-scheduler" "$BIN/kubectl" -- \
    gobuild "$d" "$K8S_LDFLAGS" "$BIN/" "${pkgs[@]}"
}

build_etcd() {
  local d="$GO_DIR/etcd"
  # shellcheck disable=SC2046
  run_component etcd "$(hash_inputs "etcd -s -w" $(mod_dir_files "$d"))" "$BIN/etcd" -- \
    gobuild "$d" "-s -w" "$BIN/etcd" .
}

build_kwok() {
  local d="$GO_DIR/kwok"
  # shellcheck disable=SC2046
  run_component kwok "$(hash_inputs "$KWOK_LDFLAGS" $(mod_dir_files "$d"))" "$BIN/kwok" "$BIN/kwokctl" -- \
    gobuild "$d" "$KWOK_LDFLAGS" "$BIN/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
}

build_helm() {
  local d="$GO_DIR/helm"
  # shellcheck disable=SC2046
  run_component helm "$(hash_inputs "$HELM_LDFLAGS" $(mod_dir_files "$d"))" "$BIN/helm" -- \
    gobuild "$d" "$HELM_LDFLAGS" "$BIN/helm" helm.sh/helm/v3/cmd/helm
}

build_karpenter() {
  # Karpenter's KWOK provider with the AWS provider's NodeClaim capacity (see its main.go).
  local d="$GO_DIR/karpenter"
  # shellcheck disable=SC2046
  run_component karpenter "$(hash_inputs "karpenter-kwok-eks -s -w" $(mod_dir_files "$d") "$d"/cmd/karpenter-kwok-eks/*.go)" \
    "$BIN/karpenter-kwok-eks" -- \
    gobuild "$d" "-s -w" "$BIN/karpenter-kwok-eks" ./cmd/karpenter-kwok-eks
}

build_nvidia() {
  local d="$GO_DIR/nvidia"
  if [[ ! -f "$d/go.mod" ]]; then
    log "nvidia: $d/go.mod not there yet, skipping nvidia-config-parse and gpu-plugin-emulator"
    return 0
  fi
  local files
  files=$(cd "$d" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort)
  # shellcheck disable=SC2086
  run_component nvidia "$(hash_inputs "nvidia $files" $(cd "$d" && echo $files | sed "s#\./#$d/#g"))" \
    "$BIN/nvidia-config-parse" "$BIN/gpu-plugin-emulator" -- \
    _build_nvidia "$d"
}
_build_nvidia() {
  go build -C "$1" -trimpath -ldflags "-s -w" -o "$BIN/nvidia-config-parse" ./cmd/nvidia-config-parse
  go build -C "$1" -trimpath -ldflags "-s -w" -o "$BIN/gpu-plugin-emulator" ./cmd/gpu-plugin-emulator
}

# NVIDIA's device plugin, GFD and config-manager, unmodified, from the pinned module (cgo on: they
# dlopen libnvidia-ml.so.1), our emulated NVML (a cgo c-shared library) and the kubelet/NFD
# emulation that runs them on simulated nodes (go/nvidia-real, see tests/cluster/README.md).
NVML_DIR="$CACHE/nvml"
build_nvidia_real() {
  local d="$GO_DIR/nvidia-real"
  local files
  files=$(cd "$d" && find . -type f \( -name '*.go' -o -name '*.c' -o -name '*.h' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort)
  # shellcheck disable=SC2086
  run_component nvidia-real "$(hash_inputs "nvidia-real cgo $files" $(cd "$d" && echo $files | sed "s#\./#$d/#g"))" \
    "$BIN/nvidia-device-plugin" "$BIN/gpu-feature-discovery" "$BIN/config-manager" \
    "$BIN/kubelet-device-emulator" "$BIN/pod-sandbox" "$NVML_DIR/libnvidia-ml.so.1" -- \
    _build_nvidia_real "$d"
}
_build_nvidia_real() {
  local m=github.com/NVIDIA/k8s-device-plugin/cmd
  CGO_ENABLED=1 nice go build -C "$1" -trimpath -ldflags "-s -w" -o "$BIN/" \
    $m/nvidia-device-plugin $m/gpu-feature-discovery $m/config-manager
  mkdir -p "$NVML_DIR"
  CGO_ENABLED=1 nice go build -C "$1" -buildmode=c-shared -trimpath -ldflags "-s -w" \
    -o "$NVML_DIR/libnvidia-ml.so.1" ./nvml
  rm -f "$NVML_DIR/libnvidia-ml.so.h"
  go build -C "$1" -trimpath -ldflags "-s -w" -o "$BIN/kubelet-device-emulator" ./cmd/kubelet-device-emulator
  go build -C "$1" -trimpath -ldflags "-s -w" -o "$BIN/pod-sandbox" ./cmd/pod-sandbox
  # Every NVML symbol NVIDIA's binaries link against must be in our library (implemented, or a
  # stub that fails loudly): else a call would die with "undefined symbol".
  local missing
  missing=$(comm -23 \
    <(for b in nvidia-device-plugin gpu-feature-discovery config-manager; do nm -D --undefined-only "$BIN/$b"; done \
        | awk '{print $NF}' | grep '^nvml' | sort -u) \
    <(nm -D --defined-only "$NVML_DIR/libnvidia-ml.so.1" | awk '{print $NF}' | sort -u))
  if [[ -n "$missing" ]]; then
    log "nvidia-real: emulated NVML lacks $(echo "$missing" | wc -l) symbols; run go/nvidia-real/hack/gen-nvml-stubs.sh"
    return 1
  fi
}

# Module directory of a pinned dependency of the artifacts module (downloads it if needed).
moddir() { go mod download -json "$1@$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }

NVDP_VERSION=v0.19.3
KARPENTER_VERSION=v1.14.1
place_artifacts() {
  local tmp="$ART.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp/karpenter-crds" "$tmp/karpenter-aws-crds"
  local nvdp kcore kaws
  nvdp=$(cd "$GO_DIR/artifacts" && moddir github.com/NVIDIA/k8s-device-plugin "$NVDP_VERSION")
  kcore=$(cd "$GO_DIR/artifacts" && moddir sigs.k8s.io/karpenter "$KARPENTER_VERSION")
  kaws=$(cd "$GO_DIR/artifacts" && moddir github.com/aws/karpenter-provider-aws "$KARPENTER_VERSION")
  cp -r "$nvdp/deployments/helm/nvidia-device-plugin" "$tmp/nvidia-device-plugin"
  cp "$kcore"/pkg/apis/crds/*.yaml "$tmp/karpenter-crds/"
  # KWOKNodeClass (the KWOK provider's NodeClass) and anything else its chart ships
  local f
  for f in "$kcore"/kwok/apis/crds/*.yaml "$kcore"/kwok/charts/crds/*.yaml; do
    [[ -e "$tmp/karpenter-crds/$(basename "$f")" ]] || cp "$f" "$tmp/karpenter-crds/"
  done
  cp "$kaws"/pkg/apis/crds/*.yaml "$tmp/karpenter-aws-crds/"
  chmod -R u+w "$tmp"
  printf 'nvidia-device-plugin %s\nkarpenter %s\nkarpenter-provider-aws %s\n' \
    "$NVDP_VERSION" "$KARPENTER_VERSION" "$KARPENTER_VERSION" > "$tmp/VERSIONS"
  for f in nvidia-device-plugin karpenter-crds karpenter-aws-crds VERSIONS; do
    rm -rf "${ART:?}/$f"; mv "$tmp/$f" "$ART/$f"
  done
  rm -rf "$tmp"
}
build_artifacts() {
  local d="$GO_DIR/artifacts"
  # shellcheck disable=SC2046
  run_component artifacts "$(hash_inputs "artifacts $NVDP_VERSION $KARPENTER_VERSION v2" $(mod_dir_files "$d"))" \
    "$ART/nvidia-device-plugin/Chart.yaml" "$ART/karpenter-crds" "$ART/karpenter-aws-crds" -- \
    place_artifacts
}

ALL=(kubernetes etcd kwok helm karpenter nvidia nvidia-real artifacts)
COMPONENTS=("$@")
[[ ${#COMPONENTS[@]} -gt 0 ]] || COMPONENTS=("${ALL[@]}")
T0=$SECONDS
for c in "${COMPONENTS[@]}"; do
  case "$c" in
    kubernetes|etcd|kwok|helm|karpenter|nvidia|artifacts) "build_$c" ;;
    nvidia-real) build_nvidia_real ;;
    *) log "unknown component: $c (known: ${ALL[*]})"; exit 2 ;;
  esac
done
log "all requested components ready in $((SECONDS - T0))s"
echo "export GPU_SLICING_BIN=$BIN"
echo "export GPU_SLICING_ARTIFACTS=$ART"
