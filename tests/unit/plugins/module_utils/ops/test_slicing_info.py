"""Unit tests for ops/slicing_info.py: options, the read and the failure on a mismatch."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.slicing_info import (
    SlicingInfoOptions,
    slicing_info,
)

from core.test_slicing_info import node, pod

from .test_verify import FakeContext

PROFILES = [{"name": "ts-4", "replicas": 4}, {"name": "ts-2", "replicas": 2}]


class FakeKube(object):
    """Answers list_raw_together as the API would for these nodes and pods (label selector
    ``key=value`` terms, the holding-pods field selector)."""

    def __init__(self, nodes, pods, error=None):
        self.nodes, self.pods, self.error = nodes, pods, error
        self.requests = None

    def list_raw_together(self, *requests):
        self.requests = requests
        if self.error is not None:
            raise self.error
        terms = [t.split("=", 1) for t in requests[0]["label_selector"].split(",") if t]
        nodes = [n for n in self.nodes if all(n["metadata"]["labels"].get(k) == v for k, v in terms)]
        pods = [p for p in self.pods if p["spec"].get("nodeName") and p["status"]["phase"] not in ("Succeeded", "Failed")]
        return nodes, pods


def params(**extra):
    values = {"profiles": PROFILES, "default_profile": None, "label_selectors": ["nvidia.com/gpu.present=true"],
              "node_names": [], "fail_on_mismatch": False}
    values.update(extra)
    return values


def gpu_node(name, **kwargs):
    n = node(name, **kwargs)
    n["metadata"]["labels"]["nvidia.com/gpu.present"] = "true"
    return n


def test_options_from_params():
    opts = SlicingInfoOptions.from_params(params())
    assert list(opts.plan.profile_names) == ["ts-4", "ts-2"] and not opts.fail_on_mismatch
    assert SlicingInfoOptions.from_params(params(profiles=None)).plan is None
    assert SlicingInfoOptions.from_params({}).label_selectors == ["nvidia.com/gpu.present=true"]
    with pytest.raises(InvalidInput) as err:
        SlicingInfoOptions.from_params(params(default_profile="nope"))
    assert err.value.field == "default_profile" and "Fix:" in str(err.value)


def test_report_reads_nodes_and_holding_pods_in_one_go():
    kube = FakeKube([gpu_node("n1"), gpu_node("n2"), node("cpu")], [pod("n1"), pod("n1", phase="Succeeded")])
    result = slicing_info(SlicingInfoOptions.from_params(params()), FakeContext(kube))
    assert result["changed"] is False and [n["name"] for n in result["nodes"]] == ["n1", "n2"]
    assert result["totals"]["requested_slices"] == 1 and result["totals"]["free_slices"] == 7
    assert kube.requests[0]["label_selector"] == "nvidia.com/gpu.present=true"
    assert kube.requests[1]["field_selector"] == "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
    only = slicing_info(SlicingInfoOptions.from_params(params(node_names=["n2"])), FakeContext(kube))
    assert [n["name"] for n in only["nodes"]] == ["n2"]


def test_fail_on_mismatch_raises_with_the_report():
    kube = FakeKube([gpu_node("n1", gpus=4, replicas=1, strategy="none", allocatable=4)], [])
    quiet = slicing_info(SlicingInfoOptions.from_params(params()), FakeContext(kube))
    assert quiet["totals"]["nodes_with_mismatch"] == 1
    with pytest.raises(GpuSlicingError) as err:
        slicing_info(SlicingInfoOptions.from_params(params(fail_on_mismatch=True)), FakeContext(kube))
    result = err.value.to_result()
    assert result["msg"].startswith("1 node(s) do not match their profile: n1: allocatable nvidia.com/gpu is 4")
    assert result["error_kind"] == "mismatch" and result["totals"]["nodes_with_mismatch"] == 1


def test_an_api_error_is_one_clear_failure():
    kube = FakeKube([], [], error=RuntimeError("the server could not find the requested resource"))
    with pytest.raises(GpuSlicingError) as err:
        slicing_info(SlicingInfoOptions.from_params(params()), FakeContext(kube))
    assert str(err.value) == "Reading nodes and pods failed: the server could not find the requested resource"
    assert err.value.kind == "kube_api"
