# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/token.py: the EKS bearer token and TokenSource."""

from __future__ import annotations

import copy
import datetime
import hashlib
import hmac
import logging
import os
import re
import stat
import urllib.parse

import botocore.auth
import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import eks as aws_eks
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import token as aws_token

from .aws_fakes import (  # noqa: F401 pylint: disable=unused-import
    UTC,
    T0,
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    CA_PEM,
    CA_B64,
    clean_aws_env,
    session,
    aws,
    FakeClock,
    query_of,
)


class TestToken:
    def test_format(self, session):
        token, expires_at = aws_token.eks_token(session, "gpu-demo", now=T0)
        assert token.startswith("k8s-aws-v1.")
        body = token[len("k8s-aws-v1."):]
        assert "=" not in body, "base64url without padding"
        assert re.fullmatch(r"[A-Za-z0-9_-]+", body), "base64url alphabet only"
        assert expires_at == T0 + datetime.timedelta(minutes=14)

    def test_presigned_url(self, session):
        token, dummy = aws_token.eks_token(session, "gpu-demo", now=T0)
        parts, query = query_of(token)
        assert parts.scheme == "https"
        assert parts.netloc == "sts.eu-west-1.amazonaws.com"
        assert query["Action"] == "GetCallerIdentity"
        assert query["Version"] == "2011-06-15"
        assert query["X-Amz-Expires"] == "60"
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Date"] == "20261124T100000Z"
        assert query["X-Amz-Credential"] == ACCESS_KEY + "/20261124/eu-west-1/sts/aws4_request"
        assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
        assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
        # the header is signed, not sent as a parameter
        assert "x-k8s-aws-id" not in query

    def test_signature_verifies_independently(self, session):
        """Recompute SigV4 by hand (as STS will): the cluster name is inside the signature."""
        token, dummy = aws_token.eks_token(session, "gpu-demo", now=T0)
        parts, query = query_of(token)

        def signature(cluster):
            pairs = sorted((k, v) for k, v in query.items() if k != "X-Amz-Signature")
            canonical_query = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
                                       for k, v in pairs)
            canonical = "\n".join(["GET", "/", canonical_query, "host:" + parts.netloc, "x-k8s-aws-id:" + cluster, "",
                                   "host;x-k8s-aws-id", hashlib.sha256(b"").hexdigest()])
            to_sign = "\n".join(["AWS4-HMAC-SHA256", "20261124T100000Z", "20261124/eu-west-1/sts/aws4_request",
                                 hashlib.sha256(canonical.encode()).hexdigest()])
            key = ("AWS4" + SECRET_KEY).encode()
            for part in ("20261124", "eu-west-1", "sts", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

        assert signature("gpu-demo") == query["X-Amz-Signature"]
        assert signature("other-cluster") != query["X-Amz-Signature"]

    def test_deterministic_for_fixed_clock(self, session):
        first = aws_token.eks_token(session, "gpu-demo", now=T0)
        second = aws_token.eks_token(session, "gpu-demo", now=T0)
        assert first == second
        later, dummy = aws_token.eks_token(session, "gpu-demo", now=T0 + datetime.timedelta(seconds=1))
        assert later != first[0]
        other, dummy = aws_token.eks_token(session, "other", now=T0)
        assert other != first[0]

    def test_naive_now_is_utc(self, session):
        aware = aws_token.eks_token(session, "gpu-demo", now=T0)
        naive = aws_token.eks_token(session, "gpu-demo", now=T0.replace(tzinfo=None))
        assert aware == naive

    def test_signing_clock_restored(self, session):
        original = botocore.auth.get_current_datetime
        aws_token.eks_token(session, "gpu-demo", now=T0)
        assert botocore.auth.get_current_datetime is original

    def test_real_clock_by_default(self, session):
        before = datetime.datetime.now(UTC).replace(microsecond=0)
        token, expires_at = aws_token.eks_token(session, "gpu-demo")
        after = datetime.datetime.now(UTC)
        dummy, query = query_of(token)
        signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert before <= signed <= after
        assert before + datetime.timedelta(minutes=14) <= expires_at <= after + datetime.timedelta(minutes=14)

    def test_session_token_is_signed_in(self, clean_aws_env):
        temp = aws_session.make_session(region="us-east-1", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                        session_token=SESSION_TOKEN)
        token, dummy = aws_token.eks_token(temp, "gpu-demo", now=T0)
        parts, query = query_of(token)
        assert parts.netloc == "sts.us-east-1.amazonaws.com"
        assert query["X-Amz-Security-Token"] == SESSION_TOKEN
        assert SECRET_KEY not in aws_token.decode_token(token)

    def test_empty_cluster_name(self, session):
        with pytest.raises(aws_session.AwsError) as err:
            aws_token.eks_token(session, "", now=T0)
        assert err.value.kind == "invalid"
        assert "eks_cluster_name" in str(err.value)

    def test_decode_rejects_other_tokens(self):
        with pytest.raises(ValueError):
            aws_token.decode_token("Bearer abc")


class TestTokenAgainstAwscli:
    """Oracle: awscli's own `aws eks get-token` generator (awscli from PyPI, imported, not
    re-implemented) must make the very same token for the same credentials, region, cluster
    and frozen clock."""

    @staticmethod
    def awscli_token(region, cluster, session_token=None):
        import botocore.session
        from awscli.customizations.eks.get_token import STSClientFactory, TokenGenerator

        core = botocore.session.get_session()
        core.set_credentials(ACCESS_KEY, SECRET_KEY, session_token)
        sts = STSClientFactory(core).get_sts_client(region_name=region)
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda remove_tzinfo=True: T0.replace(tzinfo=None)
        try:
            return TokenGenerator(sts).get_token(cluster)
        finally:
            botocore.auth.get_current_datetime = original

    @pytest.mark.parametrize("endpoints, region, host", [
        ("regional", "us-east-1", "sts.us-east-1.amazonaws.com"),
        ("regional", "eu-west-1", "sts.eu-west-1.amazonaws.com"),
        ("legacy", "us-east-1", "sts.amazonaws.com"),
        ("legacy", "eu-west-1", "sts.amazonaws.com"),
    ])
    @pytest.mark.parametrize("session_token", [None, SESSION_TOKEN])
    def test_same_token_as_awscli(self, clean_aws_env, endpoints, region, host, session_token):
        # AWS_STS_REGIONAL_ENDPOINTS is how a user picks legacy (global) STS; both sides read it.
        clean_aws_env.setenv("AWS_STS_REGIONAL_ENDPOINTS", endpoints)
        ours_session = aws_session.make_session(region=region, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                                session_token=session_token)
        ours, dummy = aws_token.eks_token(ours_session, "gpu-demo", now=T0)
        theirs = self.awscli_token(region, "gpu-demo", session_token)
        assert ours == theirs
        parts, query = query_of(ours)
        assert parts.netloc == host
        assert query.get("X-Amz-Security-Token") == session_token
        assert query["X-Amz-Date"] == "20261124T100000Z"
        # and it is not equal by accident: another cluster or second gives another token
        assert self.awscli_token(region, "other", session_token) != ours


class TestTokenSource:
    def test_refresh_only_past_margin(self, session):
        clock = FakeClock()
        source = aws_token.TokenSource(session, "gpu-demo", clock=clock)
        first = source.get()
        assert source.mint_count == 1
        assert source.expires_at == T0 + datetime.timedelta(minutes=14)
        clock.advance(minutes=12, seconds=59)
        assert source.get() == first, "still valid for more than the margin: no new token"
        assert source.mint_count == 1
        clock.advance(seconds=1)  # 13:00, i.e. expires_at - 60 s
        second = source.get()
        assert second != first
        assert source.mint_count == 2
        dummy, query = query_of(second)
        assert query["X-Amz-Date"] == "20261124T101300Z"
        assert source.expires_at == T0 + datetime.timedelta(minutes=27)

    def test_long_wait_never_uses_stale_token(self, session):
        """A 60-minute wait polling every 30 s: every token used is younger than 13 minutes."""
        clock = FakeClock()
        source = aws_token.TokenSource(session, "gpu-demo", clock=clock)
        for dummy in range(121):
            token = source.get()
            dummy, query = query_of(token)
            signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            assert clock.now - signed < datetime.timedelta(minutes=13)
            assert clock.now < source.expires_at
            clock.advance(seconds=30)
        assert source.mint_count == 5  # minted at 0, 13, 26, 39, 52 minutes

    def test_margin_is_configurable(self, session):
        clock = FakeClock()
        source = aws_token.TokenSource(session, "gpu-demo", clock=clock, refresh_margin=300)
        source.get()
        clock.advance(minutes=9)
        source.get()
        assert source.mint_count == 2

    def test_repr_hides_token(self, session, caplog):
        source = aws_token.TokenSource(session, "gpu-demo", clock=FakeClock())
        token = source.get()
        assert token not in repr(source) and token not in str(source)
        assert "redacted" in repr(source)
        logging.getLogger("test").warning("source: %s %r", source, source)
        assert token not in caplog.text

    def test_kubernetes_refresh_hook(self, session):
        from kubernetes import client as kclient

        clock = FakeClock()
        source = aws_token.TokenSource(session, "gpu-demo", clock=clock)
        info = {"name": "gpu-demo", "endpoint": "https://abc.gr7.eu-west-1.eks.amazonaws.com",
                "certificate_authority_data": CA_B64}
        config = aws_eks.kube_client_config(info, source)
        assert config.host == info["endpoint"]
        assert config.verify_ssl is True
        first = config.get_api_key_with_prefix("authorization")
        assert first.startswith("Bearer k8s-aws-v1.")
        assert config.auth_settings()["BearerToken"]["value"] == first
        # kubernetes copies configurations (Configuration.set_default / get_default_copy)
        copied = copy.deepcopy(config)
        clock.advance(minutes=13, seconds=1)
        second = config.get_api_key_with_prefix("authorization")
        assert second != first and second.startswith("Bearer k8s-aws-v1.")
        assert copied.get_api_key_with_prefix("authorization") == second
        assert source.mint_count == 2
        # what ApiClient puts on a request
        api = kclient.ApiClient(config)
        headers = {}
        api.update_params_for_auth(headers, [], ["BearerToken"], "/api/v1/nodes", "GET", None)
        assert headers["authorization"] == second

    def test_ca_file_is_private(self, session, tmp_path):
        info = {"name": "gpu-demo", "endpoint": "https://abc", "certificate_authority_data": CA_B64}
        config = aws_eks.kube_client_config(info, aws_token.TokenSource(session, "gpu-demo", clock=FakeClock()),
                                            ca_file_dir=str(tmp_path))
        assert os.path.dirname(config.ssl_ca_cert) == str(tmp_path)
        assert stat.S_IMODE(os.stat(config.ssl_ca_cert).st_mode) == 0o600
        with open(config.ssl_ca_cert, "rb") as handle:
            assert handle.read() == CA_PEM

    def test_no_connection_is_an_error(self, session):
        for info in (None, {}, {"name": "x", "endpoint": None}):
            with pytest.raises(aws_session.AwsError) as err:
                aws_eks.kube_client_config(info, aws_token.TokenSource(session, "x"))
            assert err.value.kind == "no_connection"
            for hint in ("eks_cluster_name", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "in-cluster"):
                assert hint in str(err.value)
        with pytest.raises(aws_session.AwsError):
            aws_eks.kube_client_config({"endpoint": "https://abc", "certificate_authority_data": CA_B64}, None)
