"""AWX jobs run the way AWX runs them: ansible-runner, survey answers, Bearer Token credential.

AWX hands a job to ansible-runner (PyPI) as a private data dir: ``project/`` (the checked-out
repository), ``inventory/``, ``env/extravars`` (the template's extra vars plus the survey answers)
and ``env/envvars`` (credentials injected as environment variables). The Kubernetes Bearer Token
credential injects K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT and K8S_AUTH_VERIFY_SSL,
here for ServiceAccounts bound to rbac/installer.yml (enable, disable) and rbac/verifier.yml
(verify), as users bind them.

What stands in for what AWX's execution environment would hold: ANSIBLE_COLLECTIONS_PATH points
at this checkout (the EE has the collection installed) and PATH has the local cluster's helm
(the EE's pinned helm). EMULATION: NVIDIA's published Helm repository cannot be reached here; a
local HTTP server on 127.0.0.1 serves the chart the local cluster uses, packaged with
``helm package`` and indexed with ``helm repo index``, and the job's ``device_plugin_chart_repo_url``
points at it, as an admin points it at a mirror. Nothing runs ``helm repo add``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sys
import threading
import time

import ansible_runner  # the package AWX uses (our own ansible-playbook helper is playbook_runner)
import pytest
import yaml

from kube_identity import IDENTITY_NS, api_server_and_ca, drop_identity, installer_token, service_account_token
from playbook_runner import COLLECTIONS_PATH, REPO_ROOT

pytestmark = pytest.mark.integration

NODE = "awx-job-g4dn"
PLUGIN_NS = "nvidia-device-plugin"  # the namespace rbac/installer.yml's Role is written for
RELEASE = "nvdp"
POOL = "gpu-shared"
LEFTOVER_NS = "gpu-slicing-verify-left0ver"

# The survey answers (variables of awx/job_templates.yml's questions).
ENABLE_ANSWERS = {
    "gpu_slicing_profile_name": "ts-4",
    "gpu_slicing_replicas": 4,
    "gpu_slicing_fraction": "",
    "gpu_slicing_strategy": "time-slicing",
    "gpu_slicing_instance_types": "g4dn.xlarge",
    "gpu_slicing_cluster_name": "gse-local",
    "gpu_slicing_node_role": "KarpenterNodeRole-gse-local",
    "gpu_slicing_admission": "no",
    "gpu_slicing_verify": "no",
}
VERIFY_ANSWERS = {k: ENABLE_ANSWERS[k] for k in ("gpu_slicing_profile_name", "gpu_slicing_replicas",
                                                 "gpu_slicing_fraction", "gpu_slicing_strategy",
                                                 "gpu_slicing_admission")}


def survey_variables():
    """Every variable the surveys of awx/job_templates.yml ask for."""
    play = yaml.safe_load(open(os.path.join(REPO_ROOT, "awx", "job_templates.yml")))[0]
    found = set()
    for value in play["vars"].values():
        for question in value if isinstance(value, list) else [value]:
            if isinstance(question, dict) and "question_name" in question:
                found.add(question["variable"])
    return found


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def nvidia_chart_repo(local_cluster, tmp_path_factory):
    """EMULATION of NVIDIA's published Helm repository: (URL, chart version) of a chart repository
    on 127.0.0.1 serving the local cluster's chart (helm package + helm repo index)."""
    c = local_cluster
    root = tmp_path_factory.mktemp("nvidia-chart-repo")
    c.run(c.bin / "helm", "package", c.artifacts / "nvidia-device-plugin", "-d", root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    url = "http://127.0.0.1:%d" % server.server_address[1]
    c.run(c.bin / "helm", "repo", "index", root, "--url", url)
    version = yaml.safe_load((c.artifacts / "nvidia-device-plugin" / "Chart.yaml").read_text())["version"]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, str(version)
    finally:
        server.shutdown()
        server.server_close()


def awx_job(tmp_path, name, playbook, extravars, credential):
    """One job as AWX hands it to ansible-runner. Returns (runner, failed task messages, output)."""
    pdd = tmp_path / name
    shutil.copytree(os.path.join(REPO_ROOT, "playbooks"), pdd / "project" / "playbooks")
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts").write_text("localhost ansible_connection=local\n")
    (pdd / "env").mkdir()
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    envvars = dict(credential)
    envvars.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,  # the EE's installed collection
        PATH=os.pathsep.join([os.path.dirname(sys.executable), str(credential["_helm_dir"]), "/usr/bin", "/bin"]),
        HOME=str(pdd),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    envvars.pop("_helm_dir")
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    t0 = time.monotonic()
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, quiet=True, timeout=900)
    runner.seconds = time.monotonic() - t0
    failed = [e["event_data"].get("res", {}).get("msg") for e in runner.events if e.get("event") == "runner_on_failed"]
    output = runner.stdout.read()
    return runner, failed, output


def changed(runner):
    return runner.stats["changed"].get("localhost", 0)


def bearer_credential(cluster, token, ca):
    """What AWX's Kubernetes Bearer Token credential injects."""
    host = yaml.safe_load(open(cluster.kubeconfig))["clusters"][0]["cluster"]["server"]
    return {"K8S_AUTH_HOST": host, "K8S_AUTH_API_KEY": token, "K8S_AUTH_SSL_CA_CERT": ca,
            "K8S_AUTH_VERIFY_SSL": "yes", "_helm_dir": cluster.bin}


def pool_objects(c):
    found = []
    for kind in ("nodepools.karpenter.sh", "nodeoverlays.karpenter.sh", "ec2nodeclasses.karpenter.k8s.aws"):
        for item in c.kubectl_json("get", kind, "-l", "gpu-slicing.eks/nodepool=%s" % POOL)["items"]:
            found.append("%s/%s" % (kind, item["metadata"]["name"]))
    return sorted(found)


def release_secrets(c):
    return c.kubectl_json("get", "secrets", "-n", PLUGIN_NS, "-l", "owner=helm,name=%s" % RELEASE)["items"]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.5)


def test_enable_verify_disable_as_awx_runs_them(local_cluster, nvidia_chart_repo, tmp_path, monkeypatch):
    c = local_cluster
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    assert set(ENABLE_ANSWERS) <= survey_variables(), set(ENABLE_ANSWERS) - survey_variables()
    repo_url, version = nvidia_chart_repo
    c.apply_karpenter_crds()
    # Karpenter's AWS provider CRD: the NodePool's node class is an EC2NodeClass, as on EKS.
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f",
              c.artifacts / "karpenter-aws-crds" / "karpenter.k8s.aws_ec2nodeclasses.yaml")
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/ec2nodeclasses.karpenter.k8s.aws")
    c.kubectl("create", "namespace", PLUGIN_NS, check=False)  # rbac/installer.yml's Role lives there
    installer = installer_token(c, "awx-installer")
    verifier = service_account_token(c, "awx-verifier", "gpu-slicing-verifier", "verifier.yml")
    dummy, ca = api_server_and_ca(c, tmp_path)
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_real_plugin()
    # The template's extra vars (awx_connection_vars without an EKS cluster) and what an admin sets
    # for this site: the chart mirror, and the NodeOverlay gate (no Karpenter Deployment to read
    # it from here; Karpenter's KWOK provider runs as a process).
    template_vars = {"gpu_slicing_connection": {}, "device_plugin_chart_repo_url": repo_url,
                     "device_plugin_chart_version": version, "device_plugin_wait_timeout": 120,
                     "karpenter_gpu_feature_gates": "NodeOverlay=true"}
    as_installer = bearer_credential(c, installer, ca)
    outputs = []
    try:
        runner, failed, out = awx_job(tmp_path, "enable", "playbooks/enable.yml",
                                      dict(template_vars, **ENABLE_ANSWERS), as_installer)
        outputs.append(out)
        assert runner.status == "successful" and runner.rc == 0, (failed, out[-3000:])
        assert changed(runner) >= 1
        wait_until(lambda: (c.kubectl_json("get", "node", NODE)["status"].get("allocatable") or {})
                   .get("nvidia.com/gpu") == "4", 60, "4 slices on %s" % NODE)
        nodeclass = c.kubectl_json("get", "ec2nodeclasses.karpenter.k8s.aws", POOL)["spec"]
        assert nodeclass["role"] == ENABLE_ANSWERS["gpu_slicing_node_role"]
        assert nodeclass["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "gse-local"}}]
        assert "nodepools.karpenter.sh/%s" % POOL in pool_objects(c)
        assert any(o.startswith("nodeoverlays") for o in pool_objects(c)), pool_objects(c)
        first_seconds = runner.seconds

        runner, failed, out = awx_job(tmp_path, "enable-again", "playbooks/enable.yml",
                                      dict(template_vars, **ENABLE_ANSWERS), as_installer)
        outputs.append(out)
        assert runner.rc == 0, failed
        assert changed(runner) == 0, "a re-run of the same job must change nothing"
        rerun_seconds = runner.seconds

        runner, failed, out = awx_job(tmp_path, "verify", "playbooks/verify.yml",
                                      dict(template_vars, **VERIFY_ANSWERS), bearer_credential(c, verifier, ca))
        outputs.append(out)
        assert runner.rc == 0, (failed, out[-3000:])
        verdicts = [e["event_data"]["res"] for e in runner.events if e.get("event") == "runner_on_ok"
                    and e["event_data"].get("task_action") == "gpu_slicing.eks.gpu_slicing_verify"]
        assert verdicts and verdicts[0]["passed"] is True, verdicts
        assert [n["node"] for n in verdicts[0]["nodes"]] == [NODE]

        # The enable template with "verify: yes" runs verify.yml too: its credential needs both roles.
        c.kubectl("create", "clusterrolebinding", "%s-awx-installer-verifies" % IDENTITY_NS, "--clusterrole",
                  "gpu-slicing-verifier", "--serviceaccount", "%s:awx-installer" % IDENTITY_NS)
        runner, failed, out = awx_job(tmp_path, "enable-and-verify", "playbooks/enable.yml",
                                      dict(template_vars, **dict(ENABLE_ANSWERS, gpu_slicing_verify="yes")),
                                      as_installer)
        outputs.append(out)
        assert runner.rc == 0, (failed, out[-3000:])
        assert changed(runner) == 0
        assert any(e["event_data"].get("task_action") == "gpu_slicing.eks.gpu_slicing_verify" and
                   e["event_data"]["res"].get("passed") for e in runner.events if e.get("event") == "runner_on_ok")

        # A verification run that was killed leaves its namespace behind.
        c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEFTOVER_NS, "labels": {
            "app.kubernetes.io/managed-by": "gpu_slicing.eks", "gpu-slicing.eks/verify-run": "left0ver"}}})

        runner, failed, out = awx_job(tmp_path, "disable", "playbooks/disable.yml", template_vars, as_installer)
        outputs.append(out)
        assert runner.rc == 0, (failed, out[-3000:])
        assert changed(runner) >= 1
        assert pool_objects(c) == []
        assert release_secrets(c) == []
        assert c.kubectl("get", "configmap", "nvidia-device-plugin-configs", "-n", PLUGIN_NS, check=False).returncode != 0
        leftover = c.kubectl("get", "namespace", LEFTOVER_NS, "-o", "json", check=False)
        assert leftover.returncode != 0 or json.loads(leftover.stdout)["status"]["phase"] == "Terminating"

        runner, failed, out = awx_job(tmp_path, "disable-again", "playbooks/disable.yml", template_vars, as_installer)
        outputs.append(out)
        assert runner.rc == 0, failed
        assert changed(runner) == 0, "a second disable must change nothing"
        print("AWX-style jobs as ServiceAccounts: enable %.1fs, re-run %.1fs, disable again %.1fs"
              % (first_seconds, rerun_seconds, runner.seconds))
        for text in outputs:
            assert installer not in text and verifier not in text, "a bearer token leaked into the job output"
    finally:
        c.helm("uninstall", RELEASE, "-n", PLUGIN_NS, "--no-hooks", check=False, timeout=120)
        for kind in ("nodepools.karpenter.sh", "nodeoverlays.karpenter.sh", "ec2nodeclasses.karpenter.k8s.aws"):
            c.kubectl("delete", kind, "-l", "gpu-slicing.eks/nodepool=%s" % POOL, "--ignore-not-found", check=False)
        c.kubectl("delete", "namespace", LEFTOVER_NS, "--ignore-not-found", "--wait=false", check=False)
        c.kubectl("delete", "configmap", "nvidia-device-plugin-configs", "-n", PLUGIN_NS, "--ignore-not-found",
                  check=False)
        c.kubectl("delete", "clusterrolebinding", "%s-awx-installer-verifies" % IDENTITY_NS, "--ignore-not-found",
                  check=False)
        drop_identity(c, "awx-installer")
        drop_identity(c, "awx-verifier")
        c.stop_process("kubelet-device-emulator")
        c.delete_node(NODE)


# (verb, resource, namespace) the installer ServiceAccount must be refused.
INSTALLER_CANNOT = [
    ("get", "secrets", "kube-system"),
    ("list", "secrets", "default"),
    ("escalate", "clusterroles", ""),
    ("bind", "clusterroles", ""),
    ("update", "clusterroles/cluster-admin", ""),
    ("delete", "clusterrolebindings/cluster-admin", ""),
    ("create", "pods", "kube-system"),
    ("create", "daemonsets.apps", "kube-system"),
    ("patch", "deployments.apps", "kube-system"),
    ("create", "configmaps", "default"),
    ("create", "kwoknodeclasses.karpenter.kwok.sh", ""),
]
# ... and what the main job needs (so the refusals above are not an identity that can do nothing).
INSTALLER_CAN = [
    ("list", "secrets", PLUGIN_NS),
    ("create", "daemonsets.apps", PLUGIN_NS),
    ("create", "clusterroles", ""),
    ("update", "clusterroles/nvdp-node-feature-discovery", ""),
    ("patch", "nodepools.karpenter.sh", ""),
    ("create", "ec2nodeclasses.karpenter.k8s.aws", ""),
    ("delete", "validatingadmissionpolicies.admissionregistration.k8s.io", ""),
    ("create", "mutatingadmissionpolicybindings.admissionregistration.k8s.io", ""),
]


def test_installer_cannot_escalate_or_reach_other_secrets(local_cluster, tmp_path):
    c = local_cluster
    c.apply_karpenter_crds()
    c.kubectl("create", "namespace", PLUGIN_NS, check=False)
    token = installer_token(c, "awx-limits")
    who = "system:serviceaccount:%s:awx-limits" % IDENTITY_NS
    try:
        for verb, resource, namespace in INSTALLER_CANNOT + INSTALLER_CAN:
            answer = c.kubectl("auth", "can-i", verb, resource, "--as", who, *(["-n", namespace] if namespace else []),
                               check=False).stdout.strip()
            expected = "no" if (verb, resource, namespace) in INSTALLER_CANNOT else "yes"
            assert answer == expected, (verb, resource, namespace, answer)
        # For real, with the token: the API server refuses to bind cluster-admin to it, and to create
        # a ClusterRole granting what it does not hold (here: every Secret).
        host = yaml.safe_load(open(c.kubeconfig))["clusters"][0]["cluster"]["server"]
        dummy, ca = api_server_and_ca(c, tmp_path)
        empty = tmp_path / "empty-kubeconfig"
        empty.write_text("apiVersion: v1\nkind: Config\n")
        as_sa = [c.bin / "kubectl", "--kubeconfig", empty, "--server", host, "--certificate-authority", ca,
                 "--token", token]
        for attempt in (
            ["create", "clusterrolebinding", "gse-limits-admin", "--clusterrole", "cluster-admin",
             "--serviceaccount", "%s:awx-limits" % IDENTITY_NS],
            ["create", "clusterrole", "gse-limits-secrets", "--verb", "get", "--resource", "secrets"],
        ):
            refused = c.run(*(as_sa + attempt), check=False)
            assert refused.returncode != 0 and "forbidden" in (refused.stderr + refused.stdout).lower(), refused
    finally:
        c.kubectl("delete", "clusterrolebinding", "gse-limits-admin", "--ignore-not-found", check=False)
        c.kubectl("delete", "clusterrole", "gse-limits-secrets", "--ignore-not-found", check=False)
        drop_identity(c, "awx-limits")
