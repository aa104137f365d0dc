# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/ops/connection_info.py: an EKS cluster's endpoint, CA and token."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import AwsError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import connection_info as ops

from aws.aws_fakes import FakeClock, aws, clean_aws_env, create_moto_cluster  # noqa: F401 pylint: disable=unused-import

from .test_cost_info import Context


def test_no_cluster_name_is_refused_before_any_call(clean_aws_env):
    with pytest.raises(AwsError) as info:
        ops.ConnectionInfoOptions.from_params({"region": "eu-west-1"})
    assert info.value.kind == "no_connection" and "eks_cluster_name" in str(info.value)


def test_check_mode_writes_no_ca_file_and_reports_the_diff(aws, tmp_path):
    created = create_moto_cluster()
    path = tmp_path / "ca.crt"
    options = ops.ConnectionInfoOptions.from_params({"eks_cluster_name": "gpu-demo", "region": "eu-west-1",
                                                     "ca_cert_path": str(path), "include_token": False})
    context = Context()
    context.check_mode = context.diff = True
    result = ops.connection_info(options, context)
    assert result["ca_cert_state"] == "would write" and result["changed"] is True and not path.exists()
    pem = base64.b64decode(created["certificateAuthority"]["data"])
    assert result["diff"]["after"] == pem.decode("utf-8", "replace") and result["diff"]["before"] == ""
    assert "api_key" not in result and result["host"] == created["endpoint"]


def test_token_and_expiration(aws):
    create_moto_cluster()
    options = ops.ConnectionInfoOptions.from_params({"eks_cluster_name": "gpu-demo", "region": "eu-west-1"})
    result = ops.connection_info(options, Context(), clock=FakeClock())
    assert result["api_key"].startswith("k8s-aws-v1.") and result["expiration"] == "2026-11-24T10:14:00Z"
