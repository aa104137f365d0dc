# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_sharing's work: the device plugin and the Karpenter GPU NodePool in one module run.

Each part runs the same code as its own module (device_plugin_apply, karpenter_apply), with
its options seen as that module's params. What one run adds is the order: every check of
both parts (inputs, helm and the chart, the kinds served, the NodeOverlay gate, ownership,
the API server's dry run) is done before the first write of either, so a NodePool that would
be refused no longer leaves the device plugin changed. One connection serves both parts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import part_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.device_plugin import (
    apply_device_plugin,
    prepare_device_plugin,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.nodepool import (
    apply_present,
    prepare_present,
    remove,
    render,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import ParamsView


def _part(module, option):
    params = part_params(module.params, option)
    return ParamsView(module, params) if params is not None else None


def _diff(plugin_module, plugin_result, pool_result):
    """One diff list for Ansible: the Helm values when they change, then each changed object."""
    diffs = []
    plugin_diff = plugin_result.pop("diff", None)
    if plugin_diff is not None and plugin_diff["before"] != plugin_diff["after"]:
        header = "Helm values of %s/%s" % (plugin_module.params["namespace"], plugin_module.params["release_name"])
        diffs.append(dict(plugin_diff, before_header=header, after_header=header))
    diffs.extend((pool_result or {}).pop("diff", None) or [])
    return diffs


def ensure_gpu_sharing(module):
    """gpu_sharing: both parts present (plugin first, then the NodePool that brings nodes for it)
    or absent (the NodePool first, so Karpenter launches no more nodes for a removed plugin)."""
    plugin_module, pool_module = _part(module, "device_plugin"), _part(module, "nodepool")
    if module.params["state"] == "absent":
        change = prepare_device_plugin(plugin_module)
        pool_result = remove(pool_module, change.kube) if pool_module is not None else None
        plugin_result = apply_device_plugin(plugin_module, change)
    else:
        docs = render(pool_module) if pool_module is not None else None  # before the API is contacted
        change = prepare_device_plugin(plugin_module)
        checked = prepare_present(pool_module, change.kube, docs) if docs is not None else None
        # Nothing has been written up to here.
        plugin_result = apply_device_plugin(plugin_module, change)
        pool_result = apply_present(pool_module, change.kube, docs, checked) if docs is not None else None
    result = {
        "changed": plugin_result["changed"] or bool(pool_result and pool_result["changed"]),
        "device_plugin": plugin_result,
        "nodepool": pool_result,
    }
    diffs = _diff(plugin_module, plugin_result, pool_result)
    if module._diff:
        result["diff"] = diffs
    return result
