# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where gpu_slicing.eks reads and writes Kubernetes objects: ``KubeAccess``.

``KubeAccess.ensure`` applies one object with server-side apply under our own field manager
(in check mode as a server-side dry run) through kubernetes.core's ``K8sService``, and returns
kubernetes.core's structured result (``changed``, ``method``, ``diff``, ``result``). Reads,
creates and deletes go through the same client, which retries what is safe to retry
(retries.py). ``connect(module)`` is how a module run gets one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import lists
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    CoreException,
    KubeConnectionError,
    get_client,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.retries import (
    RetryingApiClient,
    RetryStats,
    drain,
)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.runner import (
        perform_action,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import (
        K8sService,
    )
except ImportError:  # pragma: no cover - reported by connection.new_module at run time
    pass

try:
    from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - handled by AnsibleK8SModule's requires()
    ForbiddenError = NotFoundError = ResourceNotFoundError = Exception

FIELD_MANAGER = "gpu-slicing-eks"


class _ServiceSettings(object):
    """What kubernetes.core's ``K8sService`` and ``perform_action`` read from a module, and
    nothing else: ``params`` (our apply settings, fixed by design: server-side apply under
    FIELD_MANAGER, conflicts forced, managedFields hidden), ``check_mode``, ``_diff``, ``warn``."""

    def __init__(self, module, state, wait, wait_timeout):
        self.check_mode = module.check_mode
        self._diff = getattr(module, "_diff", False)
        self.warn = module.warn
        self.params = {
            "state": state,
            "apply": state == "present",
            "server_side_apply": {"field_manager": FIELD_MANAGER, "force_conflicts": True},
            "force": False,
            "wait": wait,
            "wait_sleep": 1,
            "wait_timeout": wait_timeout,
            "wait_condition": None,
            "hidden_fields": ["metadata.managedFields"],
            "label_selectors": None,
            "merge_type": None,
            "append_hash": False,
            "delete_options": None,
            "generate_name": None,
        }


class KubeAccess(object):
    """Read and write Kubernetes objects for one module run."""

    def __init__(self, module, client=None):
        self.module = module
        # Every request of our own client goes through the retries (retries.py); what was
        # retried is reported as api_retries by runner.RunContext.finish.
        self.retry_stats = RetryStats()
        if client is None:
            retrying = RetryingApiClient(self.retry_stats, log=getattr(module, "log", None))
            client = get_client(module, wrap=retrying.around)
            retrying.enabled = True
        self.client = client

    def _service(self, state="present", wait=False, wait_timeout=120):
        settings = _ServiceSettings(self.module, state=state, wait=wait, wait_timeout=wait_timeout)
        return K8sService(self.client, settings), settings.params

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
        return [item.to_dict() for item in resource.get(**lists.selection(namespace, label_selector, field_selector)).items]

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, field_selector=None, page_size=2000,
                 fields_only=False):
        """Items as plain dicts straight from the response, page by page (see lists.list_raw)."""
        return lists.list_raw(self.client, kind, api_version, namespace=namespace, label_selector=label_selector,
                              field_selector=field_selector, page_size=page_size, fields_only=fields_only)

    def list_raw_together(self, *requests):
        """Several ``list_raw`` calls at the same time; their results in order (see lists.list_raw_together)."""
        return lists.list_raw_together(self.client, *requests)

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
                drain(self.client.create(resource, definition, namespace=namespace, serialize=False))
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
        resource = self.client.resource(kind, api_version)
        kwargs = {"namespace": namespace, "label_selector": label_selector, "serialize": False}
        if grace_period_seconds is not None:
            kwargs["body"] = _delete_options(grace_period_seconds)
        try:
            drain(self.client.delete(resource, **kwargs))
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
    """A KubeAccess for the module's connection. Raises KubeConnectionError with one clear
    message for a connection problem of any kind (no kubeconfig, bad credentials, EKS lookup
    failed); runner.run_module turns it into the module's failure."""
    try:
        return KubeAccess(module)
    except Exception as exc:  # pylint: disable=broad-except
        raise KubeConnectionError("Cannot connect to the Kubernetes API: %s" % error_message(exc)) from exc
