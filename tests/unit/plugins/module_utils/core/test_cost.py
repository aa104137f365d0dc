# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/cost.py (pure cost view)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import cost, sharing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import INSTANCE_TYPES

ONE_GPU = {"instance_type": "g4dn.xlarge", "gpu_count": 1, "gpu_memory_mib": 16384}
FOUR_GPU = {"instance_type": "g4dn.12xlarge", "gpu_count": 4, "gpu_memory_mib": 16384}
PRICES = {"g4dn.xlarge": 0.526, "g4dn.12xlarge": 3.912}


@pytest.mark.parametrize("pods,nodes", [(4, 1), (8, 2), (17, 5), (1, 1), (0, 0)])
def test_blueprint_expectations(pods, nodes):
    """AWS's blueprint: replicas 4 on 1-GPU instances: 4 pods -> 1 node, 8 -> 2, 17 -> 5."""
    view = cost.compare_costs(pods, [ONE_GPU], PRICES, fraction=0.25)
    line = view["candidates"][0]
    assert line["nodes_sliced"] == nodes
    assert line["nodes_unsliced"] == pods
    assert line["cost_per_hour_sliced"] == round(nodes * 0.526, 4)
    assert line["cost_per_hour_unsliced"] == round(pods * 0.526, 4)


@pytest.mark.parametrize("fraction,replicas", [(0.25, 4), (0.5, 2), (1 / 3, 3), (0.3, 3), (0.2, 5), (0.1, 10),
                                               (1, 1), (0.9, 1), (0.125, 8)])
def test_replicas_from_fraction(fraction, replicas):
    assert cost.replicas_from_fraction(fraction) == replicas


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5, "0.25", None, True])
def test_bad_fraction(fraction):
    with pytest.raises(InvalidInput) as err:
        cost.replicas_from_fraction(fraction)
    assert "fraction" in str(err.value) and "Fix:" in str(err.value)


def test_multi_gpu_node_and_cheapest_choice():
    view = cost.compare_costs(17, [FOUR_GPU, ONE_GPU], PRICES, fraction=0.25)
    by_type = {ln["instance_type"]: ln for ln in view["candidates"]}
    assert by_type["g4dn.12xlarge"]["pods_per_node_sliced"] == 16
    assert by_type["g4dn.12xlarge"]["nodes_sliced"] == 2
    assert by_type["g4dn.12xlarge"]["nodes_unsliced"] == 5
    assert by_type["g4dn.12xlarge"]["gpus_sliced"] == 8
    assert view["candidates"][0]["instance_type"] == "g4dn.xlarge", "sorted by sliced cost"
    assert view["cheapest_sliced"] == {"instance_type": "g4dn.xlarge", "nodes": 5, "gpus": 5,
                                       "cost_per_hour": 2.63, "cost_per_month": round(2.63 * 730, 4)}
    assert view["cheapest_unsliced"]["instance_type"] == "g4dn.xlarge"
    assert view["cheapest_unsliced"]["cost_per_hour"] == round(17 * 0.526, 4)
    assert view["savings_per_hour"] == round(17 * 0.526 - 5 * 0.526, 4)
    assert view["savings_percent"] == round(100 * 12 / 17, 1)
    assert view["workload"]["replicas_per_gpu"] == 4


def test_slices_per_pod():
    # 8 slices per GPU, each pod takes 2: 4 pods per GPU
    view = cost.compare_costs(10, [ONE_GPU, FOUR_GPU], PRICES, replicas=8, slices_per_pod=2)
    by_type = {ln["instance_type"]: ln for ln in view["candidates"]}
    assert by_type["g4dn.xlarge"]["pods_per_node_sliced"] == 4
    assert by_type["g4dn.xlarge"]["nodes_sliced"] == 3
    assert by_type["g4dn.12xlarge"]["pods_per_node_sliced"] == 16
    assert by_type["g4dn.12xlarge"]["nodes_sliced"] == 1
    # odd split: 3 slices of 8 -> the scheduler counts per node: floor(8/3) = 2 on a 1-GPU node
    odd = cost.compare_costs(5, [ONE_GPU], PRICES, replicas=8, slices_per_pod=3)
    assert odd["candidates"][0]["pods_per_node_sliced"] == 2


def test_workload_errors():
    with pytest.raises(InvalidInput, match="slices_per_pod"):
        cost.compare_costs(3, [ONE_GPU], PRICES, replicas=4, slices_per_pod=5)
    with pytest.raises(InvalidInput, match="fraction"):
        cost.compare_costs(3, [ONE_GPU], PRICES, fraction=0.5, replicas=2)
    with pytest.raises(InvalidInput, match="replicas"):
        cost.compare_costs(3, [ONE_GPU], PRICES)
    with pytest.raises(InvalidInput, match="pods"):
        cost.compare_costs(-1, [ONE_GPU], PRICES, fraction=0.5)
    with pytest.raises(InvalidInput, match="instance_types"):
        cost.compare_costs(3, [], PRICES, fraction=0.5)
    with pytest.raises(InvalidInput, match="replicas"):
        cost.compare_costs(3, [ONE_GPU], PRICES, replicas=0)


def test_memory_caps_replicas_and_rules_out_small_gpus():
    big = {"instance_type": "g6e.xlarge", "gpu_count": 1, "gpu_memory_mib": 45776}
    view = cost.compare_costs(8, [ONE_GPU, big], {"g4dn.xlarge": 0.526, "g6e.xlarge": 1.861}, fraction=0.125,
                              gpu_memory_per_pod_mib=5120)
    by_type = {ln["instance_type"]: ln for ln in view["candidates"]}
    # 16 GiB / 5 GiB -> only 3 pods fit per T4, not the 8 the fraction asks for
    assert by_type["g4dn.xlarge"]["effective_replicas_per_gpu"] == 3
    assert by_type["g4dn.xlarge"]["nodes_sliced"] == 3
    assert by_type["g6e.xlarge"]["effective_replicas_per_gpu"] == 8
    assert by_type["g6e.xlarge"]["nodes_sliced"] == 1
    huge = cost.compare_costs(2, [ONE_GPU], PRICES, fraction=0.5, gpu_memory_per_pod_mib=20000)
    line = huge["candidates"][0]
    assert line["feasible"] is False and "20000 MiB" in line["reason"]
    assert line["cost_per_hour_sliced"] is None and huge["cheapest_sliced"] is None


def test_missing_price_and_gpu_less_types():
    cpu = {"instance_type": "m5.large", "gpu_count": 0}
    view = cost.compare_costs(4, [ONE_GPU, cpu, {"instance_type": "g6.xlarge", "gpu_count": 1}],
                              {"g4dn.xlarge": 0.526}, fraction=0.5)
    by_type = {ln["instance_type"]: ln for ln in view["candidates"]}
    assert by_type["m5.large"]["feasible"] is False and "no GPU" in by_type["m5.large"]["reason"]
    assert by_type["g6.xlarge"]["nodes_sliced"] == 2 and by_type["g6.xlarge"]["cost_per_hour_sliced"] is None
    assert "no on-demand price" in by_type["g6.xlarge"]["reason"]
    assert view["cheapest_sliced"]["instance_type"] == "g4dn.xlarge"
    assert view["candidates"][0]["instance_type"] == "g4dn.xlarge", "unpriced lines sort last"


def test_with_shipped_table():
    candidates = [INSTANCE_TYPES[n].to_dict() for n in ("g5.xlarge", "g6.xlarge", "g4dn.xlarge")]
    for c in candidates:
        c["instance_type"] = c["name"]
    prices = {c["name"]: c["price_per_hour"] for c in candidates}
    view = cost.compare_costs(12, candidates, prices, fraction=0.25, price_source="table", prices_date="2026-11")
    assert view["cheapest_sliced"]["instance_type"] == "g4dn.xlarge"
    assert view["cheapest_sliced"]["nodes"] == 3
    assert view["prices_date"] == "2026-11"


@settings(max_examples=200, deadline=None)
@given(pods=st.integers(0, 500), gpus=st.sampled_from([1, 2, 4, 8]), replicas=st.integers(1, 48),
       slices=st.integers(1, 48), price=st.floats(0.1, 100))
def test_properties(pods, gpus, replicas, slices, price):
    if slices > replicas:
        with pytest.raises(InvalidInput):
            cost.compare_costs(pods, [{"instance_type": "x", "gpu_count": gpus}], {"x": price}, replicas=replicas,
                               slices_per_pod=slices)
        return
    view = cost.compare_costs(pods, [{"instance_type": "x", "gpu_count": gpus}], {"x": price}, replicas=replicas,
                              slices_per_pod=slices)
    line = view["candidates"][0]
    per_node = line["pods_per_node_sliced"]
    nodes = line["nodes_sliced"]
    # enough nodes, and not one too many
    assert nodes * per_node >= pods
    assert nodes == 0 or (nodes - 1) * per_node < pods
    # slicing never needs more nodes than whole GPUs
    assert nodes <= line["nodes_unsliced"]
    assert line["cost_per_hour_sliced"] <= line["cost_per_hour_unsliced"] + 1e-9
    assert line["savings_per_hour"] is None or line["savings_per_hour"] >= -1e-9


@pytest.mark.parametrize("fraction", [0.333333333334, 0.2, 0.1, 1 / 7, 0.5, 0.3])
def test_fraction_rule_is_the_sharing_core_one(fraction):
    """One rule for fraction -> replicas: the cost view counts what a sharing profile would
    advertise (main's float tolerance gave 3 for 0.333333333334, the profile 2)."""
    assert cost.replicas_from_fraction(fraction) == sharing.replicas_for_fraction(fraction)


@settings(max_examples=300, deadline=None)
@given(fraction=st.floats(min_value=1e-6, max_value=0.5, allow_nan=False))
def test_fraction_rule_property(fraction):
    assert cost.replicas_from_fraction(fraction) == sharing.replicas_for_fraction(fraction)
