"""Unit tests for the admission check of the verification (plugins/module_utils/core/verification_admission.py)."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_admission as VA
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

from .admission_cases import PLAN


@pytest.mark.parametrize("profile,value,expected", [
    ("ts-2", "0.500", ("ts-2", "nvidia.com/gpu.shared", 1)),
    ("ts-4", "0.250", ("ts-4", "nvidia.com/gpu", 1)),
    ("mps-3", "0.333", ("mps-3", "nvidia.com/gpu", 1)),
    ("whole", "1", ("whole", "nvidia.com/gpu", 1)),
    (None, "0.500", ("ts-2", "nvidia.com/gpu.shared", 1)),
])
def test_probe_pods_follow_the_rule(profile, value, expected):
    probes = VA.probe_pods(PLAN, "ns", "img", profile)
    pod, want = probes["rewrite"]
    assert want == expected
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"gpu": value}}
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/device-plugin.config": expected[0]}
    assert pod["metadata"]["namespace"] == "ns"
    refuse, dummy = probes["refuse"]
    with pytest.raises(InvalidInput):
        admission.decide(PLAN, refuse["spec"]["containers"][0]["resources"]["limits"]["gpu"], expected[0])


def _rewritten(resource="nvidia.com/gpu.shared", profile="ts-2", toleration=True):
    spec = {"containers": [{"resources": {"limits": {resource: "1"}}}],
            "nodeSelector": {"nvidia.com/device-plugin.config": profile}}
    if toleration:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"spec": spec}


REFUSED = "ValidatingAdmissionPolicy 'gpu-slicing-eks' denied request: GPU request refused: container probe asks for gpu: 1.5"
UNSERVED = {"metadata": {"annotations": {admission.ANNOTATION_REFUSED: "x"}},
            "spec": {"containers": [{"resources": {"limits": {admission.UNSERVABLE_RESOURCE: "1"}}}]}}


@pytest.mark.parametrize("rewrite,refuse,actions,status,reason", [
    ((_rewritten(), None), (None, REFUSED), ["Deny"], "passed", "was refused: " + REFUSED),
    ((_rewritten(), None), (UNSERVED, None), ["Warn"], "passed", "admitted with validationActions Warn"),
    ((_rewritten(), None), (UNSERVED, None), ["Deny"], "failed", "was admitted, not refused"),
    ((_rewritten(), None), (None, "forbidden"), ["Deny"], "failed", "refused for another reason"),
    ((_rewritten(), None), (_rewritten(), None), ["Audit"], "failed", "not marked as unservable"),
    ((None, 'spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type'),
     (None, REFUSED), ["Deny"], "failed", "no mutating policy matched (is namespace ns labelled"),
    ((_rewritten(profile="ts-4"), None), (None, REFUSED), ["Deny"], "failed", "not rewritten as the rule says"),
    ((_rewritten(toleration=False), None), (None, REFUSED), ["Deny"], "failed", "not rewritten as the rule says"),
    ((_rewritten(resource="nvidia.com/gpu"), None), (None, REFUSED), ["Deny"], "failed", "not rewritten"),
])
def test_judge_probes(rewrite, refuse, actions, status, reason):
    probes = VA.probe_pods(PLAN, "ns", "img")
    check = VA.judge_probes(probes, {"rewrite": rewrite, "refuse": refuse}, actions)
    assert check.name == VA.CHECK_ADMISSION
    assert check.status == status, check.reason
    assert reason in check.reason, check.reason


def test_service_account_ready():
    assert VA.service_account_ready({"rewrite": ({}, None), "refuse": (None, REFUSED)})
    missing = 'pods "x" is forbidden: error looking up service account ns/default: serviceaccount "default" not found'
    assert not VA.service_account_ready({"rewrite": (None, missing), "refuse": (None, REFUSED)})
