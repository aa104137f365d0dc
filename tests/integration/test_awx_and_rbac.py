"""AWX-style runs and least privilege, on the local cluster's real RBAC.

AWX's "Kubernetes Bearer Token" credential injects only K8S_AUTH_HOST, K8S_AUTH_API_KEY,
K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT; there is no kubeconfig on disk. The playbook
must converge the cluster from those alone, with a ServiceAccount bound to the shipped
installer ClusterRole (rbac/installer.yml), and never print the token. The verifier role
(rbac/verifier.yml) must not be able to change the device plugin or Karpenter objects.
"""

from __future__ import annotations

import os
import time

import pytest
import yaml

from ansible_runner import REPO_ROOT, run_playbook, task_results
from kube_identity import api_server_and_ca, bearer_env, drop_identity, service_account_token

pytestmark = pytest.mark.integration

NODE = "awx-g4dn"
PLUGIN_NS = "gse-awx-plugin"


def allocatable(cluster, node):
    return cluster.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get("nvidia.com/gpu")


def test_awx_style_run_converges_with_bearer_token_only(local_cluster, tmp_path, monkeypatch):
    c = local_cluster
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    token = service_account_token(c, "awx", "gpu-slicing-installer", "installer.yml")
    host, ca = api_server_and_ca(c, tmp_path)
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_emulator()
    chart_dir = c.artifacts / "nvidia-device-plugin"
    extra_vars = {
        "device_plugin_chart_ref": str(chart_dir),
        "device_plugin_chart_version": str(yaml.safe_load((chart_dir / "Chart.yaml").read_text())["version"]),
        "device_plugin_helm_binary": str(c.bin / "helm"),
        "device_plugin_namespace": PLUGIN_NS,
        "device_plugin_wait_timeout": 120,
    }
    awx_env = bearer_env(host, token, ca, tmp_path)  # no kubeconfig, no ~/.kube/config
    playbook = os.path.join(REPO_ROOT, "playbooks", "enable.yml")
    try:
        t0 = time.monotonic()
        rc, output = run_playbook(playbook, extra_vars=extra_vars, env=awx_env)
        first_seconds = time.monotonic() - t0
        assert rc == 0, (output.get("_stderr"), [r.get("msg") for dummy, r in task_results(output) if r.get("failed")])
        assert output["stats"]["localhost"]["changed"] >= 1
        deadline = time.monotonic() + 60
        while allocatable(c, NODE) != "4" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert allocatable(c, NODE) == "4"

        t0 = time.monotonic()
        rc, again = run_playbook(playbook, extra_vars=extra_vars, env=awx_env)
        rerun_seconds = time.monotonic() - t0
        assert rc == 0
        assert again["stats"]["localhost"]["changed"] == 0, "a re-run from AWX must change nothing"
        print("AWX-style converge %.1fs, no-change re-run %.1fs" % (first_seconds, rerun_seconds))

        for out in (output, again):
            text = yaml.safe_dump(out)
            assert token not in text, "the bearer token leaked into the job output"
    finally:
        c.helm("uninstall", "nvdp", "-n", PLUGIN_NS, "--no-hooks", check=False, timeout=120)
        c.kubectl("delete", "namespace", PLUGIN_NS, "--ignore-not-found", "--wait=false", check=False)
        drop_identity(c, "awx")
        c.stop_process("gpu-plugin-emulator")
        c.delete_node(NODE)


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
