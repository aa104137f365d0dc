# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retries with exponential backoff and jitter for Kubernetes requests that are safe to repeat.

A caller opts in by building its client on ``RetryingApiClient`` (``KubeAccess`` does, see
``connection.get_client``): every request of the kubernetes client goes through
``ApiClient.call_api``, so discovery, get/list, server-side apply, delete and kubernetes.core's
waiters are all covered without touching their code. urllib3's ``Retry`` (the client
configuration's ``retries``) cannot do this: it sees neither the request's Content-Type (server-side
apply or not) nor a budget across attempts, and counts nothing for ``api_retries``.

What is retried (and why it is safe):
  * 429 Too Many Requests, any method: API Priority and Fairness rejects the request before
    any handler runs, so nothing happened; Retry-After is honoured.
  * connection refused, any method: the request never reached a server (apiserver restart).
  * 5xx, connection reset / read timeout / TLS EOF: only for requests that are safe to
    repeat: GET/HEAD/OPTIONS, server-side apply PATCH (application/apply-patch+yaml: the
    same intent applied twice gives the same object) and DELETE (a second delete of the same
    object is a 404 the callers already treat as "gone").
  * 409 Conflict: only for server-side apply PATCH (a concurrent write; re-applying our
    intent is correct). A 409 on POST (AlreadyExists) or PUT (stale resourceVersion) is
    returned to the caller, who knows whether it means success.
Every operation has a retry budget (RETRY_BUDGET_SECONDS, env GPU_SLICING_EKS_RETRY_BUDGET);
when it is spent the operation fails with KubeRetryError naming method, path, attempts
and the last error. The counts (``RetryStats``) are reported as ``api_retries`` by
``runner.RunContext.finish`` (only when > 0).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import random
import re
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError

RETRY_BUDGET_SECONDS = 60.0
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0
APPLY_PATCH_CONTENT_TYPE = "application/apply-patch+yaml"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class KubeRetryError(GpuSlicingError):
    """An operation still failed when its retry budget was spent. The module result names the
    operation and the attempts made (``operation``, ``attempts``)."""

    kind = "api_retries_exhausted"

    def __init__(self, operation, attempts, elapsed, budget, last_error):
        self.operation = operation
        self.attempts = attempts
        self.last_error = last_error
        super(KubeRetryError, self).__init__(
            "Kubernetes API operation %s failed after %d attempt(s) over %.1fs (retry budget %.0fs): %s. "
            "Fix: check that the API server is reachable and healthy (a restart or throttling lasting longer "
            "than the budget), then re-run: the modules converge on re-run. Set GPU_SLICING_EKS_RETRY_BUDGET "
            "(seconds) to wait longer." % (operation, attempts, elapsed, budget, last_error),
            operation=operation, attempts=attempts,
        )


class RetryStats(object):
    """Counts of retries for one module run (reported as ``api_retries``)."""

    def __init__(self):
        self.count = 0
        self.by_reason = {}
        self.operations = []  # the last few retried operations, for the result
        self.slept_seconds = 0.0

    def record(self, operation, reason, delay):
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        self.slept_seconds += delay
        entry = "%s (%s)" % (operation, reason)
        if entry not in self.operations:
            self.operations.append(entry)
            del self.operations[:-10]

    def to_dict(self):
        return {
            "count": self.count,
            "by_reason": dict(self.by_reason),
            "operations": list(self.operations),
            "slept_seconds": round(self.slept_seconds, 2),
        }


def retry_budget_from_env(default=RETRY_BUDGET_SECONDS):
    try:
        return float(os.environ.get("GPU_SLICING_EKS_RETRY_BUDGET", default))
    except ValueError:
        return default


def backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, rng=random.random):
    """Exponential backoff with equal jitter: in [d/2, d] for d = min(cap, base * 2**attempt)."""
    ceiling = min(cap, base * (2 ** attempt))
    return ceiling / 2.0 + rng() * ceiling / 2.0


def parse_retry_after(value):
    """Seconds from a Retry-After header (delta-seconds form); None when absent or a date."""
    if value is None:
        return None
    try:
        return max(0.0, float(str(value).strip()))
    except ValueError:
        return None


def _header(headers, name):
    if not headers:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return value


def request_kind(method, headers):
    """'read' | 'apply' | 'delete' | 'write' (POST/PUT/other PATCH): what may be repeated."""
    method = (method or "").upper()
    if method in SAFE_METHODS:
        return "read"
    if method == "PATCH":
        content_type = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        return "apply" if content_type == APPLY_PATCH_CONTENT_TYPE else "write"
    if method == "DELETE":
        return "delete"
    return "write"


_REFUSED_PATTERN = re.compile(r"connection refused|errno 111|newconnectionerror", re.I)
_TRANSIENT_PATTERN = re.compile(
    r"connection reset|connection aborted|remotedisconnected|broken pipe|protocolerror|"
    r"read timed out|timeout|eof occurred|unexpected eof|ssl.*eof|errno 104|incompleteread",
    re.I,
)


def classify_exception(exc):
    """'refused' (never sent), 'transient' (may have been processed) or None (not retryable)."""
    status = getattr(exc, "status", None)
    if status not in (None, 0):
        return None  # an HTTP answer: judged by classify_status
    text = "%s %r %r" % (exc, getattr(exc, "reason", None), type(exc).__name__)
    if _REFUSED_PATTERN.search(text) or isinstance(exc, ConnectionRefusedError):
        return "refused"
    if _TRANSIENT_PATTERN.search(text) or isinstance(exc, (ConnectionError, TimeoutError)):
        return "transient"
    return None


def classify_status(status):
    """A retry reason for an HTTP status, or None."""
    if status == 429:
        return "throttled"
    if status == 409:
        return "conflict"
    if status is not None and 500 <= status <= 599 and status != 501:
        return "server_error"
    return None


def may_retry(reason, kind):
    """Whether a failure with ``reason`` may be repeated for a request of ``kind``."""
    if reason in ("throttled", "refused"):
        return True  # nothing was processed
    if reason in ("server_error", "transient"):
        return kind in ("read", "apply", "delete")
    if reason == "conflict":
        return kind == "apply"
    return False


def call_with_retries(call, method, path, headers=None, budget=None, stats=None, log=None,
                      sleep=time.sleep, clock=time.monotonic, rng=random.random):
    """Run ``call()`` (one HTTP request returning a response with ``.status`` / ``.getheader``),
    repeating it while the failure is retryable for this request and the budget lasts."""
    budget = retry_budget_from_env() if budget is None else budget
    kind = request_kind(method, headers)
    operation = "%s %s" % ((method or "").upper(), _short_path(path))
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        retry_after = None
        try:
            response = call()
        except Exception as exc:  # pylint: disable=broad-except
            reason = classify_exception(exc)
            if reason is None or not may_retry(reason, kind):
                raise
            last_error = "%s: %s" % (_reason_text(reason), _short_exc(exc))
            failure = exc
        else:
            status = getattr(response, "status", None)
            reason = classify_status(status)
            if reason is None or not may_retry(reason, kind):
                return response
            retry_after = parse_retry_after(response_header(response, "Retry-After"))
            drain(response)
            last_error = "HTTP %s %s" % (status, _reason_text(reason))
            failure = None
        elapsed = clock() - start
        delay = backoff_delay(attempt - 1, rng=rng)
        if retry_after is not None:
            delay = retry_after + rng() * 0.25 * max(retry_after, 0.1)
        if elapsed + delay > budget:
            if failure is None:
                return response  # the caller turns the HTTP error into its usual exception
            raise KubeRetryError(operation, attempt, elapsed, budget, last_error)
        if stats is not None:
            stats.record(operation, reason, delay)
        if log is not None:
            log("retrying %s in %.2fs (attempt %d, %s)" % (operation, delay, attempt, last_error))
        sleep(delay)


def drain(response):
    """Read a raw response to its end: that hands its keep-alive connection back to the pool.

    Needed before a retry, and after every ``serialize=False`` call whose body is not used: the
    dynamic client returns those unread, and an unread response's connection is never reused, so
    each such request opened a new TLS connection (in a 1,000-pod verification the handshakes were
    a third of this process's CPU, and the API server paid for them too).
    """
    try:
        response.read()
    except Exception:  # pylint: disable=broad-except
        pass


def _reason_text(reason):
    return {
        "throttled": "429 Too Many Requests (throttled)",
        "refused": "connection refused (API server down or restarting)",
        "transient": "connection lost (API server restarting?)",
        "server_error": "server error",
        "conflict": "409 Conflict",
    }.get(reason, reason)


def _short_exc(exc):
    text = to_native(exc)
    return text if len(text) <= 300 else text[:300] + "..."


def _short_path(url):
    path = re.sub(r"^[a-z]+://[^/]+", "", url or "")
    return path.split("?")[0] or "/"


def response_header(response, name):
    getheader = getattr(response, "getheader", None)
    if getheader is not None:
        try:
            return getheader(name)
        except Exception:  # pylint: disable=broad-except
            return None
    return _header(getattr(response, "headers", None), name)


class RetryingApiClient(object):
    """A kubernetes ``ApiClient`` whose ``call_api`` goes through ``call_with_retries``; every
    other attribute is the wrapped client's.

    The caller builds its dynamic client on this wrapper (``connection.get_client(module,
    wrap=...)``) and turns the retries on once connected (``enabled``): the requests made while
    connecting go once, so a wrong or unreachable server fails at once, as it always has.
    """

    def __init__(self, stats, log=None, budget=None):
        self.stats = stats
        self.enabled = False
        self._log = log
        self._budget = budget
        self._api_client = None

    def around(self, api_client):
        """Wrap ``api_client`` (for ``get_client``'s ``wrap``); returns this wrapper."""
        self._api_client = api_client
        return self

    def __getattr__(self, name):
        api_client = self.__dict__.get("_api_client")
        if api_client is None:
            raise AttributeError(name)
        return getattr(api_client, name)

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        def once():
            return self._api_client.call_api(method, url, header_params=header_params, body=body,
                                             post_params=post_params, _request_timeout=_request_timeout)

        if not self.enabled:
            return once()
        return call_with_retries(once, method, url, headers=header_params, budget=self._budget,
                                 stats=self.stats, log=self._log)
