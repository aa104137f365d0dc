#!/usr/bin/env bash
# ansible-test insists on running from .../ansible_collections/<namespace>/<name> (a real
# directory, not a symlink), so sanity runs on a copy of the tracked files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=$root/.build/sanity/ansible_collections/gpu_slicing/eks
rm -rf "$dest" && mkdir -p "$dest"
# Only collection content: the local-cluster tooling (tests/cluster) and benchmarks are not
# shipped (galaxy.yml build_ignore) and are checked by their own tests instead.
git ls-files -co --exclude-standard -z -- . ':!tests/cluster' ':!benchmarks' | xargs -0 -I{} cp --parents {} "$dest/"
# Dependencies must sit beside the collection for ansible-test to load their doc fragments.
site=$("$root/.venv/bin/python" -c 'import ansible_collections.kubernetes.core as c, os; print(os.path.dirname(c.__path__[0]))')
mkdir -p "$root/.build/sanity/ansible_collections/kubernetes"
rm -rf "$root/.build/sanity/ansible_collections/kubernetes/core"
cp -r "$site/core" "$root/.build/sanity/ansible_collections/kubernetes/core"
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host this
# machine cannot reach. This stand-in does the same from what is reachable: ensurepip's bundled
# pip, then `pip install <the pip version ansible-test asked for>` from PyPI.
for version in 24.2 24.3 25.0 25.1 25.2; do
  shim=~/.ansible/test/cache/get_pip_${version//./_}.py
  [ -f "$shim" ] && continue
  mkdir -p "$(dirname "$shim")"
  cat >"$shim" <<'PY'
"""Stand-in for get-pip.py (written by gpu_slicing.eks scripts/sanity.sh): no download host here."""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]  # get-pip.py-only flags
if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):  # ansible-test drops PIP_CERT & co.
    args = ["--cert", "/etc/ssl/certs/ca-certificates.crt"] + args
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
PY
done
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
# No Docker here: run with the venv's Python. Tests that need extra tools get them from
# ansible-test's own requirements (installed into .venv once, from PyPI).
"$root/.venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
