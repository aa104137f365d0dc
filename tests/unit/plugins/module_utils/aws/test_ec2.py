# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/ec2.py: DescribeInstanceTypes, the Pricing API, SSM."""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session

from core.test_instance_types import it_entry
from core.test_pricing import load_price_list

from .aws_fakes import (  # noqa: F401 pylint: disable=unused-import
    clean_aws_env,
    aws,
    FakeSession,
    stubbed,
)


class TestInstanceTypes:
    def test_moto(self, aws):
        s = aws_session.make_session(region="us-east-1")
        facts = aws_ec2.gpu_instance_facts(s, ["g4dn.12xlarge", "g5.xlarge", "m5.large"])
        assert list(facts) == ["g4dn.12xlarge", "g5.xlarge", "m5.large"]
        assert facts["g4dn.12xlarge"]["gpu_count"] == 4
        assert facts["g4dn.12xlarge"]["gpu_name"] == "t4"
        assert facts["g4dn.12xlarge"]["gpu_memory_mib"] == 16384
        assert facts["g5.xlarge"]["karpenter_labels"]["karpenter.k8s.aws/instance-gpu-name"] == "a10g"
        assert facts["m5.large"]["gpu_count"] == 0

    def test_paginated(self, clean_aws_env):
        client, stub = stubbed("ec2")
        names = ["g4dn.xlarge", "g5.xlarge"]
        stub.add_response("describe_instance_types",
                          {"InstanceTypes": [it_entry("g4dn.xlarge", "T4", mem=16384)], "NextToken": "page2"},
                          {"InstanceTypes": names})
        stub.add_response("describe_instance_types", {"InstanceTypes": [it_entry("g5.xlarge")]},
                          {"InstanceTypes": names, "NextToken": "page2"})
        with stub:
            facts = aws_ec2.gpu_instance_facts(FakeSession(clients={"ec2": client}), names)
            stub.assert_no_pending_responses()
        assert facts["g4dn.xlarge"]["gpu_name"] == "t4" and facts["g5.xlarge"]["gpu_name"] == "a10g"

    def test_unknown_type(self, clean_aws_env):
        client, stub = stubbed("ec2")
        stub.add_response("describe_instance_types", {"InstanceTypes": []}, {"InstanceTypes": ["g9.huge"]})
        with stub, pytest.raises(aws_session.AwsError) as err:
            aws_ec2.gpu_instance_facts(FakeSession(clients={"ec2": client}), ["g9.huge"])
        assert "g9.huge" in str(err.value)

    def test_resolve_offline_and_auto(self, clean_aws_env):
        facts, source, warnings = aws_ec2.resolve_instance_facts({}, ["g5.xlarge"], "auto")
        assert source == "offline" and facts["g5.xlarge"]["source"] == "offline" and not warnings
        # AWS options given but no credentials: auto falls back, with a warning
        facts, source, warnings = aws_ec2.resolve_instance_facts({"region": "eu-west-1"}, ["g5.xlarge"], "auto")
        assert source == "offline" and "AWS_ACCESS_KEY_ID" in warnings[0]
        with pytest.raises(aws_session.AwsError):
            aws_ec2.resolve_instance_facts({"region": "eu-west-1"}, ["g5.xlarge"], "aws")

    def test_resolve_aws(self, aws):
        facts, source, dummy = aws_ec2.resolve_instance_facts({"region": "us-east-1"}, ["g6.xlarge"], "auto")
        assert source == "aws" and facts["g6.xlarge"]["gpu_name"] == "l4"


class TestPricing:
    def test_on_demand_prices_stubbed(self, clean_aws_env):
        client, stub = stubbed("pricing", region="us-east-1")
        page = load_price_list()
        for itype in ("g4dn.xlarge", "g5.xlarge"):
            stub.add_response("get_products", {"PriceList": [p for p in page["PriceList"] if itype in p],
                                               "FormatVersion": "aws_v1"})
        with stub:
            prices = aws_ec2.on_demand_prices(FakeSession(clients={"pricing": client}), ["g5.xlarge", "g4dn.xlarge"],
                                              "us-east-1")
        assert prices == {"g5.xlarge": 1.006, "g4dn.xlarge": 0.526}

    def test_resolve_prices(self, clean_aws_env):
        prices, source, date, warnings = aws_ec2.resolve_prices({}, ["g5.xlarge"], "auto")
        assert prices["g5.xlarge"] > 0 and source.startswith("table") and date and not warnings
        prices, source, dummy, warnings = aws_ec2.resolve_prices({"region": "us-east-1"}, ["g5.xlarge"], "auto")
        assert source.startswith("table") and warnings
        with pytest.raises(aws_session.AwsError):
            aws_ec2.resolve_prices({"region": "us-east-1"}, ["g5.xlarge"], "api")

    def test_resolve_prices_api_with_gap(self, clean_aws_env):
        client, stub = stubbed("pricing", region="us-east-1")
        page = load_price_list()
        stub.add_response("get_products", {"PriceList": [p for p in page["PriceList"] if "g5.xlarge" in p]})
        stub.add_response("get_products", {"PriceList": []})
        fake = FakeSession(region="us-east-1", clients={"pricing": client})
        with stub:
            prices, source, date, warnings = aws_ec2.resolve_prices(
                {"region": "us-east-1"}, ["g5.xlarge", "g6.xlarge"], "api",
                session_factory=lambda params: fake, today="2026-11-24")
        assert source.startswith("pricing_api") and date == "2026-11-24"
        assert prices["g5.xlarge"] == 1.006 and prices["g6.xlarge"] > 0
        assert "g6.xlarge" in warnings[0]
