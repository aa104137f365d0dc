# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Karpenter documents for shared GPUs: NodePool, EC2NodeClass and NodeOverlays from one profile.

Pure code: no I/O. ``render(plan, options)`` validates the options (``karpenter_options.py``;
errors are :class:`InvalidInput`: field, value, why, fix) and returns the three kinds of
documents. Field names follow the CRDs of Karpenter v1.14.1 (``karpenter.sh_nodepools.yaml``,
``karpenter.sh_nodeoverlays.yaml``) and of the AWS provider v1.14.1
(``karpenter.k8s.aws_ec2nodeclasses.yaml``); the AMI alias rules are in ``karpenter_ami.py``.

Why overlays: Karpenter takes ``nvidia.com/gpu`` from the instance type (physical GPUs), so with
4 slices per GPU it would launch up to 4 times the nodes a workload needs. A NodeOverlay
(``karpenter.sh/v1alpha1``, feature gate ``NodeOverlay``) sets the capacity Karpenter simulates to
GPUs x replicas. Every overlay also requires ``karpenter.sh/nodepool In [<our NodePool>]`` so it
never changes how Karpenter sees the same instance type in another NodePool.
"""

from __future__ import annotations

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.karpenter_options import gpu_count_of, normalize_options
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    ARCH_LABEL,
    CAPACITY_TYPE_LABEL,
    DISCOVERY_TAG,
    GPU_PRESENT_LABEL,
    GPU_TAINT_KEY,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_GPU_COUNT_LABEL,
    INSTANCE_GPU_MANUFACTURER_LABEL,
    INSTANCE_GPU_MEMORY_LABEL,
    INSTANCE_GPU_NAME_LABEL,
    INSTANCE_TYPE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NODECLASS_API,
    NODECLASS_KIND,
    NODEPOOL_API,
    NODEPOOL_KIND,
    NODEPOOL_LABEL,
    OS_DEVICE_PLUGIN_LABEL,
    OVERLAY_API,
    OVERLAY_KIND,
    OWNER_LABEL,
    PROFILE_ANNOTATION,
    PROFILE_LABEL,
    ZONE_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_bottlerocket_settings


# --------------------------------------------------------------------------- small validators


# --------------------------------------------------------------------------- instance types


# --------------------------------------------------------------------------- options


# --------------------------------------------------------------------------- documents


def owner_labels(name):
    return {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: name}


def _req(key, values, operator="In"):
    return {"key": key, "operator": operator, "values": [str(v) for v in values]}


def nodepool_requirements(opts):
    reqs = []
    if opts["instance_types"]:
        reqs.append(_req(INSTANCE_TYPE_LABEL, opts["admitted"]))
    if opts["instance_families"]:
        reqs.append(_req(INSTANCE_FAMILY_LABEL, opts["instance_families"]))
    if opts["gpu_names"]:
        reqs.append(_req(INSTANCE_GPU_NAME_LABEL, opts["gpu_names"]))
    if opts["gpu_manufacturer"]:
        reqs.append(_req(INSTANCE_GPU_MANUFACTURER_LABEL, [opts["gpu_manufacturer"]]))
    if opts["gpu_counts"]:
        reqs.append(_req(INSTANCE_GPU_COUNT_LABEL, opts["gpu_counts"]))
    if opts["min_gpu_memory_mib"]:
        reqs.append(_req(INSTANCE_GPU_MEMORY_LABEL, [opts["min_gpu_memory_mib"]], operator="Gte"))
    reqs.append(_req(CAPACITY_TYPE_LABEL, opts["capacity_types"]))
    reqs.append(_req(ARCH_LABEL, opts["architectures"]))
    if opts["zones"]:
        reqs.append(_req(ZONE_LABEL, opts["zones"]))
    return reqs


def render_nodepool(opts):
    profile = opts["profile"]
    labels = dict(opts["labels"])
    labels.update({PROFILE_LABEL: profile.name, GPU_PRESENT_LABEL: "true"})
    if opts["ami_family"] == "bottlerocket":
        labels[OS_DEVICE_PLUGIN_LABEL] = "bottlerocket"  # its own plugin: the chart keeps off
    spec = {
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "nodeClassRef": dict(opts["node_class_ref"]),
                "requirements": nodepool_requirements(opts),
                "taints": [{"key": GPU_TAINT_KEY, "effect": "NoSchedule"}],
                "expireAfter": opts["expire_after"],
            },
        },
        "disruption": {
            "consolidationPolicy": opts["consolidation_policy"],
            "consolidateAfter": opts["consolidate_after"],
        },
    }
    if opts["startup_taints"]:
        spec["template"]["spec"]["startupTaints"] = opts["startup_taints"]
    if opts["budgets"] is not None:
        spec["disruption"]["budgets"] = opts["budgets"]
    if opts["limits_rendered"]:
        spec["limits"] = opts["limits_rendered"]
    if opts["weight"] is not None:
        spec["weight"] = opts["weight"]
    return {
        "apiVersion": NODEPOOL_API,
        "kind": NODEPOOL_KIND,
        "metadata": {
            "name": opts["name"],
            "labels": owner_labels(opts["name"]),
            "annotations": {PROFILE_ANNOTATION: profile.name},
        },
        "spec": spec,
    }


def _discovery_terms(opts, field):
    if not opts["discovery_tag_value"]:
        raise InvalidInput(field, None, "give discovery_tag_value (selects by tag karpenter.sh/discovery=<value>, "
                           "by convention the cluster name; eks_cluster_name when not given) or %s" % field,
                           why="the EC2NodeClass needs subnet and security-group selectors")
    return [{"tags": {DISCOVERY_TAG: opts["discovery_tag_value"]}}]


def render_ec2nodeclass(opts):
    """The EC2NodeClass, or None when the node class is not managed here."""
    if not opts["manage_node_class"]:
        return None
    ebs = {
        "volumeSize": opts["root_volume_size"],
        "volumeType": opts["root_volume_type"],
        "encrypted": opts["root_volume_encrypted"],
        "deleteOnTermination": True,
    }
    if opts["ami_family"] == "bottlerocket":
        # Bottlerocket: a small OS volume and the data volume (images, ephemeral storage) sized here
        mappings = [
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3",
                                                "encrypted": opts["root_volume_encrypted"],
                                                "deleteOnTermination": True}},
            {"deviceName": "/dev/xvdb", "rootVolume": True, "ebs": ebs},
        ]
    else:
        mappings = [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": ebs}]
    spec = {
        "amiSelectorTerms": [{"alias": opts["ami_alias"]}],
        "subnetSelectorTerms": opts["subnet_selector_terms"] or _discovery_terms(opts, "subnet_selector_terms"),
        "securityGroupSelectorTerms": (opts["security_group_selector_terms"]
                                       or _discovery_terms(opts, "security_group_selector_terms")),
        "blockDeviceMappings": mappings,
    }
    if opts["role"]:
        spec["role"] = opts["role"]
    else:
        spec["instanceProfile"] = opts["instance_profile"]
    if opts["node_class_tags"]:
        spec["tags"] = opts["node_class_tags"]
    if opts["ami_family"] == "bottlerocket":
        spec["userData"] = render_bottlerocket_settings(opts["profile"])
    return {
        "apiVersion": NODECLASS_API,
        "kind": NODECLASS_KIND,
        "metadata": {
            "name": opts["node_class_name"],
            "labels": owner_labels(opts["name"]),
            "annotations": {PROFILE_ANNOTATION: opts["profile"].name},
        },
        "spec": spec,
    }


def overlay_capacity(opts):
    """[(suffix, requirement, gpus, slices)] for the overlays of the admitted instance types."""
    profile = opts["profile"]
    rows = []
    if opts["overlay_key"] == "instance-type":
        for name in opts["admitted"]:
            gpus = gpu_count_of(name, opts["gpus_per_instance_type"])
            rows.append((name.replace(".", "-"), _req(INSTANCE_TYPE_LABEL, [name]), gpus, gpus * profile.replicas))
    else:
        tiers = sorted({gpu_count_of(name, opts["gpus_per_instance_type"]) for name in opts["admitted"]})
        for gpus in tiers:
            rows.append(("%dgpu" % gpus, _req(INSTANCE_GPU_COUNT_LABEL, [gpus]), gpus, gpus * profile.replicas))
    return rows


def render_overlays(opts):
    """One NodeOverlay per admitted instance type (or GPU-count tier), scoped to our NodePool."""
    if not opts["overlays"] or not opts["profile"].shared:
        return []
    resource = opts["profile"].advertised_resource
    docs = []
    for suffix, requirement, gpus, slices in overlay_capacity(opts):
        name = "%s-%s" % (opts["name"], suffix)
        if len(name) > 253:
            raise InvalidInput("name", opts["name"], "use a shorter NodePool name", why="overlay name %r is too long" % name)
        docs.append({
            "apiVersion": OVERLAY_API,
            "kind": OVERLAY_KIND,
            "metadata": {
                "name": name,
                "labels": owner_labels(opts["name"]),
                "annotations": {PROFILE_ANNOTATION: opts["profile"].name,
                                "gpu-slicing.eks/physical-gpus": str(gpus)},
            },
            "spec": {
                "requirements": [_req(NODEPOOL_LABEL, [opts["name"]]), requirement],
                "capacity": {resource: str(slices)},
                "weight": opts["overlay_weight"],
            },
        })
    return docs


def render(plan, options):
    """Validate ``options`` against ``plan``; return {nodepool, ec2nodeclass, overlays, summary}."""
    opts = normalize_options(options, plan)
    nodeclass = render_ec2nodeclass(opts)
    nodepool = render_nodepool(opts)
    overlays = render_overlays(opts)
    profile = opts["profile"]
    summary = {
        "profile": profile.name,
        "replicas": profile.replicas,
        "advertised_resource": profile.advertised_resource,
        "instance_types": [
            {"name": name, "gpus": gpu_count_of(name, opts["gpus_per_instance_type"]),
             "slices": gpu_count_of(name, opts["gpus_per_instance_type"]) * profile.replicas}
            for name in opts["admitted"]
        ],
        "overlay_key": opts["overlay_key"],
        "ami_family": opts["ami_family"] if opts["manage_node_class"] else None,
    }
    return {"nodepool": nodepool, "ec2nodeclass": nodeclass, "overlays": overlays, "summary": summary,
            "options": opts}


#: Module options that are passed to karpenter.render() as they are.
RENDER_OPTIONS = (
    "name", "profile", "discovery_tag_value", "instance_types", "instance_families", "gpu_names",
    "gpu_manufacturer", "gpu_counts", "min_gpu_memory", "capacity_types", "architectures", "zones",
    "limit_slices", "limit_gpus", "limits", "consolidation_policy", "consolidate_after", "budgets",
    "expire_after", "weight", "manage_node_class", "node_class_name", "node_class_ref", "ami_alias",
    "role", "instance_profile", "subnet_selector_terms", "security_group_selector_terms",
    "root_volume_size", "root_volume_type", "root_volume_encrypted", "node_class_tags",
    "overlay_key", "overlay_weight", "gpus_per_instance_type", "labels", "startup_taints",
)
