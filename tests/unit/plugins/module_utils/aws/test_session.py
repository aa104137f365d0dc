# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/session.py: sessions, credentials and AwsError."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import token as aws_token

from .aws_fakes import (  # noqa: F401 pylint: disable=unused-import
    UTC,
    T0,
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    clean_aws_env,
    session,
    aws,
    FakeSession,
    stubbed,
    query_of,
)


class TestSession:
    def test_no_credentials_says_what_to_set(self, clean_aws_env):
        with pytest.raises(aws_session.AwsError) as err:
            aws_session.make_session(region="eu-west-1")
        message = str(err.value)
        assert err.value.kind == "no_credentials"
        for hint in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                     "access_key", "aws_profile"):
            assert hint in message

    def test_no_region_says_what_to_set(self, clean_aws_env):
        with pytest.raises(aws_session.AwsError) as err:
            aws_session.make_session(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        assert err.value.kind == "no_region"
        assert "region" in str(err.value) and "AWS_REGION" in str(err.value)

    def test_half_a_key_pair(self, clean_aws_env):
        with pytest.raises(aws_session.AwsError) as err:
            aws_session.make_session(region="eu-west-1", access_key=ACCESS_KEY)
        assert err.value.kind == "no_credentials"
        with pytest.raises(aws_session.AwsError):
            aws_session.make_session(region="eu-west-1", secret_key=SECRET_KEY)

    def test_unknown_profile(self, clean_aws_env):
        with pytest.raises(aws_session.AwsError) as err:
            aws_session.make_session(region="eu-west-1", profile="does-not-exist")
        assert err.value.kind == "no_credentials"
        assert "AWS_PROFILE" in str(err.value)

    def test_env_credentials_awx_style(self, clean_aws_env):
        """AWX's AWS credential injects AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SECURITY_TOKEN."""
        clean_aws_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        clean_aws_env.setenv("AWS_SECURITY_TOKEN", SESSION_TOKEN)
        s = aws_session.make_session(region="eu-west-1")
        creds = s.get_credentials().get_frozen_credentials()
        assert creds.access_key == ACCESS_KEY
        assert creds.token == SESSION_TOKEN

    def test_params(self, clean_aws_env):
        s = aws_session.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY,
                                             "secret_key": SECRET_KEY, "session_token": SESSION_TOKEN})
        assert s.region_name == "us-west-2"
        assert s.get_credentials().get_frozen_credentials().token == SESSION_TOKEN

    def test_endpoint_url(self, clean_aws_env):
        """amazon.aws's endpoint_url: every client of the session, the role's included, uses it."""
        s = aws_session.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
                                             "endpoint_url": "http://127.0.0.1:4566"})
        assert s.client("eks").meta.endpoint_url == "http://127.0.0.1:4566"
        assert s.client("ec2", region_name="eu-west-1").meta.endpoint_url == "http://127.0.0.1:4566"
        plain = aws_session.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
        assert plain.client("eks").meta.endpoint_url != "http://127.0.0.1:4566"

    def test_assume_role(self, aws):
        s = aws_session.make_session(region="eu-west-1", role_arn="arn:aws:iam::123456789012:role/gpu-deployer")
        creds = s.get_credentials().get_frozen_credentials()
        assert creds.access_key != "testing" and creds.token
        identity = s.client("sts").get_caller_identity()
        assert identity["Arn"].endswith("assumed-role/gpu-deployer/gpu-slicing-eks")
        token, dummy = aws_token.eks_token(s, "gpu-demo", now=T0)
        dummy, query = query_of(token)
        assert query["X-Amz-Credential"].startswith(creds.access_key + "/")
        assert query["X-Amz-Security-Token"] == creds.token

    def test_assumed_role_is_renewed_before_expiry(self, clean_aws_env):
        """Issue 13 item 8: the role's credentials are refreshed (botocore's assume-role
        refresh), not taken from one AssumeRole answer: when the first answer is near its
        expiry, the next use calls AssumeRole again and tokens are signed with the new keys."""
        sts, stub = stubbed("sts")
        now = datetime.datetime.now(UTC)
        role = "arn:aws:iam::123456789012:role/gpu-deployer"
        expected = {"RoleArn": role, "RoleSessionName": "gpu-slicing-eks"}

        def answer(key, expires_in):
            return {"Credentials": {"AccessKeyId": key, "SecretAccessKey": "secret-" + key,
                                    "SessionToken": "token-" + key, "Expiration": now + expires_in},
                    "AssumedRoleUser": {"AssumedRoleId": "AROAEXAMPLE:gpu-slicing-eks",
                                        "Arn": "arn:aws:sts::123456789012:assumed-role/gpu-deployer/gpu-slicing-eks"}}

        base = FakeSession(clients={"sts": sts})
        with stub:
            # the first answer is already inside botocore's refresh window (5 minutes left)
            stub.add_response("assume_role", answer("ASIAFIRSTANSWER00001", datetime.timedelta(minutes=5)), expected)
            assumed = aws_session.assume_role_session(base, role)
            stub.assert_no_pending_responses()  # AssumeRole ran at once (a refused role fails here)
            stub.add_response("assume_role", answer("ASIASECONDANSWER0002", datetime.timedelta(hours=1)), expected)
            credentials = assumed.get_credentials()
            second = credentials.get_frozen_credentials()
            token, dummy = aws_token.eks_token(assumed, "gpu-demo", now=T0)
            # an hour left: no third AssumeRole (the Stubber would refuse an unexpected call)
            third = credentials.get_frozen_credentials()
            stub.assert_no_pending_responses()
        assert second.access_key == third.access_key == "ASIASECONDANSWER0002"
        dummy, query = query_of(token)
        assert query["X-Amz-Credential"].startswith("ASIASECONDANSWER0002/")
        assert query["X-Amz-Security-Token"] == "token-ASIASECONDANSWER0002"
        assert assumed.region_name == "eu-west-1"

    def test_assume_role_denied(self, clean_aws_env):
        sts, stub = stubbed("sts")
        stub.add_client_error("assume_role", service_error_code="AccessDenied",
                              service_message="User is not authorized to perform: sts:AssumeRole", http_status_code=403)
        base = FakeSession(clients={"sts": sts})
        with stub, pytest.raises(aws_session.AwsError) as err:
            aws_session.assume_role_session(base, "arn:aws:iam::123456789012:role/nope")
        assert err.value.kind == "access_denied"
        assert "arn:aws:iam::123456789012:role/nope" in str(err.value)
        assert SECRET_KEY not in str(err.value)


def test_aws_error_is_a_gpu_slicing_error_with_its_kind():
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError

    err = aws_session.AwsError("No AWS region is set", kind="no_region", fix=aws_session.REGION_HINT)
    assert isinstance(err, GpuSlicingError) and err.kind == "no_region" and err.fix == aws_session.REGION_HINT
    assert err.to_result() == {"msg": "No AWS region is set. Fix: " + aws_session.REGION_HINT, "error_kind": "no_region"}
    assert aws_session.AwsError("boom").to_result()["error_kind"] == "aws"
