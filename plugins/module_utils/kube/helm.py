# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What helm needs from our Kubernetes connection: its environment, a fresh EKS token per
command, and retries for the commands that only read."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import re
import time

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    _create_auth_spec,
    resolve_connection,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.retries import (
    backoff_delay,
    retry_budget_from_env,
)


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


# Helm commands that only read, so a failed one may be repeated.
HELM_READ_ONLY = ("list", "get", "status", "history", "show", "version", "search")
_HELM_TRANSIENT = re.compile(
    r"connection refused|connection reset|kubernetes cluster unreachable|too many requests|"
    r"the server is currently unable|etcdserver|i/o timeout|tls handshake timeout|"
    r"http2: client connection lost|unexpected EOF|: EOF\s*$",
    re.I | re.M,
)


def helm_with_retries(run, args, stats=None, budget=None, sleep=time.sleep, clock=time.monotonic,
                      rng=random.random, log=None):
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
