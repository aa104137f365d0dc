# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection to a cluster: options, the explicit-connection rule, the client.

Everything stands on kubernetes.core's module_utils (``K8S_AUTH_*`` handling, the client
configuration, the dynamic client with its discovery cache), so auth options behave exactly as
in kubernetes.core.k8s. What this adds:

* an explicit-connection rule: the Python client tries the in-cluster service account
  first when nothing is configured, which on an AWX container group silently targets
  AWX's own cluster. We never let that happen (``resolve_connection``);
* an EKS connection (cluster name + AWS credentials, no kubeconfig, no aws CLI) through
  ``aws/eks.py`` when ``eks_cluster_name`` is set;
* ``get_client(module, wrap=...)``: the caller may wrap the kubernetes ``ApiClient`` before the
  dynamic client is built on it (``KubeAccess`` opts into retries this way).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        AUTH_ARG_SPEC,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        K8SClient,
        _create_auth_spec,
        _create_configuration,
        _create_headers,
        _set_header,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import (
        CoreException,
    )

    HAS_KUBERNETES_CORE = True
    KUBERNETES_CORE_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by new_module at run time
    HAS_KUBERNETES_CORE = False
    KUBERNETES_CORE_IMPORT_ERROR = exc
    AUTH_ARG_SPEC = {}
    CoreException = Exception

try:
    import kubernetes
    from ansible_collections.kubernetes.core.plugins.module_utils.client.discovery import (
        LazyDiscoverer,
    )
    from ansible_collections.kubernetes.core.plugins.module_utils.k8sdynamicclient import (
        K8SDynamicClient,
    )
except ImportError:  # pragma: no cover - AnsibleK8SModule's requires() reports the kubernetes library
    pass


class KubeConnectionError(GpuSlicingError):
    """No usable, explicit connection to a cluster."""

    kind = "connection"


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
    raise KubeConnectionError(
        "No Kubernetes connection was given. Set one of: the kubeconfig option or "
        "K8S_AUTH_KUBECONFIG / KUBECONFIG; host and api_key (K8S_AUTH_HOST and "
        "K8S_AUTH_API_KEY, as AWX's Kubernetes Bearer Token credential does); or "
        "eks_cluster_name with region and AWS credentials. The in-cluster service "
        "account is never used implicitly."
    )


def _configuration_and_headers(module):
    """The kubernetes client configuration for the module's connection, and the default
    headers (impersonation) kubernetes.core would set."""
    params = module.params
    if params.get("eks_cluster_name"):
        from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.eks import (
            kube_configuration_from_params,
        )

        return kube_configuration_from_params(params), {}
    extra = resolve_connection(module)
    try:
        configuration = _create_configuration(_create_auth_spec(module, **extra))
    except kubernetes.config.ConfigException as exc:
        raise CoreException("Could not create API client: {0}".format(exc)) from exc
    return configuration, _create_headers(module, **extra)


def get_client(module, wrap=None):
    """kubernetes.core's K8SClient for ``module`` (an AnsibleK8SModule), built as kubernetes.core's
    ``get_api_client`` builds it, except that ``wrap(api_client)`` (when given) may replace the
    kubernetes ``ApiClient`` the dynamic client sends its requests through. One client per call:
    kubernetes.core's shared client cache is not used, so no other code sees the wrapper."""
    configuration, headers = _configuration_and_headers(module)
    api_client = kubernetes.client.ApiClient(configuration)
    for header, value in headers.items():
        _set_header(api_client, header, value)
    if wrap is not None:
        api_client = wrap(api_client)
    return K8SClient(
        configuration=configuration,
        client=K8SDynamicClient(api_client, discoverer=LazyDiscoverer),
        dry_run=module.server_side_dry_run,
    )


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
