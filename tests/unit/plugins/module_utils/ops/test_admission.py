"""Unit tests for plugins/module_utils/ops/admission.py: the options and the order of reads, dry
runs and writes, against a recording stand-in for KubeAccess (the real API server runs in
tests/integration/test_admission_policy.py)."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.admission import AdmissionOptions, admission_policy

PROFILES = [{"name": "ts-4", "replicas": 4, "strategy": "time-slicing"}]


class Kube(object):
    """Serves the admission kinds (``mutating`` False: not the mutating ones) and records calls."""

    def __init__(self, objects=None, mutating=True, validating=True, refuse=None):
        self.objects = dict(objects or {})
        self.served = {admission.MUTATING_KIND: mutating, admission.VALIDATING_KIND: validating}
        self.refuse = refuse
        self.calls = []

    def resource(self, kind, api_version):
        return object() if self.served[kind.replace("Binding", "")] else None

    def forget_discovery(self):
        self.calls.append(("forget_discovery",))

    def get(self, kind, api_version, name):
        return self.objects.get((kind, name))

    def dry_run_apply(self, obj):
        self.calls.append(("dry_run", obj["kind"], obj["metadata"]["name"]))
        if self.refuse == obj["metadata"]["name"]:
            raise RuntimeError("refused by the API server")
        return obj

    def ensure(self, obj, state="present"):
        key = (obj["kind"], obj["metadata"]["name"])
        self.calls.append(("apply" if state == "present" else "delete",) + key)
        before = self.objects.get(key)
        if state == "absent":
            self.objects.pop(key, None)
            return {"changed": before is not None}
        self.objects[key] = obj
        return {"changed": before != obj, "diff": {"before": before or {}, "after": obj}}


class Context(object):
    def __init__(self, kube, diff=False):
        self.kube = kube
        self.diff = diff
        self.check_mode = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def options(**params):
    base = {"state": "present", "profiles": PROFILES, "name": "gpu-slicing-eks", "validation_actions": ["Deny"],
            "namespace_label": "gpu-slicing.eks/admission", "namespace_label_value": "enabled",
            "device_plugin_namespace": "nvidia-device-plugin", "mutating_policy_required": False}
    base.update(params)
    return AdmissionOptions.from_params(base)


@pytest.mark.parametrize("params,field", [
    ({"profiles": None}, "profiles"),
    ({"validation_actions": ["Deny", "Warn"]}, "validation_actions"),
    ({"namespace_label": "gpu team"}, "namespace_label"),
    ({"namespace_label_value": ""}, "namespace_label_value"),
    ({"name": "GPU_Policies"}, "name"),
    ({"device_plugin_namespace": "Kube System"}, "device_plugin_namespace"),
    ({"default_profile": "ts-9"}, "default_profile"),
    ({"profiles": [{"name": "ts-1", "replicas": 1}]}, "profiles[0].replicas"),
])
def test_bad_options_are_invalid_input_naming_the_module_option(params, field):
    with pytest.raises(InvalidInput) as err:
        options(**params)
    assert err.value.field == field and err.value.fix
    assert err.value.to_result()["error"]["field"] == field


def test_absent_needs_no_profiles():
    opts = options(state="absent", profiles=None)
    assert opts.plan is None and opts.name == "gpu-slicing-eks"


def test_present_dry_runs_everything_before_the_first_write():
    kube = Kube()
    result = admission_policy(options(), Context(kube, diff=True))
    kinds = [c[0] for c in kube.calls if c[0] != "forget_discovery"]
    assert kinds == ["dry_run"] * 12 + ["apply"] * 12
    first = [c[1] for c in kube.calls if c[0] == "apply"][:2]
    assert first == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    assert result["changed"] and {o["action"] for o in result["objects"]} == {"created"}
    assert len(result["diff"]) == 12
    again = admission_policy(options(), Context(kube))
    assert not again["changed"] and {o["action"] for o in again["objects"]} == {"unchanged"}


def test_a_refused_dry_run_writes_nothing():
    kube = Kube(refuse="gpu-slicing-eks-cronjobs")
    with pytest.raises(RuntimeError):
        admission_policy(options(), Context(kube))
    assert not [c for c in kube.calls if c[0] in ("apply", "delete")]


def test_foreign_object_stops_present_and_is_left_by_absent():
    foreign = {("ValidatingAdmissionPolicy", "gpu-slicing-eks"): {"metadata": {"labels": {}}}}
    kube = Kube(foreign)
    with pytest.raises(GpuSlicingError) as err:
        admission_policy(options(), Context(kube))
    assert err.value.kind == "conflict" and "nothing was written" in str(err.value)
    assert not [c for c in kube.calls if c[0] in ("dry_run", "apply", "delete")]
    context = Context(kube)
    result = admission_policy(options(state="absent"), context)
    assert not result["changed"] and "left in place" in context.warnings[0]


def test_without_the_mutating_kind_validating_only_or_fail():
    kube = Kube(mutating=False)
    with pytest.raises(GpuSlicingError) as err:
        admission_policy(options(mutating_policy_required=True), Context(kube))
    assert err.value.kind == "unsupported" and not kube.objects
    context = Context(kube)
    result = admission_policy(options(), context)
    assert result["mutating_policy_served"] is False
    assert {o["kind"] for o in result["objects"]} == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert "only the validating policies are written" in context.warnings[0]
    assert ("forget_discovery",) in kube.calls  # a stale discovery cache is read again once


def test_without_the_validating_kind_nothing_is_written():
    with pytest.raises(GpuSlicingError) as err:
        admission_policy(options(), Context(Kube(mutating=False, validating=False)))
    assert "ValidatingAdmissionPolicy (GA since Kubernetes 1.30)" in str(err.value)


def test_absent_removes_in_reverse_write_order():
    kube = Kube()
    admission_policy(options(), Context(kube))
    kube.calls = []
    result = admission_policy(options(state="absent", profiles=None), Context(kube))
    deleted = [(c[1], c[2]) for c in kube.calls if c[0] == "delete"]
    assert deleted == [(k, n) for k, n in admission.removal_order() if not n.endswith("-warn")]
    assert result["changed"] and not kube.objects
