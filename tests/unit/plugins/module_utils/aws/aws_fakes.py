# -*- coding: utf-8 -*-
"""Shared AWS test helpers for the aws/ unit tests (and the ops tests that talk to AWS):
fixtures with no AWS settings from the machine, moto, botocore Stubber clients, a fake clock.

AWS is emulated by moto (``mock_aws``) or botocore's Stubber; nothing leaves the machine.
"""

from __future__ import annotations

import base64
import datetime
import os
import urllib.parse

import boto3
import botocore.credentials
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import token as aws_token


UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
ACCESS_KEY = "AKIDEXAMPLEGPUSLICE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENgpuslicing"
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
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
    return aws_session.make_session(region="eu-west-1", access_key=ACCESS_KEY, secret_key=SECRET_KEY)


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


class FakeClock:
    def __init__(self, start=T0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += datetime.timedelta(**kwargs)


def query_of(token):
    url = aws_token.decode_token(token)
    parts = urllib.parse.urlsplit(url)
    return parts, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
