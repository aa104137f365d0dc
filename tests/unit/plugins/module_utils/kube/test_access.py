"""KubeAccess without a cluster: concurrent creates, raw responses read to the end, the retries
it opts into (reported by runner.run_module), connecting, K8sService's settings, waiting."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import access as kube
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import KubeConnectionError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module

from .test_lists import PagedClient
from .test_retries import FakeApiClient, Resp, refused


def access(client):
    obj = kube.KubeAccess.__new__(kube.KubeAccess)  # no module: only the client is used here
    obj.client = client
    return obj


def test_create_many_reports_each_error_in_place():
    pods = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": n, "namespace": "x"}} for n in
            ("a", "bad", "c", "d")]
    results = access(PagedClient([[]])).create_many(pods, workers=3)
    assert [d["metadata"]["name"] for d, dummy in results] == ["a", "bad", "c", "d"]
    assert [type(e).__name__ if e else None for dummy, e in results] == [None, "ValueError", None, None]


class RawResponse(object):
    """An unserialized urllib3 response: its connection goes back to the pool only once read."""

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return b"{}"


class RawClient(PagedClient):
    def __init__(self):
        super(RawClient, self).__init__([[]])
        self.responses = []

    def _raw(self):
        response = RawResponse()
        self.responses.append(response)
        return response

    def create(self, resource, definition, namespace=None, serialize=True):
        assert serialize is False
        return self._raw()

    def delete(self, resource, **kwargs):
        assert kwargs.get("serialize") is False
        return self._raw()


def test_raw_responses_are_read_so_their_connections_are_reused():
    client = RawClient()
    pods = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p%d" % i, "namespace": "x"}} for i in range(5)]
    access(client).create_many(pods, workers=2)
    assert access(client).delete_collection("Pod", "v1", "x", "run=1", grace_period_seconds=0) == "collection"
    assert len(client.responses) == 6
    assert [r.reads for r in client.responses] == [1] * 6


class FakeModule(object):
    """What KubeAccess and runner.run_module use of an AnsibleK8SModule; exit and fail end the run."""

    def __init__(self, params=None, check_mode=False, diff=False):
        self.params = params or {}
        self.check_mode = check_mode
        self._diff = diff
        self.server_side_dry_run = check_mode
        self.logged, self.warnings, self.result = [], [], None

    def log(self, text):
        self.logged.append(text)

    def warn(self, text):
        self.warnings.append(text)

    def exit_json(self, **kwargs):
        self.result = ("exit", kwargs)
        raise SystemExit(0)

    def fail_json(self, **kwargs):
        self.result = ("fail", kwargs)
        raise SystemExit(1)


class ApiError(Exception):
    def __init__(self, status):
        Exception.__init__(self, "HTTP %d" % status)
        self.status = status


class Namespaces(object):
    """A K8SClient whose one resource sends its GETs through ``api`` (the wrapped ApiClient)."""

    def __init__(self, api):
        self.api = api

    def resource(self, kind, api_version):
        return self

    def get(self, name=None, namespace=None):
        response = self.api.call_api("GET", "https://h/api/v1/namespaces/%s" % name, {}, None, [])
        if response.status != 200:
            raise ApiError(response.status)
        return type("Instance", (), {"to_dict": lambda _self: {"metadata": {"name": name}}})()


def fake_connection(monkeypatch, outcomes):
    """access.get_client that wraps a FakeApiClient the way connection.get_client wraps the real one."""
    api = FakeApiClient(outcomes)
    built = {}

    def get_client(module, wrap=None):
        built["wrapper"] = wrap(api) if wrap is not None else api
        built["enabled_while_connecting"] = getattr(built["wrapper"], "enabled", None)
        return Namespaces(built["wrapper"])

    monkeypatch.setattr(kube, "get_client", get_client)
    return api, built


def read_namespace(options, context):
    return {"changed": False, "namespace": context.kube.get("Namespace", "v1", "x")}


def test_kube_access_opts_into_retries_once_connected(monkeypatch):
    api, built = fake_connection(monkeypatch, [Resp(503), Resp(200)])
    acc = kube.KubeAccess(FakeModule())
    assert built["enabled_while_connecting"] is False and built["wrapper"].enabled is True
    assert built["wrapper"].stats is acc.retry_stats
    assert acc.get("Namespace", "v1", "x") == {"metadata": {"name": "x"}}
    assert api.calls["n"] == 2 and acc.retry_stats.by_reason == {"server_error": 1}


def test_a_client_given_to_kube_access_is_used_as_it_is():
    client = PagedClient([[]])
    acc = kube.KubeAccess(FakeModule(), client=client)
    assert acc.client is client and acc.retry_stats.count == 0


def test_a_retried_request_is_reported_as_api_retries_by_the_run(monkeypatch):
    api, dummy = fake_connection(monkeypatch, [Resp(429, {"Retry-After": "0"}), Resp(200)])
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, read_namespace, lambda params: params)
    how, result = module.result
    assert how == "exit" and result["namespace"] == {"metadata": {"name": "x"}}
    assert result["api_retries"]["count"] == 1 and result["api_retries"]["by_reason"] == {"throttled": 1}
    assert result["api_retries"]["operations"] == ["GET /api/v1/namespaces/x (throttled)"]
    assert module.logged and module.logged[0].startswith("retrying GET /api/v1/namespaces/x")


def test_a_run_without_retries_reports_none(monkeypatch):
    fake_connection(monkeypatch, [Resp(200)])
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, read_namespace, lambda params: params)
    assert module.result[0] == "exit" and "api_retries" not in module.result[1]


def test_a_spent_budget_fails_the_run_naming_operation_and_attempts(monkeypatch):
    monkeypatch.setenv("GPU_SLICING_EKS_RETRY_BUDGET", "1")
    api, dummy = fake_connection(monkeypatch, [refused()])
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, read_namespace, lambda params: params)
    how, result = module.result
    assert how == "fail" and result["error_kind"] == "api_retries_exhausted"
    assert result["operation"] == "GET /api/v1/namespaces/x"
    assert result["attempts"] == api.calls["n"] >= 2
    assert "retry budget 1s" in result["msg"] and "connection refused" in result["msg"]
    assert result["api_retries"]["count"] == result["attempts"] - 1


def test_connect_raises_a_connection_error_the_run_reports(no_connection):
    with pytest.raises(KubeConnectionError) as caught:
        kube.connect(FakeModule())
    assert str(caught.value).startswith("Cannot connect to the Kubernetes API: No Kubernetes connection was given.")
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, read_namespace, lambda params: params)
    how, result = module.result
    assert how == "fail" and result["error_kind"] == "connection"
    assert result["msg"] == str(caught.value)


def test_a_run_without_a_connection_says_what_to_set(no_connection):
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, lambda options, context: context.kube, lambda params: params)
    how, result = module.result
    assert how == "fail" and result["error_kind"] == "connection"
    assert result["msg"].startswith("Cannot connect to the Kubernetes API: No Kubernetes connection was given.")


def test_ensure_gives_k8s_service_only_our_fixed_apply_settings(monkeypatch):
    seen = {}

    def perform_action(svc, definition, params):
        seen.update(svc=svc, definition=definition, params=params)
        return {"changed": True}

    monkeypatch.setattr(kube, "perform_action", perform_action)
    module = FakeModule(params={"state": "absent", "wait": True}, check_mode=True, diff=True)
    client = PagedClient([[]])
    definition = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    assert kube.KubeAccess(module, client=client).ensure(definition, wait=True, wait_timeout=30) == {"changed": True}
    svc, params = seen["svc"], seen["params"]
    assert svc.client is client and seen["definition"] == definition and seen["definition"] is not definition
    # what K8sService and perform_action read of a module, and nothing else: not the module's params
    assert sorted(vars(svc.module)) == ["_diff", "check_mode", "params", "warn"]
    assert svc.module.params is params and svc.module.check_mode is True and svc.module._diff is True
    svc.module.warn("w")
    assert module.warnings == ["w"]
    assert params["state"] == "present" and params["apply"] is True
    assert params["server_side_apply"] == {"field_manager": kube.FIELD_MANAGER, "force_conflicts": True}
    assert params["wait"] is True and params["wait_timeout"] == 30 and params["wait_sleep"] == 1
    assert params["hidden_fields"] == ["metadata.managedFields"]
    kube.KubeAccess(module, client=client).ensure(definition, state="absent")
    assert seen["params"]["state"] == "absent" and seen["params"]["apply"] is False
