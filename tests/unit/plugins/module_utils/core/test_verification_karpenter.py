"""Unit tests for core/verification_karpenter.py: the Karpenter launch check (pure)."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_karpenter as K


def _pool(*types):
    reqs = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]
    if types:
        reqs.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(types)})
    return {"spec": {"template": {"spec": {"requirements": reqs}}}}


def test_karpenter_instance_type_needs_one_answer():
    assert K.karpenter_instance_type(_pool("g4dn.xlarge")) == ("g4dn.xlarge", None)
    assert K.karpenter_instance_type(_pool("g4dn.xlarge", "g5.xlarge"), "g5.xlarge") == ("g5.xlarge", None)
    itype, why = K.karpenter_instance_type(_pool("g4dn.xlarge", "g5.xlarge"))
    assert itype is None and "karpenter_instance_type" in why and "g5.xlarge" in why
    itype, why = K.karpenter_instance_type(_pool("g4dn.xlarge"), "p4d.24xlarge")
    assert itype is None and "not admitted" in why
    itype, why = K.karpenter_instance_type(_pool())
    assert itype is None and "any instance type" in why
    assert K.karpenter_instance_type(_pool(), "g5.12xlarge") == ("g5.12xlarge", None)


@pytest.mark.parametrize("pods,per_node,free,expected", [
    (5, 4, 0, 2), (4, 4, 0, 1), (17, 4, 0, 5), (17, 16, 0, 2), (5, 4, 3, 1), (3, 4, 3, 0), (3, 4, 9, 0)])
def test_karpenter_expected_nodes(pods, per_node, free, expected):
    assert K.karpenter_expected_nodes(pods, per_node, free) == expected


def test_check_karpenter_launch_verdicts():
    ok = K.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a", "b"}, 5, waited=12.3)
    assert ok.status == V.PASSED and ok.expected == 2 and ok.observed == 2
    assert ok.details["nodeclaims_launched"] == ["a", "b"]
    over = K.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, set("abcde"), 5)
    assert over.status == V.FAILED and over.expected == 2 and over.observed == 5
    assert "over-provisions" in over.reason and "NodeOverlay" in over.reason
    under = K.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a"}, 5)
    assert under.status == V.FAILED and "over-provisions" not in under.reason
    late = K.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a"}, 3, timed_out=True, waited=600)
    assert late.status == V.FAILED and "timed out: 3 of 5" in late.reason
