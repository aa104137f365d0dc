# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""eks_connection_info's operation: an EKS cluster's endpoint, CA and a fresh token.

The token is a secret: the action plugin hides the displayed result; ``register`` keeps it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.eks import describe_cluster
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import connection_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    HAS_BOTO3,
    NO_CONNECTION_HINT,
    AwsError,
    boto3_missing,
    isoformat_z,
    session_from_params,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.token import TokenSource


@dataclass(frozen=True)
class ConnectionInfoOptions:
    aws: dict
    eks_cluster_name: str
    ca_cert_path: str = None
    include_token: bool = True

    @classmethod
    def from_params(cls, params):
        if not HAS_BOTO3:
            raise boto3_missing()
        if not params.get("eks_cluster_name"):
            raise AwsError("eks_cluster_name is not set", kind="no_connection", fix=NO_CONNECTION_HINT)
        return cls(aws=connection_params(params), eks_cluster_name=params["eks_cluster_name"],
                   ca_cert_path=params.get("ca_cert_path"), include_token=params.get("include_token", True))


def read_file(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_ca(path, pem):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    return path


def ensure_ca_file(path, ca_data_b64, check_mode=False):
    """Write the CA PEM to ``path`` unless it already holds it (or check mode).

    Returns ``(state, diff)``: state ``written``, ``unchanged`` or ``would write``."""
    pem = base64.b64decode(ca_data_b64)
    before = read_file(path)
    diff = {"before_header": path, "after_header": path,
            "before": (before or b"").decode("utf-8", "replace"), "after": pem.decode("utf-8", "replace")}
    if before == pem:
        return "unchanged", diff
    if check_mode:
        return "would write", diff
    write_ca(path, pem)
    return "written", diff


def connection_info(options, context, session_factory=session_from_params, clock=None):
    """``{cluster, host, certificate_authority_data, validate_certs}`` plus the CA file's state
    and, unless ``include_token`` is false, ``api_key`` and its ``expiration``."""
    session = session_factory(options.aws)
    info = describe_cluster(session, options.eks_cluster_name)
    result = dict(
        changed=False,
        cluster=info,
        host=info["endpoint"],
        certificate_authority_data=info["certificate_authority_data"],
        validate_certs=True,
    )
    if options.ca_cert_path:
        try:
            state, diff = ensure_ca_file(options.ca_cert_path, info["certificate_authority_data"], context.check_mode)
        except (OSError, ValueError, TypeError) as exc:
            raise AwsError("Cannot write the cluster CA to %s (%s)" % (options.ca_cert_path, exc), kind="invalid",
                           fix="give a writable ca_cert_path") from None
        result.update(ca_cert=options.ca_cert_path, ca_cert_state=state, changed=state != "unchanged")
        if context.diff:
            result["diff"] = diff
    if options.include_token:
        source = TokenSource(session, info["name"], clock=clock)
        result["api_key"] = source.get()
        result["expiration"] = isoformat_z(source.expires_at)
    return result
