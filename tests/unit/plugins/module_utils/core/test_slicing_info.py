"""Unit tests for the per-node slicing report (pure)."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.slicing_info import (
    pod_requests,
    slicing_report,
)

PLAN = build_plan({"profiles": [{"name": "ts-4", "replicas": 4}, {"name": "ts-2", "replicas": 2}], "default_profile": "ts-4"})


def node(name, gpus=1, replicas=4, strategy="time-slicing", allocatable=4, profile=None, gfd=True):
    labels = {"karpenter.k8s.aws/instance-gpu-count": str(gpus), "node.kubernetes.io/instance-type": "g4dn.xlarge"}
    if gfd:
        labels.update({"nvidia.com/gpu.count": str(gpus), "nvidia.com/gpu.replicas": str(replicas),
                       "nvidia.com/gpu.sharing-strategy": strategy})
    if profile:
        labels["nvidia.com/device-plugin.config"] = profile
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": {"nvidia.com/gpu": str(allocatable)}}}


def pod(node_name, gpus=1, phase="Running", init=0):
    spec = {"nodeName": node_name, "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if init:
        spec["initContainers"] = [{"resources": {"requests": {"nvidia.com/gpu": str(init)}}}]
    return {"spec": spec, "status": {"phase": phase}}


def test_pod_requests_counts_limits_and_init_containers():
    assert pod_requests(pod("a", 1), "nvidia.com/gpu") == 1
    assert pod_requests(pod("a", 1, init=3), "nvidia.com/gpu") == 3
    assert pod_requests({"spec": {"containers": [{}]}}, "nvidia.com/gpu") == 0


def test_consistent_node_with_free_slices():
    report = slicing_report([node("n1")], [pod("n1"), pod("n1"), pod("n1", phase="Succeeded"), pod("other")], PLAN)
    n = report["nodes"][0]
    assert (n["physical_gpus"], n["allocatable_slices"], n["requested_slices"], n["free_slices"]) == (1, 4, 2, 2)
    assert n["profile"] == "ts-4" and n["profile_from"] == "default"
    assert n["consistent"] and not n["mismatches"]
    assert report["totals"] == {"nodes": 1, "physical_gpus": 1, "allocatable_slices": 4, "requested_slices": 2,
                                "free_slices": 2, "nodes_with_mismatch": 0}


def test_unsliced_node_is_a_mismatch_with_numbers():
    report = slicing_report([node("n1", gpus=4, replicas=1, strategy="none", allocatable=4)], [], PLAN)
    text = "; ".join(report["nodes"][0]["mismatches"])
    assert "allocatable nvidia.com/gpu is 4, expected 16 (4 GPU(s) x 4 replicas)" in text
    assert "sharing strategy none" in text
    assert report["totals"]["nodes_with_mismatch"] == 1


def test_profile_label_picks_the_profile_and_unknown_labels_are_reported():
    ok = slicing_report([node("n1", replicas=2, allocatable=2, profile="ts-2")], [], PLAN)["nodes"][0]
    assert ok["profile"] == "ts-2" and ok["consistent"]
    bad = slicing_report([node("n1", profile="nope")], [], PLAN)["nodes"][0]
    assert "names no profile" in bad["mismatches"][0]


def test_without_plan_it_only_reports():
    n = slicing_report([node("n1", gfd=False, allocatable=0)], [], None)["nodes"][0]
    assert n["physical_gpus"] == 1 and n["allocatable_slices"] == 0 and n["consistent"]
