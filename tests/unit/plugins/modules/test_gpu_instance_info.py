# -*- coding: utf-8 -*-
"""gpu_slicing.eks.gpu_instance_info: offline table, EC2 via moto, fallbacks and failures."""

from __future__ import annotations

import json
import os

from unittest import mock

import pytest
import yaml
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from moto import mock_aws

from ansible_collections.gpu_slicing.eks.plugins.modules import gpu_instance_info

SECRET_KEY = "instanceInfoSecretDoNotLeak/0123456789abcdef"


def run_module(args, capsys):
    # a module runs outside the controller: once anything imported controller code (an action
    # plugin, a filter test), warnings would go to Display instead of the result
    # and each module run is a fresh process: no warnings left over from an earlier run
    with mock.patch.object(ansible_internal, "is_controller", False), \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            gpu_instance_info.main()
    out = capsys.readouterr().out
    return exited.value.code, json.loads(out), out


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("EKS_CLUSTER_NAME", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_offline(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g5.xlarge", "g4dn.12xlarge"], "instance_source": "offline"}, capsys)
    assert code == 0 and result["changed"] is False and result["instance_source"] == "offline"
    g5 = result["instance_types"]["g5.xlarge"]
    assert g5["gpu_count"] == 1 and g5["gpu_name"] == "a10g" and g5["gpu_memory"].endswith("Mi")
    assert result["instance_types"]["g4dn.12xlarge"]["gpu_count"] == 4
    assert result["prices_as_of"]


def test_auto_without_aws_is_offline(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g6.xlarge"]}, capsys)
    assert code == 0 and result["instance_source"] == "offline" and not result.get("warnings")


def test_default_is_whole_table(no_aws, capsys):
    code, result, dummy = run_module({"instance_source": "offline"}, capsys)
    assert code == 0 and len(result["instance_types"]) > 10


def test_unknown_type_suggests(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g5.xlarg"], "instance_source": "offline"}, capsys)
    assert code == 1 and "g5.xlarge" in result["msg"]


def test_aws_via_moto(no_aws, capsys):
    with mock_aws():
        code, result, out = run_module({"instance_types": ["g5.xlarge", "g6e.xlarge"], "instance_source": "aws",
                                        "region": "us-east-1", "access_key": "AKIDTEST",
                                        "secret_key": SECRET_KEY}, capsys)
    assert code == 0, result
    assert result["instance_source"] == "aws"
    assert result["instance_types"]["g6e.xlarge"]["gpu_name"] == "l40s"
    assert result["instance_types"]["g5.xlarge"]["source"] == "aws"
    assert SECRET_KEY not in out


def test_auto_falls_back_with_warning(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g5.xlarge"], "region": "eu-west-1"}, capsys)
    assert code == 0 and result["instance_source"] == "offline"
    assert any("AWS_ACCESS_KEY_ID" in json.dumps(w) for w in result["warnings"]), result


def test_aws_without_credentials_fails(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g5.xlarge"], "instance_source": "aws", "region": "eu-west-1"}, capsys)
    assert code == 1 and result["error_kind"] == "no_credentials" and "AWS_ACCESS_KEY_ID" in result["msg"]


def test_check_mode(no_aws, capsys):
    code, result, dummy = run_module({"instance_types": ["g5.xlarge"], "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False


def test_docs_parse():
    doc = yaml.safe_load(gpu_instance_info.DOCUMENTATION)
    assert yaml.safe_load(gpu_instance_info.EXAMPLES) and yaml.safe_load(gpu_instance_info.RETURN)
    assert set(doc["options"]) == {"instance_types", "instance_source"}
