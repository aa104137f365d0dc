#!/usr/bin/env bash
# Prepare the execution environment's build context: build this collection's tarball
# (ansible-galaxy collection build) into .build/ee/, then `ansible-builder create`.
#   scripts/ee-context.sh [CONTEXT_DIR]     (default .build/ee/context)
# Then, where podman or docker runs (not on the test machines):
#   ansible-builder build -f execution-environment.yml -c CONTEXT_DIR -t gpu-slicing-eks-ee:0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
context=${1:-.build/ee/context}
mkdir -p .build/ee/tarball
rm -f .build/ee/tarball/*.tar.gz
ansible-galaxy collection build --force --output-path .build/ee/tarball .
# A fixed name, so execution-environment.yml does not change with each version.
cp .build/ee/tarball/gpu_slicing-eks-*.tar.gz .build/ee/gpu_slicing-eks.tar.gz
ansible-builder create -f execution-environment.yml -c "$context"
echo "execution environment context: $context"
