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
import os
import time

from ansible.module_utils.common.text.converters import to_native

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
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - handled by AnsibleK8SModule's requires()
    NotFoundError = ResourceNotFoundError = Exception

FIELD_MANAGER = "gpu-slicing-eks"

# The option names of the EKS connection (documented in doc_fragments/eks_connection.py).
EKS_CONNECTION_OPTIONS = (
    "eks_cluster_name",
    "aws_region",
    "aws_role_arn",
    "aws_profile",
    "aws_access_key",
    "aws_secret_key",
    "aws_session_token",
)


class ConnectionError_(CoreException):
    """No usable, explicit connection to a cluster."""


def connection_arg_spec():
    """kubernetes.core's auth options plus the EKS connection options, for argument_spec."""
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    try:
        from ansible_collections.gpu_slicing.eks.plugins.module_utils.eks import (
            EKS_CONNECTION_ARG_SPEC,
        )
    except ImportError:
        EKS_CONNECTION_ARG_SPEC = {}
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
        "eks_cluster_name with aws_region and AWS credentials. The in-cluster service "
        "account is never used implicitly."
    )


def get_client(module):
    """Build kubernetes.core's K8SClient for ``module`` (an AnsibleK8SModule)."""
    params = module.params
    if params.get("eks_cluster_name"):
        from ansible_collections.gpu_slicing.eks.plugins.module_utils.eks import (
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


class _ServiceView(object):
    """The parts of a module that kubernetes.core's K8sService reads, with our params.

    K8sService takes its apply/wait settings from ``module.params``; ours are fixed by
    design (server-side apply under FIELD_MANAGER), so they are supplied here instead of
    being exposed as module options.
    """

    def __init__(self, module, params):
        self._module = module
        self.params = params

    def __getattr__(self, name):
        return getattr(self._module, name)


class KubeAccess(object):
    """Read and write Kubernetes objects for one module run."""

    def __init__(self, module, client=None):
        self.module = module
        self.client = client or get_client(module)

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
        return K8sService(self.client, _ServiceView(self.module, params)), params

    def resource(self, kind, api_version):
        """The API resource for kind/api_version, or None when the server does not serve it."""
        try:
            return self.client.resource(kind, api_version)
        except (ResourceNotFoundError, NotFoundError):
            return None
        except CoreException:
            return None

    def ensure(self, definition, state="present", wait=False, wait_timeout=120):
        """Make one object match ``definition`` (or be absent). kubernetes.core's result dict."""
        svc, params = self._service(state=state, wait=wait, wait_timeout=wait_timeout)
        return perform_action(svc, copy.deepcopy(definition), params)

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

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, field_selector=None, page_size=5000):
        """Items as plain dicts straight from the JSON, page by page.

        The dynamic client's ResourceInstance wrapping costs more than the request itself on
        large lists (20,000 pods), so reports read the raw JSON instead.
        """
        import json

        resource = self.client.resource(kind, api_version)
        items, token = [], None
        while True:
            kwargs = {"limit": page_size, "serialize": False}
            if namespace:
                kwargs["namespace"] = namespace
            if label_selector:
                kwargs["label_selector"] = label_selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            if token:
                kwargs["_continue"] = token
            response = self.client.client.get(resource, **kwargs)
            body = json.loads(response.data)
            items.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items

    def wait_for(self, predicate, timeout, interval=1.0, what="condition"):
        """Poll ``predicate()`` until it returns a truthy value or ``timeout`` seconds pass.

        Returns (value, elapsed_seconds). ``value`` is the last falsy value on timeout.
        """
        start = time.monotonic()
        value = None
        while True:
            value = predicate()
            elapsed = time.monotonic() - start
            if value or elapsed >= timeout:
                return value, elapsed
            time.sleep(min(interval, max(0.0, timeout - elapsed)))


def error_message(exc):
    """A readable message from a kubernetes / kubernetes.core exception."""
    body = getattr(exc, "body", None)
    if body:
        return to_native(body)
    return to_native(exc)


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
    host + bearer token (+ CA file), which is also how an EKS connection is handed over.
    """
    params = module.params
    if params.get("eks_cluster_name"):
        configuration = kube.client.configuration
        token = (configuration.api_key or {}).get("authorization", "")
        if token.startswith("Bearer "):
            token = token[len("Bearer "):]
        return {
            "host": configuration.host,
            "api_key": token,
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


# --------------------------------------------------------------------------- generic additions
# Small generic helpers added for the verify module (plain create/delete/log, no apply
# machinery). They do not change anything above.


def _kube_create(self, definition):
    """Create one object (POST). Returns the created object as a dict."""
    resource = self.client.resource(definition["kind"], definition["apiVersion"])
    namespace = (definition.get("metadata") or {}).get("namespace")
    return self.client.create(resource, definition, namespace=namespace).to_dict()


def _kube_delete(self, kind, api_version, name, namespace=None, grace_period_seconds=None):
    """Delete one object; True when a delete was issued, False when it was already gone."""
    resource = self.client.resource(kind, api_version)
    kwargs = {"name": name}
    if namespace:
        kwargs["namespace"] = namespace
    if grace_period_seconds is not None:
        kwargs["body"] = {"kind": "DeleteOptions", "apiVersion": "v1",
                          "gracePeriodSeconds": grace_period_seconds, "propagationPolicy": "Background"}
    try:
        self.client.delete(resource, **kwargs)
        return True
    except NotFoundError:
        return False


def _kube_pod_log(self, name, namespace, container=None, tail_lines=None):
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


KubeAccess.create = _kube_create
KubeAccess.delete = _kube_delete
KubeAccess.pod_log = _kube_pod_log
