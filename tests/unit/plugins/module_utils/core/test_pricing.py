# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/core/pricing.py (the Pricing API's answer, the table's prices)."""

from __future__ import annotations

import json
import os

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.pricing import parse_price_list, table_prices

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "aws", "fixtures")


def load_price_list():
    with open(os.path.join(FIXTURES, "pricing_get_products_handwritten.json")) as handle:
        return json.load(handle)


def test_parse_handwritten_fixture():
    page = load_price_list()
    prices = parse_price_list(page["PriceList"], region="us-east-1")
    # Windows, dedicated tenancy, SQL preinstalled, reservation and other-region rows are ignored
    assert prices == {"g5.xlarge": 1.006, "g4dn.xlarge": 0.526}


def test_parse_accepts_decoded_dicts():
    decoded = [json.loads(item) for item in load_price_list()["PriceList"]]
    assert parse_price_list(decoded, region="us-east-1")["g5.xlarge"] == 1.006


def test_table_prices_only_known_priced_types():
    prices = table_prices(["g5.xlarge", "x9.unknown"])
    assert set(prices) == {"g5.xlarge"} and prices["g5.xlarge"] > 0
