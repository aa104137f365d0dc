"""connection.py without a cluster: the explicit-connection rule, the argument spec, and the client
get_client builds (on a wrapper when the caller gives one)."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import connection

from .test_access import FakeModule

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: abc}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
"""


def test_no_connection_is_a_connection_error_saying_what_to_set(no_connection):
    with pytest.raises(connection.KubeConnectionError) as caught:
        connection.resolve_connection(FakeModule())
    assert isinstance(caught.value, GpuSlicingError) and caught.value.kind == "connection"
    text = str(caught.value)
    assert "K8S_AUTH_KUBECONFIG / KUBECONFIG" in text and "eks_cluster_name" in text
    assert "in-cluster service account is never used implicitly" in text


def test_kubeconfig_from_the_environment_or_home_is_made_explicit(no_connection, monkeypatch):
    home = no_connection
    (home / ".kube").mkdir()
    (home / ".kube" / "config").write_text(KUBECONFIG)
    assert connection.resolve_connection(FakeModule()) == {"kubeconfig": str(home / ".kube" / "config")}
    monkeypatch.setenv("KUBECONFIG", "/elsewhere/config")
    assert connection.resolve_connection(FakeModule()) == {"kubeconfig": "/elsewhere/config"}


@pytest.mark.parametrize("params", [
    {"host": "https://k", "api_key": "t"},
    {"host": "https://k", "client_cert": "/c", "client_key": "/k"},
    {"host": "https://k", "username": "u", "password": "p"},
    {"kubeconfig": "/given"},
    {"context": "ctx"},
])
def test_explicit_settings_need_nothing_added(no_connection, params):
    assert connection.resolve_connection(FakeModule(params=params)) == {}


def test_a_host_without_credentials_is_not_a_connection(no_connection):
    with pytest.raises(connection.KubeConnectionError):
        connection.resolve_connection(FakeModule(params={"host": "https://k"}))


def test_the_arg_spec_is_kubernetes_cores_plus_the_eks_options():
    spec = connection.connection_arg_spec()
    for name in ("kubeconfig", "context", "host", "api_key", "validate_certs", "impersonate_user"):
        assert name in spec, name
    for name in ("eks_cluster_name", "region", "aws_role_arn", "access_key", "secret_key", "session_token"):
        assert name in spec, name
    assert spec["secret_key"].get("no_log") is True
    assert connection.connection_arg_spec() is not spec  # a copy each time


class Recorded(object):
    """Stands in for kubernetes.core's K8SDynamicClient, whose construction talks to the server."""

    def __init__(self, api_client, discoverer=None):
        self.api_client = api_client
        self.discoverer = discoverer


def test_get_client_builds_the_dynamic_client_on_the_callers_wrapper(no_connection, monkeypatch, tmp_path):
    monkeypatch.setattr(connection, "K8SDynamicClient", Recorded)
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("K8S_AUTH_IMPERSONATE_USER", "someone")
    wrapped = []

    def wrap(api_client):
        wrapped.append(api_client)
        return ("wrapper", api_client)

    client = connection.get_client(FakeModule(check_mode=True), wrap=wrap)
    api_client = wrapped[0]
    assert client.client.api_client == ("wrapper", api_client)
    assert client.client.discoverer is connection.LazyDiscoverer
    assert client.configuration is api_client.configuration
    assert client.configuration.host == "https://127.0.0.1:1"
    assert api_client.default_headers.get("Impersonate-User") == "someone"
    assert client.dry_run is True
    plain = connection.get_client(FakeModule(), wrap=None)
    assert type(plain.client.api_client).__name__ == "ApiClient" and plain.dry_run is False


def test_a_bad_kubeconfig_is_a_core_exception(no_connection, monkeypatch, tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n")
    with pytest.raises(connection.CoreException, match="Could not create API client"):
        connection.get_client(FakeModule(params={"kubeconfig": str(kubeconfig)}))
