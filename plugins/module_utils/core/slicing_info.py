# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: per-node GPU slicing report from Node and Pod objects (plain dicts).

Input is what the API returns; output is plain data for module results and capacity
planning. It runs over thousands of nodes and tens of thousands of pods, so it makes one
pass over the pods and keeps no per-pod state beyond a sum per node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_COUNT_LABEL,
    GPU_REPLICAS_LABEL,
    GPU_SHARING_LABEL,
    INSTANCE_GPU_COUNT_LABEL,
    INSTANCE_TYPE_LABEL,
    PROFILE_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

TERMINAL_PHASES = ("Succeeded", "Failed")
# Field selector for the pods that hold slices: bound to a node and not finished.
HOLDING_PODS_SELECTOR = "spec.nodeName!=" + "".join(",status.phase!=%s" % phase for phase in TERMINAL_PHASES)


def parse_count(value):
    """An integer count from a quantity string such as "4" or "4k" is not expected; plain ints only."""
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def pod_requests(pod, resource):
    """Effective request of ``resource`` by one pod (max of init containers and the sum of containers)."""
    spec = pod.get("spec") or {}

    def request(container):
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(resource)
        if value is None:
            value = (resources.get("limits") or {}).get(resource)  # extended resources: limits imply requests
        return parse_count(value) or 0

    total = sum(request(c) for c in spec.get("containers") or [])
    init = max([request(c) for c in spec.get("initContainers") or []] or [0])
    return max(total, init)


def requested_by_node(pods, resources):
    """{node name: {resource: requested}} over non-terminated pods bound to a node."""
    result = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        per_node = result.setdefault(node, {})
        for resource in resources:
            amount = pod_requests(pod, resource)
            if amount:
                per_node[resource] = per_node.get(resource, 0) + amount
    return result


def node_report(node, requested, plan=None):
    """One node's slicing facts and any mismatch with the intended profile."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or {}
    physical = parse_count(labels.get(GPU_COUNT_LABEL))
    if physical is None:
        physical = parse_count(labels.get(INSTANCE_GPU_COUNT_LABEL))
    profile_name = labels.get(PROFILE_LABEL)
    mismatches = []
    profile = None
    if plan is not None:
        try:
            profile = plan.profile(profile_name)  # None -> the default profile, as the plugin does
        except InvalidInput:
            mismatches.append("node label %s=%s names no profile (known: %s)"
                              % (PROFILE_LABEL, profile_name, ", ".join(plan.profile_names)))
    resource = profile.advertised_resource if profile else _advertised_guess(allocatable)
    slices = parse_count(allocatable.get(resource)) or 0
    used = requested.get(resource, 0)
    report = {
        "name": meta.get("name"),
        "instance_type": labels.get(INSTANCE_TYPE_LABEL),
        "physical_gpus": physical,
        "profile": profile.name if profile else profile_name,
        "profile_from": "label" if profile_name else "default",
        "resource": resource,
        "replicas": parse_count(labels.get(GPU_REPLICAS_LABEL)),
        "strategy": labels.get(GPU_SHARING_LABEL),
        "allocatable_slices": slices,
        "requested_slices": used,
        "free_slices": max(slices - used, 0),
        "mismatches": mismatches,
    }
    if profile is not None:
        expected_slices = (physical or 0) * profile.replicas if profile.shared else (physical or 0)
        report["expected_replicas"] = profile.replicas if profile.shared else 1
        report["expected_slices"] = expected_slices
        if physical is None:
            mismatches.append("physical GPU count unknown (no %s or %s label)" % (GPU_COUNT_LABEL, INSTANCE_GPU_COUNT_LABEL))
        elif slices != expected_slices:
            mismatches.append("allocatable %s is %d, expected %d (%d GPU(s) x %d replicas)"
                              % (resource, slices, expected_slices, physical, report["expected_replicas"]))
        if report["strategy"] is not None and report["strategy"] != profile.strategy:
            mismatches.append("GFD reports sharing strategy %s, profile %s wants %s"
                              % (report["strategy"], profile.name, profile.strategy))
        if report["replicas"] is not None and report["replicas"] != report["expected_replicas"]:
            mismatches.append("GFD reports %d replicas, profile %s wants %d"
                              % (report["replicas"], profile.name, report["expected_replicas"]))
    report["consistent"] = not mismatches
    return report


def _advertised_guess(allocatable):
    if parse_count(allocatable.get("nvidia.com/gpu.shared")):
        return "nvidia.com/gpu.shared"
    return "nvidia.com/gpu"


def slicing_report(nodes, pods, plan=None):
    """Reports for every node plus totals."""
    resources = {"nvidia.com/gpu", "nvidia.com/gpu.shared"}
    if plan is not None:
        resources.update(p.advertised_resource for p in plan.profiles)
    requested = requested_by_node(pods, sorted(resources))
    reports = [node_report(node, requested.get((node.get("metadata") or {}).get("name"), {}), plan) for node in nodes]
    reports.sort(key=lambda r: r["name"] or "")
    totals = {
        "nodes": len(reports),
        "physical_gpus": sum(r["physical_gpus"] or 0 for r in reports),
        "allocatable_slices": sum(r["allocatable_slices"] for r in reports),
        "requested_slices": sum(r["requested_slices"] for r in reports),
        "free_slices": sum(r["free_slices"] for r in reports),
        "nodes_with_mismatch": sum(1 for r in reports if r["mismatches"]),
    }
    return {"nodes": reports, "totals": totals}
