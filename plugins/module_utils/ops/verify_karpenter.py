# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Karpenter launch check of a verification run (option karpenter_nodepool_name).

A phase of ``ops/verifier.Verifier``: it uses the run's helpers (test pods, waits, cleanup
record) and the pure check in ``core/verification_karpenter.py``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_karpenter as K
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_pods as P
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_waits as W
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import lookup
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import INSTANCE_TYPE_LABEL, NODEPOOL_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.slicing_info import (
    HOLDING_PODS_SELECTOR,
    requested_by_node,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message


def karpenter_phase(run):
    """M pending one-slice pods for one NodePool: Karpenter must launch the minimum number of nodes.

    The pods live in the run's namespace (removed with it). The NodeClaims launched for them
    are deleted afterwards (karpenter_cleanup_nodes) so the check leaves no GPU node running.
    """
    pool = run.opts.karpenter_nodepool_name
    verdict = V.NodeVerdict("nodepool/%s" % pool, run.profile.name)
    run.verdicts.append(verdict)
    t0 = run.clock()
    nodepool = run.kube.get("NodePool", "karpenter.sh/v1", pool)
    if nodepool is None:
        verdict.add(V.failed(V.CHECK_KARPENTER, "NodePool %s not found" % pool, None, None))
        return
    itype, why = K.karpenter_instance_type(nodepool, run.opts.karpenter_instance_type)
    if itype is None:
        verdict.add(V.not_available(V.CHECK_KARPENTER, why))
        return
    try:
        gpus = lookup(itype).gpu_count
    except InvalidInput as err:
        verdict.add(V.not_available(V.CHECK_KARPENTER, "GPU count of %s unknown: %s" % (itype, err)))
        return
    # The node checks' pods still hold slices: remove them first, so the free slices counted
    # below are the ones Karpenter sees.
    run.remove_pods(None, min(run.remaining() + 30, 60))
    resource = run.plan.advertised_resource(run.profile)
    slices_per_node = gpus * run.profile.replicas
    pods = slices_per_node + 1 if run.opts.karpenter_pods is None else int(run.opts.karpenter_pods)
    selector = {NODEPOOL_LABEL: pool, INSTANCE_TYPE_LABEL: itype}
    label_selector = ",".join("%s=%s" % kv for kv in sorted(selector.items()))

    def claims():
        return set(c["metadata"]["name"] for c in run.kube.list_raw(
            "NodeClaim", "karpenter.sh/v1", label_selector="%s=%s" % (NODEPOOL_LABEL, pool)))

    claims_before = claims()
    # Free slices on the pool's existing nodes of that type take pods before any launch.
    existing = run.kube.list_raw("Node", "v1", label_selector=label_selector)
    requested = requested_by_node(run.kube.list_raw(
        "Pod", "v1", field_selector=HOLDING_PODS_SELECTOR, fields_only=True), [resource])
    free = 0
    for node in existing:
        have = int(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0") or 0)
        free += max(0, have - requested.get(node["metadata"]["name"], {}).get(resource, 0))

    run.create_pods([
        P.test_pod("karpenter-%d" % i, run.namespace, None, resource, 1, run.opts.image, run.command,
                   run.run_id, "karpenter", resources=run.opts.pod_resources,
                   extra_tolerations=run.opts.tolerations, node_selector=selector)
        for i in range(pods)])
    budget = float(run.opts.karpenter_wait_timeout)
    settle = float(run.opts.karpenter_settle)
    since = W.Since()

    def read():
        launched = claims() - claims_before
        running = len([p for p in run.list_run_pods("karpenter") if P.pod_running_ready(p)])
        return running, launched, since.held("launch", (running, tuple(sorted(launched))), run.clock())

    dummy, (running, launched, dummy), dummy = run.wait(
        read, lambda seen: W.karpenter_settled(seen[0], pods, seen[2], settle), budget, interval=1.0,
        key="verification, Karpenter launch", budget=budget,
        detail=lambda seen: "%d of %d pods Running, %d NodeClaim(s) launched" % (seen[0], pods, len(seen[1])))
    waited = run.clock() - t0
    verdict.add(K.check_karpenter_launch(pool, itype, pods, slices_per_node, free, launched, running,
                                         timed_out=running < pods, waited=waited))
    verdict.timings["karpenter_seconds"] = round(waited, 3)
    try:
        run.kube.delete_collection("Pod", "v1", run.namespace, run.selector("karpenter"), grace_period_seconds=0)
    except Exception as exc:  # pylint: disable=broad-except
        run.cleanup["errors"].append("deleting the Karpenter check's pods: %s" % error_message(exc))
    removed = []
    if run.opts.karpenter_cleanup_nodes:
        for name in sorted(launched):
            try:
                run.kube.delete("NodeClaim", "karpenter.sh/v1", name)
                removed.append(name)
            except Exception as exc:  # pylint: disable=broad-except
                run.cleanup["errors"].append("deleting NodeClaim %s: %s" % (name, error_message(exc)))
    run.cleanup["karpenter_nodeclaims_removed"] = removed
    run.timings["karpenter_seconds"] = run.seconds_since(t0)
