#!/usr/bin/env bash
# Create (or reuse) .venv with everything the collection, its tests and the demo need,
# and expose this checkout as the collection gpu_slicing.eks under .build/collections.
# A warm run (requirements unchanged) does nothing but the symlink check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-venv: installing Python requirements into .venv"
  "$python" -m venv .venv
  # pip 23's resolver backtracks for minutes without an up-to-date pip.
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" >"$stamp"
fi
link=.build/collections/ansible_collections/gpu_slicing/eks
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn ../../../.. "$link"
echo "export ANSIBLE_COLLECTIONS_PATH=$root/.build/collections"
