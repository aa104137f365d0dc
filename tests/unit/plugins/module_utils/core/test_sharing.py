"""Unit tests for the pure sharing core (plugins/module_utils/core/sharing.py)."""

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import sharing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    SharingPlan,
    SharingProfile,
    advertised_resource,
    build_plan,
    normalize_profile,
    plan_to_dict,
    replicas_for_fraction,
    slices,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_config_map_data, render_plugin_config
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput


def one(**profile):
    """A spec holding one profile called p (plus whatever keys are given)."""
    base = {"name": "p", "strategy": "time-slicing"}
    base.update(profile)
    return {"profiles": [base]}


# ----------------------------------------------------------------------------- bad-input table
# (id, spec, field path that must appear, fix text that must appear)
BAD_INPUTS = [
    ("replicas-0", one(replicas=0), "profiles[0].replicas", "use 2 or more slices"),
    ("replicas-1", one(replicas=1), "profiles[0].replicas", "use 2 or more slices"),
    ("replicas-negative", one(replicas=-1), "profiles[0].replicas", "use 2 or more slices"),
    ("replicas-float", one(replicas=2.5), "profiles[0].replicas", "whole number"),
    ("replicas-word", one(replicas="four"), "profiles[0].replicas", "whole number such as 4"),
    ("replicas-bool", one(replicas=True), "profiles[0].replicas", "not a boolean"),
    ("replicas-missing", one(), "profiles[0].replicas", "exactly one of replicas"),
    ("fraction-0", one(fraction=0), "profiles[0].fraction", "between 0 and 0.5"),
    ("fraction-1", one(fraction=1), "profiles[0].fraction", "between 0 and 0.5"),
    ("fraction-1.5", one(fraction=1.5), "profiles[0].fraction", "between 0 and 0.5"),
    ("fraction-0.6", one(fraction=0.6), "profiles[0].fraction", "at most 0.5"),
    ("fraction-negative", one(fraction=-0.25), "profiles[0].fraction", "between 0 and 0.5"),
    ("fraction-word", one(fraction="half"), "profiles[0].fraction", "write a number such as 0.25"),
    ("fraction-bool", one(fraction=True), "profiles[0].fraction", "write a number"),
    ("replicas-and-fraction", one(replicas=4, fraction=0.25), "profiles[0].fraction", "exactly one of"),
    ("unknown-strategy", one(strategy="vgpu", replicas=4), "profiles[0].strategy", "time-slicing, mps, none"),
    ("mps-mig-mixed", one(strategy="mps", replicas=4, mig_strategy="mixed"),
     "profiles[0].mig_strategy", "mig_strategy none with MPS"),
    ("mps-49", one(strategy="mps", replicas=49), "profiles[0].replicas", "at most 48 MPS clients"),
    ("mps-fraction-tiny", one(strategy="mps", fraction=0.01), "profiles[0].fraction", "at most 48 MPS clients"),
    ("mps-fail-false", one(strategy="mps", replicas=4, fail_requests_greater_than_one=False),
     "profiles[0].fail_requests_greater_than_one", "set it to true for MPS"),
    ("unknown-mig", one(replicas=4, mig_strategy="all"), "profiles[0].mig_strategy", "none, single, mixed"),
    ("unknown-key", one(replicas=4, replica=4), "profiles[0].replica", "remove it or use one of"),
    ("unknown-top-key", {"profiles": [{"name": "p", "replicas": 4}], "default": "p"}, "default",
     "remove it or use one of"),
    ("long-resource-name", one(replicas=4, resource_name="gpu-" + "x" * 60), "profiles[0].resource_name",
     "63 characters or less"),
    ("foreign-resource-domain", one(replicas=4, resource_name="example.com/gpu"),
     "profiles[0].resource_name", "nvidia.com/ domain"),
    ("bad-resource-chars", one(replicas=4, resource_name="GPU_Shared"), "profiles[0].resource_name",
     "lower-case letters"),
    ("slice-bigger-than-gpu", one(slice_memory="32Gi", gpu_memory="16Gi"), "profiles[0].slice_memory",
     "no larger than half of gpu_memory"),
    ("slice-more-than-half", one(slice_memory="10Gi", gpu_memory="16Gi"), "profiles[0].slice_memory",
     "at most half of gpu_memory"),
    ("slice-without-gpu-memory", one(slice_memory="4Gi"), "profiles[0].gpu_memory", "memory of one GPU"),
    ("gpu-memory-alone", one(replicas=4, gpu_memory="16Gi"), "profiles[0].gpu_memory", "give slice_memory too"),
    ("bad-quantity", one(slice_memory="4 gigs", gpu_memory="16Gi"), "profiles[0].slice_memory", "4Gi"),
    ("zero-quantity", one(slice_memory="0Gi", gpu_memory="16Gi"), "profiles[0].slice_memory", "positive size"),
    ("missing-name", {"profiles": [{"strategy": "time-slicing", "replicas": 4}]}, "profiles[0].name",
     "give the profile a name"),
    ("bad-name", one(name="Time Slicing!", replicas=4), "profiles[0].name", "at most 63 letters"),
    ("long-name", one(name="a" * 64, replicas=4), "profiles[0].name", "at most 63 letters"),
    ("duplicate-names", {"profiles": [{"name": "p", "replicas": 4}, {"name": "p", "replicas": 2}]},
     "profiles[1].name", "give every profile a different name"),
    ("no-profiles", {"profiles": []}, "profiles", "non-empty list"),
    ("profile-not-mapping", {"profiles": ["ts-4"]}, "profiles[0]", "give a mapping"),
    ("unknown-default", {"profiles": [{"name": "p", "replicas": 4}], "default_profile": "q"},
     "default_profile", "use one of the profile names: p"),
    ("none-with-replicas", one(strategy="none", replicas=4), "profiles[0].replicas", "remove replicas"),
    ("none-with-rename", one(strategy="none", rename_by_default=True), "profiles[0].rename_by_default",
     "set it to false"),
    ("bool-as-string", one(replicas=4, rename_by_default="maybe"), "profiles[0].rename_by_default",
     "write true or false"),
    ("second-profile-bad", {"profiles": [{"name": "a", "replicas": 4}, {"name": "b", "replicas": 1}]},
     "profiles[1].replicas", "use 2 or more slices"),
    ("derived-mismatch", one(replicas=4, advertised_resource="nvidia.com/gpu.shared"),
     "profiles[0].advertised_resource", "it is derived"),
    # Names NVIDIA's plugin ignores (the entry matches no device: plain, unshared nvidia.com/gpu).
    ("custom-resource-name", one(replicas=4, resource_name="nvidia.com/gpu-ts"), "profiles[0].resource_name",
     "use nvidia.com/gpu"),
    ("custom-short-resource-name", one(replicas=4, resource_name="gpu-ts"), "profiles[0].resource_name",
     "use nvidia.com/gpu"),
    ("shared-suffix-by-hand", one(replicas=4, resource_name="nvidia.com/gpu.shared"), "profiles[0].resource_name",
     "rename_by_default: true"),
    ("custom-name-strategy-none", one(strategy="none", resource_name="nvidia.com/t4"), "profiles[0].resource_name",
     "use nvidia.com/gpu"),
    ("mig-name-without-mixed", one(replicas=2, resource_name="nvidia.com/mig-1g.5gb"), "profiles[0].resource_name",
     "mig_strategy mixed"),
    ("mig-name-single", one(replicas=2, mig_strategy="single", resource_name="mig-1g.5gb"),
     "profiles[0].resource_name", "mig_strategy mixed"),
    ("mps-mig-name", one(strategy="mps", replicas=2, mig_strategy="mixed", resource_name="mig-1g.5gb"),
     "profiles[0].mig_strategy", "mig_strategy none"),
    # NVIDIA's plugin refuses MPS on MIG devices (internal/plugin/mps.go)
    ("mps-mig-single", one(strategy="mps", replicas=4, mig_strategy="single"),
     "profiles[0].mig_strategy", "mig_strategy none"),
]

# Profile names YAML reads as something else than a string (YAML 1.1 as Kubernetes' and Helm's
# go-yaml v2 decoder reads them, YAML 1.2 core): the chart writes config.default unquoted.
YAML_NON_STRING_NAMES = ["4", "0", "017", "1_000", "0x1F", "0o17", "0b101", "1e3", "1E3", "1.5", "true", "True",
                         "TRUE", "false", "yes", "Yes", "YES", "no", "No", "on", "ON", "off", "Off", "y", "Y", "n", "N",
                         "null", "Null", "NULL", "1e-3", "190_20_30"]


@pytest.mark.parametrize("name", YAML_NON_STRING_NAMES)
def test_profile_names_yaml_reads_as_non_strings_are_refused(name):
    with pytest.raises(InvalidInput) as info:
        build_plan(one(name=name, replicas=4))
    assert info.value.field == "profiles[0].name"
    assert "YAML" in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize("name", ["ts-4", "mps-2", "yes-4", "on-demand", "no.1", "t4", "null-ts", "e3", "x1", "1a",
                                  "1-2", "2026-12", "2026-12-02", "4x", "true-ts", "A10G"])
def test_profile_names_yaml_reads_as_strings_are_accepted(name):
    assert build_plan(one(name=name, replicas=4)).profile().name == name


def test_mig_profile_name_with_mixed_accepted():
    prof = build_plan(one(replicas=2, mig_strategy="mixed", resource_name="mig-1g.5gb")).profile()
    assert prof.resource_name == "nvidia.com/mig-1g.5gb"
    renamed = build_plan(one(replicas=2, mig_strategy="mixed", resource_name="nvidia.com/mig-3g.20gb",
                             rename_by_default=True)).profile()
    assert renamed.advertised_resource == "nvidia.com/mig-3g.20gb.shared"


@pytest.mark.parametrize("spec, field, fix", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_field_value_and_fix(spec, field, fix):
    with pytest.raises(InvalidInput) as info:
        build_plan(spec)
    err = info.value
    message = str(err)
    assert err.field == field
    assert message.startswith(field + ": ")
    assert fix in err.fix
    assert "Fix: " in message and fix in message
    assert " is invalid: " in message
    assert repr(err.value) in message
    assert err.to_dict()["field"] == field


def test_error_message_format_matches_contract():
    err = InvalidInput("profiles[1].replicas", 1, "use 2 or more", why="too few")
    assert str(err) == "profiles[1].replicas: 1 is invalid: too few. Fix: use 2 or more"
    assert isinstance(err, ValueError)


# ----------------------------------------------------------------------------- good inputs


@pytest.mark.parametrize(
    "profile, replicas",
    [
        ({"replicas": 4}, 4),
        ({"replicas": "4"}, 4),
        ({"replicas": 2}, 2),
        ({"fraction": 0.25}, 4),
        ({"fraction": 0.2}, 5),  # 1/0.2 is 4.999... in binary floating point
        ({"fraction": "0.2"}, 5),
        ({"fraction": 0.1}, 10),
        ({"fraction": 0.3}, 3),
        ({"fraction": 0.5}, 2),
        ({"fraction": "1/3"}, 3),
        ({"fraction": "25%"}, 4),
        ({"fraction": 0.01}, 100),
        ({"slice_memory": "4Gi", "gpu_memory": "16Gi"}, 4),
        ({"slice_memory": "4096Mi", "gpu_memory": "16Gi"}, 4),
        ({"slice_memory": "4G", "gpu_memory": "16Gi"}, 4),  # 4e9 bytes: 17179869184 // 4e9 = 4
        ({"slice_memory": "5Gi", "gpu_memory": "24576Mi"}, 4),
        ({"slice_memory": "1.5Gi", "gpu_memory": "15Gi"}, 10),
        ({"slice_memory": "8Gi", "gpu_memory": "16Gi"}, 2),
        ({"slice_memory": 1073741824, "gpu_memory": "16Gi"}, 16),
    ],
)
def test_replicas_resolution(profile, replicas):
    plan = build_plan(one(**profile))
    assert plan.profile().replicas == replicas


def test_defaults_time_slicing():
    prof = build_plan(one(replicas=4)).profile("p")
    assert prof == SharingProfile(name="p", strategy="time-slicing", replicas=4)
    assert prof.fail_requests_greater_than_one is False
    assert prof.rename_by_default is False
    assert prof.mig_strategy == "none"
    assert prof.resource_name == "nvidia.com/gpu"


def test_defaults_mps_fail_requests_true():
    prof = build_plan(one(strategy="mps", replicas=4)).profile()
    assert prof.fail_requests_greater_than_one is True


def test_strategy_none_profile():
    prof = build_plan(one(strategy="none")).profile()
    assert prof.replicas == 1 and not prof.shared
    assert build_plan(one(strategy="none", replicas=1)).profile().replicas == 1
    assert render_plugin_config(prof) == "version: v1\nflags:\n  migStrategy: none\n"


def test_resource_name_prefix_added():
    prof = build_plan(one(replicas=4, resource_name="gpu")).profile()
    assert prof.resource_name == "nvidia.com/gpu"


def test_mps_48_accepted():
    prof = build_plan(one(strategy="mps", replicas=48)).profile()
    assert prof.replicas == 48


def test_time_slicing_mig_mixed_ok():
    assert build_plan(one(replicas=4, mig_strategy="mixed")).profile().mig_strategy == "mixed"


def test_several_profiles_and_default():
    spec = {
        "profiles": [
            {"name": "ts-4", "strategy": "time-slicing", "replicas": 4},
            {"name": "mps-2", "strategy": "mps", "fraction": 0.5, "rename_by_default": True},
            {"name": "whole", "strategy": "none"},
        ],
        "default_profile": "mps-2",
    }
    plan = build_plan(spec)
    assert plan.profile_names == ("ts-4", "mps-2", "whole")
    assert plan.default_profile == "mps-2"
    assert plan.profile().name == "mps-2"
    assert plan.advertised_resource() == "nvidia.com/gpu.shared"
    assert plan.advertised_resource("ts-4") == "nvidia.com/gpu"
    assert build_plan(spec["profiles"]).default_profile == "ts-4"
    with pytest.raises(InvalidInput) as info:
        plan.profile("nope")
    assert "ts-4, mps-2, whole" in str(info.value)


def test_plan_to_dict_round_trips_and_is_plain():
    spec = {"profiles": [{"name": "a", "fraction": 0.25, "rename_by_default": True},
                         {"name": "b", "strategy": "mps", "slice_memory": "6Gi", "gpu_memory": "24Gi"}]}
    plan = build_plan(spec)
    data = plan_to_dict(plan)
    assert data == {
        "default_profile": "a",
        "profiles": [
            {"name": "a", "strategy": "time-slicing", "replicas": 4, "rename_by_default": True,
             "fail_requests_greater_than_one": False, "mig_strategy": "none", "resource_name": "nvidia.com/gpu"},
            {"name": "b", "strategy": "mps", "replicas": 4, "rename_by_default": False,
             "fail_requests_greater_than_one": True, "mig_strategy": "none", "resource_name": "nvidia.com/gpu"},
        ],
    }
    assert build_plan(data) == plan
    derived = plan.to_dict(derived=True)
    assert derived["profiles"][0]["advertised_resource"] == "nvidia.com/gpu.shared"
    assert build_plan(derived) == plan


def test_build_plan_does_not_mutate_input():
    spec = {"profiles": [{"name": "a", "fraction": "0.25"}]}
    before = repr(spec)
    build_plan(spec)
    assert repr(spec) == before


def test_advertised_resource_and_slices():
    plan = build_plan({"profiles": [{"name": "a", "replicas": 4, "rename_by_default": True},
                                    {"name": "whole", "strategy": "none", "rename_by_default": False}]})
    assert advertised_resource(plan.profile("a")) == "nvidia.com/gpu.shared"
    assert plan.profile("a").advertised_resource == "nvidia.com/gpu.shared"
    assert advertised_resource(plan.profile("whole")) == "nvidia.com/gpu"
    assert slices(plan.profile("a"), 4) == 16
    assert slices(plan.profile("a"), 0) == 0
    assert slices(plan.profile("whole"), 8) == 8
    with pytest.raises(InvalidInput):
        slices(plan.profile("a"), -1)


@pytest.mark.parametrize("cc, cap", [(None, 48), ("7.5", 48), ("9.0", 48), ("7.0", 16), (6.1, 16)])
def test_mps_max_replicas(cc, cap):
    assert sharing.mps_max_replicas(cc) == cap


# ----------------------------------------------------------------------------- rendering


# ----------------------------------------------------------------------------- parsing


# ----------------------------------------------------------------------------- properties

# (names YAML reads as booleans, numbers, null or dates are refused: see the YAML tests above)
profile_names = st.from_regex(r"\A[a-z0-9]([a-z0-9._-]{0,20}[a-z0-9])?\Z").map(lambda n: "p-" + n)
resource_names = st.sampled_from(["nvidia.com/gpu", "gpu"])
mig_resource_names = st.from_regex(r"\A(nvidia\.com/)?mig-[1-7]g\.[0-9]{1,3}gb(\.me|-me|\.gfx)?\Z")


@st.composite
def raw_profiles(draw):
    strategy = draw(st.sampled_from(["time-slicing", "mps", "none"]))
    raw = {"name": draw(profile_names), "strategy": strategy}
    if strategy == "none":
        raw["mig_strategy"] = draw(st.sampled_from(["none", "single", "mixed"]))
        return raw
    cap = 48 if strategy == "mps" else 200
    how = draw(st.sampled_from(["replicas", "fraction", "memory"]))
    if how == "replicas":
        raw["replicas"] = draw(st.integers(2, cap))
    elif how == "fraction":
        raw["fraction"] = draw(st.fractions(Fraction(1, cap), Fraction(1, 2)).map(
            lambda f: round(float(f), 4)).filter(lambda f: 2 <= math.floor(1 / Fraction(str(f))) <= cap))
    else:
        gpu_gi = draw(st.sampled_from([16, 24, 40, 48, 80]))
        raw["gpu_memory"] = "%dGi" % gpu_gi
        raw["slice_memory"] = "%dMi" % draw(st.integers(max(1, (gpu_gi * 1024) // cap + 1), gpu_gi * 512))
    raw["rename_by_default"] = draw(st.booleans())
    if strategy == "time-slicing":
        raw["fail_requests_greater_than_one"] = draw(st.booleans())
        raw["mig_strategy"] = draw(st.sampled_from(["none", "single", "mixed"]))
    else:
        raw["mig_strategy"] = "none"  # NVIDIA refuses MPS on MIG devices
    raw["resource_name"] = draw(resource_names)
    if raw["mig_strategy"] == "mixed" and draw(st.booleans()):
        raw["resource_name"] = draw(mig_resource_names)
    return raw


@settings(max_examples=300, deadline=None)
@given(st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(1, 2)))
def test_property_replicas_for_fraction_bounds(frac):
    replicas = replicas_for_fraction(str(frac.numerator) + "/" + str(frac.denominator))
    assert replicas >= 2
    assert replicas * frac <= 1  # each slice is at least the fraction
    assert replicas * frac > 1 - frac  # and no further slice would fit


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.001, max_value=0.5, allow_nan=False))
def test_property_replicas_for_float_fraction(value):
    replicas = replicas_for_fraction(value)
    exact = Fraction(str(value))
    assert replicas * exact <= 1 < (replicas + 1) * exact


@settings(max_examples=100, deadline=None)
@given(st.lists(raw_profiles(), min_size=1, max_size=4, unique_by=lambda p: p["name"]))
def test_property_plan_dict_round_trip(raws):
    plan = build_plan({"profiles": raws})
    assert isinstance(plan, SharingPlan)
    assert build_plan(plan_to_dict(plan)) == plan
    data = render_config_map_data(plan)
    assert list(data) == [r["name"] for r in raws]
    assert render_config_map_data(plan_to_dict(plan)) == data


def test_none_means_unset_like_ansible_suboptions():
    raw = {key: None for key in sharing.PROFILE_KEYS}
    raw.update(name="p", replicas=4)
    assert normalize_profile(raw) == SharingProfile(name="p", strategy="time-slicing", replicas=4)
    raw.update(strategy="mps")
    assert normalize_profile(raw).fail_requests_greater_than_one is True
