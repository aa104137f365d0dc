# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_sharing's work: the device plugin and the Karpenter GPU NodePool in one module run.

Each part is the same operation as its own module (ops/device_plugin.py, ops/nodepool.py),
with typed options built from the shared options (profiles, state) and the part's own. What
one run adds is the order: both parts' options are validated, then every check of both parts
(helm and the chart, the kinds served, the NodeOverlay gate, ownership, the API server's dry
run) is done before the first write of either, so a NodePool that would be refused no longer
leaves the device plugin changed. One connection (the run's context) serves both parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import SHARING_PARTS
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.device_plugin import (
    DevicePluginOptions,
    apply_device_plugin,
    prepare_device_plugin,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.nodepool import (
    NodePoolOptions,
    apply_present,
    prepare_present,
    remove,
)


@dataclass
class GpuSharingOptions(object):
    """gpu_sharing's options: the device plugin's and (when given) the NodePool's, both checked."""

    state: str
    device_plugin: DevicePluginOptions
    nodepool: NodePoolOptions = None

    @classmethod
    def from_params(cls, params):
        """Each part's options are the shared ones (connection, profiles, state) and its own. The
        NodePool's are checked first: its documents are rendered before anything else runs."""
        parts = set(name for name, dummy in SHARING_PARTS)
        shared = dict((key, value) for key, value in params.items() if key not in parts)
        nodepool = None
        if params.get("nodepool") is not None:
            nodepool = NodePoolOptions.from_params(dict(shared, **params["nodepool"]))
        device_plugin = DevicePluginOptions.from_params(dict(shared, **params["device_plugin"]))
        return cls(state=params["state"], device_plugin=device_plugin, nodepool=nodepool)


def _diff(plugin, plugin_result, pool_result):
    """One diff list for Ansible: the Helm values when they change, then each changed object."""
    diffs = []
    plugin_diff = plugin_result.pop("diff", None)
    if plugin_diff is not None and plugin_diff["before"] != plugin_diff["after"]:
        header = "Helm values of %s/%s" % (plugin.namespace, plugin.release_name)
        diffs.append(dict(plugin_diff, before_header=header, after_header=header))
    diffs.extend((pool_result or {}).pop("diff", None) or [])
    return diffs


def ensure_gpu_sharing(options, context):
    """gpu_sharing: both parts present (plugin first, then the NodePool that brings nodes for it)
    or absent (the NodePool first, so Karpenter launches no more nodes for a removed plugin)."""
    plugin, pool = options.device_plugin, options.nodepool
    if options.state == "absent":
        change = prepare_device_plugin(plugin, context)
        pool_result = remove(pool, context) if pool is not None else None
        plugin_result = apply_device_plugin(plugin, context, change)
    else:
        change = prepare_device_plugin(plugin, context)
        checked = prepare_present(pool, context) if pool is not None else None
        # Nothing has been written up to here.
        plugin_result = apply_device_plugin(plugin, context, change)
        pool_result = apply_present(pool, context, checked) if pool is not None else None
    result = {
        "changed": plugin_result["changed"] or bool(pool_result and pool_result["changed"]),
        "device_plugin": plugin_result,
        "nodepool": pool_result,
    }
    diffs = _diff(plugin, plugin_result, pool_result)
    if context.diff:
        result["diff"] = diffs
    return result
