# -*- coding: utf-8 -*-
"""gpu_slicing.eks.eks_connection_info run the standard way (patch_module_args + main()), AWS from moto."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.parse
from unittest import mock

import boto3
import pytest
from ansible.module_utils import basic
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from botocore.stub import Stubber
from moto import mock_aws

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import options as aws_options
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import token as aws_token
from ansible_collections.gpu_slicing.eks.plugins.modules import eks_connection_info

ACCESS_KEY = "AKIDAWXINJECTED0001"
SECRET_KEY = "awxInjectedSecretKey/DoNotLeak+0123456789"
SESSION_TOKEN = "awxInjectedSessionTokenDoNotLeak0123456789"


def run_module(module, args, capsys):
    """Run module.main() with args; return (exit code, parsed result, raw stdout, logged lines)."""
    logged = []
    # a module runs outside the controller: once anything imported controller code (an action
    # plugin, a filter test), warnings would go to Display instead of the result
    # and each module run is a fresh process: no warnings left over from an earlier run
    with mock.patch.object(ansible_internal, "is_controller", False), \
            mock.patch.dict(ansible_warnings._global_warnings, clear=True), \
            patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg)):
        with pytest.raises(SystemExit) as exited:
            module.main()
    out = capsys.readouterr().out
    return exited.value.code, json.loads(out), out, "\n".join(logged)


@pytest.fixture
def awx_env(monkeypatch, tmp_path):
    """Only what AWX's AWS credential injects (plus moto), nothing from the machine."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "K8S_AUTH_")) and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("EKS_CLUSTER_NAME", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def cluster(awx_env):
    with mock_aws():
        # mock_aws sets its own fake keys; AWX's values go in after it
        awx_env.delenv("AWS_SESSION_TOKEN", raising=False)
        awx_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        awx_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        awx_env.setenv("AWS_SECURITY_TOKEN", SESSION_TOKEN)
        client = boto3.client("eks", region_name="eu-west-1")
        client.create_cluster(name="gpu-demo", roleArn="arn:aws:iam::123456789012:role/eks",
                              resourcesVpcConfig={"subnetIds": ["subnet-1"]}, version="1.36")
        yield client.describe_cluster(name="gpu-demo")["cluster"]


def assert_no_secrets(*texts):
    for text in texts:
        assert SECRET_KEY not in text
        assert SESSION_TOKEN not in text


def test_connection_facts_from_awx_aws_credential(cluster, capsys):
    code, result, out, logged = run_module(eks_connection_info, {"eks_cluster_name": "gpu-demo",
                                                                 "region": "eu-west-1"}, capsys)
    assert code == 0, result
    assert result["changed"] is False
    assert result["host"] == cluster["endpoint"]
    assert result["cluster"]["status"] == "ACTIVE" and result["cluster"]["region"] == "eu-west-1"
    assert result["certificate_authority_data"] == cluster["certificateAuthority"]["data"]
    assert result["validate_certs"] is True
    assert result["api_key"].startswith("k8s-aws-v1.")
    assert result["expiration"].endswith("Z")
    url = aws_token.decode_token(result["api_key"])
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["X-Amz-Credential"].startswith(ACCESS_KEY + "/")
    assert query["X-Amz-Security-Token"] == SESSION_TOKEN, "AWS_SECURITY_TOKEN (AWX) is used"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"]
    assert "ca_cert" not in result
    # the secret key and session token (env fallbacks of no_log options) appear nowhere
    assert_no_secrets(out, logged)
    assert result["api_key"] not in logged


def test_secrets_given_as_options_are_masked(cluster, capsys):
    code, result, out, logged = run_module(eks_connection_info, {
        "eks_cluster_name": "gpu-demo", "region": "eu-west-1", "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY, "session_token": SESSION_TOKEN, "include_token": False}, capsys)
    assert code == 0
    assert_no_secrets(out, logged)
    assert "k8s-aws-v1." not in out, "no token when include_token is false"
    assert "api_key" not in result and "expiration" not in result
    assert result["invocation"]["module_args"]["secret_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_ca_cert_file(cluster, capsys, tmp_path):
    path = tmp_path / "ca" / "cluster.crt"
    code, result, dummy, dummy = run_module(eks_connection_info, {"eks_cluster_name": "gpu-demo", "region": "eu-west-1",
                                                                  "ca_cert_path": str(path)}, capsys)
    assert code == 0
    assert result["ca_cert"] == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == base64.b64decode(cluster["certificateAuthority"]["data"])


def test_ca_cert_file_idempotent(cluster, capsys, tmp_path):
    path = tmp_path / "cluster.crt"
    args = {"eks_cluster_name": "gpu-demo", "region": "eu-west-1", "ca_cert_path": str(path)}
    code, first, dummy, dummy = run_module(eks_connection_info, args, capsys)
    code, second, dummy, dummy = run_module(eks_connection_info, args, capsys)
    assert first["changed"] is True and first["ca_cert_state"] == "written"
    assert second["changed"] is False and second["ca_cert_state"] == "unchanged"


def test_check_mode_writes_no_ca_file(cluster, capsys, tmp_path):
    """Check mode reports the CA file it would write, and writes nothing (issue 13, item 9)."""
    path = tmp_path / "ca" / "cluster.crt"
    code, result, dummy, dummy = run_module(eks_connection_info, {
        "eks_cluster_name": "gpu-demo", "region": "eu-west-1", "ca_cert_path": str(path),
        "_ansible_check_mode": True, "_ansible_diff": True}, capsys)
    assert code == 0, result
    assert not path.exists() and not path.parent.exists()
    assert result["ca_cert"] == str(path)
    assert result["ca_cert_state"] == "would write"
    assert result["changed"] is True
    pem = base64.b64decode(cluster["certificateAuthority"]["data"]).decode("utf-8", "replace")
    assert result["diff"]["after"] == pem and result["diff"]["before"] == ""
    assert result["diff"]["after_header"] == str(path)


def test_check_mode(cluster, capsys):
    code, result, dummy, dummy = run_module(eks_connection_info, {"eks_cluster_name": "gpu-demo", "region": "eu-west-1",
                                                                  "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False and result["api_key"].startswith("k8s-aws-v1.")


def test_env_cluster_name_and_region(cluster, awx_env, capsys):
    awx_env.setenv("EKS_CLUSTER_NAME", "gpu-demo")
    awx_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    code, result, dummy, dummy = run_module(eks_connection_info, {}, capsys)
    assert code == 0 and result["cluster"]["name"] == "gpu-demo"


def test_no_cluster_name(awx_env, capsys):
    code, result, out, dummy = run_module(eks_connection_info, {"region": "eu-west-1"}, capsys)
    assert code == 1 and result["failed"]
    assert result["error_kind"] == "no_connection"
    for hint in ("eks_cluster_name", "K8S_AUTH_HOST", "in-cluster"):
        assert hint in result["msg"]


def test_no_credentials(awx_env, capsys):
    code, result, dummy, dummy = run_module(eks_connection_info, {"eks_cluster_name": "gpu-demo", "region": "eu-west-1"},
                                            capsys)
    assert code == 1 and result["error_kind"] == "no_credentials"
    assert "AWS_ACCESS_KEY_ID" in result["msg"] and "AWS_SECURITY_TOKEN" in result["msg"]


def test_no_region(awx_env, capsys):
    code, result, dummy, dummy = run_module(eks_connection_info, {"eks_cluster_name": "gpu-demo", "access_key": ACCESS_KEY,
                                                                  "secret_key": SECRET_KEY}, capsys)
    assert code == 1 and result["error_kind"] == "no_region" and "AWS_REGION" in result["msg"]


def test_cluster_not_found(cluster, capsys):
    code, result, out, logged = run_module(eks_connection_info, {"eks_cluster_name": "nope", "region": "eu-west-1",
                                                                 "secret_key": SECRET_KEY,
                                                                 "access_key": ACCESS_KEY}, capsys)
    assert code == 1 and result["error_kind"] == "not_found" and "'nope'" in result["msg"]
    assert_no_secrets(out, logged)


def test_invalid_credentials(awx_env, capsys):
    """A refused key (as STS/EKS answer it): clear message, secret nowhere."""
    client = boto3.client("eks", region_name="eu-west-1", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)
    stub = Stubber(client)
    stub.add_client_error("describe_cluster", service_error_code="UnrecognizedClientException",
                          service_message="The security token included in the request is invalid.",
                          http_status_code=403)
    real_client = boto3.session.Session.client

    def client_for(self, service, *args, **kwargs):
        return client if service == "eks" else real_client(self, service, *args, **kwargs)

    with stub, mock.patch.object(boto3.session.Session, "client", client_for):
        code, result, out, logged = run_module(eks_connection_info, {
            "eks_cluster_name": "gpu-demo", "region": "eu-west-1", "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY}, capsys)
    assert code == 1 and result["error_kind"] == "access_denied"
    assert "UnrecognizedClientException" in result["msg"] and "credentials" in result["msg"]
    assert_no_secrets(out, logged)


def test_module_docs_parse():
    import yaml

    for block in (eks_connection_info.DOCUMENTATION, eks_connection_info.EXAMPLES, eks_connection_info.RETURN):
        assert yaml.safe_load(block)
    doc = yaml.safe_load(eks_connection_info.DOCUMENTATION)
    assert "gpu_slicing.eks.eks_connection" in doc["extends_documentation_fragment"]
    assert set(doc["options"]) == set(eks_connection_info.argument_spec()) - set(aws_options.eks_connection_argument_spec())


def test_action_plugin_censors_token_display():
    from ansible_collections.gpu_slicing.eks.plugins.action.eks_connection_info import ActionModule

    task = mock.MagicMock(args={"eks_cluster_name": "gpu-demo"}, async_val=0, check_mode=False)
    action = ActionModule(task, mock.MagicMock(), mock.MagicMock(), mock.MagicMock(), mock.MagicMock(),
                          mock.MagicMock())
    with mock.patch.object(ActionModule, "_execute_module",
                           return_value={"changed": False, "host": "https://h", "api_key": "k8s-aws-v1.abc"}):
        result = action.run(task_vars={})
    assert result["_ansible_no_log"] is True
    assert result["api_key"] == "k8s-aws-v1.abc", "register keeps the value for module_defaults"
    with mock.patch.object(ActionModule, "_execute_module", return_value={"changed": False, "host": "https://h"}):
        result = action.run(task_vars={})
    assert not result.get("_ansible_no_log")
