# -*- coding: utf-8 -*-
# Copyright: contributors to gpu_slicing.eks
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EKS clusters: ``eks:DescribeCluster`` and a kubernetes client configuration for one.

:func:`kube_configuration_from_params` is what the Kubernetes layer calls when the options
name an EKS cluster: it describes the cluster, writes its CA to a private temp file and
wires a refreshing :class:`~aws.token.TokenSource` into the configuration.
"""

from __future__ import annotations

import atexit
import base64
import os
import tempfile

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    NO_CONNECTION_HINT,
    AwsError,
    require_boto3,
    session_from_params,
    translate_error,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.token import TokenSource


# ---------------------------------------------------------------------------
# cluster discovery
# ---------------------------------------------------------------------------
def describe_cluster(session, name):
    """``eks:DescribeCluster`` reduced to what a client needs.

    Returns ``{name, arn, region, endpoint, certificate_authority_data, status, version,
    platform_version}``. Raises :class:`AwsError` (kinds ``not_found``, ``not_active``,
    ``access_denied``, ``no_credentials``, ``no_region``, ``unreachable``).
    """
    require_boto3()
    if not name:
        raise AwsError("eks_cluster_name is empty", kind="invalid", fix="set eks_cluster_name")
    region = session.region_name
    try:
        cluster = session.client("eks", region_name=region).describe_cluster(name=name)["cluster"]
    except Exception as exc:  # pylint: disable=broad-except
        raise translate_error(exc, "describing EKS cluster %r" % name, resource=name, region=region) from None
    status = cluster.get("status", "UNKNOWN")
    info = {
        "name": cluster.get("name", name),
        "arn": cluster.get("arn"),
        "region": region,
        "endpoint": cluster.get("endpoint"),
        "certificate_authority_data": (cluster.get("certificateAuthority") or {}).get("data"),
        "status": status,
        "version": cluster.get("version"),
        "platform_version": cluster.get("platformVersion"),
    }
    if status != "ACTIVE":
        raise AwsError("EKS cluster %r in %s is %s, not ACTIVE" % (name, region, status), kind="not_active",
                       fix="wait until the cluster is ACTIVE (aws eks wait cluster-active) and run again")
    if not info["endpoint"] or not info["certificate_authority_data"]:
        raise AwsError("EKS cluster %r has no endpoint or certificate authority yet" % name, kind="not_active",
                       fix="wait until the cluster is ACTIVE and run again")
    return info


# ---------------------------------------------------------------------------
# kubernetes client configuration
# ---------------------------------------------------------------------------
_TEMP_FILES = []


def _cleanup_temp_files():
    while _TEMP_FILES:
        path = _TEMP_FILES.pop()
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_cleanup_temp_files)


def write_ca_file(ca_data_b64, directory=None):
    """Decode the cluster CA (base64 PEM, as EKS returns it) into a 0600 temp file.

    The file is removed when the Python process exits. Returns its path.
    """
    try:
        pem = base64.b64decode(ca_data_b64, validate=False)
    except (ValueError, TypeError) as exc:
        raise AwsError("The cluster's certificate authority data is not base64 (%s)" % exc, kind="invalid") from None
    fd, path = tempfile.mkstemp(prefix="eks-ca-", suffix=".crt", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    _TEMP_FILES.append(path)
    return path


def kube_client_config(cluster_info, token_source, ca_file_dir=None):
    """A ``kubernetes.client.Configuration`` for an EKS cluster.

    ``host`` is the cluster endpoint, ``ssl_ca_cert`` a 0600 temp file with the decoded CA,
    ``api_key['authorization'] = 'Bearer <token>'`` and ``refresh_api_key_hook`` re-mints
    through ``token_source`` whenever the client reads the key (every request).
    Raises :class:`AwsError` (kind ``no_connection``) when nothing to connect to is given:
    there is no fallback to an in-cluster service account.
    """
    if not cluster_info or not cluster_info.get("endpoint"):
        raise AwsError("No EKS cluster endpoint to connect to", kind="no_connection", fix=NO_CONNECTION_HINT)
    if token_source is None:
        raise AwsError("No EKS token source for cluster %r" % cluster_info.get("name"), kind="no_connection",
                       fix=NO_CONNECTION_HINT)
    try:
        from kubernetes.client import Configuration
    except ImportError:
        raise AwsError("the kubernetes Python client is required", kind="missing_library",
                       fix="install kubernetes (pip install 'kubernetes>=31')") from None
    config = Configuration()
    config.host = cluster_info["endpoint"]
    config.verify_ssl = True
    config.ssl_ca_cert = write_ca_file(cluster_info["certificate_authority_data"], ca_file_dir)
    config.api_key = {"authorization": token_source.bearer()}
    config.refresh_api_key_hook = token_source.refresh_api_key_hook
    # helm runs as its own process and needs a token minted per command (kube.helm_token).
    config.eks_token_source = token_source
    return config


class EKSConnection:
    """Everything resolved from the shared options: session, cluster facts, token source."""

    def __init__(self, session, cluster_info, token_source):
        self.session = session
        self.cluster_info = cluster_info
        self.token_source = token_source

    def kube_client_config(self, ca_file_dir=None):
        return kube_client_config(self.cluster_info, self.token_source, ca_file_dir)

    def __repr__(self):
        return "EKSConnection(cluster=%r, endpoint=%r, %r)" % (
            self.cluster_info.get("name"), self.cluster_info.get("endpoint"), self.token_source)


def connect(params, clock=None):
    """Resolve the shared options into an :class:`EKSConnection` (raises :class:`AwsError`)."""
    name = params.get("eks_cluster_name")
    if not name:
        raise AwsError("eks_cluster_name is not set", kind="no_connection", fix=NO_CONNECTION_HINT)
    session = session_from_params(params)
    info = describe_cluster(session, name)
    return EKSConnection(session, info, TokenSource(session, name, clock=clock))


def kube_configuration_from_params(params, clock=None):
    """A refreshing ``kubernetes.client.Configuration`` from the shared options.

    Describes the cluster, mints the token and wires ``refresh_api_key_hook``; raises
    :class:`AwsError` with what to set when something is missing or refused.
    """
    return connect(params, clock=clock).kube_client_config()
