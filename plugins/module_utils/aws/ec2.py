# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 and the Pricing API: GPU facts (``ec2:DescribeInstanceTypes``), on-demand prices
(``pricing:GetProducts``) and SSM public parameters (the AMI an alias resolves to).

Only the calls live here; reading the answers is pure code in ``core/instance_types.py``
(the one DescribeInstanceTypes parser) and ``core/pricing.py``.
"""

from __future__ import annotations

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    FALLBACK_KINDS,
    AwsError,
    ClientError,
    aws_requested,
    require_boto3,
    session_from_params,
    translate_error,
    utcnow,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import instance_types as table
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.pricing import parse_price_list, table_prices


# ---------------------------------------------------------------------------
# SSM public parameters (the AMI an alias resolves to)
# ---------------------------------------------------------------------------
def ssm_parameter_value(session, name):
    """``ssm:GetParameter`` of ``name`` in the session's region: its value, or None when AWS
    has no such parameter (raises :class:`AwsError` for anything else)."""
    require_boto3()
    try:
        return session.client("ssm", region_name=session.region_name).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise translate_error(exc, "reading SSM parameter %s (ssm:GetParameter)" % name,
                              region=session.region_name) from None
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "reading SSM parameter %s (ssm:GetParameter)" % name,
                              region=session.region_name) from None


# ---------------------------------------------------------------------------
# EC2 instance types
# ---------------------------------------------------------------------------
def describe_instance_types_pages(session, instance_types):
    """Raw ``DescribeInstanceTypes`` pages for the given types (paginated, 100 names per call)."""
    require_boto3()
    names = sorted(set(instance_types))
    pages = []
    try:
        client = session.client("ec2", region_name=session.region_name)
        paginator = client.get_paginator("describe_instance_types")
        for start in range(0, len(names), 100):
            for page in paginator.paginate(InstanceTypes=names[start:start + 100]):
                pages.append(page)
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "describing EC2 instance types", region=session.region_name) from None
    return pages


def gpu_instance_facts(session, instance_types):
    """GPU facts per instance type from ``ec2:DescribeInstanceTypes`` (paginated).

    Returns ``{instance_type: facts}`` (see :func:`core.instance_types.describe_facts`). Types that
    EC2 does not know in the session's region raise :class:`AwsError` (kind ``invalid``).
    """
    pages = describe_instance_types_pages(session, instance_types)
    facts = table.describe_facts(pages)
    missing = sorted(set(instance_types) - set(facts))
    if missing:
        raise AwsError("EC2 does not know the instance types %s in %s" % (", ".join(missing), session.region_name),
                       kind="invalid", fix="check the names (e.g. g5.xlarge) and that they exist in the region")
    return {name: facts[name] for name in instance_types}


def offline_instance_facts(instance_types=None):
    """Facts from the shipped table (``instance_types.py``); unknown names raise its error."""
    names = instance_types if instance_types else table.known_instance_types()
    return {name: table.facts_dict(table.lookup(name), "offline") for name in names}


def resolve_instance_facts(params, instance_types, source="auto", session_factory=None):
    """``(facts, source_used, warnings)`` for the modules.

    ``source``: ``aws`` (DescribeInstanceTypes, errors fail), ``offline`` (shipped table) or
    ``auto`` (AWS when a region is known, else the table; on missing credentials, no region,
    an unreachable endpoint or access denied it falls back to the table with a warning).
    """
    session_factory = session_factory or session_from_params
    warnings = []
    if source == "offline":
        return offline_instance_facts(instance_types), "offline", warnings
    if source == "auto" and not (params.get("region") or aws_requested(params)):
        return offline_instance_facts(instance_types), "offline", warnings
    names = instance_types or table.known_instance_types()
    try:
        session = session_factory(params)
        return gpu_instance_facts(session, names), "aws", warnings
    except AwsError as exc:
        if source == "aws" or exc.kind not in FALLBACK_KINDS:
            raise
        warnings.append("AWS not used for instance facts (%s); using the shipped table" % exc)
        return offline_instance_facts(instance_types), "offline", warnings


# ---------------------------------------------------------------------------
# Pricing API
# ---------------------------------------------------------------------------
#: The Pricing API answers only in a few regions; us-east-1 serves all of them.
PRICING_API_REGION = "us-east-1"


def on_demand_prices(session, instance_types, region):
    """On-demand Linux $/hour per instance type from the Pricing API (``pricing:GetProducts``)."""
    require_boto3()
    price_list = []
    try:
        client = session.client("pricing", region_name=PRICING_API_REGION)
        paginator = client.get_paginator("get_products")
        for itype in sorted(set(instance_types)):
            filters = [
                {"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype},
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            ]
            for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"):
                price_list.extend(page.get("PriceList", []))
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "reading on-demand prices from the Pricing API", region=PRICING_API_REGION) from None
    return parse_price_list(price_list, region=region)


def resolve_prices(params, instance_types, pricing="table", session_factory=None, today=None):
    """``(prices, price_source, prices_date, warnings)`` for the cost view.

    ``pricing``: ``table`` (the shipped, dated table: us-east-1 on-demand), ``api`` (Pricing
    API for ``region``, errors fail) or ``auto`` (the API when AWS options are given,
    falling back to the table on missing credentials/unreachable/denied). Types the API has
    no price for keep the table's price, with a warning.
    """
    session_factory = session_factory or session_from_params
    warnings = []
    table_source = "table (%s)" % table.PRICE_NOTE
    if pricing == "table" or (pricing == "auto" and not aws_requested(params) and not params.get("region")):
        return table_prices(instance_types), table_source, table.PRICES_AS_OF, warnings
    region = params.get("region") or table.PRICE_REGION
    try:
        session = session_factory(params)
        prices = on_demand_prices(session, instance_types, region)
    except AwsError as exc:
        if pricing == "api" or exc.kind not in FALLBACK_KINDS:
            raise
        warnings.append("Pricing API not used (%s); using the shipped table" % exc)
        return table_prices(instance_types), table_source, table.PRICES_AS_OF, warnings
    fallback = table_prices([t for t in instance_types if t not in prices])
    if fallback:
        warnings.append("The Pricing API returned no %s price for %s; using the shipped table's"
                        % (region, ", ".join(sorted(fallback))))
        prices.update(fallback)
    today = today or utcnow().date().isoformat()
    return prices, "pricing_api (%s, on-demand, Linux)" % region, today, warnings
