"""gpu_sharing: its argument spec, the options each part gets, the order of checks and writes, and
the roles that feed it (the cluster side is in tests/integration/test_bad_input.py and molecule)."""

import os

import pytest
import yaml

from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import gpu_sharing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    SHARING_PARTS,
    device_plugin_arg_spec,
    gpu_sharing_arg_spec,
    nodepool_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import connection_arg_spec
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import (
    AnsibleFailJson,
    FakeModule,
)
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import run as run_module

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "roles")


PARAMS = {"kubeconfig": "/k", "profiles": [{"name": "ts-4", "replicas": 4}], "default_profile": None,
          "state": "present", "device_plugin": {"chart_ref": "/c", "release_name": "nvdp",
                                                "namespace": "nvidia-device-plugin"},
          "nodepool": {"name": "gpu-shared"}}


def sharing_module(state="present", nodepool=True):
    params = dict(PARAMS, state=state)
    if not nodepool:
        params["nodepool"] = None
    return FakeModule(params, diff=True)


class _Calls(list):
    record = None


@pytest.fixture
def calls(monkeypatch):
    """The parts' options and steps replaced by recorders: the order is what is tested here."""
    seen = _Calls()

    class PartOptions(object):
        def __init__(self, params):
            self.params = params
            self.namespace, self.release_name = params.get("namespace"), params.get("release_name")

    def options(name):
        def build(params):
            seen.append((name, params.get("chart_ref") or params.get("name")))
            return PartOptions(params)
        return staticmethod(build)

    def record(name, result=None, fail=False):
        def fn(options, context, *args):
            seen.append((name, options.params.get("chart_ref") or options.params.get("name")))
            if fail:
                raise GpuSlicingError("%s refused" % name)
            return result
        return fn

    monkeypatch.setattr(gpu_sharing.NodePoolOptions, "from_params", options("render"))
    monkeypatch.setattr(gpu_sharing.DevicePluginOptions, "from_params", options("plugin_options"))
    monkeypatch.setattr(gpu_sharing, "prepare_device_plugin", record("prepare_plugin", "change"))
    monkeypatch.setattr(gpu_sharing, "prepare_present", record("prepare_pool", {"checked": 1}))
    monkeypatch.setattr(gpu_sharing, "apply_device_plugin", record(
        "apply_plugin", {"changed": True, "diff": {"before": {"values": {}}, "after": {"values": {"a": 1}}}}))
    monkeypatch.setattr(gpu_sharing, "apply_present", record(
        "apply_pool", {"changed": False, "diff": [{"before_header": "NodePool/gpu-shared"}]}))
    monkeypatch.setattr(gpu_sharing, "remove", record("remove_pool", {"changed": True, "objects": []}))
    seen.record = record
    return seen


def run(monkeypatch, module):
    return run_module(monkeypatch, module, gpu_sharing.ensure_gpu_sharing,
                      gpu_sharing.GpuSharingOptions.from_params, kube="kube")


def test_each_part_takes_its_modules_options_but_state():
    spec = gpu_sharing_arg_spec()
    assert spec["device_plugin"]["options"] == {k: v for k, v in device_plugin_arg_spec().items() if k != "state"}
    assert spec["nodepool"]["options"] == {k: v for k, v in nodepool_arg_spec().items() if k != "state"}
    assert spec["device_plugin"]["required"] and not spec["nodepool"]["required"]
    assert spec["state"]["choices"] == ["present", "absent"]


def test_no_part_option_shadows_a_shared_one():
    """A part's options are laid over the shared ones: a name in both would be lost."""
    shared = set(connection_arg_spec()) | set(gpu_sharing_arg_spec())
    for option, part_spec in SHARING_PARTS:
        assert not (set(part_spec()) - {"state"}) & shared, option


def test_part_options_are_built_from_the_shared_options_and_the_parts_own(calls):
    options = gpu_sharing.GpuSharingOptions.from_params(dict(PARAMS, nodepool=None))
    assert options.device_plugin.params == {
        "kubeconfig": "/k", "profiles": [{"name": "ts-4", "replicas": 4}], "default_profile": None,
        "state": "present", "chart_ref": "/c", "release_name": "nvdp", "namespace": "nvidia-device-plugin"}
    assert options.nodepool is None and options.state == "present"


def test_present_checks_both_parts_before_writing_either(calls, monkeypatch):
    result = run(monkeypatch, sharing_module())
    assert [name for name, dummy in calls] == ["render", "plugin_options", "prepare_plugin", "prepare_pool",
                                               "apply_plugin", "apply_pool"]
    assert dict(calls)["prepare_plugin"] == "/c" and dict(calls)["prepare_pool"] == "gpu-shared"
    assert result["changed"] is True
    headers = [d.get("before_header") for d in result["diff"]]
    assert headers == ["Helm values of nvidia-device-plugin/nvdp", "NodePool/gpu-shared"]
    assert "diff" not in result["device_plugin"] and "diff" not in result["nodepool"]


def test_a_refused_nodepool_leaves_the_plugin_unwritten(calls, monkeypatch):
    monkeypatch.setattr(gpu_sharing, "prepare_present", calls.record("prepare_pool", fail=True))
    with pytest.raises(AnsibleFailJson, match="prepare_pool refused"):
        run(monkeypatch, sharing_module())
    assert "apply_plugin" not in [name for name, dummy in calls]


def test_without_a_nodepool_only_the_plugin_runs(calls, monkeypatch):
    result = run(monkeypatch, sharing_module(nodepool=False))
    assert [name for name, dummy in calls] == ["plugin_options", "prepare_plugin", "apply_plugin"]
    assert result["nodepool"] is None


def test_absent_removes_the_nodepool_before_the_plugin(calls, monkeypatch):
    result = run(monkeypatch, sharing_module(state="absent"))
    assert [name for name, dummy in calls] == ["render", "plugin_options", "prepare_plugin", "remove_pool",
                                               "apply_plugin"]
    assert result["changed"] is True


def test_bad_nodepool_input_fails_before_the_device_plugin_is_looked_at(monkeypatch):
    """The real options: a NodePool option the core refuses ends the run before the plugin's
    options (helm, names) are even built, with field, value and fix."""
    built = []
    monkeypatch.setattr(gpu_sharing.DevicePluginOptions, "from_params", staticmethod(built.append))
    module = FakeModule(dict(PARAMS, nodepool={"name": "gpu-shared", "instance_types": ["g4dn.xlarge"],
                                               "role": "r", "discovery_tag_value": "c", "ami_alias": "al2@latest"}))
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, module)
    assert info.value.result["error"]["field"] == "ami_alias" and "Fix: " in str(info.value)
    assert info.value.result["error_kind"] == "invalid"
    assert built == []


def _role_task(role):
    with open(os.path.join(ROLES, role, "tasks", "main.yml")) as handle:
        return yaml.safe_load(handle)[0]


def test_gpu_sharing_role_passes_what_the_two_roles_pass():
    """roles/gpu_sharing gives each part the options (from the same variables) that the
    device_plugin and karpenter_gpu roles give their modules, so the main job and the two roles
    configure the same plugin and NodePool."""
    task = _role_task("gpu_sharing")
    args = task["gpu_slicing.eks.gpu_sharing"]
    parts = (("device_plugin", "device_plugin", args["device_plugin"]),
             ("karpenter_gpu", "karpenter_gpu_nodepool", task["vars"]["gpu_sharing_nodepool_options"]))
    for role, module, part in parts:
        role_args = _role_task(role)["gpu_slicing.eks.%s" % module]
        wanted = {k: v for k, v in role_args.items() if k not in ("state", "profiles", "default_profile", "profile")}
        if role == "karpenter_gpu":
            wanted["profile"] = role_args["profile"]
        assert set(part) == set(wanted), role
        for key, value in part.items():
            # null, not omit: omit is not removed from nested dicts before ansible-core 2.19
            assert value == wanted[key].replace("default(omit, true)", "default(none, true)"), (role, key)


def test_gpu_sharing_role_defaults_are_the_two_roles_defaults():
    """Its defaults directory links the two roles' defaults files: one copy of each default."""
    directory = os.path.join(ROLES, "gpu_sharing", "defaults", "main")
    for name, role in (("device_plugin.yml", "device_plugin"), ("karpenter_gpu.yml", "karpenter_gpu")):
        path = os.path.join(directory, name)
        assert os.path.islink(path)
        assert os.path.samefile(path, os.path.join(ROLES, role, "defaults", "main.yml"))
