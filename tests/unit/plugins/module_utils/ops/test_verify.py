"""Unit tests for ops/verify.py: the options, the operation and the report files."""

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_report as REP
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import verify as R
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_pods import run_namespace
from ansible_collections.gpu_slicing.eks.plugins.modules import gpu_slicing_verify

from core.test_verification import node, ready_plugin_pod

from .test_verifier import FakeKube


def test_write_reports(tmp_path):
    report = REP.build_report([V.NodeVerdict("a", "p", [V.passed("x", "ok")])], {"total_seconds": 0.1}, "s")
    written = R.write_reports(report, str(tmp_path / "r" / "v.json"), str(tmp_path / "v.xml"))
    assert json.loads((tmp_path / "r" / "v.json").read_text())["passed"] is True
    ET.parse(str(tmp_path / "v.xml"))
    assert set(written) == {"report_json", "report_junit"}


# --------------------------------------------------------------------------- options


class FakeContext(object):
    """What an operation may use besides its options (runner.RunContext's interface)."""

    def __init__(self, kube, check_mode=False):
        self.kube = kube
        self.check_mode = check_mode
        self.diff = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


PROFILES = [{"name": "ts-4", "strategy": "time-slicing", "replicas": 4}, {"name": "ts-2", "replicas": 2}]


def params(**extra):
    """Module params as Ansible gives them: every option present, unset ones None."""
    values = dict((key, None) for key in R.VerifyOptions.DEFAULTS)
    values.update(profiles=PROFILES, profile=None, default_profile=None)
    values.update(extra)
    return values


def test_options_take_the_module_defaults_and_the_default_profile():
    opts = R.VerifyOptions.from_params(params())
    assert opts.profile.name == "ts-4" and opts.plan.default_profile == "ts-4"
    assert (opts.wait_timeout, opts.hold_seconds, opts.cleanup_wait_timeout, opts.karpenter_cleanup_nodes) == (
        300, 3600, 0, True)
    assert opts.image == R.DEFAULT_IMAGE
    opts = R.VerifyOptions.from_params(params(profile="ts-2", wait_timeout=0, karpenter_cleanup_nodes=False))
    assert opts.profile.name == "ts-2" and opts.wait_timeout == 0 and opts.karpenter_cleanup_nodes is False


def test_options_defaults_are_the_documented_ones():
    documented = yaml.safe_load(gpu_slicing_verify.DOCUMENTATION)["options"]
    assert set(R.VerifyOptions.DEFAULTS) <= set(documented)
    for key, default in R.VerifyOptions.DEFAULTS.items():
        assert documented[key].get("default") == default, key


@pytest.mark.parametrize("extra, message", [
    ({"profiles": None},
     "profiles: None is invalid: the profile to verify must be given. Fix: pass the same profiles as to "
     "device_plugin, e.g. [{name: ts-4, replicas: 4}]"),
    ({"profile": "ts-99"}, "profile: 'ts-99' is invalid: no profile has this name. Fix: use one of the plan's "
                           "profiles: ts-4, ts-2"),
    ({"karpenter_pods": 0}, "karpenter_pods: 0 is invalid: at least one pod is needed. Fix: leave it unset "
                            "(GPUs x replicas + 1) or give a count such as 5"),
    ({"hold_seconds": 0}, "hold_seconds: 0 is invalid: each test pod must hold its slice while the others start. "
                          "Fix: give seconds, e.g. 3600 (the pods are deleted when the run ends)"),
    ({"wait_timeout": -5}, "wait_timeout: -5 is invalid: must be 0 or more. Fix: give seconds, e.g. 300"),
    ({"node_wait_timeout": -2}, "node_wait_timeout: -2 is invalid: must be 0 or more. Fix: give seconds, e.g. 300"),
    ({"karpenter_settle": -3}, "karpenter_settle: -3 is invalid: must be 0 or more. Fix: give seconds, e.g. 300"),
])
def test_options_refuse_bad_input_with_todays_messages(extra, message):
    with pytest.raises(InvalidInput) as err:
        R.VerifyOptions.from_params(params(**extra))
    assert str(err.value) == message
    result = err.value.to_result()
    assert result["error_kind"] == "invalid" and result["error"]["field"] == message.split(":")[0]


def test_cleanup_only_needs_and_checks_nothing_else():
    opts = R.VerifyOptions.from_params(params(cleanup_only=True, profiles=None, wait_timeout=-1))
    assert opts.cleanup_only and opts.plan is None


# --------------------------------------------------------------------------- the operation


def fake_cluster(nodes):
    return FakeKube(nodes, [ready_plugin_pod(n["metadata"]["name"]) for n in nodes])


def test_verify_returns_the_report_and_warns_about_an_unpinned_image():
    kube = fake_cluster([node("a")])
    context = FakeContext(kube)
    result = R.verify(R.VerifyOptions.from_params(params(node_names=["a"], wait_timeout=5, unschedulable_grace=0,
                                                         multi_slice_wait_timeout=2)), context)
    assert result["passed"] is True and result["changed"] is False and result["reports"] == {}
    assert result["msg"] == result["summary"] and result["run"]["selected_by"] == "node names"
    assert context.warnings and "not pinned by digest" in context.warnings[0]
    assert kube.namespaces == {} and kube.pods == {}


def test_verify_failure_raises_with_the_report():
    kube = fake_cluster([node("a", replicas=1, alloc=1, strategy="none", product="T4")])
    with pytest.raises(GpuSlicingError) as err:
        R.verify(R.VerifyOptions.from_params(params(node_names=["a"], wait_timeout=5, unschedulable_grace=0)),
                 FakeContext(kube))
    result = err.value.to_result()
    assert result["error_kind"] == "verification_failed" and result["passed"] is False
    assert result["msg"] == result["summary"] and "allocatable (expected 4, observed 1)" in result["msg"]
    assert result["nodes"][0]["node"] == "a" and result["changed"] is False
    assert kube.namespaces == {} and kube.pods == {}


def test_verify_refuses_unknown_nodes_and_empty_selections_before_any_write():
    kube = fake_cluster([node("a")])
    with pytest.raises(GpuSlicingError) as err:
        R.verify(R.VerifyOptions.from_params(params(node_names=["a", "nope"])), FakeContext(kube))
    assert str(err.value) == ("node_names: nope not found in the cluster. Fix: give existing node names "
                              "(kubectl get nodes)")
    with pytest.raises(GpuSlicingError) as err:
        R.verify(R.VerifyOptions.from_params(params(nodepool_name="empty")), FakeContext(kube))
    assert str(err.value).startswith("No node matches label karpenter.sh/nodepool=empty. Fix:")
    assert kube.created_pods == 0 and kube.namespaces == {}


def test_verify_stopped_by_an_error_reports_the_cleanup():
    kube = fake_cluster([node("a")])

    def refuse(objs):
        raise RuntimeError("admission webhook refused the pod")

    kube.create_many = refuse
    with pytest.raises(GpuSlicingError) as err:
        R.verify(R.VerifyOptions.from_params(params(node_names=["a"], wait_timeout=5)), FakeContext(kube))
    result = err.value.to_result()
    assert result["error_kind"] == "stopped" and result["msg"].startswith("Verification stopped: admission webhook")
    assert result["run"]["cleanup"]["namespace_deletion_requested"] is True and "timings" in result
    assert kube.namespaces == {}


def test_cleanup_only_removes_leftovers_and_honours_check_mode():
    kube = fake_cluster([])
    kube.create(run_namespace("gpu-slicing-verify-old", "old"))
    opts = R.VerifyOptions.from_params(params(cleanup_only=True, profiles=None))
    checked = R.verify(opts, FakeContext(kube, check_mode=True))
    assert checked["changed"] is True and "gpu-slicing-verify-old" in kube.namespaces
    result = R.verify(opts, FakeContext(kube))
    assert result["changed"] is True and result["passed"] is True and kube.namespaces == {}
    assert result["run"]["cleanup"]["leftover_namespaces_removed"] == ["gpu-slicing-verify-old"]
    assert R.verify(opts, FakeContext(kube))["changed"] is False
