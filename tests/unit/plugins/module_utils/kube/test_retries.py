"""retries.py without a cluster: what is repeated, how long it waits, when it gives up; the opt-in
wrapper and how a run reports what was retried."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import retries

try:
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
except ImportError:  # pragma: no cover
    MaxRetryError = NewConnectionError = ProtocolError = None


class Resp(object):
    def __init__(self, status, headers=None):
        self.status = status
        self.headers = headers or {}
        self.read_called = False

    def getheader(self, name):
        return self.headers.get(name)

    def read(self):
        self.read_called = True
        return b""


class Clock(object):
    """A fake clock advanced by the fake sleep."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*outcomes):
    """call() that returns/raises the outcomes in order, the last one forever."""
    calls = {"n": 0}

    def call():
        i = min(calls["n"], len(outcomes) - 1)
        calls["n"] += 1
        outcome = outcomes[i]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call, calls


def refused():
    if MaxRetryError is None:
        return ConnectionRefusedError(111, "Connection refused")
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return MaxRetryError(None, "/api/v1/nodes", reason=reason)


def reset():
    return ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))


def run(call, method="GET", headers=None, budget=60.0, stats=None):
    c = Clock()
    result = retries.call_with_retries(call, method, "https://127.0.0.1:6443/api/v1/nodes?limit=5", headers=headers,
                                       budget=budget, stats=stats, sleep=c.sleep, clock=c.clock, rng=lambda: 0.5)
    return result, c


APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def test_429_honours_retry_after_then_succeeds_and_counts():
    stats = retries.RetryStats()
    call, calls = scripted(Resp(429, {"Retry-After": "3"}), Resp(429, {"Retry-After": "1"}), Resp(200))
    result, c = run(call, stats=stats)
    assert result.status == 200 and calls["n"] == 3
    assert c.sleeps[0] >= 3 and c.sleeps[0] <= 3 * 1.25
    assert c.sleeps[1] >= 1 and c.sleeps[1] <= 1.25
    assert stats.count == 2 and stats.by_reason == {"throttled": 2}
    assert stats.to_dict()["operations"] == ["GET /api/v1/nodes (throttled)"]


def test_429_is_retried_for_create_posts_too_nothing_was_processed():
    call, calls = scripted(Resp(429, {"Retry-After": "0"}), Resp(201))
    result, dummy = run(call, method="POST")
    assert result.status == 201 and calls["n"] == 2


def test_backoff_is_exponential_with_jitter_and_capped():
    assert retries.backoff_delay(0, rng=lambda: 0.0) == pytest.approx(0.25)
    assert retries.backoff_delay(0, rng=lambda: 1.0) == pytest.approx(0.5)
    assert retries.backoff_delay(3, rng=lambda: 1.0) == pytest.approx(4.0)
    assert retries.backoff_delay(10, rng=lambda: 1.0) == pytest.approx(retries.RETRY_CAP_SECONDS)
    delays = [retries.backoff_delay(i, rng=lambda: 0.5) for i in range(6)]
    assert delays == sorted(delays)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried_for_reads_applies_and_deletes(status):
    for method, headers in (("GET", None), ("PATCH", APPLY), ("DELETE", None)):
        call, calls = scripted(Resp(status), Resp(200))
        result, dummy = run(call, method=method, headers=headers)
        assert result.status == 200 and calls["n"] == 2, method


@pytest.mark.parametrize("method,headers", [("POST", None), ("PUT", None), ("PATCH", MERGE)])
def test_5xx_not_retried_for_writes_that_may_not_repeat(method, headers):
    call, calls = scripted(Resp(503), Resp(200))
    result, dummy = run(call, method=method, headers=headers)
    assert result.status == 503 and calls["n"] == 1


def test_409_retried_only_for_server_side_apply():
    call, calls = scripted(Resp(409), Resp(409), Resp(200))
    result, dummy = run(call, method="PATCH", headers=APPLY)
    assert result.status == 200 and calls["n"] == 3
    for method in ("POST", "PUT"):
        call, calls = scripted(Resp(409), Resp(201))
        result, dummy = run(call, method=method)
        assert result.status == 409 and calls["n"] == 1, "409 on %s is the caller's to judge" % method


def test_non_retryable_statuses_return_at_once():
    for status in (400, 401, 403, 404, 422, 501):
        call, calls = scripted(Resp(status), Resp(200))
        result, dummy = run(call)
        assert result.status == status and calls["n"] == 1


def test_connection_refused_retried_for_every_method():
    for method in ("GET", "POST", "PUT"):
        call, calls = scripted(refused(), refused(), Resp(200))
        result, dummy = run(call, method=method)
        assert result.status == 200 and calls["n"] == 3


@pytest.mark.skipif(ProtocolError is None, reason="urllib3 missing")
def test_connection_reset_retried_for_reads_not_for_create():
    call, calls = scripted(reset(), Resp(200))
    assert run(call)[0].status == 200 and calls["n"] == 2
    call, calls = scripted(reset(), Resp(201))
    with pytest.raises(ProtocolError):
        run(call, method="POST")
    assert calls["n"] == 1


def test_budget_spent_on_connection_errors_fails_naming_the_operation():
    stats = retries.RetryStats()
    call, calls = scripted(refused())
    with pytest.raises(retries.KubeRetryError) as info:
        run(call, budget=10.0, stats=stats)
    msg = str(info.value)
    assert "GET /api/v1/nodes" in msg and "connection refused" in msg and "Fix:" in msg
    assert "retry budget 10s" in msg
    assert info.value.attempts == calls["n"] > 3
    assert sum(stats_sleep for stats_sleep in [stats.slept_seconds]) <= 10.0


def test_budget_spent_on_http_errors_returns_the_last_response():
    call, calls = scripted(Resp(503))
    c = Clock()
    result = retries.call_with_retries(call, "GET", "/api/v1/nodes", budget=5.0, sleep=c.sleep, clock=c.clock,
                                       rng=lambda: 1.0)
    assert result.status == 503 and calls["n"] > 2 and c.now <= 5.0


def test_retry_after_longer_than_budget_gives_up_without_sleeping():
    call, calls = scripted(Resp(429, {"Retry-After": "120"}), Resp(200))
    result, c = run(call, budget=60.0)
    assert result.status == 429 and calls["n"] == 1 and c.sleeps == []


def test_unknown_exceptions_are_not_retried():
    call, calls = scripted(ValueError("bad body"), Resp(200))
    with pytest.raises(ValueError):
        run(call)
    assert calls["n"] == 1


def test_request_kind():
    assert retries.request_kind("get", None) == "read"
    assert retries.request_kind("PATCH", {"Content-Type": "application/apply-patch+yaml; charset=utf-8"}) == "apply"
    assert retries.request_kind("PATCH", MERGE) == "write"
    assert retries.request_kind("DELETE", {}) == "delete"
    assert retries.request_kind("POST", {}) == "write"


def test_parse_retry_after():
    assert retries.parse_retry_after("2") == 2.0
    assert retries.parse_retry_after(" 0.5 ") == 0.5
    assert retries.parse_retry_after(None) is None
    assert retries.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_budget_from_env(monkeypatch):
    monkeypatch.setenv("GPU_SLICING_EKS_RETRY_BUDGET", "7")
    assert retries.retry_budget_from_env() == 7.0
    monkeypatch.setenv("GPU_SLICING_EKS_RETRY_BUDGET", "x")
    assert retries.retry_budget_from_env() == retries.RETRY_BUDGET_SECONDS


class FakeApiClient(object):
    """The kubernetes ApiClient surface the dynamic client uses: call_api (positional, as
    DynamicClient.request calls it) and configuration."""

    def __init__(self, outcomes):
        self.call, self.calls = scripted(*outcomes)
        self.seen = []
        self.configuration = "the client's configuration"

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        self.seen.append((method, url, header_params))
        return self.call()


def test_the_wrapper_retries_only_once_enabled():
    stats = retries.RetryStats()
    api = FakeApiClient([Resp(429, {"Retry-After": "0"}), Resp(429, {"Retry-After": "0"}), Resp(200)])
    wrapper = retries.RetryingApiClient(stats)
    assert wrapper.around(api) is wrapper
    assert wrapper.configuration == "the client's configuration"  # everything else is the client's
    # while connecting (not enabled yet) a request goes once, as before
    assert wrapper.call_api("GET", "https://h/version", {}, None, [], _request_timeout=None).status == 429
    assert len(api.seen) == 1 and stats.count == 0
    wrapper.enabled = True
    response = wrapper.call_api("GET", "https://h/api/v1/namespaces?limit=5", {"Accept": "application/json"}, None, [])
    assert response.status == 200 and len(api.seen) == 3
    assert api.seen[-1] == ("GET", "https://h/api/v1/namespaces?limit=5", {"Accept": "application/json"})
    assert stats.to_dict()["operations"] == ["GET /api/v1/namespaces (throttled)"]


def test_the_wrapper_judges_a_patch_by_its_content_type():
    stats = retries.RetryStats()
    for headers, calls in ((APPLY, 2), (MERGE, 1)):
        api = FakeApiClient([Resp(409), Resp(200)])
        wrapper = retries.RetryingApiClient(stats, budget=60.0).around(api)
        wrapper.enabled = True
        wrapper.call_api("PATCH", "https://h/api/v1/namespaces/x", header_params=headers, body={})
        assert len(api.seen) == calls, headers


def test_an_unwrapped_wrapper_has_no_attributes():
    with pytest.raises(AttributeError):
        getattr(retries.RetryingApiClient(retries.RetryStats()), "configuration")


def test_budget_spent_is_a_gpu_slicing_error_with_operation_and_attempts():
    error = retries.KubeRetryError("GET /api/v1/nodes", 4, 9.5, 10.0, "connection refused")
    assert isinstance(error, GpuSlicingError)
    result = error.to_result()
    assert result["error_kind"] == "api_retries_exhausted"
    assert result["operation"] == "GET /api/v1/nodes" and result["attempts"] == 4
    assert result["msg"] == str(error) and "after 4 attempt(s) over 9.5s (retry budget 10s)" in result["msg"]
