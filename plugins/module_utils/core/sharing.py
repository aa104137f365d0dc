# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU sharing core: sharing profiles validated into a plan.

Pure code: no I/O, no network, no subprocess, only the standard library. The plan becomes NVIDIA's
config files in ``plugin_config.py`` and seed-style pod specs in ``pod_spec.py``.

The contract lives in ``docs/DESIGN.md`` ("Sharing core contract").  In short::

    plan = build_plan({"profiles": [{"name": "ts-4", "strategy": "time-slicing", "replicas": 4}]})
    plugin_config.render_config_map_data(plan)   # {"ts-4": "version: v1\\n..."}  (deterministic bytes)

Every validation error is a :class:`InvalidInput` naming the field path
(``profiles[1].replicas``), the offending value and how to fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re
from dataclasses import dataclass
from fractions import Fraction

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import DNS_SUBDOMAIN_RE, LABEL_NAME_RE
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.scalars import (
    parse_bool,
    parse_fraction,
    parse_int,
    parse_quantity,
    slices_per_gpu,
)


# --------------------------------------------------------------------------- constants

STRATEGY_TIME_SLICING = "time-slicing"
STRATEGY_MPS = "mps"
STRATEGY_NONE = "none"
STRATEGIES = (STRATEGY_TIME_SLICING, STRATEGY_MPS, STRATEGY_NONE)
SHARED_STRATEGIES = (STRATEGY_TIME_SLICING, STRATEGY_MPS)

MIG_STRATEGIES = ("none", "single", "mixed")

RESOURCE_PREFIX = "nvidia.com"
DEFAULT_RESOURCE_NAME = "nvidia.com/gpu"
SHARED_SUFFIX = ".shared"
MAX_RESOURCE_NAME_LENGTH = 63
MAX_PROFILE_NAME_LENGTH = 63

MIN_SHARED_REPLICAS = 2
#: NVIDIA caps MPS clients at 48 per GPU for compute capability >= 7.5 (16 below that).
MPS_MAX_REPLICAS = 48
MPS_MAX_REPLICAS_PRE_VOLTA_75 = 16


PROFILE_KEYS = (
    "name",
    "strategy",
    "replicas",
    "fraction",
    "slice_memory",
    "gpu_memory",
    "rename_by_default",
    "fail_requests_greater_than_one",
    "mig_strategy",
    "resource_name",
)
#: Keys that plan_to_dict(derived=True) adds; accepted on input only when they agree.
DERIVED_PROFILE_KEYS = ("advertised_resource",)
SPEC_KEYS = ("profiles", "default_profile")

# Plain scalars that YAML resolves to something other than a string, in the union of the
# resolvers that read NVIDIA's chart output: YAML 1.1 as go-yaml v2 reads it (Helm and the
# Kubernetes client decode manifests with it: y/n/on/off booleans, 0b/0o/0x/octal ints with
# underscores, floats without a dot) and the YAML 1.2 core schema. Dates stay text there.
_YAML_NON_STRING = (
    ("a boolean", re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE"
                             r"|on|On|ON|off|Off|OFF)$")),
    ("null", re.compile(r"^(~|null|Null|NULL)$")),
    ("a number", re.compile(r"^[-+]?(0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$")),
    ("a number", re.compile(r"^[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")),
    ("a number", re.compile(r"^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$")),
)
# Resource names the plugin gives devices (internal/rm AddDefaultResourcesToConfig): full GPUs
# and, with migStrategy single, MIG devices are "gpu"; with mixed, MIG devices are
# "mig-<profile>" ("+" of the profile written as "."). Sharing entries under any other name
# match no device and are skipped: the GPUs stay unshared under nvidia.com/gpu.
_MIG_RESOURCE_RE = re.compile(r"^nvidia\.com/mig-[0-9]+g\.[0-9]+gb([.-][a-z]+(\.[a-z]+)*)?$")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SharingProfile:
    """One normalised sharing profile (replicas resolved, resource name fully qualified)."""

    name: str
    strategy: str
    replicas: int
    rename_by_default: bool = False
    fail_requests_greater_than_one: bool = False
    mig_strategy: str = "none"
    resource_name: str = DEFAULT_RESOURCE_NAME

    @property
    def shared(self):
        return self.strategy in SHARED_STRATEGIES

    @property
    def advertised_resource(self):
        return advertised_resource(self)

    @property
    def slice_fraction(self):
        """Nominal share of one physical GPU that one slice represents (a Fraction)."""
        return Fraction(1, self.replicas)

    def to_dict(self, derived=False):
        data = {
            "name": self.name,
            "strategy": self.strategy,
            "replicas": self.replicas,
            "rename_by_default": self.rename_by_default,
            "fail_requests_greater_than_one": self.fail_requests_greater_than_one,
            "mig_strategy": self.mig_strategy,
            "resource_name": self.resource_name,
        }
        if derived:
            data["advertised_resource"] = self.advertised_resource
        return data


@dataclass(frozen=True)
class SharingPlan:
    """Validated profiles (tuple, input order) and the name of the default one."""

    profiles: tuple
    default_profile: str

    @property
    def profile_names(self):
        return tuple(p.name for p in self.profiles)

    def profile(self, name=None):
        """The profile called ``name`` (the default profile when ``name`` is None)."""
        wanted = self.default_profile if name is None else name
        for prof in self.profiles:
            if prof.name == wanted:
                return prof
        raise InvalidInput(
            "profile", wanted,
            "use one of the plan's profiles: %s" % ", ".join(self.profile_names),
            why="no profile has this name",
        )

    def advertised_resource(self, profile=None):
        """Resource name pods request for ``profile`` (a name, a SharingProfile or None=default)."""
        if not isinstance(profile, SharingProfile):
            profile = self.profile(profile)
        return advertised_resource(profile)

    def to_dict(self, derived=False):
        return plan_to_dict(self, derived=derived)


def replicas_for_fraction(fraction, field="fraction"):
    """Replicas so that every slice is at least ``fraction`` of a GPU: floor(1/f).

    Raises InvalidInput unless 0 < f < 1 and the result is >= 2.
    """
    frac = parse_fraction(fraction, field)
    if frac <= 0 or frac >= 1:
        raise InvalidInput(
            field, fraction,
            "give a share of one GPU between 0 and 0.5, e.g. 0.25 for 4 slices; "
            "for a whole GPU use strategy none",
            why="a fraction must be greater than 0 and less than 1",
        )
    replicas = slices_per_gpu(frac)
    if replicas < MIN_SHARED_REPLICAS:
        raise InvalidInput(
            field, fraction,
            "use a fraction of at most 0.5 (0.5 -> 2 slices, 0.25 -> 4), or strategy none for a whole GPU",
            why="floor(1/%s) = %d slice per GPU; sharing needs at least 2" % (fraction, replicas),
        )
    return replicas


def normalize_resource_name(value, field="resource_name"):
    """Fully-qualified resource name as the plugin builds it (``nvidia.com/`` added when no prefix)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, value, "use nvidia.com/gpu or a name such as gpu-ts",
                           why="a resource name must be a non-empty string")
    name = value.strip()
    if "/" not in name:
        name = RESOURCE_PREFIX + "/" + name
    prefix, dummy, short = name.partition("/")
    if prefix != RESOURCE_PREFIX:
        raise InvalidInput(field, value,
                           "use a name in the nvidia.com/ domain, e.g. nvidia.com/gpu, or no prefix at all",
                           why="the device plugin only advertises resources under nvidia.com/")
    if len(name) > MAX_RESOURCE_NAME_LENGTH:
        raise InvalidInput(field, value,
                           "shorten it to %d characters or less including 'nvidia.com/'" % MAX_RESOURCE_NAME_LENGTH,
                           why="fully-qualified resource name is %d characters" % len(name))
    if len(short) > 253 or not DNS_SUBDOMAIN_RE.match(short):
        raise InvalidInput(field, value,
                           "use lower-case letters, digits, '-' and '.', starting and ending alphanumeric",
                           why="the part after 'nvidia.com/' is not a DNS subdomain")
    return name


def _check_plugin_resource_name(name, value, mig, field):
    """Refuse a resource name NVIDIA's plugin would not give to any device (it would silently
    skip the sharing entry and advertise plain, unshared nvidia.com/gpu)."""
    if name == DEFAULT_RESOURCE_NAME:
        return
    if name == DEFAULT_RESOURCE_NAME + SHARED_SUFFIX:
        raise InvalidInput(field, value, "use resource_name nvidia.com/gpu with rename_by_default: true",
                           why="the plugin names shared GPUs %s only through renameByDefault" % name)
    if _MIG_RESOURCE_RE.match(name):
        if mig != "mixed":
            raise InvalidInput(field, value,
                               "use mig_strategy mixed for MIG profile resources, or nvidia.com/gpu",
                               why="only the mixed MIG strategy names MIG devices nvidia.com/mig-<profile>; "
                                   "with %s they are nvidia.com/gpu" % mig)
        return
    raise InvalidInput(
        field, value,
        "use nvidia.com/gpu (with rename_by_default: true the node advertises nvidia.com/gpu.shared)%s"
        % (", or nvidia.com/mig-<profile> such as nvidia.com/mig-1g.5gb" if mig == "mixed" else ""),
        why="NVIDIA's device plugin ignores custom resource names: the sharing entry matches no device, "
            "so the node advertises plain, unshared nvidia.com/gpu",
    )


def advertised_resource(profile):
    """What a node advertises and pods request: ``nvidia.com/gpu`` or ``nvidia.com/gpu.shared``."""
    if profile.shared and profile.rename_by_default:
        return profile.resource_name + SHARED_SUFFIX
    return profile.resource_name


def slices(profile, physical_gpus):
    """Allocatable units a node with ``physical_gpus`` GPUs advertises under this profile."""
    count = parse_int(physical_gpus, "physical_gpus")
    if count < 0:
        raise InvalidInput("physical_gpus", physical_gpus, "give the number of GPUs (0 or more)",
                           why="negative")
    return count * profile.replicas


def mps_max_replicas(compute_capability=None):
    """MPS client cap for a GPU: 48 at compute capability >= 7.5 (or unknown), else 16."""
    if compute_capability is None:
        return MPS_MAX_REPLICAS
    return MPS_MAX_REPLICAS if Fraction(str(compute_capability)) >= Fraction(15, 2) else MPS_MAX_REPLICAS_PRE_VOLTA_75


# --------------------------------------------------------------------------- profiles and plans


def normalize_profile(raw, path="profile"):
    """Validate one profile mapping (see docs/DESIGN.md) and return a SharingProfile."""
    if isinstance(raw, SharingProfile):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        raise InvalidInput(path, raw, "give a mapping with at least name and strategy",
                           why="a profile must be a mapping")
    # None means "not set" (Ansible fills unset sub-options with None).
    raw = {key: value for key, value in raw.items() if value is not None}

    for key in sorted(raw, key=str):
        if key not in PROFILE_KEYS and key not in DERIVED_PROFILE_KEYS:
            raise InvalidInput(
                "%s.%s" % (path, key), raw[key],
                "remove it or use one of: %s" % ", ".join(PROFILE_KEYS),
                why="unknown key",
            )

    def field(key):
        return "%s.%s" % (path, key)

    # name
    name = raw.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        raise InvalidInput(field("name"), name,
                           "give the profile a name such as ts-4 (used as ConfigMap key and node label value)",
                           why="a profile needs a name")
    if not isinstance(name, str):
        raise InvalidInput(field("name"), name, "write the name as a string such as ts-4",
                           why="not a string")
    if len(name) > MAX_PROFILE_NAME_LENGTH or not LABEL_NAME_RE.match(name):
        raise InvalidInput(
            field("name"), name,
            "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            why="not a valid Kubernetes label value and ConfigMap key",
        )
    for kind, pattern in _YAML_NON_STRING:
        if pattern.match(name):
            raise InvalidInput(
                field("name"), name,
                "use a name that YAML reads as text, e.g. ts-%s or p-%s" % (name, name),
                why="YAML reads it as %s, and NVIDIA's chart writes the default profile unquoted into the "
                    "DaemonSet (value: {{ .Values.config.default }}), which the API server then refuses" % kind,
            )

    # strategy
    strategy = raw.get("strategy", STRATEGY_TIME_SLICING)
    if strategy not in STRATEGIES:
        raise InvalidInput(field("strategy"), strategy, "use one of: %s" % ", ".join(STRATEGIES),
                           why="unknown sharing strategy")

    # mig strategy
    mig = raw.get("mig_strategy", "none")
    if mig is None:
        mig = "none"
    if mig not in MIG_STRATEGIES:
        raise InvalidInput(field("mig_strategy"), mig, "use one of: %s" % ", ".join(MIG_STRATEGIES),
                           why="unknown MIG strategy")
    if strategy == STRATEGY_MPS and mig != "none":
        raise InvalidInput(field("mig_strategy"), mig,
                           "use mig_strategy none with MPS, or strategy time-slicing with MIG",
                           why="the NVIDIA device plugin refuses MPS on MIG devices (and MPS with the mixed "
                               "MIG strategy)")

    # resource name
    resource_name = normalize_resource_name(raw.get("resource_name", DEFAULT_RESOURCE_NAME), field("resource_name"))
    _check_plugin_resource_name(resource_name, raw.get("resource_name"), mig, field("resource_name"))

    # booleans
    rename = parse_bool(raw.get("rename_by_default", False), field("rename_by_default"))
    fail_default = strategy == STRATEGY_MPS
    fail_raw = raw.get("fail_requests_greater_than_one")
    fail = fail_default if fail_raw is None else parse_bool(fail_raw, field("fail_requests_greater_than_one"))

    # replicas
    sources = [key for key in ("replicas", "fraction", "slice_memory") if raw.get(key) is not None]
    if raw.get("gpu_memory") is not None and "slice_memory" not in sources:
        raise InvalidInput(field("gpu_memory"), raw.get("gpu_memory"),
                           "give slice_memory too (replicas = floor(gpu_memory / slice_memory)), or remove gpu_memory",
                           why="gpu_memory is only used together with slice_memory")
    if len(sources) > 1:
        raise InvalidInput(field(sources[1]), raw[sources[1]],
                           "give exactly one of replicas, fraction, slice_memory (remove %s)"
                           % " or ".join(sources[1:]),
                           why="%s is set too" % sources[0])

    if strategy == STRATEGY_NONE:
        if sources and not (sources == ["replicas"] and not isinstance(raw["replicas"], bool)
                            and raw["replicas"] in (1, "1")):
            key = sources[0]
            raise InvalidInput(field(key), raw[key],
                               "remove %s, or choose strategy time-slicing or mps to share GPUs" % key,
                               why="strategy none does not share GPUs")
        if rename:
            raise InvalidInput(field("rename_by_default"), raw.get("rename_by_default"),
                               "remove it or set it to false (only shared resources are renamed)",
                               why="strategy none has nothing to rename")
        if fail_raw is not None and fail:
            raise InvalidInput(field("fail_requests_greater_than_one"), fail_raw,
                               "remove it or set it to false (it applies to shared resources only)",
                               why="strategy none shares nothing")
        replicas = 1
        fail = False
    else:
        if not sources:
            raise InvalidInput(field("replicas"), None,
                               "give exactly one of replicas (e.g. 4), fraction (e.g. 0.25) or slice_memory "
                               "with gpu_memory (e.g. 4Gi of 16Gi)",
                               why="strategy %s needs a number of slices per GPU" % strategy)
        source = sources[0]
        if source == "replicas":
            replicas = parse_int(raw["replicas"], field("replicas"))
            if replicas < MIN_SHARED_REPLICAS:
                raise InvalidInput(field("replicas"), raw["replicas"],
                                   "use 2 or more slices per GPU, or strategy none for whole GPUs",
                                   why="number of replicas must be >= 2 (the device plugin rejects fewer)")
        elif source == "fraction":
            replicas = replicas_for_fraction(raw["fraction"], field("fraction"))
        else:
            if raw.get("gpu_memory") is None:
                raise InvalidInput(field("gpu_memory"), None,
                                   "give the memory of one GPU, e.g. 16Gi for a T4 (g4dn) or 24Gi for an A10G (g5)",
                                   why="slice_memory needs gpu_memory")
            slice_bytes = parse_quantity(raw["slice_memory"], field("slice_memory"))
            gpu_bytes = parse_quantity(raw["gpu_memory"], field("gpu_memory"))
            if slice_bytes > gpu_bytes:
                raise InvalidInput(field("slice_memory"), raw["slice_memory"],
                                   "use a slice no larger than half of gpu_memory (%s)" % raw["gpu_memory"],
                                   why="the slice is bigger than the GPU")
            replicas = gpu_bytes // slice_bytes
            if replicas < MIN_SHARED_REPLICAS:
                raise InvalidInput(field("slice_memory"), raw["slice_memory"],
                                   "use a slice of at most half of gpu_memory (%s)" % raw["gpu_memory"],
                                   why="floor(gpu_memory / slice_memory) = %d; sharing needs at least 2" % replicas)
        if strategy == STRATEGY_MPS:
            if replicas > MPS_MAX_REPLICAS:
                raise InvalidInput(field(source), raw[source],
                                   "use at most %d MPS clients per GPU (16 on GPUs older than compute "
                                   "capability 7.5, e.g. V100)" % MPS_MAX_REPLICAS,
                                   why="MPS supports at most %d clients per GPU, this gives %d"
                                   % (MPS_MAX_REPLICAS, replicas))
            if not fail:
                raise InvalidInput(field("fail_requests_greater_than_one"), fail_raw,
                                   "remove it or set it to true for MPS",
                                   why="the device plugin always sets failRequestsGreaterThanOne for MPS")

    profile = SharingProfile(
        name=name,
        strategy=strategy,
        replicas=replicas,
        rename_by_default=rename,
        fail_requests_greater_than_one=fail,
        mig_strategy=mig,
        resource_name=resource_name,
    )
    advertised = advertised_resource(profile)
    if len(advertised) > MAX_RESOURCE_NAME_LENGTH:
        raise InvalidInput(field("resource_name"), raw.get("resource_name"),
                           "shorten it so that the renamed '%s' stays within %d characters"
                           % (advertised, MAX_RESOURCE_NAME_LENGTH),
                           why="with rename_by_default the advertised name is %d characters" % len(advertised))
    if raw.get("advertised_resource") is not None and raw["advertised_resource"] != advertised:
        raise InvalidInput(field("advertised_resource"), raw["advertised_resource"],
                           "remove it (it is derived: %s)" % advertised,
                           why="it does not match the profile")
    return profile


def build_plan(spec):
    """Validate a sharing spec (``{"profiles": [...], "default_profile": name}``) into a SharingPlan.

    ``spec`` may also be a plain list of profiles, or an existing SharingPlan (returned as is).
    """
    if isinstance(spec, SharingPlan):
        return spec
    if isinstance(spec, (list, tuple)):
        spec = {"profiles": list(spec)}
    if not isinstance(spec, dict):
        raise InvalidInput("sharing", spec, "give a mapping with a 'profiles' list",
                           why="not a mapping")
    for key in sorted(spec, key=str):
        if key not in SPEC_KEYS:
            raise InvalidInput(key, spec[key], "remove it or use one of: %s" % ", ".join(SPEC_KEYS),
                               why="unknown key")
    raw_profiles = spec.get("profiles")
    if not isinstance(raw_profiles, (list, tuple)) or not raw_profiles:
        raise InvalidInput("profiles", raw_profiles,
                           "give a non-empty list, e.g. [{name: ts-4, strategy: time-slicing, replicas: 4}]",
                           why="at least one profile is needed")
    profiles = []
    seen = {}
    for index, raw in enumerate(raw_profiles):
        path = "profiles[%d]" % index
        prof = normalize_profile(raw, path)
        if prof.name in seen:
            raise InvalidInput(path + ".name", prof.name,
                               "give every profile a different name (profiles[%d] is already called %s)"
                               % (seen[prof.name], prof.name),
                               why="duplicate profile name")
        seen[prof.name] = index
        profiles.append(prof)
    default = spec.get("default_profile")
    if default is None:
        default = profiles[0].name
    elif default not in seen:
        raise InvalidInput("default_profile", default,
                           "use one of the profile names: %s" % ", ".join(p.name for p in profiles),
                           why="no profile has this name")
    return SharingPlan(profiles=tuple(profiles), default_profile=default)


def plan_to_dict(plan, derived=False):
    """A plan as plain data (valid input for build_plan again).  ``derived`` adds advertised_resource."""
    return {
        "default_profile": plan.default_profile,
        "profiles": [p.to_dict(derived=derived) for p in plan.profiles],
    }


def resolve_profile(profile_or_plan, profile_name=None):
    """A SharingProfile from a profile mapping, a sharing spec/plan (+ optional name), or a SharingProfile."""
    if isinstance(profile_or_plan, SharingProfile):
        return profile_or_plan
    if isinstance(profile_or_plan, SharingPlan) or (
        isinstance(profile_or_plan, dict) and "profiles" in profile_or_plan
    ):
        return build_plan(profile_or_plan).profile(profile_name)
    if profile_name is not None:
        raise InvalidInput("profile_name", profile_name,
                           "pass a plan (a mapping with 'profiles') to pick a profile by name, or leave it out",
                           why="a single profile was given")
    return normalize_profile(profile_or_plan)
