# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AMI an EC2NodeClass alias selects: which aliases are accepted for GPU nodes, the SSM
parameter Karpenter's AWS provider (v1.14.1, pkg/providers/amifamily) reads for one, and the
Bottlerocket releases that can run an MPS profile. Pure.
"""

from __future__ import annotations

import re

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import STRATEGY_MPS

AMI_FAMILIES = ("al2023", "bottlerocket")
_AMI_ALIAS_RE = re.compile(r"^([a-zA-Z0-9]+)@(.+)$")
# Karpenter's AWS provider puts a pinned version into an SSM parameter path unchecked
# (pkg/providers/amifamily); these are the forms AWS publishes parameters under:
# EKS AMI releases vYYYYMMDD, Bottlerocket releases X.Y.Z (the provider trims a leading v).
AMI_VERSION_LATEST = "latest"
_AMI_VERSION_RES = {
    "al2023": re.compile(r"^v[0-9]{8}$"),
    "bottlerocket": re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$"),
}
_AMI_VERSION_EXAMPLES = {"al2023": "al2023@v20240625", "bottlerocket": "bottlerocket@1.46.0"}
# Bottlerocket's settings model accepts device-sharing-strategy "mps" from bottlerocket-settings-models
# 0.20.0 (2026-01-14), first shipped in Bottlerocket 1.54.0 (2026-01-26); older releases refuse the
# user data, so the node never joins.
BOTTLEROCKET_MPS_SINCE = (1, 54, 0)
_BOTTLEROCKET_VERSION_RE = re.compile(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)$")


def _err(field, value, fix, why):
    return InvalidInput(field, value, fix, why=why)


def ami_family(alias):
    """The family (al2023 or bottlerocket) of a supported ``ami_alias``; InvalidInput otherwise."""
    match = _AMI_ALIAS_RE.match(alias) if isinstance(alias, str) else None
    if not match or match.group(1) not in AMI_FAMILIES:
        raise InvalidInput("ami_alias", alias,
                           "use al2023@latest (NVIDIA AL2023 AMI; install the device plugin) or bottlerocket@latest "
                           "(NVIDIA Bottlerocket; plugin built in), optionally pinned as al2023@v20261101",
                           why="not a supported AMI alias for GPU nodes (al2023@<version> or bottlerocket@<version>)")
    check_ami_version(alias, match.group(1), match.group(2))
    return match.group(1)


def check_ami_version(alias, family, version):
    if version == AMI_VERSION_LATEST or _AMI_VERSION_RES[family].match(version):
        return
    raise _err("ami_alias", alias,
               "pin a released version, e.g. %s, or use %s@latest"
               % (_AMI_VERSION_EXAMPLES[family], family),
               "Karpenter looks the version up as an SSM parameter (%s); no %s image is published "
               "under a version written like %r, so the EC2NodeClass would never become ready"
               % (ami_ssm_parameter(family, version, "<k8s>"), family, version))


def ami_ssm_parameter(family, version, k8s_version):
    """The SSM parameter Karpenter's AWS provider (v1.14.1, amifamily/al2023.go and
    bottlerocket.go) reads for the alias ``family@version`` on a cluster of ``k8s_version``
    ("1.36"), for the NVIDIA variant on x86_64 (the GPU instance families)."""
    if family == "bottlerocket":
        return "/aws/service/bottlerocket/aws-k8s-%s-nvidia/x86_64/%s/image_id" % (k8s_version, version.lstrip("v"))
    name = ("recommended" if version == AMI_VERSION_LATEST
            else "amazon-eks-node-al2023-x86_64-nvidia-%s-%s" % (k8s_version, version))
    return "/aws/service/eks/optimized-ami/%s/amazon-linux-2023/x86_64/nvidia/%s/image_id" % (k8s_version, name)


def check_bottlerocket_release(alias, profile):
    """Refuse an MPS profile on a pinned Bottlerocket release whose settings model lacks MPS."""
    match = _BOTTLEROCKET_VERSION_RE.match(alias.split("@", 1)[1])
    if profile.strategy != STRATEGY_MPS or not match:
        return  # latest (documented: 1.54.0 or newer since January 2026) or not a release number
    if tuple(int(part) for part in match.groups()) < BOTTLEROCKET_MPS_SINCE:
        since = "v%d.%d.%d" % BOTTLEROCKET_MPS_SINCE
        raise _err("ami_alias", alias,
                   "pin bottlerocket@%s or newer (or bottlerocket@latest), or use time-slicing for profile %s"
                   % (since, profile.name),
                   "profile %s uses MPS, which Bottlerocket's settings model accepts only from %s on"
                   % (profile.name, since))
