#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, builds the local
# cluster's upstream binaries (cached), then runs every stage. Stages can be picked:
#   scripts/test.sh [unit] [go] [lint] [sanity] [integration] [molecule]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit go lint sanity integration molecule)
want() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "python environment"
eval "$(scripts/setup-venv.sh | grep '^export ')"
export PATH="$root/.venv/bin:$PATH"

if want go || want integration || want molecule || want unit; then
  step "local cluster binaries (cached)"
  eval "$(tests/cluster/build.sh | grep '^export ')"
  export PATH="$GPU_SLICING_BIN:$PATH"
fi

if want unit; then
  step "unit and packaging tests (tarball, execution environment context)"
  python -m pytest tests/unit tests/packaging -q -p no:cacheprovider
fi

if want go; then
  step "go tests (device-plugin emulator, NVIDIA parser CLI, NVML and kubelet emulation)"
  (cd tests/cluster/go/nvidia && go test ./...)
  # NVIDIA's real plugin stack: emulated NVML (cgo) and the kubelet/NFD emulation
  (cd tests/cluster/go/nvidia-real && CGO_ENABLED=1 go vet ./nvml ./cmd/... ./internal/... && go test ./cmd/... ./internal/...)
fi

if want lint; then
  step "yamllint and ansible-lint (production profile)"
  yamllint -s .
  ANSIBLE_COLLECTIONS_PATH="$ANSIBLE_COLLECTIONS_PATH" ansible-lint --profile production
  step "changelog fragments"
  antsibull-changelog lint
fi

if want sanity; then
  step "ansible-test sanity"
  scripts/sanity.sh
fi

if want integration; then
  step "integration tests on the local cluster"
  python -m pytest tests/integration -q -p no:cacheprovider
fi

if want molecule && [ -d molecule/default ]; then
  step "molecule test"
  (cd "$root" && molecule test -s default)
fi
step "all requested stages passed: ${stages[*]}"
