# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prices, pure: the Pricing API's ``GetProducts`` answer read into $/hour, and the shipped
table's prices (``instance_types.py``) for the types it knows."""

from __future__ import annotations

import json

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import INSTANCE_TYPES


def parse_price_list(price_list, region=None, operating_system="Linux"):
    """Pricing ``GetProducts`` ``PriceList`` -> ``{instance_type: usd_per_hour}`` (pure).

    ``price_list`` is a list of JSON strings (or already decoded dicts), each a product with
    ``product.attributes`` and ``terms.OnDemand.<offer>.priceDimensions.<dim>.pricePerUnit.USD``.
    Keeps shared-tenancy, no-preinstalled-software, ``capacitystatus: Used`` products of the
    given OS (and region code when given); the lowest hourly price wins if several match.
    """
    prices = {}
    for item in price_list:
        product_doc = json.loads(item) if isinstance(item, (str, bytes)) else item
        attrs = (product_doc.get("product") or {}).get("attributes") or {}
        itype = attrs.get("instanceType")
        if not itype:
            continue
        if region and attrs.get("regionCode") and attrs["regionCode"] != region:
            continue
        if operating_system and attrs.get("operatingSystem", operating_system) != operating_system:
            continue
        if attrs.get("tenancy", "Shared") != "Shared":
            continue
        if attrs.get("preInstalledSw", "NA") != "NA":
            continue
        if attrs.get("capacitystatus", "Used") != "Used":
            continue
        for offer in ((product_doc.get("terms") or {}).get("OnDemand") or {}).values():
            for dim in (offer.get("priceDimensions") or {}).values():
                if dim.get("unit", "Hrs") not in ("Hrs", "Hours", "hour"):
                    continue
                usd = (dim.get("pricePerUnit") or {}).get("USD")
                if usd is None:
                    continue
                value = float(usd)
                if value <= 0:
                    continue
                if itype not in prices or value < prices[itype]:
                    prices[itype] = value
    return prices


def table_prices(instance_types):
    """``{type: usd_per_hour}`` from the shipped table for the types it has a price for."""
    prices = {}
    for name in instance_types:
        row = INSTANCE_TYPES.get(name)
        if row is not None and row.price_per_hour is not None:
            prices[name] = row.price_per_hour
    return prices
