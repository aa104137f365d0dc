# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the Karpenter launch check of the verification."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import INSTANCE_TYPE_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification import (
    CHECK_KARPENTER,
    failed,
    passed,
)


# --------------------------------------------------------------------------- Karpenter launch check
# M pending one-slice pods pinned to one NodePool and one instance type must make Karpenter launch
# ceil((M - free slices on the pool's existing nodes of that type) / (GPUs x replicas)) nodes: the
# number it launches only when it knows a GPU holds `replicas` slices (NodeOverlay).

def nodepool_instance_types(nodepool):
    """The instance types a NodePool admits through ``node.kubernetes.io/instance-type In [...]``,
    or None when it does not restrict them that way."""
    spec = ((nodepool.get("spec") or {}).get("template") or {}).get("spec") or {}
    for req in spec.get("requirements") or []:
        if req.get("key") == INSTANCE_TYPE_LABEL and req.get("operator") == "In":
            return list(req.get("values") or [])
    return None


def karpenter_instance_type(nodepool, requested=None):
    """(instance type, None) the launch check pins its pods to, or (None, reason) when there is
    no single answer: ``requested`` when given (it must be admitted by the NodePool), else the
    NodePool's only instance type."""
    admitted = nodepool_instance_types(nodepool)
    if requested:
        if admitted is not None and requested not in admitted:
            return None, ("karpenter_instance_type %s is not admitted by the NodePool (it admits %s)"
                          % (requested, ", ".join(admitted)))
        return requested, None
    if admitted and len(admitted) == 1:
        return admitted[0], None
    return None, ("the NodePool admits %s; give karpenter_instance_type so the expected node count is defined"
                  % ("instance types " + ", ".join(admitted) if admitted else "any instance type"))


def karpenter_expected_nodes(pods, slices_per_node, free_slices=0):
    """Nodes Karpenter needs for ``pods`` one-slice pods: ceil((pods - free) / slices per node)."""
    missing = max(0, int(pods) - max(0, int(free_slices)))
    return -(-missing // int(slices_per_node))


def check_karpenter_launch(nodepool, instance_type, pods, slices_per_node, free_slices, launched,
                           running, timed_out=False, waited=None):
    """Verdict of the launch check. ``launched``: names of the NodeClaims created during the check;
    ``running``: how many of the ``pods`` test pods ran."""
    expected = karpenter_expected_nodes(pods, slices_per_node, free_slices)
    details = {"nodepool": nodepool, "instance_type": instance_type, "pods": pods,
               "slices_per_node": slices_per_node, "free_slices_before": free_slices,
               "nodeclaims_launched": sorted(launched), "pods_running": running,
               "waited_seconds": None if waited is None else round(waited, 3)}
    observed = len(launched)
    if timed_out and running < pods:
        return failed(CHECK_KARPENTER, "timed out: %d of %d pods Running after %s s, %d NodeClaim(s) launched"
                      % (running, pods, details["waited_seconds"], observed), expected, observed, details)
    if observed == expected:
        return passed(CHECK_KARPENTER, "%d pods -> %d node(s) (%d slices per %s, %d free before): the minimum"
                      % (pods, observed, slices_per_node, instance_type, free_slices), expected, observed, details)
    hint = ""
    if observed > expected:
        hint = (": Karpenter over-provisions; it does not know a GPU holds %d slices (is the NodeOverlay feature "
                "gate on and the NodeOverlay for %s in place?)" % (slices_per_node, instance_type))
    return failed(CHECK_KARPENTER, "%d pods -> %d node(s), expected %d%s" % (pods, observed, expected, hint),
                  expected, observed, details)
