# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_cost_info's operation: nodes and $/hour for a workload, with and without slicing."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.ec2 import resolve_instance_facts, resolve_prices
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import connection_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.cost import compare_costs
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput


@dataclass(frozen=True)
class CostInfoOptions:
    aws: dict
    pods: int
    instance_types: list
    fraction: float = None
    replicas: int = None
    slices_per_pod: int = None
    gpu_memory_per_pod_mib: int = None
    instance_source: str = "offline"
    pricing: str = "table"
    prices: dict = None

    @classmethod
    def from_params(cls, params):
        given = {}
        for name, value in (params.get("prices") or {}).items():
            try:
                given[name] = float(value)
            except (TypeError, ValueError):
                raise InvalidInput("prices[%s]" % name, value, "give USD per hour, e.g. 1.006", why="not a number") from None
        return cls(aws=connection_params(params), pods=params["pods"], instance_types=params["instance_types"],
                   fraction=params.get("fraction"), replicas=params.get("replicas"),
                   slices_per_pod=params.get("slices_per_pod"),
                   gpu_memory_per_pod_mib=params.get("gpu_memory_per_pod_mib"),
                   instance_source=params.get("instance_source") or "offline",
                   pricing=params.get("pricing") or "table", prices=given)


def cost_info(options, context):
    """The cost view (``core.cost.compare_costs``) with ``instance_source``; prices given in
    ``prices`` win over the table or the Pricing API."""
    types = options.instance_types
    facts, instance_source, warnings = resolve_instance_facts(options.aws, types, options.instance_source)
    given = dict(options.prices or {})
    rest = [t for t in types if t not in given]
    prices, source, date, price_warnings = ({}, "given", None, [])
    if rest:
        prices, source, date, price_warnings = resolve_prices(options.aws, rest, options.pricing)
        if given:
            source = "given + " + source
    prices.update(given)
    result = compare_costs(
        options.pods, [facts[t] for t in types], prices,
        fraction=options.fraction, replicas=options.replicas, slices_per_pod=options.slices_per_pod,
        gpu_memory_per_pod_mib=options.gpu_memory_per_pod_mib, price_source=source, prices_date=date)
    result["instance_source"] = instance_source
    result["changed"] = False
    for warning in warnings + price_warnings:
        context.warn(warning)
    return result
