# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The slicing_info operation: read GPU nodes and the pods holding slices, report per node
(module gpu_slicing_info). Read-only; the judgement is ``core/slicing_info.py``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_spec_from_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.slicing_info import (
    HOLDING_PODS_SELECTOR,
    slicing_report,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message

DEFAULT_LABEL_SELECTORS = ("nvidia.com/gpu.present=true",)


class SlicingInfoOptions(object):
    """``plan``: the sharing plan nodes are checked against (None: report only);
    ``label_selectors``: a node must match all; ``node_names``: only these (empty: all)."""

    def __init__(self, plan=None, label_selectors=DEFAULT_LABEL_SELECTORS, node_names=(), fail_on_mismatch=False):
        self.plan = plan
        self.label_selectors = list(label_selectors)
        self.node_names = list(node_names or ())
        self.fail_on_mismatch = bool(fail_on_mismatch)

    @classmethod
    def from_params(cls, params):
        plan = None
        if params.get("profiles"):
            plan = build_plan(sharing_spec_from_params(params))
        selectors = params.get("label_selectors")
        return cls(plan=plan, label_selectors=DEFAULT_LABEL_SELECTORS if selectors is None else selectors,
                   node_names=params.get("node_names"), fail_on_mismatch=params.get("fail_on_mismatch"))


def slicing_info(options, context):
    """The per-node report and totals; raises GpuSlicingError (with the report) when
    ``fail_on_mismatch`` and a node does not advertise what its profile says."""
    kube = context.kube
    try:
        nodes, pods = kube.list_raw_together(
            {"kind": "Node", "api_version": "v1", "label_selector": ",".join(options.label_selectors),
             "fields_only": True},
            {"kind": "Pod", "api_version": "v1", "fields_only": True,
             "field_selector": HOLDING_PODS_SELECTOR})
    except Exception as exc:  # pylint: disable=broad-except
        raise GpuSlicingError("Reading nodes and pods failed: %s" % error_message(exc), kind="kube_api")
    wanted = set(options.node_names)
    if wanted:
        nodes = [n for n in nodes if n["metadata"]["name"] in wanted]
    report = slicing_report(nodes, pods, options.plan)
    if options.fail_on_mismatch and report["totals"]["nodes_with_mismatch"]:
        bad = ["%s: %s" % (n["name"], "; ".join(n["mismatches"])) for n in report["nodes"] if n["mismatches"]]
        raise GpuSlicingError("%d node(s) do not match their profile: %s" % (len(bad), " | ".join(bad)),
                              kind="mismatch", **report)
    return dict(report, changed=False)
