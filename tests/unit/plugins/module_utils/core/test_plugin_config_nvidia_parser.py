"""Every config the sharing core renders is read by NVIDIA's own config loader.

``nvidia-config-parse FILE`` (tests/cluster/go/nvidia/cmd/nvidia-config-parse, contract in
docs/DESIGN.md) parses FILE with github.com/NVIDIA/k8s-device-plugin/api/config/v1 exactly as the
plugin does.  The binary is taken from ``$GPU_SLICING_BIN`` (or the cache that
tests/cluster/build.sh fills); when it is not there it is built from the Go module here.  When it
cannot be built the tests FAIL: this check is part of the contract, not optional.
"""

import json
import os
import shutil
import subprocess
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    advertised_resource,
    build_plan,
    normalize_profile,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import (
    parse_plugin_config,
    render_config_map_data,
    render_plugin_config,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
GO_MODULE = os.path.join(REPO_ROOT, "tests", "cluster", "go", "nvidia")
BINARY = "nvidia-config-parse"


def _installed_binary():
    bin_dir = os.environ.get("GPU_SLICING_BIN")
    if not bin_dir:
        cache = os.environ.get("GPU_SLICING_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "gpu-slicing-eks")
        bin_dir = os.path.join(cache, "bin")
    path = os.path.join(bin_dir, BINARY)
    return path if os.access(path, os.X_OK) else None


@pytest.fixture(scope="session")
def nvidia_parser(tmp_path_factory):
    """Path of nvidia-config-parse: installed, or built now from tests/cluster/go/nvidia."""
    path = _installed_binary()
    if path:
        return path
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if not go:
        pytest.fail("%s is not installed ($GPU_SLICING_BIN or ~/.cache/gpu-slicing-eks/bin) and there is no "
                    "Go toolchain to build it: run tests/cluster/build.sh" % BINARY)
    out = str(tmp_path_factory.mktemp("bin") / BINARY)
    env = dict(os.environ, CGO_ENABLED="0")
    proc = subprocess.run(
        [go, "build", "-C", GO_MODULE, "-trimpath", "-o", out, "./cmd/" + BINARY],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )
    if proc.returncode != 0 or not os.access(out, os.X_OK):
        pytest.fail("could not build %s from %s (exit %s):\n%s%s"
                    % (BINARY, GO_MODULE, proc.returncode, proc.stdout, proc.stderr))
    return out


@pytest.fixture
def nvidia_parse(nvidia_parser, tmp_path_factory):
    """Run NVIDIA's loader on config text: (exit code, parsed JSON or None, stderr)."""

    def run(text):
        path = tmp_path_factory.mktemp("cfg") / "config.yaml"
        path.write_text(text)
        proc = subprocess.run([nvidia_parser, str(path)], capture_output=True, text=True, timeout=60,
                              check=False)
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
        return proc.returncode, data, proc.stderr

    return run


def assert_nvidia_agrees(profile, nvidia_parse):
    text = render_plugin_config(profile)
    code, data, err = nvidia_parse(text)
    assert code == 0, "NVIDIA's loader rejected our config:\n%s\n%s" % (text, err)
    assert data["sharingStrategy"] == profile.strategy
    assert data["replicas"] == profile.replicas
    assert data["config"]["version"] == "v1"
    assert data["config"]["flags"]["migStrategy"] == profile.mig_strategy
    if profile.resource_name.startswith("nvidia.com/mig-"):
        # NVIDIA names MIG devices mig-<profile> only on MIG-enabled GPUs (rm.AddDefaultResourcesToConfig);
        # without that hardware its naming gives the entry no device, which is all it can show here.
        assert data["resources"][0]["matchesDevice"] is False
    else:
        # What the plugin advertises on a node whose GPUs have MIG off, through NVIDIA's own resource
        # naming: what we tell Karpenter and pods must be that.
        assert data["advertised"] == {"resource": advertised_resource(profile), "replicas": profile.replicas,
                                      "sharingStrategy": profile.strategy}
    if profile.shared:
        assert len(data["resources"]) == 1
        res = data["resources"][0]
        assert res["name"] == profile.resource_name
        assert res["replicas"] == profile.replicas
        expected_rename = advertised_resource(profile) if profile.rename_by_default else ""
        assert res["renamed"] == expected_rename
        if "failRequestsGreaterThanOne" in data:
            assert data["failRequestsGreaterThanOne"] is profile.fail_requests_greater_than_one
    else:
        assert all(r.get("replicas", 1) <= 1 for r in data["resources"])
    return data


VARIED = [
    {"name": "ts-2", "replicas": 2},
    {"name": "ts-4", "strategy": "time-slicing", "replicas": 4},
    {"name": "ts-4-renamed", "replicas": 4, "rename_by_default": True},
    {"name": "ts-fail", "replicas": 8, "fail_requests_greater_than_one": True},
    {"name": "ts-fraction", "fraction": 0.2},
    {"name": "ts-fraction-third", "fraction": "1/3"},
    {"name": "ts-memory", "slice_memory": "4Gi", "gpu_memory": "15360Mi"},
    {"name": "ts-200", "replicas": 200},
    {"name": "ts-mig-single", "replicas": 3, "mig_strategy": "single"},
    {"name": "ts-mig-mixed", "replicas": 3, "mig_strategy": "mixed"},
    {"name": "ts-short-name", "replicas": 4, "resource_name": "gpu"},
    {"name": "ts-mig-profile", "replicas": 2, "mig_strategy": "mixed", "resource_name": "mig-1g.5gb"},
    {"name": "ts-mig-profile-renamed", "replicas": 7, "mig_strategy": "mixed", "resource_name": "nvidia.com/mig-1g.10gb",
     "rename_by_default": True},
    {"name": "mps-2", "strategy": "mps", "replicas": 2},
    {"name": "mps-48", "strategy": "mps", "replicas": 48, "rename_by_default": True},
    {"name": "mps-memory", "strategy": "mps", "slice_memory": "6Gi", "gpu_memory": "24Gi"},
    {"name": "none", "strategy": "none"},
    {"name": "none-mig-mixed", "strategy": "none", "mig_strategy": "mixed"},
]


@pytest.mark.parametrize("raw", VARIED, ids=[r["name"] for r in VARIED])
def test_nvidia_accepts_and_agrees(raw, nvidia_parse):
    profile = normalize_profile(raw)
    assert_nvidia_agrees(profile, nvidia_parse)


def test_config_map_data_all_parsed(nvidia_parse):
    plan = build_plan({"profiles": VARIED, "default_profile": "ts-4"})
    for name, text in render_config_map_data(plan).items():
        code, data, err = nvidia_parse(text)
        assert code == 0, (name, err)
        assert data["replicas"] == plan.profile(name).replicas


@st.composite
def profiles(draw):
    strategy = draw(st.sampled_from(["time-slicing", "mps", "none"]))
    raw = {"name": "p", "strategy": strategy,
           "mig_strategy": "none" if strategy == "mps" else draw(st.sampled_from(["none", "single", "mixed"]))}
    if strategy == "none":
        return raw
    cap = 48 if strategy == "mps" else 128
    how = draw(st.sampled_from(["replicas", "fraction", "memory"]))
    if how == "replicas":
        raw["replicas"] = draw(st.integers(2, cap))
    elif how == "fraction":
        raw["fraction"] = str(draw(st.fractions(Fraction(1, cap), Fraction(1, 2))))
    else:
        raw["gpu_memory"] = draw(st.sampled_from(["16Gi", "24Gi", "22888Mi", "45776Mi", "80Gi"]))
        raw["slice_memory"] = "%dMi" % draw(st.integers(1024, 8192))
    raw["rename_by_default"] = draw(st.booleans())
    if strategy == "time-slicing":
        raw["fail_requests_greater_than_one"] = draw(st.booleans())
    raw["resource_name"] = draw(st.sampled_from(["nvidia.com/gpu", "gpu"]))
    return raw


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=profiles())
def test_property_nvidia_accepts_generated(raw, nvidia_parse):
    try:
        profile = normalize_profile(raw)
    except InvalidInput:
        return  # e.g. a slice_memory that leaves fewer than 2 or more than 48 MPS slices
    assert_nvidia_agrees(profile, nvidia_parse)
    # what NVIDIA read is what we read back
    assert parse_plugin_config(render_plugin_config(profile), profile.name) == profile


# Configs NVIDIA rejects: we reject them too.
NVIDIA_REJECTS = {
    "replicas-1": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 1\n",
    "replicas-0": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 0\n",
    "mps-replicas-1": "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 1\n",
    "no-name": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - replicas: 4\n",
    "no-replicas": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n",
    "no-resources": "version: v1\nsharing:\n  timeSlicing:\n    resources: []\n",
    "replicas-word": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: four\n",
    "name-too-long": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: %s\n      replicas: 2\n"
                     % ("g" * 53),
    "foreign-domain": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: example.com/gpu\n"
                      "      replicas: 2\n",
    "version-v2": "version: v2\n",
    "mps-mig-mixed": "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  mps:\n    resources:\n"
                     "    - name: nvidia.com/gpu\n      replicas: 2\n",
}


@pytest.mark.parametrize("text", list(NVIDIA_REJECTS.values()), ids=list(NVIDIA_REJECTS))
def test_what_nvidia_rejects_we_reject(text, nvidia_parse):
    code, dummy, err = nvidia_parse(text)
    assert code == 1, "expected NVIDIA's loader to reject:\n" + text
    assert err.strip()
    with pytest.raises(InvalidInput):
        parse_plugin_config(text)


def test_replicas_one_rejected_on_both_sides(nvidia_parse):
    code, dummy, err = nvidia_parse(NVIDIA_REJECTS["replicas-1"])
    assert code == 1 and "number of replicas must be >= 2" in err
    with pytest.raises(InvalidInput) as info:
        build_plan({"profiles": [{"name": "p", "replicas": 1}]})
    assert info.value.field == "profiles[0].replicas"


# Configs NVIDIA accepts silently but that are mistakes: we are stricter.
STRICTER = {
    "typo-key": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 4\n"
                "      replica: 8\n",
    "typo-strategy": "version: v1\nsharing:\n  timeslicing:\n    resources:\n    - name: gpu\n      replicas: 4\n",
    "both-strategies": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: gpu\n      replicas: 4\n"
                       "  mps:\n    resources:\n    - name: gpu\n      replicas: 2\n",
    "mps-49": "version: v1\nsharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 49\n",
    "renamed-too-long": "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n"
                        "    - name: %s\n      replicas: 2\n" % ("g" * 52),
}


@pytest.mark.parametrize("text", list(STRICTER.values()), ids=list(STRICTER))
def test_we_are_stricter_where_nvidia_is_silent(text, nvidia_parse):
    code, dummy, err = nvidia_parse(text)
    assert code == 0, err
    with pytest.raises(InvalidInput):
        parse_plugin_config(text)


# Configs NVIDIA's loader accepts but whose sharing entry its plugin then skips: the name matches
# no device (custom names are not honoured; only renameByDefault's .shared is), so the node
# advertises plain, unshared nvidia.com/gpu. The collection used to render these; it refuses them.
def _ts_config(name, rename_by_default=False, strategy_key="timeSlicing", mig="none"):
    return ("version: v1\nflags:\n  migStrategy: %s\nsharing:\n  %s:\n    renameByDefault: %s\n"
            "    resources:\n      - name: %s\n        replicas: 4\n"
            % (mig, strategy_key, "true" if rename_by_default else "false", name))


NVIDIA_IGNORES = {
    "custom-name": ({"resource_name": "gpu-ts"}, _ts_config("nvidia.com/gpu-ts")),
    "custom-short-name": ({"resource_name": "gpu-shared"}, _ts_config("gpu-shared")),
    "custom-renamed": ({"resource_name": "nvidia.com/t4.slice", "rename_by_default": True},
                       _ts_config("nvidia.com/t4.slice", rename_by_default=True)),
    "shared-by-hand": ({"resource_name": "nvidia.com/gpu.shared"}, _ts_config("nvidia.com/gpu.shared")),
    "mps-custom-name": ({"strategy": "mps", "resource_name": "gpu-mps"}, _ts_config("gpu-mps", strategy_key="mps")),
    "mig-name-with-single": ({"resource_name": "mig-1g.5gb", "mig_strategy": "single"},
                             _ts_config("nvidia.com/mig-1g.5gb", mig="single")),
}


@pytest.mark.parametrize("raw, text", list(NVIDIA_IGNORES.values()), ids=list(NVIDIA_IGNORES))
def test_names_nvidia_ignores_are_refused(raw, text, nvidia_parse):
    code, data, err = nvidia_parse(text)
    assert code == 0, err
    assert data["resources"][0]["matchesDevice"] is False
    assert data["advertised"] == {"resource": "nvidia.com/gpu", "replicas": 1, "sharingStrategy": "none"}
    with pytest.raises(InvalidInput) as info:
        normalize_profile(dict(raw, name="p", replicas=4))
    assert info.value.field == "profile.resource_name"
