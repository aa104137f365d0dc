# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PURE cost view: nodes and on-demand $/hour for a GPU workload, with and without slicing.

No I/O, no AWS: instance facts and prices come in as plain dicts (from the shipped table in
``instance_types.py``, from ``ec2:DescribeInstanceTypes`` and the Pricing API via ``aws/ec2.py``).

Workload forms:

* ``pods`` x ``fraction``: each pod uses ``fraction`` of a GPU; one GPU is cut into
  ``replicas = floor(1/fraction)`` slices and each pod takes one slice.
* ``pods`` x ``slices_per_pod`` with ``replicas``: each GPU is cut into ``replicas`` slices,
  each pod requests ``slices_per_pod`` of them.

Without slicing each pod takes one whole GPU (``nvidia.com/gpu: 1``). The scheduler counts
the extended resource per node, so a node fits ``floor(gpus x replicas / slices_per_pod)``
pods, and ``nodes = ceil(pods / pods_per_node)``: with 1-GPU nodes and replicas 4 that gives
4 pods -> 1 node, 8 -> 2, 17 -> 5 (AWS's blueprint expectations).
"""

from __future__ import annotations

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.scalars import slices_per_gpu

HOURS_PER_MONTH = 730


def replicas_from_fraction(fraction):
    """Pods per GPU for a numeric ``fraction`` in (0, 1] (0.25 -> 4, 0.3 -> 3, 1 -> 1): the sharing
    core's rule, :func:`scalars.slices_per_gpu`, without its 2-slice minimum (1 means unsliced)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise InvalidInput("fraction", fraction, "give a number with 0 < fraction <= 1, e.g. 0.25", why="not a number")
    if not 0 < fraction <= 1:
        raise InvalidInput("fraction", fraction, "give the share of one GPU a pod needs, e.g. 0.25", why="must be > 0 and <= 1")
    return slices_per_gpu(fraction)


def _positive_int(field, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(field, value, "give a whole number >= %d" % minimum, why="must be an integer >= %d" % minimum)
    return value


def workload_replicas(fraction=None, replicas=None, slices_per_pod=None):
    """Resolve ``(replicas_per_gpu, slices_per_pod)`` from one of the workload forms."""
    if fraction is not None and (replicas is not None or slices_per_pod is not None):
        raise InvalidInput("fraction", fraction, "drop fraction or drop replicas/slices_per_pod",
                           why="give either fraction, or replicas with slices_per_pod, not both")
    if fraction is not None:
        return replicas_from_fraction(fraction), 1
    if replicas is None:
        raise InvalidInput("replicas", replicas, "give fraction (e.g. 0.25) or replicas (slices per GPU) with slices_per_pod",
                           why="no slicing given")
    replicas = _positive_int("replicas", replicas)
    slices = _positive_int("slices_per_pod", 1 if slices_per_pod is None else slices_per_pod)
    if slices > replicas:
        raise InvalidInput("slices_per_pod", slices, "use slices_per_pod <= replicas",
                           why="a pod cannot ask for more slices than one GPU has (%d)" % replicas)
    return replicas, slices


def pods_per_node(gpu_count, replicas, slices_per_pod=1):
    """How many pods one node with ``gpu_count`` GPUs fits (scheduler counts per node)."""
    return (gpu_count * replicas) // slices_per_pod


def nodes_needed(pods, per_node):
    if pods == 0:
        return 0
    if per_node <= 0:
        return None
    return -(-pods // per_node)


def _money(value):
    return None if value is None else round(value, 4)


def candidate_cost(pods, candidate, price, replicas, slices_per_pod=1, gpu_memory_per_pod_mib=None):
    """Cost lines for one candidate instance type.

    ``candidate``: ``{instance_type, gpu_count, gpu_memory_mib?}``; ``price``: $/hour or None.
    With ``gpu_memory_per_pod_mib`` and a known per-GPU memory the slices per GPU are capped so
    that each pod's share of memory fits (``floor(gpu_memory / pod_memory)``).
    """
    itype = candidate.get("instance_type")
    gpu_count = int(candidate.get("gpu_count") or 0)
    gpu_memory = candidate.get("gpu_memory_mib")
    line = {
        "instance_type": itype,
        "gpu_count": gpu_count,
        "gpu_memory_mib": gpu_memory,
        "gpu_name": candidate.get("gpu_name"),
        "price_per_hour": _money(price),
        "replicas_per_gpu": replicas,
        "slices_per_pod": slices_per_pod,
        "feasible": True,
        "reason": None,
    }
    effective = replicas
    if gpu_memory_per_pod_mib and gpu_memory:
        fit = int(gpu_memory) // int(gpu_memory_per_pod_mib)
        if fit < 1:
            line.update(feasible=False, reason="a pod needs %d MiB of GPU memory, a %s GPU has %d MiB"
                        % (gpu_memory_per_pod_mib, itype, gpu_memory))
        effective = min(replicas, fit * slices_per_pod) if fit >= 1 else 0
    if gpu_count < 1:
        line.update(feasible=False, reason="%s has no GPU" % itype)
    per_node_sliced = pods_per_node(gpu_count, effective, slices_per_pod) if line["feasible"] else 0
    per_node_whole = gpu_count if line["feasible"] else 0
    line["effective_replicas_per_gpu"] = effective
    line["slice_memory_mib"] = (int(gpu_memory) // effective) if (gpu_memory and effective) else None
    line["pods_per_node_sliced"] = per_node_sliced
    line["pods_per_node_unsliced"] = per_node_whole
    line["nodes_sliced"] = nodes_needed(pods, per_node_sliced) if line["feasible"] else None
    line["nodes_unsliced"] = nodes_needed(pods, per_node_whole) if line["feasible"] else None
    line["gpus_sliced"] = None if line["nodes_sliced"] is None else line["nodes_sliced"] * gpu_count
    line["gpus_unsliced"] = None if line["nodes_unsliced"] is None else line["nodes_unsliced"] * gpu_count
    if price is None and line["feasible"]:
        line["reason"] = "no on-demand price known for %s" % itype
    for kind in ("sliced", "unsliced"):
        nodes = line["nodes_" + kind]
        hourly = None if (price is None or nodes is None) else nodes * float(price)
        line["cost_per_hour_" + kind] = _money(hourly)
        line["cost_per_month_" + kind] = _money(None if hourly is None else hourly * HOURS_PER_MONTH)
    if line["cost_per_hour_sliced"] is not None and line["cost_per_hour_unsliced"]:
        saving = line["cost_per_hour_unsliced"] - line["cost_per_hour_sliced"]
        line["savings_per_hour"] = _money(saving)
        line["savings_percent"] = round(100.0 * saving / line["cost_per_hour_unsliced"], 1)
    else:
        line["savings_per_hour"] = None
        line["savings_percent"] = None
    return line


def _cheapest(lines, kind):
    priced = [ln for ln in lines if ln["cost_per_hour_" + kind] is not None]
    if not priced:
        return None
    best = min(priced, key=lambda ln: (ln["cost_per_hour_" + kind], ln["nodes_" + kind], ln["instance_type"]))
    return {
        "instance_type": best["instance_type"],
        "nodes": best["nodes_" + kind],
        "gpus": best["gpus_" + kind],
        "cost_per_hour": best["cost_per_hour_" + kind],
        "cost_per_month": best["cost_per_month_" + kind],
    }


def compare_costs(pods, candidates, prices, fraction=None, replicas=None, slices_per_pod=None,
                  gpu_memory_per_pod_mib=None, price_source=None, prices_date=None):
    """The cost view for a workload over candidate instance types.

    ``candidates``: list of instance facts dicts (``instance_type``, ``gpu_count``,
    ``gpu_memory_mib``...); ``prices``: ``{instance_type: usd_per_hour}``.
    Returns ``{workload, candidates: [lines sorted by sliced cost], cheapest_sliced,
    cheapest_unsliced, savings_per_hour, savings_percent, price_source, prices_date}``.
    """
    pods = _positive_int("pods", pods, minimum=0)
    if not candidates:
        raise InvalidInput("instance_types", candidates, "list at least one GPU instance type", why="no candidate instance types")
    if gpu_memory_per_pod_mib is not None:
        _positive_int("gpu_memory_per_pod_mib", gpu_memory_per_pod_mib)
    reps, slices = workload_replicas(fraction=fraction, replicas=replicas, slices_per_pod=slices_per_pod)
    prices = prices or {}
    lines = [candidate_cost(pods, c, prices.get(c.get("instance_type")), reps, slices, gpu_memory_per_pod_mib)
             for c in candidates]

    def order(ln):
        cost = ln["cost_per_hour_sliced"]
        return (cost is None, cost if cost is not None else 0.0, ln["instance_type"] or "")

    lines.sort(key=order)
    sliced = _cheapest(lines, "sliced")
    whole = _cheapest(lines, "unsliced")
    saving = percent = None
    if sliced and whole:
        saving = _money(whole["cost_per_hour"] - sliced["cost_per_hour"])
        percent = round(100.0 * saving / whole["cost_per_hour"], 1) if whole["cost_per_hour"] else None
    return {
        "workload": {
            "pods": pods,
            "fraction": fraction,
            "replicas_per_gpu": reps,
            "slices_per_pod": slices,
            "gpu_memory_per_pod_mib": gpu_memory_per_pod_mib,
        },
        "candidates": lines,
        "cheapest_sliced": sliced,
        "cheapest_unsliced": whole,
        "savings_per_hour": saving,
        "savings_percent": percent,
        "price_source": price_source,
        "prices_date": prices_date,
    }
