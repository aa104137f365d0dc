#!/usr/bin/env python3
"""Memory of one simulated node's plugin processes under NVIDIA's real plugin (issue 15's target:
under 100 MiB per node), as RSS, PSS and USS.

    python benchmarks/real_plugin_memory.py [--nodes 1,4] [--instance-type g4dn.xlarge] [--out DIR]

One local cluster (tests/cluster/localcluster.py, bound to 127.0.0.1, always torn down), NVIDIA's
chart with GFD and a ts-4 config, NVIDIA's plugin, GFD and config-manager (v0.19.3, unmodified)
run by kubelet-device-emulator. Nodes are added in steps (``--nodes 1,4``: one node, then up to
four); after each step, once every node advertises its slices and has GFD's labels and the
processes have settled, every process of each node's chart pods is read from
/proc/<pid>/smaps_rollup (LocalCluster.chart_process_memory):

  RSS  resident pages, each counted in full: the binaries' code that every node's processes map
       from the same files is counted once per process, so a sum over processes overstates.
  PSS  each resident page divided by the number of processes mapping it: the fair share of one
       node; summed over all nodes it is the machine's real total.
  USS  pages only this process maps (Private_Clean + Private_Dirty): what the machine gets back
       when the node goes.

Writes real_plugin_memory.json and real_plugin_memory.md into --out (default: benchmarks/).
Needs root (the emulator's mount namespaces), like the integration tests. Not part of the suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from localcluster import LocalCluster  # noqa: E402  pylint: disable=wrong-import-position

NS = "nvidia-device-plugin"
RELEASE = "nvdp-mem"
CONFIG = ("version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n"
          "    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n")


def build() -> None:
    p = subprocess.run(["bash", str(ROOT / "tests" / "cluster" / "build.sh")], capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        sys.exit(f"build.sh failed:\n{p.stderr[-3000:]}")
    for line in p.stdout.splitlines():
        if line.startswith("export "):
            key, dummy, value = line[len("export "):].partition("=")
            os.environ[key] = value


def totals(procs: list[dict]) -> dict[str, float]:
    return {k + "_mib": round(sum(p[k] for p in procs) / 1024, 1) for k in ("rss", "pss", "uss", "anon")}


def ready(cluster: LocalCluster, nodes: list[str]) -> bool:
    items = cluster.kubectl_json("get", "nodes")["items"]
    by_name = {n["metadata"]["name"]: n for n in items}
    for node in nodes:
        n = by_name.get(node)
        if not n or n["status"].get("allocatable", {}).get("nvidia.com/gpu") in (None, "0"):
            return False
        if "nvidia.com/gpu.replicas" not in n["metadata"].get("labels", {}):
            return False
    return True


def measure(cluster: LocalCluster, nodes: list[str], settle: float) -> dict:
    cluster.wait_for(lambda: ready(cluster, nodes), 300, f"{len(nodes)} node(s) sliced and labelled", interval=2)
    time.sleep(settle)  # let the processes finish starting (GFD's first pass, config-manager's informers)
    per_node = {node: cluster.chart_process_memory(node) for node in nodes}
    return {"nodes": len(nodes), "one_node": nodes[0], "processes": per_node[nodes[0]],
            "per_node_totals": {node: totals(procs) for node, procs in per_node.items()}}


def markdown(result: dict) -> str:
    lines = [f"# Memory of one node's plugin processes ({result['date']})", "",
             f"Instance type `{result['instance_type']}`, NVIDIA's plugin v0.19.3 with GFD and a ts-4 config, "
             "run by kubelet-device-emulator. MiB from /proc/<pid>/smaps_rollup. "
             "Target (issue 15): under 100 MiB per node.", ""]
    for step in result["steps"]:
        lines += [f"## {step['nodes']} node(s) in the cluster: node `{step['one_node']}`", "",
                  "| process | RSS | PSS | USS | anonymous |", "|---|---|---|---|---|"]
        for p in step["processes"]:
            lines.append(f"| {p['name']} | {p['rss'] / 1024:.1f} | {p['pss'] / 1024:.1f} | "
                         f"{p['uss'] / 1024:.1f} | {p['anon'] / 1024:.1f} |")
        t = step["per_node_totals"][step["one_node"]]
        lines += [f"| **total** | **{t['rss_mib']}** | **{t['pss_mib']}** | **{t['uss_mib']}** | **{t['anon_mib']}** |",
                  "", "Every node's totals (RSS / PSS / USS MiB): " + "; ".join(
                      f"{n} {v['rss_mib']} / {v['pss_mib']} / {v['uss_mib']}"
                      for n, v in step["per_node_totals"].items()), ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--nodes", default="1,4", help="node counts to measure at, ascending (default 1,4)")
    ap.add_argument("--instance-type", default="g4dn.xlarge")
    ap.add_argument("--settle", type=float, default=15, help="seconds to wait after the nodes are ready")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    ap.add_argument("--skip-build", action="store_true", help="use $GPU_SLICING_BIN as it is")
    args = ap.parse_args()
    steps = [int(n) for n in args.nodes.split(",")]
    if not args.skip_build:
        build()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "instance_type": args.instance_type, "steps": []}
    # LocalCluster.down() removes its workdir itself.
    with tempfile.TemporaryDirectory(prefix="gse-mem-", ignore_cleanup_errors=True) as tmp, \
            LocalCluster(name=f"mem-{os.getpid()}", workdir=tmp) as c:
        values = Path(tmp) / "values.yaml"
        values.write_text(json.dumps({"gfd": {"enabled": True}, "config": {"default": "ts-4", "map": {"ts-4": CONFIG}}}))
        c.start_real_plugin("--namespace", NS)
        c.helm("install", RELEASE, c.artifacts / "nvidia-device-plugin", "--namespace", NS, "--create-namespace",
               "-f", values)
        nodes: list[str] = []
        for count in steps:
            while len(nodes) < count:
                nodes.append(f"mem-{len(nodes):02d}")
                c.add_gpu_node(nodes[-1], args.instance_type)
            step = measure(c, nodes, args.settle)
            result["steps"].append(step)
            t = step["per_node_totals"][nodes[0]]
            print(f"{count} node(s): {nodes[0]} RSS {t['rss_mib']} MiB, PSS {t['pss_mib']} MiB, "
                  f"USS {t['uss_mib']} MiB ({len(step['processes'])} processes)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_plugin_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "real_plugin_memory.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
