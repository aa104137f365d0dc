# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/plugin_config.py (NVIDIA's parser itself: test_plugin_config_nvidia_parser.py)."""

import pytest
from hypothesis import given, settings

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import (
    parse_plugin_config,
    render_bottlerocket_settings,
    render_config_map_data,
    render_plugin_config,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import SharingProfile, build_plan, normalize_profile

from .test_sharing import one, raw_profiles


def test_render_plugin_config_exact_bytes():
    prof = build_plan(one(replicas=4)).profile()
    assert render_plugin_config(prof) == (
        "version: v1\n"
        "flags:\n"
        "  migStrategy: none\n"
        "sharing:\n"
        "  timeSlicing:\n"
        "    renameByDefault: false\n"
        "    failRequestsGreaterThanOne: false\n"
        "    resources:\n"
        "      - name: nvidia.com/gpu\n"
        "        replicas: 4\n"
    )


def test_render_plugin_config_mps():
    prof = build_plan(one(strategy="mps", replicas=3, rename_by_default=True)).profile()
    text = render_plugin_config(prof)
    assert "  migStrategy: none\n" in text
    assert "  mps:\n    renameByDefault: true\n    failRequestsGreaterThanOne: true\n" in text
    assert "timeSlicing" not in text
    assert "        replicas: 3\n" in text


def test_render_plugin_config_accepts_raw_profile():
    assert "replicas: 4" in render_plugin_config({"name": "x", "fraction": 0.25})


def test_render_config_map_data():
    data = render_config_map_data({"profiles": [{"name": "ts-4", "replicas": 4},
                                                {"name": "mps-2", "strategy": "mps", "replicas": 2}]})
    assert list(data) == ["ts-4", "mps-2"]
    assert "timeSlicing" in data["ts-4"] and "mps:" in data["mps-2"]


def test_render_bottlerocket_time_slicing():
    prof = build_plan(one(replicas=4)).profile()
    assert render_bottlerocket_settings(prof) == (
        "[settings.kubelet-device-plugins.nvidia]\n"
        'device-sharing-strategy = "time-slicing"\n'
        "\n"
        "[settings.kubelet-device-plugins.nvidia.time-slicing]\n"
        "replicas = 4\n"
        "rename-by-default = false\n"
        "fail-requests-greater-than-one = false\n"
    )


def test_render_bottlerocket_mps_and_none():
    mps = build_plan(one(strategy="mps", replicas=2, rename_by_default=True)).profile()
    text = render_bottlerocket_settings(mps)
    assert 'device-sharing-strategy = "mps"' in text
    assert "[settings.kubelet-device-plugins.nvidia.mps]\nreplicas = 2\nrename-by-default = true\n" in text
    none = build_plan(one(strategy="none")).profile()
    assert render_bottlerocket_settings(none) == (
        '[settings.kubelet-device-plugins.nvidia]\ndevice-sharing-strategy = "none"\n'
    )


def test_render_bottlerocket_toml_parses():
    import tomllib

    prof = build_plan(one(replicas=4, fail_requests_greater_than_one=True)).profile()
    data = tomllib.loads(render_bottlerocket_settings(prof))
    nvidia = data["settings"]["kubelet-device-plugins"]["nvidia"]
    assert nvidia["device-sharing-strategy"] == "time-slicing"
    assert nvidia["time-slicing"] == {"replicas": 4, "rename-by-default": False,
                                      "fail-requests-greater-than-one": True}


@pytest.mark.parametrize("extra, field", [({"mig_strategy": "single"}, "p.mig_strategy"),
                                          ({"mig_strategy": "mixed", "resource_name": "mig-1g.5gb"},
                                           "p.mig_strategy")])
def test_render_bottlerocket_rejects_unexpressible(extra, field):
    prof = build_plan(one(replicas=4, **extra)).profile()
    with pytest.raises(InvalidInput) as info:
        render_bottlerocket_settings(prof)
    assert info.value.field == field


def test_parse_plugin_config_nvidia_example():
    text = """
version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 10
"""
    prof = parse_plugin_config(text, "ts-10")
    assert prof == SharingProfile(name="ts-10", strategy="time-slicing", replicas=10)


def test_parse_plugin_config_json():
    text = '{"version": "v1", "sharing": {"mps": {"resources": [{"name": "gpu", "replicas": 2}]}}}'
    prof = parse_plugin_config(text, "m")
    assert (prof.strategy, prof.replicas, prof.fail_requests_greater_than_one) == ("mps", 2, True)


@pytest.mark.parametrize(
    "text, field",
    [
        ("version: v2\n", "config.version"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources: []\n", "config.sharing.timeSlicing.resources"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 1\n",
         "config.replicas"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - replicas: 4\n",
         "config.sharing.timeSlicing.resources[0].name"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n",
         "config.sharing.timeSlicing.resources[0].replicas"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - {name: gpu, replicas: 2}\n"
         "  mps:\n    resources:\n    - {name: gpu, replicas: 2}\n", "config.sharing.timeSlicing"),
        ("version: v1\nsharing:\n  timeslicing:\n    resources:\n    - {name: gpu, replicas: 2}\n",
         "config.sharing.timeslicing"),
        ("version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  mps:\n    resources:\n"
         "    - {name: gpu, replicas: 2}\n", "config.mig_strategy"),
        ("version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
         "    - {name: gpu, replicas: 2, devices: [0]}\n", "config.sharing.timeSlicing.resources[0].devices"),
        ("version: [v1\n", "config"),
    ],
)
def test_parse_plugin_config_rejects(text, field):
    with pytest.raises(InvalidInput) as info:
        parse_plugin_config(text)
    assert info.value.field == field


@settings(max_examples=200, deadline=None)
@given(raw_profiles())
def test_property_render_parse_round_trip(raw):
    prof = normalize_profile(raw)
    text = render_plugin_config(prof)
    assert parse_plugin_config(text, prof.name) == prof
    # and the profile's own plain form builds the same profile
    assert normalize_profile(prof.to_dict()) == prof


@settings(max_examples=100, deadline=None)
@given(raw_profiles())
def test_property_deterministic_bytes(raw):
    first = render_plugin_config(normalize_profile(raw))
    second = render_plugin_config(normalize_profile(dict(reversed(list(raw.items())))))
    assert first.encode() == second.encode()
    assert first.endswith("\n") and "\t" not in first


@settings(max_examples=100, deadline=None)
@given(raw_profiles())
def test_property_yaml_emitter_agrees_with_pyyaml(raw):
    import yaml

    prof = normalize_profile(raw)
    data = yaml.safe_load(render_plugin_config(prof))
    assert data["version"] == "v1"
    assert data["flags"] == {"migStrategy": prof.mig_strategy}
    if prof.shared:
        block = data["sharing"]["mps" if prof.strategy == "mps" else "timeSlicing"]
        assert block["resources"] == [{"name": prof.resource_name, "replicas": prof.replicas}]
        assert block["renameByDefault"] is prof.rename_by_default
    else:
        assert "sharing" not in data
