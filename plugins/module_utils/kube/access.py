# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where gpu_slicing.eks talks to Kubernetes.

Everything here stands on kubernetes.core's module_utils (client construction, the
``K8sService`` apply/diff/wait machinery, ``K8S_AUTH_*`` handling), the way community.okd
and kubevirt.core build on it, so auth options behave exactly as in kubernetes.core.k8s.

What this module adds:

* an explicit-connection rule: the Python client tries the in-cluster service account
  first when nothing is configured, which on an AWX container group silently targets
  AWX's own cluster. We never let that happen (``resolve_connection``);
* an EKS connection (cluster name + AWS credentials, no kubeconfig, no aws CLI) through
  ``eks.py`` when ``eks_cluster_name`` is set;
* ``KubeAccess.ensure`` which applies one object with server-side apply under our own
  field manager, in check mode as a server-side dry run, and returns kubernetes.core's
  structured result (``changed``, ``method``, ``diff``, ``result``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import protobuf as kube_protobuf
from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        AUTH_ARG_SPEC,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        K8SClient,
        _create_auth_spec,
        create_api_client,
        get_api_client,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import (
        CoreException,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.runner import (
        perform_action,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import (
        K8sService,
    )

    HAS_KUBERNETES_CORE = True
    KUBERNETES_CORE_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module at run time
    HAS_KUBERNETES_CORE = False
    KUBERNETES_CORE_IMPORT_ERROR = exc
    AUTH_ARG_SPEC = {}
    CoreException = Exception

try:
    from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - handled by AnsibleK8SModule's requires()
    ForbiddenError = NotFoundError = ResourceNotFoundError = Exception

FIELD_MANAGER = "gpu-slicing-eks"

# The option names of the EKS connection (documented in doc_fragments/eks_connection.py).
EKS_CONNECTION_OPTIONS = (
    "eks_cluster_name",
    "region",
    "aws_role_arn",
    "endpoint_url",
    "aws_profile",
    "access_key",
    "secret_key",
    "session_token",
)


class ConnectionError_(CoreException):
    """No usable, explicit connection to a cluster."""


def connection_arg_spec():
    """kubernetes.core's auth options plus the EKS connection options, for argument_spec."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import (
        EKS_CONNECTION_ARG_SPEC,
    )

    spec.update(copy.deepcopy(EKS_CONNECTION_ARG_SPEC))
    return spec


def resolve_connection(module):
    """Return kubernetes.core auth kwargs that name an explicit cluster, or raise.

    kubernetes.core falls back to ``load_incluster_config()`` when no host, kubeconfig or
    context is given. We turn a present ``KUBECONFIG`` / ``~/.kube/config`` into an
    explicit kubeconfig so that fallback never runs, and otherwise fail with what to set.
    """
    auth = _create_auth_spec(module)
    if auth.get("host") and (
        auth.get("api_key")
        or (auth.get("cert_file") and auth.get("key_file"))
        or (auth.get("username") and auth.get("password"))
    ):
        return {}
    if auth.get("kubeconfig") or auth.get("context"):
        return {}
    env_kubeconfig = os.environ.get("KUBECONFIG")
    if env_kubeconfig:
        return {"kubeconfig": env_kubeconfig}
    default_path = os.path.expanduser("~/.kube/config")
    if os.path.exists(default_path):
        return {"kubeconfig": default_path}
    raise ConnectionError_(
        "No Kubernetes connection was given. Set one of: the kubeconfig option or "
        "K8S_AUTH_KUBECONFIG / KUBECONFIG; host and api_key (K8S_AUTH_HOST and "
        "K8S_AUTH_API_KEY, as AWX's Kubernetes Bearer Token credential does); or "
        "eks_cluster_name with region and AWS credentials. The in-cluster service "
        "account is never used implicitly."
    )


def get_client(module):
    """Build kubernetes.core's K8SClient for ``module`` (an AnsibleK8SModule)."""
    params = module.params
    if params.get("eks_cluster_name"):
        from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.eks import (
            kube_configuration_from_params,
        )

        configuration = kube_configuration_from_params(params)
        return K8SClient(
            configuration=configuration,
            client=create_api_client(configuration),
            dry_run=module.server_side_dry_run,
        )
    extra = resolve_connection(module)
    return get_api_client(module, **extra)


class ParamsView(object):
    """A module with other params: everything else (check mode, diff, warn, fail_json, the
    inner AnsibleModule) is the module's own.

    Used where code reads its settings from ``module.params`` but must see other ones:
    kubernetes.core's K8sService takes its apply/wait settings from params (ours are fixed by
    design: server-side apply under FIELD_MANAGER), AnsibleHelmModule its helm settings, and
    gpu_sharing runs each part's code with that part's options.

    The module is kept as ``_wrapped``, not ``_module``: code that reaches for the inner
    AnsibleModule of an AnsibleK8SModule (``module._module``) must get it through a view too.
    """

    def __init__(self, module, params):
        self._wrapped = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


class KubeAccess(object):
    """Read and write Kubernetes objects for one module run."""

    def __init__(self, module, client=None):
        self.module = module
        self.client = client or get_client(module)
        # Every request goes through the retry layer (see "Retries" below); what was retried is
        # reported in the module's result as api_retries.
        self.retry_stats = _install_module_retries(module, self.client)

    def _service(self, state="present", wait=False, wait_timeout=120, wait_condition=None):
        params = {
            "state": state,
            "apply": state == "present",
            "server_side_apply": {"field_manager": FIELD_MANAGER, "force_conflicts": True},
            "force": False,
            "wait": wait,
            "wait_sleep": 1,
            "wait_timeout": wait_timeout,
            "wait_condition": wait_condition,
            "hidden_fields": ["metadata.managedFields"],
            "label_selectors": None,
            "merge_type": None,
            "append_hash": False,
            "delete_options": None,
            "generate_name": None,
        }
        return K8sService(self.client, ParamsView(self.module, params)), params

    def server_minor_version(self):
        """The API server's "major.minor" (no "+"), as Karpenter's AWS provider forms it."""
        info = self.client.client.version["kubernetes"]
        return "%s.%s" % (info["major"], str(info["minor"]).rstrip("+"))

    def resource(self, kind, api_version):
        """The API resource for kind/api_version, or None when the server does not serve it."""
        try:
            return self.client.resource(kind, api_version)
        except (ResourceNotFoundError, NotFoundError):
            return None
        except CoreException:
            return None

    def forget_discovery(self):
        """Read the served kinds from the server again. kubernetes.core keeps discovery in a file
        that never expires, so a CRD deleted since still looks served until this is called."""
        self.client.client.resources.invalidate_cache()

    def serves_kind(self, group, kind):
        """True when the API server serves ``kind`` in API ``group`` (any version)."""
        try:
            return bool(self.client.client.resources.search(group=group, kind=kind))
        except (ResourceNotFoundError, NotFoundError):
            return False

    def ensure(self, definition, state="present", wait=False, wait_timeout=120):
        """Make one object match ``definition`` (or be absent). kubernetes.core's result dict."""
        svc, params = self._service(state=state, wait=wait, wait_timeout=wait_timeout)
        return perform_action(svc, copy.deepcopy(definition), params)

    def dry_run_apply(self, definition):
        """Server-side apply with dryRun=All: the API server's full validation (schemas, CEL,
        admission) without persisting anything. Raises what a real apply would raise; returns the
        object as admission left it."""
        resource = self.client.resource(definition["kind"], definition["apiVersion"])
        return self.client.client.server_side_apply(
            resource, body=definition, namespace=definition["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER, force_conflicts=True, dry_run="All",
        ).to_dict()

    def get(self, kind, api_version, name, namespace=None):
        """The object as a dict, or None when it does not exist."""
        resource = self.client.resource(kind, api_version)
        try:
            return resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        """Items of a kind as dicts."""
        resource = self.client.resource(kind, api_version)
        kwargs = {}
        if namespace:
            kwargs["namespace"] = namespace
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        return [item.to_dict() for item in resource.get(**kwargs).items]

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, field_selector=None, page_size=2000,
                 fields_only=False):
        """Items as plain dicts straight from the response, page by page.

        The dynamic client's ResourceInstance wrapping costs more than the request itself on
        large lists (20,000 pods), so reports read the raw response instead. Decoding a page and
        fetching the next one overlap: the continue token is read from the head of the page
        (the list's metadata comes before its items), so the API server serves page N+1 while
        page N is decoded here.

        ``fields_only`` (Pods and Nodes): ask for protobuf and keep only the fields that
        kube_protobuf's reader for the kind names. A server that answers JSON all the same
        (a proxy in between) is read as JSON, whole objects.
        """
        from concurrent.futures import ThreadPoolExecutor

        resource = self.client.resource(kind, api_version)
        reader = kube_protobuf.READERS[kind] if fields_only else None

        def fetch(token):
            kwargs = {"limit": page_size, "serialize": False}
            if namespace:
                kwargs["namespace"] = namespace
            if label_selector:
                kwargs["label_selector"] = label_selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            if token:
                kwargs["_continue"] = token
            if reader:
                kwargs["header_params"] = {"Accept": kube_protobuf.ACCEPT_PROTOBUF_OR_JSON}
            try:
                response = self.client.client.get(resource, **kwargs)
            except Exception as exc:
                if not reader or not _refused_unreadably(exc):
                    raise
                # A refusal in protobuf reaches us without its message (the client reads error
                # bodies as text): ask once more as JSON, for the error that says what is wrong.
                del kwargs["header_params"]
                response = self.client.client.get(resource, **kwargs)
            return response.data, kube_protobuf.is_protobuf(_response_header(response, "Content-Type"))

        def token_and_items(page):
            data, protobuf = page
            if protobuf:
                return kube_protobuf.continue_token(data), lambda: kube_protobuf.list_items(data, reader)
            return _continue_token(data), lambda: json.loads(data).get("items") or []

        items = []
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            page = fetch(None)
            while True:
                token, decode = token_and_items(page)
                upcoming = prefetch.submit(fetch, token) if token else None
                items.extend(decode())
                if upcoming is None:
                    return items
                page = upcoming.result()

    def list_raw_together(self, *requests):
        """Several ``list_raw`` calls at the same time (each a dict of its keyword arguments);
        their results in order. The API server works on one while this process decodes another."""
        from concurrent.futures import ThreadPoolExecutor

        for request in requests:  # discovery once, outside the threads
            self.client.resource(request["kind"], request["api_version"])
        with ThreadPoolExecutor(max_workers=len(requests) or 1) as pool:
            futures = [pool.submit(self.list_raw, **request) for request in requests]
            return [f.result() for f in futures]

    def create(self, definition):
        """Create one object (POST). Returns the created object as a dict."""
        resource = self.client.resource(definition["kind"], definition["apiVersion"])
        namespace = (definition.get("metadata") or {}).get("namespace")
        return self.client.create(resource, definition, namespace=namespace).to_dict()

    def create_many(self, definitions, workers=8):
        """Create objects concurrently (verification creates thousands of test pods).

        Returns one ``(definition, error)`` per definition, in order; ``error`` is None on
        success. The API resources are resolved once up front: discovery is not thread-safe.
        """
        from concurrent.futures import ThreadPoolExecutor

        resources = {}
        for definition in definitions:
            key = (definition["kind"], definition["apiVersion"])
            if key not in resources:
                resources[key] = self.client.resource(*key)

        def one(definition):
            resource = resources[(definition["kind"], definition["apiVersion"])]
            namespace = (definition.get("metadata") or {}).get("namespace")
            try:
                # serialize=False: the created object is not needed, and decoding it costs more than the POST.
                _drain(self.client.create(resource, definition, namespace=namespace, serialize=False))
                return definition, None
            except Exception as exc:  # pylint: disable=broad-except
                return definition, exc

        if len(definitions) <= 1:
            return [one(d) for d in definitions]
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(definitions)))) as pool:
            return list(pool.map(one, definitions))

    def delete(self, kind, api_version, name, namespace=None, grace_period_seconds=None):
        """Delete one object; True when a delete was issued, False when it was already gone."""
        resource = self.client.resource(kind, api_version)
        kwargs = {"name": name}
        if namespace:
            kwargs["namespace"] = namespace
        if grace_period_seconds is not None:
            kwargs["body"] = _delete_options(grace_period_seconds)
        try:
            self.client.delete(resource, **kwargs)
            return True
        except NotFoundError:
            return False

    def delete_collection(self, kind, api_version, namespace, label_selector, grace_period_seconds=None, workers=8):
        """Delete every object of a kind in ``namespace`` matching ``label_selector``.

        One request (``deletecollection``), or, when the identity may ``delete`` but not
        ``deletecollection`` (a ClusterRole written before this collection used it), one
        DELETE per object, concurrently. Returns how: ``"collection"`` or ``"each"``.
        """
        from concurrent.futures import ThreadPoolExecutor

        resource = self.client.resource(kind, api_version)
        kwargs = {"namespace": namespace, "label_selector": label_selector, "serialize": False}
        if grace_period_seconds is not None:
            kwargs["body"] = _delete_options(grace_period_seconds)
        try:
            _drain(self.client.delete(resource, **kwargs))
            return "collection"
        except (NotFoundError, ForbiddenError) as exc:
            if getattr(exc, "status", None) != 403:
                return "collection"  # nothing there to delete
        listed = self.list_raw(kind, api_version, namespace=namespace, label_selector=label_selector)
        names = [o["metadata"]["name"] for o in listed]
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
            list(pool.map(lambda name: self.delete(kind, api_version, name, namespace=namespace,
                                                   grace_period_seconds=grace_period_seconds), names))
        return "each"

    def pod_log(self, name, namespace, container=None, tail_lines=None):
        """A pod's log as text, or None when it cannot be read."""
        resource = self.client.resource("Pod", "v1")
        query = []  # a list: the dynamic client appends its own parameters to it
        if container:
            query.append(("container", container))
        if tail_lines:
            query.append(("tailLines", tail_lines))
        try:
            response = resource.log.get(name=name, namespace=namespace, serialize=False, query_params=query)
            return response.data.decode("utf-8", "replace")
        except Exception:  # pylint: disable=broad-except
            return None

    def wait_for(self, predicate, timeout, interval=1.0, what="condition", detail=None):
        """Poll ``predicate()`` until it returns a truthy value or ``timeout`` seconds pass.

        Returns (value, elapsed_seconds). ``value`` is the last falsy value on timeout.
        With ``detail`` (a callable making a short status text) each round may add a progress
        line named ``what`` for the job output (throttled, see progress.waiting).
        """
        start = time.monotonic()
        value = None
        while True:
            value = predicate()
            elapsed = time.monotonic() - start
            if value or elapsed >= timeout:
                return value, elapsed
            if detail is not None:
                progress.waiting(what, elapsed, timeout, detail)
            time.sleep(min(interval, max(0.0, timeout - elapsed)))


def _refused_unreadably(exc):
    """A 4xx answer (not 429, which the retries handle) whose body is not JSON text."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or not 400 <= status < 500 or status == 429:
        return False
    body = getattr(exc, "body", None)
    return not (isinstance(body, str) and body.lstrip().startswith("{"))


_CONTINUE_RE = re.compile(rb'"continue"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _continue_token(data):
    """The ``metadata.continue`` token of a list response, read from its first bytes (the API
    server writes kind, apiVersion and metadata before items), or None on the last page."""
    head = data[:data.find(b'"items"')] if b'"items"' in data[:65536] else data[:65536]
    match = _CONTINUE_RE.search(head)
    return (json.loads(b'"' + match.group(1) + b'"') or None) if match else None


def _delete_options(grace_period_seconds):
    return {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_period_seconds,
            "propagationPolicy": "Background"}


def error_message(exc):
    """A readable message from a kubernetes / kubernetes.core exception."""
    body = getattr(exc, "body", None)
    if body:
        return to_native(body)
    return to_native(exc)


def connect(module):
    """A KubeAccess for the module's connection, or fail_json with one clear message for a
    connection problem of any kind (no kubeconfig, bad credentials, EKS lookup failed)."""
    try:
        return KubeAccess(module)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="Cannot connect to the Kubernetes API: %s" % error_message(exc))


def new_module(**kwargs):
    """An AnsibleK8SModule (kubernetes.core's module class), failing cleanly without it."""
    if not HAS_KUBERNETES_CORE:
        from ansible.module_utils.basic import AnsibleModule, missing_required_lib

        module = AnsibleModule(**kwargs)
        module.fail_json(
            msg=missing_required_lib("the kubernetes.core collection (>=6.0.0,<7.0.0)"),
            exception=to_native(KUBERNETES_CORE_IMPORT_ERROR),
        )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import (
        AnsibleK8SModule,
    )

    return AnsibleK8SModule(**kwargs)


def helm_environment(module, kube):
    """Connection settings for kubernetes.core's AnsibleHelmModule, from the resolved connection.

    helm gets the same cluster as the Python client: an explicit kubeconfig/context, or
    host + CA file for an EKS connection, whose token each command gets from helm_token
    (kubernetes.core caches this environment for the whole module run).
    """
    params = module.params
    if params.get("eks_cluster_name"):
        configuration = kube.client.configuration
        return {
            "host": configuration.host,
            "ca_cert": configuration.ssl_ca_cert,
            "validate_certs": configuration.verify_ssl,
        }
    auth = _create_auth_spec(module)
    auth.update(resolve_connection(module))
    return {
        "kubeconfig": auth.get("kubeconfig"),
        "context": auth.get("context"),
        "host": auth.get("host"),
        "api_key": auth.get("api_key"),
        "ca_cert": auth.get("ssl_ca_cert"),
        "validate_certs": auth.get("verify_ssl"),
    }


def helm_token(kube):
    """The environment that gives one helm command its EKS token, minted for it; ``{}`` for
    other connections.

    helm keeps the bearer token it starts with for the whole command and EKS refuses a token
    15 minutes after signing, so a token from connect time (or one minted 12 minutes ago) would
    make a rollback or uninstall after a long wait fail with 401.
    """
    source = getattr(kube.client.configuration, "eks_token_source", None)
    return {"HELM_KUBETOKEN": source.mint()} if source is not None else {}


# =========================================================================== retry layer
# Retries with exponential backoff and jitter for requests that are safe to repeat.
#
# It sits on the one HTTP entry point every request of the kubernetes client goes through
# (``ApiClient.call_api`` of the client's own instance), so discovery, get/list, server-side
# apply, delete and kubernetes.core's waiters are all covered without touching their code.
#
# What is retried (and why it is safe):
#   * 429 Too Many Requests, any method: API Priority and Fairness rejects the request before
#     any handler runs, so nothing happened; Retry-After is honoured.
#   * connection refused, any method: the request never reached a server (apiserver restart).
#   * 5xx, connection reset / read timeout / TLS EOF: only for requests that are safe to
#     repeat: GET/HEAD/OPTIONS, server-side apply PATCH (application/apply-patch+yaml: the
#     same intent applied twice gives the same object) and DELETE (a second delete of the same
#     object is a 404 the callers already treat as "gone").
#   * 409 Conflict: only for server-side apply PATCH (a concurrent write; re-applying our
#     intent is correct). A 409 on POST (AlreadyExists) or PUT (stale resourceVersion) is
#     returned to the caller, who knows whether it means success.
# Every operation has a retry budget (RETRY_BUDGET_SECONDS, env GPU_SLICING_EKS_RETRY_BUDGET);
# when it is spent the operation fails with KubeRetryError naming method, path, attempts
# and the last error. Counts land in the module result as ``api_retries`` (only when > 0).

import random as _random
import re as _re
import sys as _sys

RETRY_BUDGET_SECONDS = 60.0
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0
APPLY_PATCH_CONTENT_TYPE = "application/apply-patch+yaml"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class KubeRetryError(CoreException):
    """An operation still failed when its retry budget was spent."""

    def __init__(self, operation, attempts, elapsed, budget, last_error):
        self.operation = operation
        self.attempts = attempts
        self.last_error = last_error
        msg = (
            "Kubernetes API operation %s failed after %d attempt(s) over %.1fs (retry budget %.0fs): %s. "
            "Fix: check that the API server is reachable and healthy (a restart or throttling lasting longer "
            "than the budget), then re-run: the modules converge on re-run. Set GPU_SLICING_EKS_RETRY_BUDGET "
            "(seconds) to wait longer." % (operation, attempts, elapsed, budget, last_error)
        )
        super(KubeRetryError, self).__init__(msg)
        self.msg = msg

    def __str__(self):
        return self.msg


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


def backoff_delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, rng=_random.random):
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


_REFUSED_PATTERN = _re.compile(r"connection refused|errno 111|newconnectionerror", _re.I)
_TRANSIENT_PATTERN = _re.compile(
    r"connection reset|connection aborted|remotedisconnected|broken pipe|protocolerror|"
    r"read timed out|timeout|eof occurred|unexpected eof|ssl.*eof|errno 104|incompleteread",
    _re.I,
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
                      sleep=time.sleep, clock=time.monotonic, rng=_random.random):
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
            retry_after = parse_retry_after(_response_header(response, "Retry-After"))
            _drain(response)
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


def _drain(response):
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
    path = _re.sub(r"^[a-z]+://[^/]+", "", url or "")
    return path.split("?")[0] or "/"


def _response_header(response, name):
    getheader = getattr(response, "getheader", None)
    if getheader is not None:
        try:
            return getheader(name)
        except Exception:  # pylint: disable=broad-except
            return None
    return _header(getattr(response, "headers", None), name)


def install_retries(k8s_client, stats, log=None, budget=None):
    """Make every request of ``k8s_client`` (kubernetes.core's K8SClient) go through
    call_with_retries. Idempotent: a client is wrapped once."""
    api_client = getattr(getattr(k8s_client, "client", None), "client", None)
    if api_client is None or getattr(api_client, "_gse_retry_stats", None) is not None:
        return getattr(api_client, "_gse_retry_stats", None)
    original = api_client.call_api

    def call_api(method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        def once():
            response = original(method, url, header_params=header_params, body=body,
                                post_params=post_params, _request_timeout=_request_timeout)
            return response

        return call_with_retries(once, method, url, headers=header_params, budget=budget,
                                 stats=api_client._gse_retry_stats, log=log)

    api_client.call_api = call_api
    api_client._gse_retry_stats = stats
    return stats


def report_retries(module, stats):
    """Add ``api_retries`` to the module's result (exit and fail) when something was retried,
    and turn an uncaught KubeRetryError into a clean fail_json naming the operation."""
    if getattr(module, "_gse_retry_reporting", False):
        return
    module._gse_retry_reporting = True
    # AnsibleK8SModule delegates to its inner AnsibleModule at call time, and modules often write
    # ``module.exit_json(**work(module))`` (the bound method is looked up before ``work`` runs),
    # so the inner module's methods are the ones wrapped.
    target = getattr(module, "_module", None) or module
    exit_json, fail_json = target.exit_json, target.fail_json

    def _with_stats(kwargs):
        if stats.count and "api_retries" not in kwargs:
            kwargs["api_retries"] = stats.to_dict()
        return kwargs

    target.exit_json = lambda **kwargs: exit_json(**_with_stats(kwargs))
    target.fail_json = lambda msg=None, **kwargs: fail_json(msg=msg, **_with_stats(kwargs))

    previous_hook = _sys.excepthook

    def hook(exc_type, exc, tb):
        if isinstance(exc, KubeRetryError):
            module.fail_json(msg=str(exc), operation=exc.operation, attempts=exc.attempts)
        previous_hook(exc_type, exc, tb)

    _sys.excepthook = hook


# Helm commands that only read, so a failed one may be repeated.
HELM_READ_ONLY = ("list", "get", "status", "history", "show", "version", "search")
_HELM_TRANSIENT = _re.compile(
    r"connection refused|connection reset|kubernetes cluster unreachable|too many requests|"
    r"the server is currently unable|etcdserver|i/o timeout|tls handshake timeout|"
    r"http2: client connection lost|unexpected EOF|: EOF\s*$",
    _re.I | _re.M,
)


def helm_with_retries(run, args, stats=None, budget=None, sleep=time.sleep, clock=time.monotonic,
                      rng=_random.random, log=None):
    """Run a read-only helm command (``run(args) -> (rc, out, err)``), repeating it on
    transient API failures within the budget. Other commands run once."""
    if not args or args[0] not in HELM_READ_ONLY:
        return run(args)
    budget = retry_budget_from_env() if budget is None else budget
    start, attempt = clock(), 0
    while True:
        attempt += 1
        rc, out, err = run(args)
        if rc == 0 or not _HELM_TRANSIENT.search(err or ""):
            return rc, out, err
        delay = backoff_delay(attempt - 1, rng=rng)
        if clock() - start + delay > budget:
            return rc, out, "%s\n(helm %s failed after %d attempt(s); retry budget %.0fs spent)" % (
                err, args[0], attempt, budget)
        if stats is not None:
            stats.record("helm %s" % args[0], "helm_transient", delay)
        if log is not None:
            log("retrying helm %s in %.2fs (attempt %d)" % (args[0], delay, attempt))
        sleep(delay)


def _install_module_retries(module, client):
    """One RetryStats per module run, shared by its KubeAccess objects and reported once."""
    stats = getattr(module, "_gse_retry_stats_obj", None)
    if stats is None:
        stats = RetryStats()
        try:
            module._gse_retry_stats_obj = stats
        except AttributeError:
            pass
    stats = install_retries(client, stats, log=getattr(module, "log", None)) or stats
    try:
        report_retries(module, stats)
    except AttributeError:
        pass
    return stats
