# -*- coding: utf-8 -*-
"""Helm on EKS gets a token minted for each command (issue 13, item 7).

EKS refuses a token 15 minutes after it was signed, and helm (client-go) keeps the bearer
token it is started with for the whole command. The Helm runner must therefore hand every
helm command a token minted for it, not the one minted at connect time.

The real parts: token.TokenSource and eks.kube_client_config (a real kubernetes
``Configuration``), kubernetes.core's AnsibleHelmModule running a real process through
AnsibleModule.run_command (the run's RunContext). The helm binary is a stand-in script that records the connection
environment helm would read (HELM_KUBETOKEN, HELM_KUBEAPISERVER, HELM_KUBECAFILE) and answers
``helm version``; no Kubernetes API is involved, so none is mocked.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
import urllib.parse

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import eks
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import make_session
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.token import TokenSource, decode_token
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.helm import Helm
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import RunContext

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
ENDPOINT = "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
CA_B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBhelm\n-----END CERTIFICATE-----\n").decode()

RECORDING_HELM = """#!/bin/sh
if [ "$1" = version ]; then
  echo 'version.BuildInfo{Version:"v3.22.0", GitCommit:"", GitTreeState:"clean", GoVersion:"go1.26.8"}'
  exit 0
fi
printf '%s %s %s %s\\n' "$1" "$HELM_KUBETOKEN" "$HELM_KUBEAPISERVER" "$HELM_KUBECAFILE" >> "$0.log"
echo '[]'
"""


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class KubeWithConfiguration:
    """KubeAccess's one attribute Helm uses: the client and its (real) Configuration."""

    class Client:
        def __init__(self, configuration):
            self.configuration = configuration

    def __init__(self, configuration):
        self.client = self.Client(configuration)


@pytest.fixture
def helm(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("AWS_", "HELM_")) and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    binary = tmp_path / "helm"
    binary.write_text(RECORDING_HELM)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    session = make_session(region="eu-west-1", access_key="AKIDHELMTOKEN0000001", secret_key="helmSecretKey/0123")
    clock = Clock(T0)
    source = TokenSource(session, "gpu-demo", clock=clock)
    configuration = eks.kube_client_config({"name": "gpu-demo", "endpoint": ENDPOINT,
                                            "certificate_authority_data": CA_B64}, source, str(tmp_path))
    with patch_module_args({"eks_cluster_name": "gpu-demo"}):
        module = AnsibleModule(argument_spec={"eks_cluster_name": {"type": "str"}})
    context = RunContext(module, kube=KubeWithConfiguration(configuration))
    runner = Helm(context, str(binary), "nvidia-device-plugin")
    yield runner, clock, binary.with_name("helm.log"), configuration


def recorded(log):
    rows = []
    for line in log.read_text().splitlines():
        command, token, host, ca_file = line.split(" ")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(decode_token(token)).query))
        rows.append({"command": command, "signed": query["X-Amz-Date"], "token": token, "host": host,
                     "ca_file": ca_file})
    return rows


def test_each_helm_command_gets_a_token_minted_for_it(helm):
    runner, clock, log, configuration = helm
    runner.run(["list", "-n", "nvidia-device-plugin", "-o", "json"])
    # the rollout wait: past the token's refresh point (13 minutes), before EKS's 15
    clock.now = T0 + datetime.timedelta(minutes=13, seconds=30)
    runner.run(["rollback", "nvidia-device-plugin", "1", "-n", "nvidia-device-plugin"])
    # a long wait: the connect-time token is long dead
    clock.now = T0 + datetime.timedelta(minutes=40)
    runner.run(["uninstall", "nvidia-device-plugin", "-n", "nvidia-device-plugin"])
    rows = recorded(log)
    assert [r["command"] for r in rows] == ["list", "rollback", "uninstall"]
    assert [r["signed"] for r in rows] == ["20261124T100000Z", "20261124T101330Z", "20261124T104000Z"]
    assert all(r["host"] == ENDPOINT and r["ca_file"] == configuration.ssl_ca_cert for r in rows)


def test_a_command_right_after_another_still_gets_its_own_token(helm):
    """helm keeps its token for the whole command (up to its --timeout): a token minted
    12 minutes earlier would die during a long upgrade, so no token is reused."""
    runner, clock, log, dummy = helm
    runner.run(["list"])
    clock.now = T0 + datetime.timedelta(minutes=12)
    runner.run(["upgrade", "--install", "r", "chart"])
    signed = [r["signed"] for r in recorded(log)]
    assert signed == ["20261124T100000Z", "20261124T101200Z"]


def test_token_not_in_helm_module_environment_cache(helm):
    """The environment kubernetes.core caches for the whole module holds no token at all."""
    runner, dummy, log, dummy = helm
    runner.run(["list"])
    assert "HELM_KUBETOKEN" not in runner._helm.env_update
    assert json.dumps(runner._helm.env_update).find("k8s-aws-v1.") == -1
