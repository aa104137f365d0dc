"""scripts/demo_nodes.py: each row of the demo's last table says what the node is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "demo_nodes.py"
spec = importlib.util.spec_from_file_location("demo_nodes", SCRIPT)
demo_nodes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_nodes)


def node(name, labels=None, allocatable=None, deleting=False, taints=None):
    base = {"nvidia.com/gpu.present": "true", "node.kubernetes.io/instance-type": "g4dn.xlarge"}
    meta = {"name": name, "labels": dict(base, **(labels or {}))}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T12:00:00Z"
    return {"metadata": meta, "spec": {"taints": taints or []},
            "status": {"allocatable": {"nvidia.com/gpu": allocatable} if allocatable else {}}}


SLICED = {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing"}


def test_rows_say_what_each_node_is():
    assert demo_nodes.describe(node("a", SLICED, "4")) == "GPU node, shared: 1 GPU(s) x 4 replicas = 4 slices"
    fresh = node("k", {"karpenter.sh/nodepool": "gpu-shared"})
    assert demo_nodes.describe(fresh) == (
        "launched by Karpenter (NodePool gpu-shared), coming up: the device plugin has not reported yet")
    going = node("k", dict(SLICED, **{"karpenter.sh/nodepool": "gpu-shared"}), "0",
                 taints=[{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}])
    assert demo_nodes.describe(going) == "leaving: Karpenter is removing it (NodePool gpu-shared)"
    assert demo_nodes.describe(node("x", SLICED, "4", deleting=True)).startswith("leaving")


def test_settled_only_without_karpenter_nodes_and_with_every_plugin_reporting():
    assert demo_nodes.settled([node("a", SLICED, "4")])
    assert not demo_nodes.settled([node("a", SLICED, "4"), node("b")])
    assert not demo_nodes.settled([node("a", SLICED, "4"),
                                   node("k", dict(SLICED, **{"karpenter.sh/nodepool": "p"}), "4")])


def test_table_has_a_what_column():
    lines = demo_nodes.table([node("b", SLICED, "4"), node("a", {"karpenter.sh/nodepool": "p"})]).splitlines()
    assert lines[0].split() == list(demo_nodes.COLUMNS)
    assert lines[1].startswith("a ") and lines[1].endswith("the device plugin has not reported yet")
    assert lines[2].split()[:6] == ["b", "g4dn.xlarge", "1", "4", "time-slicing", "4"]
