"""Unit tests for the filters replicas_for_fraction and shared_gpu_pod_spec."""

import copy

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.gpu_slicing.eks.plugins.filter.gpu_slicing import (
    FilterModule,
    replicas_for_fraction,
    shared_gpu_pod_spec,
)

# The pod from the seed (../shared/seed/000_188838afb93cfabc.txt), verbatim.
SEED_POD = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata:
  name: my-pod
spec:
  containers:
  - name: my-container
    image: my-image
    resources:
      limits:
        gpu: "0.5"
      requests:
        gpu: "0.5"
      gpuDevicePolicy: "Shared"
""")

TS2 = {"name": "ts-2", "strategy": "time-slicing", "replicas": 2}
TS4 = {"name": "ts-4", "strategy": "time-slicing", "replicas": 4}
MPS2_RENAMED = {"name": "mps-2", "strategy": "mps", "fraction": 0.5, "rename_by_default": True}
WHOLE = {"name": "whole", "strategy": "none"}
SPEC = {"profiles": [TS4, MPS2_RENAMED, TS2, WHOLE], "default_profile": "ts-2"}
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
LABEL = "nvidia.com/device-plugin.config"


def test_filters_registered():
    assert set(FilterModule().filters()) == {"replicas_for_fraction", "shared_gpu_pod_spec"}


@pytest.mark.parametrize("value, replicas", [(0.25, 4), ("0.25", 4), (0.2, 5), (0.5, 2), (0.3, 3), (0.1, 10),
                                             ("1/8", 8)])
def test_replicas_for_fraction(value, replicas):
    assert replicas_for_fraction(value) == replicas


@pytest.mark.parametrize("value", [0, 1, 1.5, 0.6, -0.1, "abc", None, True])
def test_replicas_for_fraction_rejects(value):
    with pytest.raises(AnsibleFilterError) as info:
        replicas_for_fraction(value)
    assert "replicas_for_fraction: fraction: %r is invalid" % (value,) in str(info.value)
    assert "Fix: " in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.002, max_value=0.5))
def test_replicas_for_fraction_property(value):
    replicas = replicas_for_fraction(value)
    assert replicas * value <= 1 + 1e-12
    assert replicas * value > 1 - value - 1e-12


def test_seed_pod_becomes_valid_for_two_slices():
    before = copy.deepcopy(SEED_POD)
    pod = shared_gpu_pod_spec(SEED_POD, TS2)
    assert SEED_POD == before  # input untouched
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "my-pod"},
        "spec": {
            "containers": [{
                "name": "my-container",
                "image": "my-image",
                "resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}},
            }],
            "tolerations": [TOLERATION],
            "nodeSelector": {LABEL: "ts-2"},
        },
    }


def test_plan_and_profile_name():
    pod = shared_gpu_pod_spec(SEED_POD, SPEC, "mps-2")
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"nvidia.com/gpu.shared": 1}, "requests": {"nvidia.com/gpu.shared": 1}}
    assert pod["spec"]["nodeSelector"] == {LABEL: "mps-2"}
    # default profile of the spec
    assert shared_gpu_pod_spec(SEED_POD, SPEC)["spec"]["nodeSelector"] == {LABEL: "ts-2"}


def test_smaller_fraction_than_slice_is_served():
    pod = copy.deepcopy(SEED_POD)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"gpu": "0.1"}}
    out = shared_gpu_pod_spec(pod, TS4)
    assert out["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 1}}


def test_keeps_non_gpu_parts_and_existing_toleration_and_selector():
    pod = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [
                        {"name": "sidecar", "image": "envoy", "resources": {"limits": {"cpu": "100m"}}},
                        {"name": "model", "image": "m", "gpuDevicePolicy": "shared",
                         "resources": {"limits": {"gpu": 0.25, "memory": "4Gi"}, "requests": {"cpu": "1"}}},
                    ],
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                                    {"key": "spot", "operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/arch": "amd64"},
                },
            },
        },
    }
    before = copy.deepcopy(pod)
    out = shared_gpu_pod_spec(pod, TS4)
    assert pod == before
    spec = out["spec"]["template"]["spec"]
    assert spec["containers"][0] == before["spec"]["template"]["spec"]["containers"][0]
    assert spec["initContainers"] == before["spec"]["template"]["spec"]["initContainers"]
    assert spec["containers"][1] == {"name": "model", "image": "m",
                                     "resources": {"limits": {"memory": "4Gi", "nvidia.com/gpu": 1},
                                                   "requests": {"cpu": "1"}}}
    assert spec["tolerations"] == before["spec"]["template"]["spec"]["tolerations"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64", LABEL: "ts-4"}
    assert out["spec"]["replicas"] == 3 and out["metadata"] == before["metadata"]


def test_pod_spec_only_and_idempotent():
    spec = copy.deepcopy(SEED_POD["spec"])
    once = shared_gpu_pod_spec(spec, TS2)
    twice = shared_gpu_pod_spec(once, TS2)
    assert once == twice
    assert once["tolerations"] == [TOLERATION]


def test_whole_gpus_with_strategy_none():
    pod = {"containers": [{"name": "train", "resources": {"limits": {"gpu": "2"}}}]}
    out = shared_gpu_pod_spec(pod, WHOLE)
    assert out["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert out["nodeSelector"] == {LABEL: "whole"}


def test_kubernetes_style_request_kept_as_slices():
    pod = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}
    out = shared_gpu_pod_spec(pod, MPS2_RENAMED)
    assert out["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu.shared": 1}}


def seed_with(resources, name="my-container"):
    pod = copy.deepcopy(SEED_POD)
    pod["spec"]["containers"][0]["name"] = name
    pod["spec"]["containers"][0]["resources"] = resources
    return pod


@pytest.mark.parametrize(
    "resources, profile, needles",
    [
        # a slice of ts-4 is 1/4 GPU: 0.5 cannot be served
        ({"limits": {"gpu": "0.5"}, "gpuDevicePolicy": "Shared"}, TS4,
         ["containers[my-container].resources.limits.gpu", "'0.5'", "replicas <= 2", "1/4"]),
        ({"limits": {"gpu": "1"}, "gpuDevicePolicy": "Shared"}, TS2,
         ["containers[my-container].resources.limits.gpu", "'1'", "strategy none"]),
        ({"limits": {"gpu": 1.5}}, TS2, ["containers[my-container].resources.limits.gpu", "1.5"]),
        ({"limits": {"gpu": "abc"}, "gpuDevicePolicy": "Shared"}, TS2,
         ["containers[my-container].resources.limits.gpu", "'abc'", "write a number"]),
        ({"limits": {"gpu": "0"}}, TS2, ["containers[my-container].resources.limits.gpu", "greater than 0"]),
        ({"limits": {"gpu": "0.5"}, "gpuDevicePolicy": "Exclusive"}, TS2,
         ["containers[my-container].resources.gpuDevicePolicy", "Shared"]),
        ({"limits": {"gpu": "0.5"}, "gpuDevicePolicy": "Sometimes"}, TS2,
         ["containers[my-container].resources.gpuDevicePolicy", "'Sometimes'"]),
        ({"limits": {"gpu": "0.5"}}, WHOLE, ["containers[my-container].resources.limits.gpu", "whole number"]),
        ({"limits": {"gpu": "0.5"}, "requests": {"gpu": "0.25"}}, TS2,
         ["containers[my-container].resources.requests.gpu", "equal to limits"]),
        ({"limits": {"gpu": "0.5", "nvidia.com/gpu": 1}}, TS2, ["containers[my-container].resources", "one name"]),
        ({"limits": {"nvidia.com/gpu": 2}}, MPS2_RENAMED,
         ["containers[my-container].resources.limits.nvidia.com/gpu", "1 slice per container"]),
        ({"limits": {"cpu": "1"}}, TS2, ["containers", "no container requests a GPU", "limits.gpu"]),
        ({"gpuDevicePolicy": "Shared"}, TS2, ["gpuDevicePolicy", "without a GPU request"]),
    ],
)
def test_pod_errors_name_container_and_value(resources, profile, needles):
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec(seed_with(resources), profile)
    message = str(info.value)
    assert message.startswith("shared_gpu_pod_spec: ")
    assert "Fix: " in message
    for needle in needles:
        assert needle in message


def test_pod_without_containers():
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec({"kind": "ConfigMap", "data": {}}, TS2)
    assert "no containers found" in str(info.value)


def test_conflicting_profile_selector():
    pod = copy.deepcopy(SEED_POD)
    pod["spec"]["nodeSelector"] = {LABEL: "other"}
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec(pod, TS2)
    assert "nodeSelector.nvidia.com/device-plugin.config" in str(info.value)


def test_bad_profile_and_unknown_profile_name():
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec(SEED_POD, {"name": "x", "replicas": 1})
    assert "profile.replicas" in str(info.value)
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec(SEED_POD, SPEC, "nope")
    assert "ts-4, mps-2, ts-2, whole" in str(info.value)
    with pytest.raises(AnsibleFilterError) as info:
        shared_gpu_pod_spec(SEED_POD, TS2, "ts-2")
    assert "profile_name" in str(info.value)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 48), st.integers(1, 100))
def test_property_fraction_served_iff_slice_big_enough(replicas, percent):
    frac = percent / 100
    profile = {"name": "p", "strategy": "time-slicing", "replicas": replicas}
    pod = seed_with({"limits": {"gpu": str(frac)}})
    if percent < 100 and percent * replicas <= 100:
        out = shared_gpu_pod_spec(pod, profile)
        assert out["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    else:
        with pytest.raises(AnsibleFilterError):
            shared_gpu_pod_spec(pod, profile)
