# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/ops/instance_info.py: typed options in, GPU facts out."""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import instance_info as ops

from aws.aws_fakes import aws, clean_aws_env  # noqa: F401 pylint: disable=unused-import

from .test_cost_info import Context


def test_offline_facts_and_table_dates(clean_aws_env):
    options = ops.InstanceInfoOptions.from_params({"instance_types": ["g5.xlarge"], "instance_source": "offline"})
    result = ops.instance_info(options, Context())
    assert result["instance_source"] == "offline" and result["instance_types"]["g5.xlarge"]["gpu_count"] == 1
    assert result["prices_as_of"] and result["price_note"] and result["changed"] is False


def test_unknown_type_is_invalid_input(clean_aws_env):
    options = ops.InstanceInfoOptions.from_params({"instance_types": ["g5.xlarg"], "instance_source": "offline"})
    with pytest.raises(InvalidInput) as info:
        ops.instance_info(options, Context())
    assert "g5.xlarge" in info.value.fix


def test_aws_source_warns_about_types_without_gpus(aws):
    context = Context()
    options = ops.InstanceInfoOptions.from_params({"instance_types": ["g5.xlarge", "m5.large"], "instance_source": "aws",
                                                   "region": "us-east-1"})
    result = ops.instance_info(options, context)
    assert result["instance_source"] == "aws" and result["instance_types"]["m5.large"]["gpu_count"] == 0
    assert context.warnings == ["m5.large has no GPU"]


def test_aws_source_without_boto3_says_so(clean_aws_env, monkeypatch):
    monkeypatch.setattr(ops, "HAS_BOTO3", False)
    options = ops.InstanceInfoOptions.from_params({"instance_types": ["g5.xlarge"], "instance_source": "aws"})
    with pytest.raises(GpuSlicingError) as info:
        ops.instance_info(options, Context())
    result = info.value.to_result()
    assert result["error_kind"] == "missing_library" and "boto3" in result["msg"] and "exception" in result
