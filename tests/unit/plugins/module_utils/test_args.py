"""The argument specs (module_utils/args.py): valid for Ansible's own validator, the defaults
the core uses, and the sharing plan from the profiles."""

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.gpu_slicing.eks.plugins.module_utils import args
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import device_plugin as core
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import connection_arg_spec

SPECS = {
    "device_plugin": lambda: dict(args.sharing_arg_spec(required=False), **args.device_plugin_arg_spec()),
    "device_plugin_config": lambda: dict(args.sharing_arg_spec(required=False), **args.config_map_arg_spec()),
    "karpenter_gpu_nodepool": lambda: dict(args.sharing_arg_spec(required=False), **args.nodepool_arg_spec()),
    "gpu_sharing": args.gpu_sharing_arg_spec,
}
MINIMAL = {
    "device_plugin": {},
    "device_plugin_config": {},
    "karpenter_gpu_nodepool": {"name": "gpu-shared"},
    "gpu_sharing": {"device_plugin": {}, "nodepool": {"name": "gpu-shared"}},
}


@pytest.mark.parametrize("module", sorted(SPECS))
def test_ansibles_validator_accepts_each_spec_and_fills_the_defaults(module):
    spec = dict(connection_arg_spec(), **SPECS[module]())
    result = ArgumentSpecValidator(spec).validate(dict(MINIMAL[module], profiles=[{"name": "ts-4", "replicas": 4}]))
    assert result.error_messages == []
    assert result.validated_parameters["state"] == "present"
    profile = result.validated_parameters["profiles"][0]
    assert profile["strategy"] == "time-slicing" and profile["resource_name"] == "nvidia.com/gpu"


def test_the_device_plugin_defaults_are_the_cores():
    spec = args.device_plugin_arg_spec()
    assert spec["release_name"]["default"] == core.DEFAULT_RELEASE
    assert spec["namespace"]["default"] == core.DEFAULT_NAMESPACE
    assert spec["config_map_name"]["default"] == core.DEFAULT_CONFIG_MAP
    assert spec["chart_version"]["default"] == core.CHART_VERSION
    assert spec["image_tag"]["default"] == core.IMAGE_TAG
    config = args.config_map_arg_spec()
    assert (config["namespace"]["default"], config["config_map_name"]["default"]) == (
        core.DEFAULT_NAMESPACE, core.DEFAULT_CONFIG_MAP)
    assert set(config) == {"state", "config_map_name", "namespace", "create_namespace"}


def test_profiles_are_required_only_where_asked():
    assert args.sharing_arg_spec()["profiles"]["required"] is True
    assert args.sharing_arg_spec(required=False)["profiles"]["required"] is False
    # a copy each time: one module's change does not reach another's spec
    args.sharing_arg_spec()["profiles"]["options"]["name"]["required"] = False
    assert args.PROFILE_OPTIONS["name"]["required"] is True


def test_every_module_takes_one_state_option():
    for make in (args.device_plugin_arg_spec, args.nodepool_arg_spec, args.config_map_arg_spec,
                 args.gpu_sharing_arg_spec):
        assert make()["state"] == {"type": "str", "choices": ["present", "absent"], "default": "present"}


def test_sharing_spec_drops_unset_keys():
    params = {"profiles": [{"name": "ts-4", "replicas": 4, "fraction": None}], "default_profile": None}
    assert args.sharing_spec_from_params(params) == {"profiles": [{"name": "ts-4", "replicas": 4}]}
    params["default_profile"] = "ts-4"
    assert args.sharing_spec_from_params(params)["default_profile"] == "ts-4"


def test_sharing_plan_is_checked_and_bad_profiles_name_field_value_and_fix():
    plan = args.sharing_plan({"profiles": [{"name": "ts-4", "replicas": 4}]})
    assert [p.name for p in plan.profiles] == ["ts-4"]
    with pytest.raises(InvalidInput) as info:
        args.sharing_plan({"profiles": [{"name": "ts-4", "replicas": 0}]})
    err = info.value
    assert err.field == "profiles[0].replicas" and err.value == 0 and err.fix
    assert err.to_result()["error_kind"] == "invalid"
    assert str(err).startswith("profiles[0].replicas: 0 is invalid: ")
