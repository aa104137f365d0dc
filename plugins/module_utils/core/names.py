# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one home of the label, annotation and taint keys and of the Kubernetes name rules.

Pure: no I/O. Values are what NVIDIA's device plugin and GPU feature discovery, Karpenter
and Kubernetes use; every other file imports them from here.
"""

from __future__ import annotations

import re

# NVIDIA's device plugin and GPU feature discovery
#: Node label the device plugin's config-manager watches to pick a named config.
PROFILE_LABEL = "nvidia.com/device-plugin.config"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_REPLICAS_LABEL = "nvidia.com/gpu.replicas"
GPU_SHARING_LABEL = "nvidia.com/gpu.sharing-strategy"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MPS_CAPABLE_LABEL = "nvidia.com/mps.capable"

# Kubernetes and Karpenter (AWS provider) well-known labels and taints
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
INSTANCE_FAMILY_LABEL = "karpenter.k8s.aws/instance-family"
INSTANCE_GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"
INSTANCE_GPU_MANUFACTURER_LABEL = "karpenter.k8s.aws/instance-gpu-manufacturer"
INSTANCE_GPU_COUNT_LABEL = "karpenter.k8s.aws/instance-gpu-count"
INSTANCE_GPU_MEMORY_LABEL = "karpenter.k8s.aws/instance-gpu-memory"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ARCH_LABEL = "kubernetes.io/arch"
ZONE_LABEL = "topology.kubernetes.io/zone"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
# Karpenter puts this taint on a node it is about to drain and delete (consolidation, expiry,
# drift); the DaemonSet controller then places no new pod there.
KARPENTER_DISRUPTED_TAINT_KEY = "karpenter.sh/disrupted"

# Karpenter's API (CRDs of Karpenter v1.14.1 and its AWS provider)
NODEPOOL_API = "karpenter.sh/v1"
NODEPOOL_KIND = "NodePool"
NODECLASS_API = "karpenter.k8s.aws/v1"
NODECLASS_KIND = "EC2NodeClass"
NODECLASS_GROUP = "karpenter.k8s.aws"
OVERLAY_API = "karpenter.sh/v1alpha1"
OVERLAY_KIND = "NodeOverlay"
DISCOVERY_TAG = "karpenter.sh/discovery"

# This collection's own keys
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpu_slicing.eks"
OWNER_LABEL = "gpu-slicing.eks/nodepool"
PROFILE_ANNOTATION = "gpu-slicing.eks/profile"
#: Node label (value: the OS) on GPU nodes whose OS runs NVIDIA's device plugin itself
#: (Bottlerocket's NVIDIA variant): the chart's DaemonSets keep off them.
OS_DEVICE_PLUGIN_LABEL = "gpu-slicing.eks/os-device-plugin"
#: Marks a node that stands in for a GPU node (tests, demo).
SIMULATED_LABEL = "gpu-slicing.eks/simulated"

# Kubernetes name rules (apimachinery's validation)
#: RFC 1123 label: namespaces, Helm releases (at most 63 characters, checked apart).
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: RFC 1123 subdomain: object names, label key prefixes (at most 253 characters).
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: The name part of a label key (at most 63 characters).
LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
#: A label value: empty, or the name rule (at most 63 characters).
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def name_errors(labels=None, subdomains=None, max_label=63):
    """Messages for Kubernetes names that the API would refuse, checked before any request.

    ``labels``: {option: value} that must be RFC 1123 labels (namespaces, Helm releases);
    ``subdomains``: {option: value} that must be RFC 1123 subdomains (object names).
    """
    errors = []
    for option, value in sorted((labels or {}).items()):
        if value is not None and (len(value) > max_label or not DNS_LABEL_RE.match(value)):
            errors.append("%s: %r is invalid: not a lowercase RFC 1123 label of at most %d characters. "
                          "Fix: use lowercase letters, digits and '-', starting and ending with a letter or digit "
                          "(e.g. nvidia-device-plugin)" % (option, value, max_label))
    for option, value in sorted((subdomains or {}).items()):
        if value is not None and (len(value) > 253 or not DNS_SUBDOMAIN_RE.match(value)):
            errors.append("%s: %r is invalid: not a lowercase RFC 1123 subdomain. "
                          "Fix: use lowercase letters, digits, '-' and '.' (e.g. nvidia-device-plugin-configs)"
                          % (option, value))
    return errors
