# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the collection's modules (documented in doc_fragments/).

Sub-option values are typed ``raw`` on purpose: the sharing core validates them and its
errors name the field, the value and the fix, which Ansible's generic type errors do not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
    CHART_NAME,
    CHART_REPO_URL,
    CHART_VERSION,
    DEFAULT_CONFIG_MAP,
    DEFAULT_NAMESPACE,
    DEFAULT_RELEASE,
    IMAGE_TAG,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    build_plan,
)

PROFILE_OPTIONS = {
    "name": {"type": "str", "required": True},
    "strategy": {"type": "str", "default": "time-slicing", "choices": ["time-slicing", "mps", "none"]},
    "replicas": {"type": "raw"},
    "fraction": {"type": "raw"},
    "slice_memory": {"type": "str"},
    "gpu_memory": {"type": "str"},
    "rename_by_default": {"type": "raw"},
    "fail_requests_greater_than_one": {"type": "raw"},
    "mig_strategy": {"type": "str", "default": "none", "choices": ["none", "single", "mixed"]},
    "resource_name": {"type": "str", "default": "nvidia.com/gpu"},
}

SHARING_ARG_SPEC = {
    "profiles": {"type": "list", "elements": "dict", "options": PROFILE_OPTIONS},
    "default_profile": {"type": "str"},
}


def sharing_arg_spec(required=True):
    spec = copy.deepcopy(SHARING_ARG_SPEC)
    spec["profiles"]["required"] = required
    return spec


STATE_OPTION = dict(type="str", choices=["present", "absent"], default="present")


def config_map_arg_spec():
    """device_plugin_config's own options (besides the connection and the sharing profiles)."""
    return dict(
        state=dict(STATE_OPTION),
        config_map_name=dict(type="str", default=DEFAULT_CONFIG_MAP),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        create_namespace=dict(type="bool", default=True),
    )


def device_plugin_arg_spec():
    """device_plugin's own options (besides the connection and the sharing profiles). Here, not
    in the module, because gpu_sharing takes the same options (less state) as its device_plugin."""
    return dict(
        state=dict(STATE_OPTION),
        release_name=dict(type="str", default=DEFAULT_RELEASE),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        chart_ref=dict(type="str", default=CHART_NAME),
        chart_repo_url=dict(type="str", default=CHART_REPO_URL),
        chart_version=dict(type="str", default=CHART_VERSION),
        config_map_name=dict(type="str", default=DEFAULT_CONFIG_MAP),
        manage_config_map=dict(type="bool", default=True),
        image_tag=dict(type="str", default=IMAGE_TAG),
        gfd=dict(type="bool", default=True),
        values=dict(type="raw", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
        binary_path=dict(type="path"),
    )


def nodepool_arg_spec():
    """karpenter_gpu_nodepool's own options (besides the connection and the sharing profiles).
    Here, not in the module, because gpu_sharing takes the same options (less state) as its
    nodepool."""
    return dict(
        state=dict(STATE_OPTION),
        name=dict(type="str", required=True),
        profile=dict(type="str"),
        discovery_tag_value=dict(type="str"),
        instance_types=dict(type="list", elements="str"),
        instance_families=dict(type="list", elements="str"),
        gpu_names=dict(type="list", elements="str"),
        gpu_manufacturer=dict(type="str", default="nvidia"),
        gpu_counts=dict(type="list", elements="raw"),
        min_gpu_memory=dict(type="str"),
        capacity_types=dict(type="list", elements="str", default=["on-demand"]),
        architectures=dict(type="list", elements="str", default=["amd64"]),
        zones=dict(type="list", elements="str"),
        limit_slices=dict(type="raw"),
        limit_gpus=dict(type="raw"),
        limits=dict(type="dict"),
        consolidation_policy=dict(type="str", default="WhenEmptyOrUnderutilized",
                                  choices=["WhenEmpty", "WhenEmptyOrUnderutilized"]),
        consolidate_after=dict(type="str", default="5m"),
        budgets=dict(type="list", elements="dict"),
        expire_after=dict(type="str", default="720h"),
        weight=dict(type="raw"),
        labels=dict(type="dict"),
        startup_taints=dict(type="list", elements="dict", options=dict(
            key=dict(type="str", required=True, no_log=False),
            value=dict(type="str"),
            effect=dict(type="str", default="NoSchedule", choices=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        )),
        manage_node_class=dict(type="bool", default=True),
        node_class_name=dict(type="str"),
        node_class_ref=dict(type="dict", options=dict(
            group=dict(type="str", required=True),
            kind=dict(type="str", required=True),
            name=dict(type="str", required=True),
        )),
        ami_alias=dict(type="str", default="al2023@latest"),
        role=dict(type="str"),
        instance_profile=dict(type="str"),
        subnet_selector_terms=dict(type="list", elements="dict"),
        security_group_selector_terms=dict(type="list", elements="dict"),
        root_volume_size=dict(type="str", default="100Gi"),
        root_volume_type=dict(type="str", default="gp3"),
        root_volume_encrypted=dict(type="bool", default=True),
        node_class_tags=dict(type="dict"),
        overlay_key=dict(type="str", choices=["instance-type", "gpu-count"], default="instance-type"),
        overlay_weight=dict(type="int", default=10),
        gpus_per_instance_type=dict(type="dict"),
        karpenter_namespace=dict(type="str", default="kube-system"),
        karpenter_feature_gates=dict(type="str"),
        allow_without_node_overlay=dict(type="bool", default=False),
    )


# gpu_sharing's parts: its option holding each part's options, and the arg spec of those.
SHARING_PARTS = (("device_plugin", device_plugin_arg_spec), ("nodepool", nodepool_arg_spec))


def gpu_sharing_arg_spec():
    """gpu_sharing's options besides the connection: the profiles and state that both parts
    share, and each part's own options as a dict (device_plugin required, nodepool optional)."""
    spec = sharing_arg_spec(required=False)
    spec["state"] = dict(STATE_OPTION)
    for option, part_spec in SHARING_PARTS:
        options = part_spec()
        del options["state"]  # one state for both parts
        spec[option] = dict(type="dict", options=options, required=option == "device_plugin")
    return spec


def sharing_spec_from_params(params):
    """The sharing spec (input of sharing.build_plan) from module params, unset keys dropped."""
    profiles = []
    for raw in params.get("profiles") or []:
        profiles.append({key: value for key, value in raw.items() if value is not None})
    spec = {"profiles": profiles}
    if params.get("default_profile") is not None:
        spec["default_profile"] = params["default_profile"]
    return spec


def sharing_plan(params):
    """The validated sharing plan from the options' profiles (raises InvalidInput naming field,
    value and fix)."""
    return build_plan(sharing_spec_from_params(params))
