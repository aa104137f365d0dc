"""Unit tests for core/verification_pods.py: test pod manifests and the pod checks (pure)."""

import datetime

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_pods as P

UUID_A = "GPU-1a2b3c4d-0000-1111-2222-333344445555"
UUID_B = "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"


def running_pod(name, node_name, ready="2026-01-01T00:00:05Z", started="2026-01-01T00:00:03Z"):
    return {"metadata": {"name": name}, "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "startTime": started,
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready},
                                      {"type": "PodScheduled", "status": "True", "lastTransitionTime": started}]}}


def unschedulable_pod(name):
    return {"metadata": {"name": name}, "spec": {},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}


def test_concurrency_overlap_window():
    exp = {"slice_pods": 3}
    pods = [running_pod("a", "n", ready="2026-01-01T00:00:05Z"), running_pod("b", "n", ready="2026-01-01T00:00:07Z"),
            running_pod("c", "n", ready="2026-01-01T00:00:06.123456Z")]
    seen = datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc)
    c = P.check_concurrent("n", exp, pods, seen)
    assert c.status == V.PASSED and c.observed == 3
    assert c.details["overlap"]["start"] == "2026-01-01T00:00:07Z"
    assert c.details["overlap"]["seconds"] == 3.0
    c = P.check_concurrent("n", {"slice_pods": 4}, pods + [unschedulable_pod("d")], seen, timed_out=True, waited=9)
    assert c.status == V.FAILED and (c.expected, c.observed) == (4, 3)
    assert "1 Pending as Unschedulable" in c.reason and "timed out" in c.reason
    c = P.check_concurrent("n", exp, [running_pod("a", "other")] + pods[1:], seen)
    assert c.status == V.FAILED and "another node" in c.reason


def test_extra_pod_and_multi_slice():
    assert P.check_extra_pod("n", unschedulable_pod("x")).status == V.PASSED
    assert P.check_extra_pod("n", running_pod("x", "n")).status == V.FAILED
    rejected = {"metadata": {"name": "m"}, "spec": {"nodeName": "n"},
                "status": {"phase": "Failed", "reason": "UnexpectedAdmissionError",
                           "message": "maximum request size for shared resources is 1"}}
    assert P.check_multi_slice(rejected).status == V.PASSED
    assert P.check_multi_slice(running_pod("m", "n")).status == V.FAILED
    assert P.check_multi_slice(unschedulable_pod("m"), timed_out=True).status == V.PASSED
    assert P.check_multi_slice(unschedulable_pod("m"), timed_out=False).status == V.FAILED
    cut = P.check_multi_slice(unschedulable_pod("m"), timed_out=True, run_timed_out=True)
    assert cut.status == V.FAILED and "run's timeout" in cut.reason


def test_gpu_uuid_evidence():
    exp_sim = {"simulated": True, "physical_gpus": 1}
    c = P.check_gpu_uuids(None, exp_sim, {})
    assert c.status == V.NOT_AVAILABLE and c.reason == "not available on simulated nodes"
    exp = {"simulated": False, "physical_gpus": 1}
    log = "GPU 0: Tesla T4 (UUID: %s)\n[Vector addition of 50000 elements]\nTest PASSED\n" % UUID_A
    c = P.check_gpu_uuids(None, exp, {"p1": log, "p2": log})
    assert c.status == V.PASSED and c.observed == 1
    c = P.check_gpu_uuids(None, exp, {"p1": log, "p2": log.replace(UUID_A, UUID_B)})
    assert c.status == V.FAILED and c.observed == 2
    c = P.check_gpu_uuids(None, exp, {"p1": log, "p2": "no gpu here"})
    assert c.status == V.FAILED and "p2: 0 GPU UUIDs" in c.reason
    c = P.check_gpu_uuids(None, {"simulated": False, "physical_gpus": 2},
                          {"p1": log, "p2": log.replace(UUID_A, UUID_B)})
    assert c.status == V.PASSED


def test_test_pod_is_psa_restricted_and_scheduler_placed():
    pod = P.test_pod("p", "ns", "node-a", "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "slice")
    spec = pod["spec"]
    assert "nodeName" not in spec
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"][0] == {"key": "metadata.name", "operator": "In", "values": ["node-a"]}
    ctr = spec["containers"][0]
    sc = ctr["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 1000 and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("requests", "limits"):
        assert {"cpu", "memory", "nvidia.com/gpu"} <= set(ctr["resources"][key])
        assert ctr["resources"][key]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_parse_time_variants():
    assert P.parse_time("2026-01-01T00:00:05Z").second == 5
    assert P.parse_time("2026-01-01T00:00:05.5Z").second == 5
    assert P.parse_time(None) is None


def test_karpenter_pod_goes_by_node_selector_not_node_name():
    pod = P.test_pod("k", "ns", None, "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "karpenter",
                     node_selector={"karpenter.sh/nodepool": "gpu"})
    assert pod["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "gpu"}
    assert "affinity" not in pod["spec"] and pod["metadata"]["annotations"] == {}
    pinned = P.test_pod("p", "ns", "node-a", "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "slice")
    assert pinned["spec"]["affinity"]["nodeAffinity"] and "nodeSelector" not in pinned["spec"]
