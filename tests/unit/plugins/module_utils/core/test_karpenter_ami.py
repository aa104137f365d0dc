"""Unit tests for plugins/module_utils/core/karpenter_ami.py: AMI aliases and Bottlerocket's MPS releases."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter as k
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

from .test_karpenter import BASE, PLAN

# Bottlerocket's settings model knows device-sharing-strategy "mps" from settings-models 0.20.0,
# first shipped in Bottlerocket 1.54.0: an older pinned release refuses the node's user data.
MPS_PLAN = build_plan({"profiles": [{"name": "mps-2", "strategy": "mps", "replicas": 2}]})


@pytest.mark.parametrize("alias", ["bottlerocket@v1.53.2", "bottlerocket@v1.25.0", "bottlerocket@1.53.0"])
def test_bottlerocket_mps_refused_on_a_pinned_release_without_mps(alias):
    with pytest.raises(InvalidInput) as info:
        k.render(MPS_PLAN, dict(BASE, ami_alias=alias))
    assert info.value.field == "ami_alias"
    assert "1.54.0" in str(info.value) and "mps-2" in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize("plan, alias", [(MPS_PLAN, "bottlerocket@v1.54.0"), (MPS_PLAN, "bottlerocket@v1.63.1"),
                                         (MPS_PLAN, "bottlerocket@latest"), (PLAN, "bottlerocket@v1.25.0")])
def test_bottlerocket_mps_accepted_from_1_54(plan, alias):
    out = k.render(plan, dict(BASE, ami_alias=alias))
    assert out["ec2nodeclass"]["spec"]["amiSelectorTerms"] == [{"alias": alias}]
