"""Session fixture: one local cluster (tests/cluster/localcluster.py) for all integration tests.

The fixture builds the binaries (tests/cluster/build.sh, a no-op when warm), starts the cluster
once, yields the ``LocalCluster`` (``.kubeconfig``, ``.bin``, ``.artifacts``, ``.kubectl(*args)``,
``.helm(*args)``, ``.apply(obj)``, ``.add_gpu_node(...)``, ``.start_real_plugin()`` (NVIDIA's plugin,
the default), ``.start_emulator()`` (MPS, scale), ``.start_karpenter()``) and always tears it down.

Environment:
  GPU_SLICING_SKIP_BUILD=1   use the binaries already in $GPU_SLICING_BIN without running build.sh
  GPU_SLICING_KEEP_CLUSTER=1 leave the cluster running after the session (prints its kubeconfig)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))

import localcluster  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs the local cluster (tests/cluster), slow")


def build_binaries() -> dict[str, str]:
    """Run build.sh and return the GPU_SLICING_* variables it exports."""
    if os.environ.get("GPU_SLICING_SKIP_BUILD") == "1":
        return {}
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(CLUSTER_DIR / "build.sh")], capture_output=True, text=True, timeout=3 * 3600,
                       check=False)
    if p.returncode != 0:
        pytest.fail(f"tests/cluster/build.sh failed ({p.returncode}):\n{p.stderr[-4000:]}\n{p.stdout[-2000:]}")
    exports = {}
    for line in p.stdout.splitlines():
        if line.startswith("export "):
            key, dummy, value = line[len("export "):].partition("=")
            exports[key] = value
    sys.stderr.write(f"\n[local_cluster] build.sh: {time.monotonic() - t0:.1f}s\n")
    return exports


@pytest.fixture(scope="session")
def local_cluster():
    exports = build_binaries()
    os.environ.update(exports)
    workdir = tempfile.mkdtemp(prefix="gse-it-")
    cluster = localcluster.LocalCluster(name=f"it-{os.getpid()}", workdir=workdir)
    keep = os.environ.get("GPU_SLICING_KEEP_CLUSTER") == "1"
    if keep:
        cluster.keep_running()
    # CI and timeouts stop pytest with SIGTERM: turn it into KeyboardInterrupt so the
    # finally below (and every other fixture's teardown) still runs.

    def _sigterm(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, _sigterm)
    t0 = time.monotonic()
    try:
        cluster.up()
        sys.stderr.write(f"[local_cluster] cluster up in {time.monotonic() - t0:.1f}s, KUBECONFIG={cluster.kubeconfig}\n")
        yield cluster
    finally:
        if keep:
            sys.stderr.write(f"[local_cluster] kept running: export KUBECONFIG={cluster.kubeconfig}\n")
        else:
            cluster.down()
        signal.signal(signal.SIGTERM, previous)
