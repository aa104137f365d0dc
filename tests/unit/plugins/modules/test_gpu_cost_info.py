# -*- coding: utf-8 -*-
"""gpu_slicing.eks.gpu_cost_info: table prices, given prices, Pricing API (stubbed), errors."""

from __future__ import annotations

import json
import os

import boto3
from unittest import mock

import pytest
import yaml
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from botocore.stub import Stubber

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import options as aws_options
from ansible_collections.gpu_slicing.eks.plugins.modules import gpu_cost_info

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "module_utils", "aws", "fixtures",
                       "pricing_get_products_handwritten.json")
SECRET_KEY = "costInfoSecretDoNotLeak/0123456789abcdef"


def run_module(args, capsys):
    # a module runs outside the controller: once anything imported controller code (an action
    # plugin, a filter test), warnings would go to Display instead of the result
    # and each module run is a fresh process: no warnings left over from an earlier run
    with mock.patch.object(ansible_internal, "is_controller", False), \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            gpu_cost_info.main()
    out = capsys.readouterr().out
    return exited.value.code, json.loads(out), out


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_blueprint_with_table_prices(no_aws, capsys):
    code, result, dummy = run_module({"pods": 17, "fraction": 0.25,
                                      "instance_types": ["g4dn.xlarge", "g5.xlarge", "g4dn.12xlarge"]}, capsys)
    assert code == 0, result
    assert result["changed"] is False
    assert result["cheapest_sliced"]["instance_type"] == "g4dn.xlarge"
    assert result["cheapest_sliced"]["nodes"] == 5
    assert result["cheapest_unsliced"]["nodes"] == 17
    assert result["savings_percent"] > 0
    assert result["price_source"].startswith("table") and result["prices_date"]
    assert result["instance_source"] == "offline"


def test_given_prices_win(no_aws, capsys):
    code, result, dummy = run_module({"pods": 8, "replicas": 4, "instance_types": ["g4dn.xlarge", "g5.xlarge"],
                                      "prices": {"g5.xlarge": "0.1"}}, capsys)
    assert code == 0
    assert result["cheapest_sliced"]["instance_type"] == "g5.xlarge"
    assert result["cheapest_sliced"]["cost_per_hour"] == 0.2
    assert result["price_source"].startswith("given + table")


def test_pricing_api(no_aws, capsys, monkeypatch):
    with open(FIXTURE) as handle:
        page = json.load(handle)
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                          aws_secret_access_key=SECRET_KEY)
    stub = Stubber(client)
    for itype in ("g4dn.xlarge", "g5.xlarge"):
        stub.add_response("get_products", {"PriceList": [p for p in page["PriceList"] if itype in p]})

    class Session:
        region_name = "us-east-1"

        def client(self, service, **kwargs):
            assert service == "pricing" and kwargs.get("region_name") == "us-east-1"
            return client

    monkeypatch.setattr(aws_ec2, "session_from_params", lambda params: Session())
    with stub:
        code, result, out = run_module({"pods": 4, "fraction": 0.5, "instance_types": ["g5.xlarge", "g4dn.xlarge"],
                                        "pricing": "api", "region": "us-east-1", "access_key": "AKIDTEST",
                                        "secret_key": SECRET_KEY}, capsys)
    assert code == 0, result
    assert result["price_source"].startswith("pricing_api (us-east-1")
    by_type = {c["instance_type"]: c for c in result["candidates"]}
    assert by_type["g5.xlarge"]["price_per_hour"] == 1.006
    assert SECRET_KEY not in out


def test_pricing_api_unreachable_fails_but_auto_falls_back(no_aws, capsys):
    code, result, dummy = run_module({"pods": 4, "fraction": 0.5, "instance_types": ["g5.xlarge"], "pricing": "api",
                                      "region": "us-east-1"}, capsys)
    assert code == 1 and result["error_kind"] == "no_credentials"
    code, result, dummy = run_module({"pods": 4, "fraction": 0.5, "instance_types": ["g5.xlarge"], "pricing": "auto",
                                      "region": "us-east-1"}, capsys)
    assert code == 0 and result["price_source"].startswith("table") and result["warnings"]


@pytest.mark.parametrize("args,needle", [
    ({"pods": 4, "instance_types": ["g5.xlarge"]}, "fraction"),
    ({"pods": 4, "fraction": 0.5, "replicas": 2, "instance_types": ["g5.xlarge"]}, "mutually exclusive"),
    ({"pods": 4, "fraction": 1.5, "instance_types": ["g5.xlarge"]}, "fraction"),
    ({"pods": 4, "replicas": 2, "slices_per_pod": 3, "instance_types": ["g5.xlarge"]}, "slices_per_pod"),
    ({"pods": 4, "fraction": 0.5, "instance_types": ["g5.xlarg"]}, "g5.xlarge"),
    ({"pods": 4, "fraction": 0.5, "instance_types": ["g5.xlarge"], "prices": {"g5.xlarge": "cheap"}}, "prices"),
])
def test_errors(no_aws, capsys, args, needle):
    code, result, dummy = run_module(args, capsys)
    assert code == 1 and needle in result["msg"]


def test_check_mode(no_aws, capsys):
    code, result, dummy = run_module({"pods": 3, "fraction": 0.5, "instance_types": ["g6.xlarge"],
                                      "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False


def test_docs_parse():
    doc = yaml.safe_load(gpu_cost_info.DOCUMENTATION)
    assert yaml.safe_load(gpu_cost_info.EXAMPLES) and yaml.safe_load(gpu_cost_info.RETURN)
    assert set(doc["options"]) == set(gpu_cost_info.argument_spec()) - set(aws_options.eks_connection_argument_spec())
