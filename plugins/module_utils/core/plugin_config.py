# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA's device-plugin config file (api/config/v1) and Bottlerocket's sharing settings,
written from a profile and read back into one. Pure; output is deterministic text.
"""

from __future__ import annotations

import json

try:  # PyYAML is optional: only parse_plugin_config needs it, and only for non-JSON text.
    import yaml as _yaml
except ImportError:  # pragma: no cover - exercised only where PyYAML is missing
    _yaml = None

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    STRATEGY_MPS,
    STRATEGY_NONE,
    STRATEGY_TIME_SLICING,
    build_plan,
    normalize_profile,
    resolve_profile,
)


def _sharing_key(strategy):
    return "mps" if strategy == STRATEGY_MPS else "timeSlicing"


def _yaml_bool(value):
    return "true" if value else "false"


def render_plugin_config(profile):
    """The device plugin's config file (api/config/v1) for one profile, as deterministic YAML text."""
    profile = resolve_profile(profile)
    lines = [
        "version: v1",
        "flags:",
        "  migStrategy: %s" % profile.mig_strategy,
    ]
    if profile.shared:
        lines += [
            "sharing:",
            "  %s:" % _sharing_key(profile.strategy),
            "    renameByDefault: %s" % _yaml_bool(profile.rename_by_default),
            "    failRequestsGreaterThanOne: %s" % _yaml_bool(profile.fail_requests_greater_than_one),
            "    resources:",
            "      - name: %s" % profile.resource_name,
            "        replicas: %d" % profile.replicas,
        ]
    return "\n".join(lines) + "\n"


def render_config_map_data(plan):
    """``{profile name: plugin config YAML}`` for the sharing ConfigMap / chart ``config.map``."""
    plan = build_plan(plan)
    return {p.name: render_plugin_config(p) for p in plan.profiles}


def render_bottlerocket_settings(profile):
    """Bottlerocket user-data TOML for ``[settings.kubelet-device-plugins.nvidia]``."""
    profile = resolve_profile(profile)
    if profile.mig_strategy != "none":
        raise InvalidInput("%s.mig_strategy" % profile.name, profile.mig_strategy,
                           "use mig_strategy none on Bottlerocket nodes (Bottlerocket configures MIG with "
                           "device-partitioning-strategy, not managed here)",
                           why="not expressible in Bottlerocket's sharing settings")
    lines = [
        "[settings.kubelet-device-plugins.nvidia]",
        'device-sharing-strategy = "%s"' % profile.strategy,
    ]
    if profile.strategy == STRATEGY_TIME_SLICING:
        lines += [
            "",
            "[settings.kubelet-device-plugins.nvidia.time-slicing]",
            "replicas = %d" % profile.replicas,
            "rename-by-default = %s" % _yaml_bool(profile.rename_by_default),
            "fail-requests-greater-than-one = %s" % _yaml_bool(profile.fail_requests_greater_than_one),
        ]
    elif profile.strategy == STRATEGY_MPS:
        lines += [
            "",
            "[settings.kubelet-device-plugins.nvidia.mps]",
            "replicas = %d" % profile.replicas,
            "rename-by-default = %s" % _yaml_bool(profile.rename_by_default),
        ]
    return "\n".join(lines) + "\n"


def _load_text(text, field):
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        raise InvalidInput(field, text, "give the config file text", why="not text")
    try:
        return json.loads(text)
    except ValueError:
        pass
    if _yaml is None:
        raise InvalidInput(field, text[:80], "install PyYAML or give the config as JSON",
                           why="YAML parsing needs PyYAML")
    try:
        return _yaml.safe_load(text)
    except _yaml.YAMLError as exc:
        raise InvalidInput(field, text[:80], "give valid YAML", why="YAML error: %s" % exc)


def _expect_keys(data, allowed, path):
    if not isinstance(data, dict):
        raise InvalidInput(path, data, "give a mapping", why="not a mapping")
    for key in sorted(data, key=str):
        if key not in allowed:
            raise InvalidInput("%s.%s" % (path, key), data[key],
                               "remove it (this collection manages only %s)" % ", ".join(allowed),
                               why="unknown or unmanaged key")


def parse_plugin_config(text, name="default", field="config"):
    """Read a device-plugin config file (YAML or JSON text, or a mapping) back into a SharingProfile.

    Stricter than the plugin: unknown keys, both timeSlicing and mps, several resources,
    ``rename``/``devices`` overrides are errors.  ``parse_plugin_config(render_plugin_config(p), p.name) == p``.
    """
    data = _load_text(text, field)
    _expect_keys(data, ("version", "flags", "sharing"), field)
    version = data.get("version", "v1")
    if version != "v1":
        raise InvalidInput(field + ".version", version, "use version: v1", why="unknown config version")
    raw = {"name": name}
    flags = data.get("flags") or {}
    _expect_keys(flags, ("migStrategy",), field + ".flags")
    if "migStrategy" in flags:
        raw["mig_strategy"] = flags["migStrategy"]
    sharing = data.get("sharing") or {}
    _expect_keys(sharing, ("timeSlicing", "mps"), field + ".sharing")
    present = [k for k in ("timeSlicing", "mps") if sharing.get(k) is not None]
    if len(present) > 1:
        raise InvalidInput(field + ".sharing.timeSlicing", sharing["timeSlicing"],
                           "keep only one of sharing.timeSlicing and sharing.mps",
                           why="both strategies are set (the plugin silently uses mps)")
    if not present:
        raw["strategy"] = STRATEGY_NONE
        return normalize_profile(raw, field)
    key = present[0]
    path = "%s.sharing.%s" % (field, key)
    block = sharing[key]
    _expect_keys(block, ("renameByDefault", "failRequestsGreaterThanOne", "resources"), path)
    raw["strategy"] = STRATEGY_MPS if key == "mps" else STRATEGY_TIME_SLICING
    if "renameByDefault" in block:
        raw["rename_by_default"] = block["renameByDefault"]
    if "failRequestsGreaterThanOne" in block:
        raw["fail_requests_greater_than_one"] = block["failRequestsGreaterThanOne"]
    resources = block.get("resources")
    if not isinstance(resources, list) or len(resources) != 1:
        raise InvalidInput(path + ".resources", resources,
                           "give exactly one resource, e.g. [{name: nvidia.com/gpu, replicas: 4}]",
                           why="no resources specified" if not resources else "several resources are not managed here")
    res = resources[0]
    _expect_keys(res, ("name", "replicas"), path + ".resources[0]")
    if "name" not in res:
        raise InvalidInput(path + ".resources[0].name", None, "give the resource name, e.g. nvidia.com/gpu",
                           why="no resource name specified")
    if "replicas" not in res:
        raise InvalidInput(path + ".resources[0].replicas", None, "give replicas, e.g. 4",
                           why="no replicas specified")
    raw["resource_name"] = res["name"]
    raw["replicas"] = res["replicas"]
    return normalize_profile(raw, field)
