"""The demo's last word: the GPU nodes once the run has settled, each row saying what it is.

The verification's Karpenter check launches nodes and deletes them when it ends; right after the
playbook they can still be coming up (no GPU labels yet) or going away (allocatable 0), which
reads as broken. This waits (bounded) until the nodes Karpenter launched are gone and every GPU
node's device plugin has reported, then prints the table; a row that is still in transit says so.

    python scripts/demo_nodes.py [--settle SECONDS]     (kubectl and KUBECONFIG from the caller)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

GPU_PRESENT = "nvidia.com/gpu.present"
NODEPOOL = "karpenter.sh/nodepool"
DISRUPTED_TAINT = "karpenter.sh/disrupted"
COLUMNS = ("NODE", "TYPE", "GPUS", "REPLICAS", "STRATEGY", "ALLOCATABLE", "WHAT")


def describe(node: dict) -> str:
    """What a GPU node row is, in words a newcomer can read."""
    meta = node["metadata"]
    labels = meta.get("labels") or {}
    pool = labels.get(NODEPOOL)
    taints = [t.get("key") for t in (node.get("spec") or {}).get("taints") or []]
    if meta.get("deletionTimestamp") or DISRUPTED_TAINT in taints:
        return "leaving: Karpenter is removing it%s" % (" (NodePool %s)" % pool if pool else "")
    origin = "launched by Karpenter (NodePool %s)" % pool if pool else "GPU node"
    replicas = labels.get("nvidia.com/gpu.replicas")
    if not replicas:
        return origin + ", coming up: the device plugin has not reported yet"
    allocatable = ((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", "0")
    return "%s, shared: %s GPU(s) x %s replicas = %s slices" % (
        origin, labels.get("nvidia.com/gpu.count", "?"), replicas, allocatable)


def settled(nodes: list) -> bool:
    """No Karpenter node left from the run, and every GPU node's plugin has reported."""
    return all(not (n["metadata"].get("labels") or {}).get(NODEPOOL)
               and (n["metadata"].get("labels") or {}).get("nvidia.com/gpu.replicas")
               for n in nodes)


def row(node: dict) -> tuple:
    labels = node["metadata"].get("labels") or {}
    allocatable = ((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", "0")
    return (node["metadata"]["name"], labels.get("node.kubernetes.io/instance-type", "-"),
            labels.get("nvidia.com/gpu.count", "-"), labels.get("nvidia.com/gpu.replicas", "-"),
            labels.get("nvidia.com/gpu.sharing-strategy", "-"), allocatable, describe(node))


def table(nodes: list) -> str:
    rows = [COLUMNS] + [row(n) for n in sorted(nodes, key=lambda n: n["metadata"]["name"])]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def gpu_nodes() -> list:
    out = subprocess.run(["kubectl", "get", "nodes", "-l", "%s=true" % GPU_PRESENT, "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["items"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=180, help="seconds to wait for the run to settle")
    args = parser.parse_args(argv)
    start = time.monotonic()
    nodes = gpu_nodes()
    while not settled(nodes) and time.monotonic() < start + args.settle:
        time.sleep(2)
        nodes = gpu_nodes()
    if not settled(nodes):
        print("(not settled after %ds: the rows say what is still in transit)" % args.settle)
    elif time.monotonic() - start >= 1:
        print("(settled after %ds)" % (time.monotonic() - start))
    print(table(nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
