# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/eks.py: DescribeCluster and the kube configuration."""

from __future__ import annotations

import os

import boto3
import botocore.exceptions
import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import eks as aws_eks
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session

from .aws_fakes import (  # noqa: F401 pylint: disable=unused-import
    SECRET_KEY,
    CA_B64,
    clean_aws_env,
    aws,
    create_moto_cluster,
    FakeSession,
    stubbed,
    FakeClock,
)


class TestDescribeCluster:
    def test_moto_cluster(self, aws):
        created = create_moto_cluster()
        s = aws_session.make_session(region="eu-west-1")
        info = aws_eks.describe_cluster(s, "gpu-demo")
        assert info["name"] == "gpu-demo"
        assert info["region"] == "eu-west-1"
        assert info["status"] == "ACTIVE"
        assert info["endpoint"] == created["endpoint"]
        assert info["certificate_authority_data"] == created["certificateAuthority"]["data"]
        assert info["version"] == "1.36"
        assert info["arn"].endswith(":cluster/gpu-demo")

    def test_not_found(self, aws):
        create_moto_cluster()
        s = aws_session.make_session(region="eu-west-1")
        with pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(s, "missing")
        assert err.value.kind == "not_found"
        assert "'missing'" in str(err.value) and "eu-west-1" in str(err.value)
        assert "eks_cluster_name" in str(err.value)

    def test_wrong_region(self, aws):
        create_moto_cluster(region="eu-west-1")
        with pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(aws_session.make_session(region="us-east-1"), "gpu-demo")
        assert err.value.kind == "not_found"
        assert "us-east-1" in str(err.value)

    @pytest.mark.parametrize("status", ["CREATING", "UPDATING", "DELETING", "FAILED"])
    def test_not_active(self, clean_aws_env, status):
        client, stub = stubbed("eks")
        stub.add_response("describe_cluster", {"cluster": {
            "name": "gpu-demo", "status": status, "endpoint": "https://x.eks.amazonaws.com",
            "certificateAuthority": {"data": CA_B64}}}, {"name": "gpu-demo"})
        with stub, pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "not_active"
        assert status in str(err.value) and "ACTIVE" in str(err.value)

    @pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
                                      "InvalidClientTokenId"])
    def test_invalid_or_denied_credentials(self, clean_aws_env, code):
        client, stub = stubbed("eks")
        stub.add_client_error("describe_cluster", service_error_code=code,
                              service_message="The security token included in the request is invalid",
                              http_status_code=403)
        with stub, pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "access_denied"
        assert code in str(err.value) and "credentials" in str(err.value)
        assert SECRET_KEY not in str(err.value)

    def test_no_credentials_at_call_time(self, clean_aws_env):
        s = boto3.session.Session(region_name="eu-west-1")  # no credentials anywhere
        with pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(s, "gpu-demo")
        assert err.value.kind == "no_credentials"
        assert "AWS_ACCESS_KEY_ID" in str(err.value)

    def test_other_client_error(self, clean_aws_env):
        client, stub = stubbed("eks")
        stub.add_client_error("describe_cluster", service_error_code="ServerException", service_message="boom",
                              http_status_code=500)
        with stub, pytest.raises(aws_session.AwsError) as err:
            aws_eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "aws" and "ServerException" in str(err.value)

    def test_unreachable(self):
        exc = botocore.exceptions.EndpointConnectionError(endpoint_url="https://eks.eu-west-1.amazonaws.com")
        err = aws_session.translate_error(exc, "describing EKS cluster", region="eu-west-1")
        assert err.kind == "unreachable" and "network" in str(err)


class TestConnect:
    def test_kube_configuration_from_params(self, aws):
        create_moto_cluster()
        clock = FakeClock()
        params = {"eks_cluster_name": "gpu-demo", "region": "eu-west-1"}
        config = aws_eks.kube_configuration_from_params(params, clock=clock)
        assert config.host.startswith("https://")
        assert config.get_api_key_with_prefix("authorization").startswith("Bearer k8s-aws-v1.")
        assert os.path.exists(config.ssl_ca_cert)

    def test_connection_hides_its_token(self, aws):
        create_moto_cluster()
        conn = aws_eks.connect({"eks_cluster_name": "gpu-demo", "region": "eu-west-1"}, clock=FakeClock())
        config = conn.kube_client_config()
        token = conn.token_source.get()
        assert token.startswith("k8s-aws-v1.") and config.host == conn.cluster_info["endpoint"]
        assert token not in repr(conn)

    def test_connect_requires_cluster_name(self, clean_aws_env):
        with pytest.raises(aws_session.AwsError) as err:
            aws_eks.connect({"region": "eu-west-1"})
        assert err.value.kind == "no_connection"
