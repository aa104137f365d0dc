# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/ops/cost_info.py: typed options in, the cost view out."""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.cost_info import CostInfoOptions, cost_info

from aws.aws_fakes import clean_aws_env  # noqa: F401 pylint: disable=unused-import


class Context:
    check_mode = False
    diff = False

    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def params(**over):
    base = {"pods": 8, "fraction": 0.25, "instance_types": ["g4dn.xlarge", "g5.xlarge"], "instance_source": "offline",
            "pricing": "table", "prices": None, "region": None}
    base.update(over)
    return base


def test_options_read_prices_as_numbers():
    options = CostInfoOptions.from_params(params(prices={"g5.xlarge": "0.1"}))
    assert options.prices == {"g5.xlarge": 0.1} and options.pods == 8 and options.aws["region"] is None


def test_bad_price_is_invalid_input_before_anything_runs():
    with pytest.raises(InvalidInput) as info:
        CostInfoOptions.from_params(params(prices={"g5.xlarge": "cheap"}))
    assert info.value.to_dict() == {"field": "prices[g5.xlarge]", "value": "cheap", "why": "not a number",
                                    "fix": "give USD per hour, e.g. 1.006"}


def test_cost_view_with_given_and_table_prices(clean_aws_env):
    context = Context()
    result = cost_info(CostInfoOptions.from_params(params(prices={"g5.xlarge": 0.1})), context)
    assert result["changed"] is False and result["instance_source"] == "offline"
    assert result["price_source"].startswith("given + table")
    assert result["cheapest_sliced"] == {"instance_type": "g5.xlarge", "nodes": 2, "gpus": 2, "cost_per_hour": 0.2,
                                         "cost_per_month": 146.0}
    assert not context.warnings


def test_auto_pricing_without_credentials_warns_through_the_context(clean_aws_env):
    context = Context()
    result = cost_info(CostInfoOptions.from_params(params(pricing="auto", region="us-east-1")), context)
    assert result["price_source"].startswith("table")
    assert len(context.warnings) == 1 and "Pricing API not used" in context.warnings[0]
