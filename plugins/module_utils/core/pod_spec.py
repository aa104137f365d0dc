# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed-style pod specs: a workload asks for ``gpu: <fraction>`` and gets the profile's
resource count, node selector and toleration (the filter ``shared_gpu_pod_spec`` and the
admission policy follow this one rule). Pure.
"""

from __future__ import annotations

import copy
import math

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import GPU_TAINT_KEY, PROFILE_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.scalars import parse_fraction, parse_int
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import advertised_resource

_WORKLOAD_SPEC_PATHS = (("spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template", "spec"))


SEED_GPU_KEY = "gpu"


SEED_POLICY_KEY = "gpuDevicePolicy"


def _find_pod_spec(doc):
    """(container of the pod spec, key) so the caller can replace it; raises when none."""
    if isinstance(doc, dict) and isinstance(doc.get("containers"), list):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
        if isinstance(doc["spec"].get("containers"), list):
            return doc["spec"]
        for path in _WORKLOAD_SPEC_PATHS:
            node = doc
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get("containers"), list):
                return node
    raise InvalidInput("pod", doc if not isinstance(doc, dict) else "{...}",
                       "give a Pod, a pod spec (with containers) or a workload with spec.template.spec",
                       why="no containers found")


def container_gpu_request(container, cpath, profile):
    """Return the number of slices (int) a container asks for, or None when it asks for no GPU."""
    resources = container.get("resources")
    if resources is None:
        return None
    if not isinstance(resources, dict):
        raise InvalidInput(cpath + ".resources", resources, "give a mapping", why="not a mapping")
    policy = resources.get(SEED_POLICY_KEY, container.get(SEED_POLICY_KEY))
    policy_path = cpath + ".resources." + SEED_POLICY_KEY
    if policy is not None and (not isinstance(policy, str) or policy.lower() not in ("shared", "exclusive")):
        raise InvalidInput(policy_path, policy, "use Shared (or remove it)", why="unknown GPU device policy")
    shared_policy = policy is None or policy.lower() == "shared"

    found = {}
    for section in ("limits", "requests"):
        block = resources.get(section) or {}
        if not isinstance(block, dict):
            raise InvalidInput("%s.resources.%s" % (cpath, section), block, "give a mapping", why="not a mapping")
        for key in (SEED_GPU_KEY, profile.resource_name, advertised_resource(profile)):
            if key in block:
                found.setdefault(key, {})[section] = block[key]
    if not found:
        if policy is not None:
            raise InvalidInput(policy_path, policy,
                               "add limits.gpu (e.g. \"0.5\") or remove %s" % SEED_POLICY_KEY,
                               why="a GPU device policy without a GPU request")
        return None
    if len(found) > 1:
        raise InvalidInput(cpath + ".resources", sorted(found),
                           "request the GPU under one name only (gpu: \"0.5\" or %s: 1)" % advertised_resource(profile),
                           why="several GPU resource names")
    key, values = next(iter(found.items()))
    if "limits" in values and "requests" in values and str(values["limits"]) != str(values["requests"]):
        raise InvalidInput("%s.resources.requests.%s" % (cpath, key), values["requests"],
                           "make requests equal to limits (%s)" % values["limits"],
                           why="GPU requests and limits differ")
    section = "limits" if "limits" in values else "requests"
    vpath = "%s.resources.%s.%s" % (cpath, section, key)
    value = values[section]

    if key != SEED_GPU_KEY:
        # Already a Kubernetes extended resource: a whole number of slices.
        count = parse_int(value, vpath)
        if count < 1:
            raise InvalidInput(vpath, value, "request 1 or more", why="must be at least 1")
        if count > 1 and profile.shared and profile.fail_requests_greater_than_one:
            raise InvalidInput(vpath, value, "request 1 slice per container (profile %s sets "
                               "fail_requests_greater_than_one)" % profile.name,
                               why="the plugin rejects requests for more than one shared GPU")
        return count

    frac = parse_fraction(value, vpath)
    if frac <= 0:
        raise InvalidInput(vpath, value, "request a positive share such as \"0.5\"", why="must be greater than 0")
    if profile.shared:
        if frac >= 1:
            raise InvalidInput(
                vpath, value,
                "request a share below 1 (one %s slice is 1/%d GPU), or use a profile with strategy none "
                "for whole GPUs" % (profile.name, profile.replicas),
                why="a whole GPU cannot be served by a shared profile",
            )
        if not shared_policy:
            raise InvalidInput(policy_path, policy,
                               "use %s: Shared for a fraction of a GPU" % SEED_POLICY_KEY,
                               why="a fraction of a GPU is always shared")
        if frac > profile.slice_fraction:
            raise InvalidInput(
                vpath, value,
                "request at most %s of a GPU, or use a profile with replicas <= %d (e.g. fraction: %s)"
                % (_fmt_fraction(profile.slice_fraction), math.floor(1 / frac), value),
                why="profile %s gives each pod 1/%d of a GPU" % (profile.name, profile.replicas),
            )
        return 1
    # strategy none: whole GPUs only
    if policy is not None and policy.lower() == "shared":
        raise InvalidInput(policy_path, policy,
                           "use a profile with strategy time-slicing or mps for shared GPUs",
                           why="profile %s does not share GPUs" % profile.name)
    if frac.denominator != 1:
        raise InvalidInput(vpath, value,
                           "request a whole number of GPUs, or use a shared profile (time-slicing or mps)",
                           why="profile %s does not share GPUs" % profile.name)
    return int(frac)


def _fmt_fraction(frac):
    return str(frac.numerator) if frac.denominator == 1 else "%s/%s" % (frac.numerator, frac.denominator)


def _tolerates_gpu_taint(toleration):
    if not isinstance(toleration, dict):
        return False
    effect_ok = toleration.get("effect") in (None, "", "NoSchedule")
    if toleration.get("operator") == "Exists" and not toleration.get("key"):
        return effect_ok
    return (toleration.get("key") == GPU_TAINT_KEY and effect_ok
            and toleration.get("operator", "Equal") == "Exists")


def convert_pod_spec(pod, profile):
    """Turn a seed-style pod (``limits: {gpu: "0.5"}``, ``gpuDevicePolicy: Shared``) into a valid one.

    ``profile`` is a SharingProfile.  Returns a new document (the input is not changed):
    GPU limits become ``<advertised resource>: <slices>`` (requests too when present),
    ``gpu``/``gpuDevicePolicy`` are removed, the ``nvidia.com/gpu:NoSchedule`` toleration is added once
    and ``nodeSelector`` gets ``nvidia.com/device-plugin.config: <profile name>``.
    """
    doc = copy.deepcopy(pod)
    spec = _find_pod_spec(doc)
    target = advertised_resource(profile)
    any_gpu = False
    for group in ("initContainers", "containers"):
        containers = spec.get(group) or []
        for index, container in enumerate(containers):
            cname = container.get("name", index) if isinstance(container, dict) else index
            cpath = "%s[%s]" % (group, cname)
            if not isinstance(container, dict):
                raise InvalidInput(cpath, container, "give a container mapping", why="not a mapping")
            count = container_gpu_request(container, cpath, profile)
            container.pop(SEED_POLICY_KEY, None)
            resources = container.get("resources")
            if isinstance(resources, dict):
                resources.pop(SEED_POLICY_KEY, None)
            if count is None:
                continue
            any_gpu = True
            had_requests = False
            for section in ("limits", "requests"):
                block = resources.get(section)
                if not block:
                    continue
                for key in (SEED_GPU_KEY, profile.resource_name, target):
                    if key in block:
                        del block[key]
                        if section == "requests":
                            had_requests = True
            resources.setdefault("limits", {})
            if resources["limits"] is None:
                resources["limits"] = {}
            resources["limits"][target] = count
            if had_requests:
                resources.setdefault("requests", {})
                resources["requests"][target] = count
            elif "requests" in resources and not resources["requests"]:
                del resources["requests"]
    if not any_gpu:
        raise InvalidInput("containers", [c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)],
                           "add resources.limits.gpu (e.g. \"0.5\") to the container that needs a GPU",
                           why="no container requests a GPU")
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = spec["tolerations"] = []
    if not any(_tolerates_gpu_taint(t) for t in tolerations):
        tolerations.append({"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
    selector = spec.get("nodeSelector")
    if selector is None:
        selector = spec["nodeSelector"] = {}
    existing = selector.get(PROFILE_LABEL)
    if existing is not None and existing != profile.name:
        raise InvalidInput("nodeSelector." + PROFILE_LABEL, existing,
                           "remove it or set it to %s" % profile.name,
                           why="the pod already selects another sharing profile")
    selector[PROFILE_LABEL] = profile.name
    return doc
