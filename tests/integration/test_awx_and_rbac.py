"""AWX-style runs and least privilege, on the local cluster's real RBAC.

Without any connection the playbook fails instead of using an in-cluster account, and the
verifier role (rbac/verifier.yml) cannot change the device plugin or Karpenter objects. The AWX
jobs themselves (enable, re-run, verify, disable through ansible-runner as ServiceAccounts bound
to rbac/installer.yml and rbac/verifier.yml) and what the installer cannot do: test_awx_jobs.py.
"""

from __future__ import annotations

import os

import pytest

from playbook_runner import REPO_ROOT, run_playbook, task_results
from kube_identity import api_server_and_ca, drop_identity, service_account_token

pytestmark = pytest.mark.integration


def test_no_connection_in_awx_fails_instead_of_using_in_cluster_account(local_cluster, tmp_path, monkeypatch):
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    # What a container group pod offers: a service account token on disk and the in-cluster env.
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"}
    rc, output = run_playbook(os.path.join(REPO_ROOT, "playbooks", "enable.yml"),
                              extra_vars={"device_plugin_chart_ref": "/nonexistent"}, env=env)
    assert rc != 0
    failed = [r for dummy, r in task_results(output) if r.get("failed")]
    assert failed and "No Kubernetes connection was given" in failed[0]["msg"], failed


FORBIDDEN_FOR_VERIFIER = [
    ("patch", "daemonsets.apps"),
    ("update", "configmaps"),
    ("create", "secrets"),
    ("delete", "daemonsets.apps"),
    ("patch", "nodepools.karpenter.sh"),
    ("delete", "nodepools.karpenter.sh"),
    ("create", "nodeoverlays.karpenter.sh"),
    ("patch", "nodes"),
]
ALLOWED_FOR_VERIFIER = [("create", "pods"), ("delete", "pods"), ("get", "pods/log"), ("list", "nodes"),
                        ("create", "namespaces"), ("list", "nodepools.karpenter.sh")]


def test_verifier_role_cannot_change_plugin_or_nodepools(local_cluster, tmp_path):
    c = local_cluster
    c.apply_karpenter_crds()
    token = service_account_token(c, "verifier", "gpu-slicing-verifier", "verifier.yml")
    who = "system:serviceaccount:gse-identities:verifier"
    try:
        for verb, resource in FORBIDDEN_FOR_VERIFIER:
            answer = c.kubectl("auth", "can-i", verb, resource, "-n", "nvidia-device-plugin", "--as", who, check=False)
            assert answer.stdout.strip() == "no", (verb, resource, answer.stdout)
        for verb, resource in ALLOWED_FOR_VERIFIER:
            answer = c.kubectl("auth", "can-i", verb, resource, "-n", "gpu-slicing-verify-x", "--as", who, check=False)
            assert answer.stdout.strip() == "yes", (verb, resource, answer.stdout)
        # And for real, with the token: the API server refuses a ConfigMap write.
        c.kubectl("create", "namespace", "gse-rbac-target", check=False)
        host, ca = api_server_and_ca(c, tmp_path)
        empty = tmp_path / "empty-kubeconfig"
        empty.write_text("apiVersion: v1\nkind: Config\n")
        # Only the token authenticates (no client certificate from the admin kubeconfig).
        attempt = c.run(c.bin / "kubectl", "--kubeconfig", empty, "--server", host, "--certificate-authority", ca,
                        "--token", token, "create", "configmap", "x", "-n", "gse-rbac-target", check=False)
        assert attempt.returncode != 0 and "forbidden" in (attempt.stderr + attempt.stdout).lower()
    finally:
        c.kubectl("delete", "namespace", "gse-rbac-target", "--ignore-not-found", check=False)
        drop_identity(c, "verifier")
