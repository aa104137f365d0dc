"""Unit tests for core/verification.py: expectations and the node-side checks (pure)."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan


def plan(**extra):
    prof = {"name": "ts-4", "strategy": "time-slicing", "replicas": 4}
    prof.update(extra)
    return build_plan({"profiles": [prof, {"name": "ts-2", "strategy": "time-slicing", "replicas": 2}]})


def node(name="gpu-1", gpus=1, replicas=4, label="ts-4", alloc=None, strategy="time-slicing",
         product="Tesla-T4-SHARED", simulated=True, resource="nvidia.com/gpu"):
    labels = {"nvidia.com/gpu.present": "true"}
    if label is not None:
        labels["nvidia.com/device-plugin.config"] = label
    if gpus is not None:
        labels["nvidia.com/gpu.count"] = str(gpus)
    if replicas is not None:
        labels["nvidia.com/gpu.replicas"] = str(replicas)
    if strategy is not None:
        labels["nvidia.com/gpu.sharing-strategy"] = strategy
    if product is not None:
        labels["nvidia.com/gpu.product"] = product
    annotations = {"kwok.x-k8s.io/node": "fake"} if simulated else {}
    allocatable = {"cpu": "4", "memory": "15Gi", "pods": "29"}
    allocatable[resource] = str(gpus * replicas if alloc is None else alloc)
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations},
            "status": {"allocatable": allocatable}}


def ready_plugin_pod(node_name):
    return {"metadata": {"name": "nvdp-" + node_name},
            "spec": {"nodeName": node_name, "containers": [{"name": "nvidia-device-plugin-ctr"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def test_sliced_node_passes_all_node_checks():
    p = plan()
    exp, checks = V.node_checks(node(), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    assert [c.status for c in checks] == [V.PASSED] * 7, [c.to_dict() for c in checks]
    assert exp["allocatable"] == 4 and exp["slice_pods"] == 4 and exp["simulated"]


def test_unsliced_node_fails_with_expected_and_observed():
    p = plan()
    n = node(replicas=1, alloc=1, strategy="none", product="Tesla-T4")
    dummy, checks = V.node_checks(n, p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    by = {c.name: c for c in checks}
    alloc = by[V.CHECK_ALLOCATABLE]
    assert alloc.status == V.FAILED and alloc.expected == 4 and alloc.observed == 1
    assert "without the sharing config" in alloc.reason
    assert by[V.CHECK_GFD_REPLICAS].observed == 1 and by[V.CHECK_GFD_REPLICAS].expected == 4
    assert by[V.CHECK_GFD_STRATEGY].status == V.FAILED
    assert by[V.CHECK_GFD_PRODUCT].status == V.FAILED


def test_wrong_profile_label_fails_and_absent_label_passes_for_default():
    p = plan()
    dummy, checks = V.node_checks(node(label="ts-2"), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    c = checks[0]
    assert c.name == V.CHECK_PROFILE_LABEL and c.status == V.FAILED
    assert (c.expected, c.observed) == ("ts-4", "ts-2")
    dummy, checks = V.node_checks(node(label=None), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], "ts-4")
    assert checks[0].status == V.PASSED
    dummy, checks = V.node_checks(node(label=None), p.profile("ts-2"), [], "ts-4")
    assert checks[0].status == V.FAILED


def test_renamed_resource_and_product_without_suffix():
    p = plan(rename_by_default=True)
    prof = p.profile("ts-4")
    n = node(product="Tesla-T4", resource="nvidia.com/gpu.shared")
    dummy, checks = V.node_checks(n, prof, [ready_plugin_pod("gpu-1")], p.default_profile)
    assert all(c.status == V.PASSED for c in checks), [c.to_dict() for c in checks]
    dummy, checks = V.node_checks(node(), prof, [ready_plugin_pod("gpu-1")], p.default_profile)
    assert {c.name for c in checks if c.failed} == {V.CHECK_ALLOCATABLE, V.CHECK_GFD_PRODUCT}


def test_plugin_pod_missing_or_not_ready():
    assert V.check_plugin_pod("n", []).status == V.FAILED
    pod = ready_plugin_pod("n")
    pod["status"]["conditions"][0]["status"] = "False"
    assert V.check_plugin_pod("n", [pod]).status == V.FAILED
    assert V.check_plugin_pod("n", [ready_plugin_pod("n")]).status == V.PASSED
    gfd = ready_plugin_pod("n")
    gfd["spec"]["containers"] = [{"name": "gpu-feature-discovery-ctr"}]
    assert V.check_plugin_pod("n", [gfd]).status == V.FAILED  # GFD Ready is not the plugin Ready
    br = {"status": {"nodeInfo": {"osImage": "Bottlerocket OS 1.54.0 (aws-k8s-1.36-nvidia)"}}}
    assert V.check_plugin_pod("n", [], br).status == V.NOT_AVAILABLE


def test_gpu_count_falls_back_to_aws_label():
    n = node(gpus=None, alloc=0)
    n["metadata"]["labels"]["karpenter.k8s.aws/instance-gpu-count"] = "4"
    assert V.physical_gpus(n) == (4, "karpenter.k8s.aws/instance-gpu-count")
    assert V.check_gpu_count(n, {}).status == V.FAILED  # GFD itself is not reporting
