# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/eks.py (the one place that talks to AWS).

AWS is emulated by moto (``mock_aws``) or botocore's Stubber; nothing leaves the machine.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import urllib.parse

import boto3
import botocore.auth
import botocore.credentials
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import eks

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
ACCESS_KEY = "AKIDEXAMPLEGPUSLICE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENgpuslicing"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# A real PEM-shaped CA (content is arbitrary; the client only writes it to a file here).
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfakeCAforunittests\n-----END CERTIFICATE-----\n"
CA_B64 = base64.b64encode(CA_PEM).decode()


@pytest.fixture
def clean_aws_env(monkeypatch, tmp_path):
    """No AWS settings from the machine: no env credentials, config files, IMDS or region."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def session(clean_aws_env):
    return eks.make_session(region="eu-west-1", access_key=ACCESS_KEY, secret_key=SECRET_KEY)


@pytest.fixture
def aws(clean_aws_env):
    clean_aws_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def create_moto_cluster(name="gpu-demo", region="eu-west-1"):
    client = boto3.client("eks", region_name=region)
    client.create_cluster(
        name=name,
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]},
        version="1.36",
    )
    return client.describe_cluster(name=name)["cluster"]


class FakeSession:
    """Stands in for a boto3 Session: hands out pre-stubbed clients."""

    def __init__(self, region="eu-west-1", clients=None):
        self.region_name = region
        self._clients = clients or {}

    def client(self, service, region_name=None, **kwargs):
        return self._clients[service]

    def get_credentials(self):
        return botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)


def stubbed(service, region="eu-west-1"):
    client = boto3.client(service, region_name=region, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)
    return client, Stubber(client)


def query_of(token):
    url = eks.decode_token(token)
    parts = urllib.parse.urlsplit(url)
    return parts, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))


# ---------------------------------------------------------------------------
# token
# ---------------------------------------------------------------------------
class TestToken:
    def test_format(self, session):
        token, expires_at = eks.eks_token(session, "gpu-demo", now=T0)
        assert token.startswith("k8s-aws-v1.")
        body = token[len("k8s-aws-v1."):]
        assert "=" not in body, "base64url without padding"
        assert re.fullmatch(r"[A-Za-z0-9_-]+", body), "base64url alphabet only"
        assert expires_at == T0 + datetime.timedelta(minutes=14)

    def test_presigned_url(self, session):
        token, dummy = eks.eks_token(session, "gpu-demo", now=T0)
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
        token, dummy = eks.eks_token(session, "gpu-demo", now=T0)
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
        first = eks.eks_token(session, "gpu-demo", now=T0)
        second = eks.eks_token(session, "gpu-demo", now=T0)
        assert first == second
        later, dummy = eks.eks_token(session, "gpu-demo", now=T0 + datetime.timedelta(seconds=1))
        assert later != first[0]
        other, dummy = eks.eks_token(session, "other", now=T0)
        assert other != first[0]

    def test_naive_now_is_utc(self, session):
        aware = eks.eks_token(session, "gpu-demo", now=T0)
        naive = eks.eks_token(session, "gpu-demo", now=T0.replace(tzinfo=None))
        assert aware == naive

    def test_signing_clock_restored(self, session):
        original = botocore.auth.get_current_datetime
        eks.eks_token(session, "gpu-demo", now=T0)
        assert botocore.auth.get_current_datetime is original

    def test_real_clock_by_default(self, session):
        before = datetime.datetime.now(UTC).replace(microsecond=0)
        token, expires_at = eks.eks_token(session, "gpu-demo")
        after = datetime.datetime.now(UTC)
        dummy, query = query_of(token)
        signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert before <= signed <= after
        assert before + datetime.timedelta(minutes=14) <= expires_at <= after + datetime.timedelta(minutes=14)

    def test_session_token_is_signed_in(self, clean_aws_env):
        temp = eks.make_session(region="us-east-1", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                session_token=SESSION_TOKEN)
        token, dummy = eks.eks_token(temp, "gpu-demo", now=T0)
        parts, query = query_of(token)
        assert parts.netloc == "sts.us-east-1.amazonaws.com"
        assert query["X-Amz-Security-Token"] == SESSION_TOKEN
        assert SECRET_KEY not in eks.decode_token(token)

    def test_empty_cluster_name(self, session):
        with pytest.raises(eks.AwsError) as err:
            eks.eks_token(session, "", now=T0)
        assert err.value.kind == "invalid"
        assert "eks_cluster_name" in str(err.value)

    def test_decode_rejects_other_tokens(self):
        with pytest.raises(ValueError):
            eks.decode_token("Bearer abc")


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
        ours_session = eks.make_session(region=region, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                        session_token=session_token)
        ours, dummy = eks.eks_token(ours_session, "gpu-demo", now=T0)
        theirs = self.awscli_token(region, "gpu-demo", session_token)
        assert ours == theirs
        parts, query = query_of(ours)
        assert parts.netloc == host
        assert query.get("X-Amz-Security-Token") == session_token
        assert query["X-Amz-Date"] == "20261124T100000Z"
        # and it is not equal by accident: another cluster or second gives another token
        assert self.awscli_token(region, "other", session_token) != ours


# ---------------------------------------------------------------------------
# sessions and credential errors
# ---------------------------------------------------------------------------
class TestSession:
    def test_no_credentials_says_what_to_set(self, clean_aws_env):
        with pytest.raises(eks.AwsError) as err:
            eks.make_session(region="eu-west-1")
        message = str(err.value)
        assert err.value.kind == "no_credentials"
        for hint in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                     "access_key", "aws_profile"):
            assert hint in message

    def test_no_region_says_what_to_set(self, clean_aws_env):
        with pytest.raises(eks.AwsError) as err:
            eks.make_session(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        assert err.value.kind == "no_region"
        assert "region" in str(err.value) and "AWS_REGION" in str(err.value)

    def test_half_a_key_pair(self, clean_aws_env):
        with pytest.raises(eks.AwsError) as err:
            eks.make_session(region="eu-west-1", access_key=ACCESS_KEY)
        assert err.value.kind == "no_credentials"
        with pytest.raises(eks.AwsError):
            eks.make_session(region="eu-west-1", secret_key=SECRET_KEY)

    def test_unknown_profile(self, clean_aws_env):
        with pytest.raises(eks.AwsError) as err:
            eks.make_session(region="eu-west-1", profile="does-not-exist")
        assert err.value.kind == "no_credentials"
        assert "AWS_PROFILE" in str(err.value)

    def test_env_credentials_awx_style(self, clean_aws_env):
        """AWX's AWS credential injects AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SECURITY_TOKEN."""
        clean_aws_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        clean_aws_env.setenv("AWS_SECURITY_TOKEN", SESSION_TOKEN)
        s = eks.make_session(region="eu-west-1")
        creds = s.get_credentials().get_frozen_credentials()
        assert creds.access_key == ACCESS_KEY
        assert creds.token == SESSION_TOKEN

    def test_params(self, clean_aws_env):
        s = eks.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY,
                                     "secret_key": SECRET_KEY, "session_token": SESSION_TOKEN})
        assert s.region_name == "us-west-2"
        assert s.get_credentials().get_frozen_credentials().token == SESSION_TOKEN

    def test_endpoint_url(self, clean_aws_env):
        """amazon.aws's endpoint_url: every client of the session, the role's included, uses it."""
        s = eks.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
                                     "endpoint_url": "http://127.0.0.1:4566"})
        assert s.client("eks").meta.endpoint_url == "http://127.0.0.1:4566"
        assert s.client("ec2", region_name="eu-west-1").meta.endpoint_url == "http://127.0.0.1:4566"
        plain = eks.session_from_params({"region": "us-west-2", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
        assert plain.client("eks").meta.endpoint_url != "http://127.0.0.1:4566"

    def test_assume_role(self, aws):
        s = eks.make_session(region="eu-west-1", role_arn="arn:aws:iam::123456789012:role/gpu-deployer")
        creds = s.get_credentials().get_frozen_credentials()
        assert creds.access_key != "testing" and creds.token
        identity = s.client("sts").get_caller_identity()
        assert identity["Arn"].endswith("assumed-role/gpu-deployer/gpu-slicing-eks")
        token, dummy = eks.eks_token(s, "gpu-demo", now=T0)
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
            assumed = eks.assume_role_session(base, role)
            stub.assert_no_pending_responses()  # AssumeRole ran at once (a refused role fails here)
            stub.add_response("assume_role", answer("ASIASECONDANSWER0002", datetime.timedelta(hours=1)), expected)
            credentials = assumed.get_credentials()
            second = credentials.get_frozen_credentials()
            token, dummy = eks.eks_token(assumed, "gpu-demo", now=T0)
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
        with stub, pytest.raises(eks.AwsError) as err:
            eks.assume_role_session(base, "arn:aws:iam::123456789012:role/nope")
        assert err.value.kind == "access_denied"
        assert "arn:aws:iam::123456789012:role/nope" in str(err.value)
        assert SECRET_KEY not in str(err.value)


# ---------------------------------------------------------------------------
# cluster discovery
# ---------------------------------------------------------------------------
class TestDescribeCluster:
    def test_moto_cluster(self, aws):
        created = create_moto_cluster()
        s = eks.make_session(region="eu-west-1")
        info = eks.describe_cluster(s, "gpu-demo")
        assert info["name"] == "gpu-demo"
        assert info["region"] == "eu-west-1"
        assert info["status"] == "ACTIVE"
        assert info["endpoint"] == created["endpoint"]
        assert info["certificate_authority_data"] == created["certificateAuthority"]["data"]
        assert info["version"] == "1.36"
        assert info["arn"].endswith(":cluster/gpu-demo")

    def test_not_found(self, aws):
        create_moto_cluster()
        s = eks.make_session(region="eu-west-1")
        with pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(s, "missing")
        assert err.value.kind == "not_found"
        assert "'missing'" in str(err.value) and "eu-west-1" in str(err.value)
        assert "eks_cluster_name" in str(err.value)

    def test_wrong_region(self, aws):
        create_moto_cluster(region="eu-west-1")
        with pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(eks.make_session(region="us-east-1"), "gpu-demo")
        assert err.value.kind == "not_found"
        assert "us-east-1" in str(err.value)

    @pytest.mark.parametrize("status", ["CREATING", "UPDATING", "DELETING", "FAILED"])
    def test_not_active(self, clean_aws_env, status):
        client, stub = stubbed("eks")
        stub.add_response("describe_cluster", {"cluster": {
            "name": "gpu-demo", "status": status, "endpoint": "https://x.eks.amazonaws.com",
            "certificateAuthority": {"data": CA_B64}}}, {"name": "gpu-demo"})
        with stub, pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "not_active"
        assert status in str(err.value) and "ACTIVE" in str(err.value)

    @pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
                                      "InvalidClientTokenId"])
    def test_invalid_or_denied_credentials(self, clean_aws_env, code):
        client, stub = stubbed("eks")
        stub.add_client_error("describe_cluster", service_error_code=code,
                              service_message="The security token included in the request is invalid",
                              http_status_code=403)
        with stub, pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "access_denied"
        assert code in str(err.value) and "credentials" in str(err.value)
        assert SECRET_KEY not in str(err.value)

    def test_no_credentials_at_call_time(self, clean_aws_env):
        s = boto3.session.Session(region_name="eu-west-1")  # no credentials anywhere
        with pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(s, "gpu-demo")
        assert err.value.kind == "no_credentials"
        assert "AWS_ACCESS_KEY_ID" in str(err.value)

    def test_other_client_error(self, clean_aws_env):
        client, stub = stubbed("eks")
        stub.add_client_error("describe_cluster", service_error_code="ServerException", service_message="boom",
                              http_status_code=500)
        with stub, pytest.raises(eks.AwsError) as err:
            eks.describe_cluster(FakeSession(clients={"eks": client}), "gpu-demo")
        assert err.value.kind == "aws" and "ServerException" in str(err.value)

    def test_unreachable(self):
        exc = botocore.exceptions.EndpointConnectionError(endpoint_url="https://eks.eu-west-1.amazonaws.com")
        err = eks.translate_error(exc, "describing EKS cluster", region="eu-west-1")
        assert err.kind == "unreachable" and "network" in str(err)


# ---------------------------------------------------------------------------
# refreshing token source
# ---------------------------------------------------------------------------
class FakeClock:
    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += datetime.timedelta(**kwargs)


class TestTokenSource:
    def test_refresh_only_past_margin(self, session):
        clock = FakeClock()
        source = eks.TokenSource(session, "gpu-demo", clock=clock)
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
        source = eks.TokenSource(session, "gpu-demo", clock=clock)
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
        source = eks.TokenSource(session, "gpu-demo", clock=clock, refresh_margin=300)
        source.get()
        clock.advance(minutes=9)
        source.get()
        assert source.mint_count == 2

    def test_repr_hides_token(self, session, caplog):
        source = eks.TokenSource(session, "gpu-demo", clock=FakeClock())
        token = source.get()
        assert token not in repr(source) and token not in str(source)
        assert "redacted" in repr(source)
        logging.getLogger("test").warning("source: %s %r", source, source)
        assert token not in caplog.text

    def test_kubernetes_refresh_hook(self, session):
        from kubernetes import client as kclient

        clock = FakeClock()
        source = eks.TokenSource(session, "gpu-demo", clock=clock)
        info = {"name": "gpu-demo", "endpoint": "https://abc.gr7.eu-west-1.eks.amazonaws.com",
                "certificate_authority_data": CA_B64}
        config = eks.kube_client_config(info, source)
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
        config = eks.kube_client_config(info, eks.TokenSource(session, "gpu-demo", clock=FakeClock()),
                                        ca_file_dir=str(tmp_path))
        assert os.path.dirname(config.ssl_ca_cert) == str(tmp_path)
        assert stat.S_IMODE(os.stat(config.ssl_ca_cert).st_mode) == 0o600
        with open(config.ssl_ca_cert, "rb") as handle:
            assert handle.read() == CA_PEM

    def test_no_connection_is_an_error(self, session):
        for info in (None, {}, {"name": "x", "endpoint": None}):
            with pytest.raises(eks.AwsError) as err:
                eks.kube_client_config(info, eks.TokenSource(session, "x"))
            assert err.value.kind == "no_connection"
            for hint in ("eks_cluster_name", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "in-cluster"):
                assert hint in str(err.value)
        with pytest.raises(eks.AwsError):
            eks.kube_client_config({"endpoint": "https://abc", "certificate_authority_data": CA_B64}, None)


class TestConnect:
    def test_kube_configuration_from_params(self, aws):
        create_moto_cluster()
        clock = FakeClock()
        params = {"eks_cluster_name": "gpu-demo", "region": "eu-west-1"}
        config = eks.kube_configuration_from_params(params, clock=clock)
        assert config.host.startswith("https://")
        assert config.get_api_key_with_prefix("authorization").startswith("Bearer k8s-aws-v1.")
        assert os.path.exists(config.ssl_ca_cert)

    def test_connection_and_auth_params(self, aws):
        create_moto_cluster()
        conn = eks.connect({"eks_cluster_name": "gpu-demo", "region": "eu-west-1"}, clock=FakeClock())
        auth = conn.k8s_auth_params()
        assert set(auth) == {"host", "api_key", "ca_cert", "validate_certs"}
        assert auth["api_key"].startswith("k8s-aws-v1.")
        assert auth["api_key"] not in repr(conn)

    def test_connect_requires_cluster_name(self, clean_aws_env):
        with pytest.raises(eks.AwsError) as err:
            eks.connect({"region": "eu-west-1"})
        assert err.value.kind == "no_connection"

    def test_connection_mode(self):
        assert eks.connection_mode({"eks_cluster_name": "x"}, environ={}) == "eks"
        assert eks.connection_mode({"host": "https://k"}, environ={}) == "kubernetes"
        assert eks.connection_mode({}, environ={"K8S_AUTH_HOST": "https://k"}) == "kubernetes"
        with pytest.raises(eks.AwsError) as err:
            eks.connection_mode({}, environ={})
        assert err.value.kind == "no_connection"

    def test_argument_spec_matches_doc_fragment(self):
        import yaml
        from ansible_collections.gpu_slicing.eks.plugins.doc_fragments.eks_connection import ModuleDocFragment

        documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
        spec = eks.eks_connection_argument_spec()
        assert set(documented) == set(spec)
        for name, option in spec.items():
            assert documented[name]["type"] == option["type"]
            assert documented[name].get("aliases", []) == option.get("aliases", [])
        for secret in ("access_key", "secret_key", "session_token"):
            assert spec[secret]["no_log"] is True
        # amazon.aws's environment variables, AWX's AWS_SECURITY_TOKEN included.
        assert spec["session_token"]["fallback"][1] == ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "EC2_SECURITY_TOKEN"]
        assert spec["region"]["fallback"][1] == ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"]
        assert eks.EKS_CONNECTION_ARG_SPEC == spec


# ---------------------------------------------------------------------------
# EC2 instance types
# ---------------------------------------------------------------------------
def it_entry(name, gpu_name="A10G", count=1, mem=24576, vcpu=4, memory=16384):
    entry = {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": vcpu}, "MemoryInfo": {"SizeInMiB": memory}}
    if count:
        entry["GpuInfo"] = {"Gpus": [{"Name": gpu_name, "Manufacturer": "NVIDIA", "Count": count,
                                      "MemoryInfo": {"SizeInMiB": mem}}], "TotalGpuMemoryInMiB": mem * count}
    return entry


class TestInstanceTypes:
    def test_parse_entry(self):
        facts = eks.parse_instance_type(it_entry("g5.12xlarge", count=4, vcpu=48, memory=196608))
        assert facts["gpu_count"] == 4
        assert facts["gpu_name"] == "a10g" and facts["gpu_manufacturer"] == "nvidia"
        assert facts["gpu_memory_mib"] == 24576 and facts["total_gpu_memory_mib"] == 98304
        assert facts["gpu_memory"] == "24576Mi"
        assert facts["vcpu"] == 48 and facts["source"] == "aws"
        assert eks.parse_instance_type(it_entry("m5.large", count=0))["gpu_count"] == 0

    def test_parse_merges_table_price(self):
        pages = [{"InstanceTypes": [it_entry("g5.xlarge", mem=22888)]},
                 {"InstanceTypes": [it_entry("x9.gpu", gpu_name="H200", count=8, mem=143360)]}]
        facts = eks.parse_describe_instance_types(pages)
        assert facts["g5.xlarge"]["gpu_memory_mib"] == 22888, "EC2's figure wins over the table"
        assert facts["g5.xlarge"]["price_per_hour"] is not None, "price kept from the shipped table"
        assert facts["x9.gpu"]["gpu_count"] == 8 and facts["x9.gpu"]["price_per_hour"] is None

    def test_moto(self, aws):
        s = eks.make_session(region="us-east-1")
        facts = eks.gpu_instance_facts(s, ["g4dn.12xlarge", "g5.xlarge", "m5.large"])
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
            facts = eks.gpu_instance_facts(FakeSession(clients={"ec2": client}), names)
            stub.assert_no_pending_responses()
        assert facts["g4dn.xlarge"]["gpu_name"] == "t4" and facts["g5.xlarge"]["gpu_name"] == "a10g"

    def test_unknown_type(self, clean_aws_env):
        client, stub = stubbed("ec2")
        stub.add_response("describe_instance_types", {"InstanceTypes": []}, {"InstanceTypes": ["g9.huge"]})
        with stub, pytest.raises(eks.AwsError) as err:
            eks.gpu_instance_facts(FakeSession(clients={"ec2": client}), ["g9.huge"])
        assert "g9.huge" in str(err.value)

    def test_resolve_offline_and_auto(self, clean_aws_env):
        facts, source, warnings = eks.resolve_instance_facts({}, ["g5.xlarge"], "auto")
        assert source == "offline" and facts["g5.xlarge"]["source"] == "offline" and not warnings
        # AWS options given but no credentials: auto falls back, with a warning
        facts, source, warnings = eks.resolve_instance_facts({"region": "eu-west-1"}, ["g5.xlarge"], "auto")
        assert source == "offline" and "AWS_ACCESS_KEY_ID" in warnings[0]
        with pytest.raises(eks.AwsError):
            eks.resolve_instance_facts({"region": "eu-west-1"}, ["g5.xlarge"], "aws")

    def test_resolve_aws(self, aws):
        facts, source, dummy = eks.resolve_instance_facts({"region": "us-east-1"}, ["g6.xlarge"], "auto")
        assert source == "aws" and facts["g6.xlarge"]["gpu_name"] == "l4"


# ---------------------------------------------------------------------------
# Pricing API
# ---------------------------------------------------------------------------
def load_price_list():
    with open(os.path.join(FIXTURES, "pricing_get_products_handwritten.json")) as handle:
        return json.load(handle)


class TestPricing:
    def test_parse_handwritten_fixture(self):
        page = load_price_list()
        prices = eks.parse_price_list(page["PriceList"], region="us-east-1")
        # Windows, dedicated tenancy, SQL preinstalled, reservation and other-region rows are ignored
        assert prices == {"g5.xlarge": 1.006, "g4dn.xlarge": 0.526}

    def test_parse_accepts_decoded_dicts(self):
        decoded = [json.loads(item) for item in load_price_list()["PriceList"]]
        assert eks.parse_price_list(decoded, region="us-east-1")["g5.xlarge"] == 1.006

    def test_on_demand_prices_stubbed(self, clean_aws_env):
        client, stub = stubbed("pricing", region="us-east-1")
        page = load_price_list()
        for itype in ("g4dn.xlarge", "g5.xlarge"):
            stub.add_response("get_products", {"PriceList": [p for p in page["PriceList"] if itype in p],
                                               "FormatVersion": "aws_v1"})
        with stub:
            prices = eks.on_demand_prices(FakeSession(clients={"pricing": client}), ["g5.xlarge", "g4dn.xlarge"],
                                          "us-east-1")
        assert prices == {"g5.xlarge": 1.006, "g4dn.xlarge": 0.526}

    def test_resolve_prices(self, clean_aws_env):
        prices, source, date, warnings = eks.resolve_prices({}, ["g5.xlarge"], "auto")
        assert prices["g5.xlarge"] > 0 and source.startswith("table") and date and not warnings
        prices, source, dummy, warnings = eks.resolve_prices({"region": "us-east-1"}, ["g5.xlarge"], "auto")
        assert source.startswith("table") and warnings
        with pytest.raises(eks.AwsError):
            eks.resolve_prices({"region": "us-east-1"}, ["g5.xlarge"], "api")

    def test_resolve_prices_api_with_gap(self, clean_aws_env):
        client, stub = stubbed("pricing", region="us-east-1")
        page = load_price_list()
        stub.add_response("get_products", {"PriceList": [p for p in page["PriceList"] if "g5.xlarge" in p]})
        stub.add_response("get_products", {"PriceList": []})
        fake = FakeSession(region="us-east-1", clients={"pricing": client})
        with stub:
            prices, source, date, warnings = eks.resolve_prices(
                {"region": "us-east-1"}, ["g5.xlarge", "g6.xlarge"], "api",
                session_factory=lambda params: fake, today="2026-11-24")
        assert source.startswith("pricing_api") and date == "2026-11-24"
        assert prices["g5.xlarge"] == 1.006 and prices["g6.xlarge"] > 0
        assert "g6.xlarge" in warnings[0]
