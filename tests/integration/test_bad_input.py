"""Bad input across every module, role and filter: each case fails with a message that names
the field and says how to fix it, and the cluster is left exactly as it was.

Speed: the cases of one group run as tasks of ONE playbook (``ignore_errors``), so a group
costs one ansible-playbook start; each task is still one module run. The cluster snapshot
(resourceVersions of every kind these modules may touch, ``kubectl get -A -o json``) is taken
before and after each group.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time

import pytest
import yaml

from playbook_runner import REPO_ROOT, run_playbook, task_results

pytestmark = pytest.mark.integration

SNAPSHOT_KINDS = ["namespaces", "configmaps", "secrets", "daemonsets", "pods", "nodes",
                  "nodepools.karpenter.sh", "ec2nodeclasses.karpenter.k8s.aws", "nodeoverlays.karpenter.sh",
                  "mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "validatingadmissionpolicies",
                  "validatingadmissionpolicybindings"]
PROFILES = [{"name": "ts-4", "replicas": 4}]
DUR = {}


_SSM = {}


class _NoParameters(http.server.BaseHTTPRequestHandler):
    """SSM's JSON 1.1 API with no parameters at all: every GetParameter is ParameterNotFound."""

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        answer = json.dumps({"__type": "ParameterNotFound", "message": "%s not found" % body.get("Name")}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def ssm_without_parameters():
    """URL of a local stand-in for AWS SSM at its API boundary (AWS cannot be reached here)."""
    if "url" not in _SSM:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoParameters)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _SSM["url"] = "http://127.0.0.1:%d" % server.server_address[1]
    return _SSM["url"]


def _served(c):
    """The resource names API discovery lists now."""
    return set(c.kubectl("api-resources", "-o", "name").stdout.split())


def snapshot(cluster):
    """{kind: {namespace/name: resourceVersion}} for every kind a module could touch.

    Nodes are included without their status heartbeat noise: kwok bumps Node resourceVersions
    on its own, so for nodes the labels/taints/annotations are compared instead."""
    state = {}
    served = _served(cluster)
    # Earlier tests delete their namespaces asynchronously; what is inside those is going away
    # on its own and is not this test's business.
    terminating = {n["metadata"]["name"] for n in json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
                   if n.get("status", {}).get("phase") == "Terminating"}
    for kind in SNAPSHOT_KINDS:
        if kind not in served:
            state[kind] = "not served"
            continue
        items = json.loads(cluster.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]
        items = [i for i in items if i["metadata"].get("namespace") not in terminating]
        if kind == "nodes":
            state[kind] = {i["metadata"]["name"]: json.dumps([i["metadata"].get("labels"),
                                                              i["spec"].get("taints"),
                                                              i["metadata"].get("annotations")], sort_keys=True)
                           for i in items}
            continue
        if kind == "pods":  # emulated kubelets touch pods of running workloads; count by owner + name
            state[kind] = sorted("%s/%s" % (i["metadata"].get("namespace"), i["metadata"]["name"]) for i in items)
            continue
        if kind == "namespaces":
            items = [i for i in items if i["metadata"]["name"] not in terminating]
        if kind == "configmaps":  # kube-root-ca.crt and leader-election noise are not ours
            items = [i for i in items if i["metadata"]["name"] != "kube-root-ca.crt"]
        state[kind] = {"%s/%s" % (i["metadata"].get("namespace", ""), i["metadata"]["name"]):
                       i["metadata"]["resourceVersion"] for i in items}
    return state


def chart(cluster):
    path = cluster.artifacts / "nvidia-device-plugin"
    return str(path), str(yaml.safe_load((path / "Chart.yaml").read_text())["version"])


def _cases(cluster, tmp):
    """(id, task, [substrings the failure message must contain]). ``{chart}`` etc. filled here."""
    ref, version = chart(cluster)
    helm = str(cluster.bin / "helm")
    dp = {"release_name": "bi-nvdp", "namespace": "gse-bad-input", "chart_ref": ref,
          "chart_version": version, "binary_path": helm, "profiles": PROFILES, "wait_timeout": 30}
    cfg = {"config_map_name": "bi-configs", "namespace": "gse-bad-input", "profiles": PROFILES}
    kp = {"name": "bi-pool", "profiles": PROFILES, "discovery_tag_value": "c", "role": "KarpenterNodeRole-c",
          "instance_families": ["g4dn"], "karpenter_feature_gates": "NodeOverlay=true"}
    vf = {"profiles": PROFILES, "wait_timeout": 20, "cleanup_wait_timeout": 20}
    dp_part = {k: v for k, v in dp.items() if k != "profiles"}
    kp_part = {k: v for k, v in kp.items() if k != "profiles"}
    gs = {"profiles": PROFILES, "device_plugin": dp_part, "nodepool": kp_part}

    def m(module_name, base, **over):
        args = dict(base)
        args.update(over)
        return {"gpu_slicing.eks." + module_name: args}

    def role(name, **role_vars):
        # Exactly what a role's argument validation runs, as a task (ignore_errors works on it,
        # while a failed include_role validation ends the play).
        spec = os.path.join(REPO_ROOT, "roles", name, "meta", "argument_specs.yml")
        return {"ansible.builtin.validate_argument_spec": {
            "argument_spec": "{{ (lookup('file', '%s') | from_yaml).argument_specs.main.options }}" % spec,
            "provided_arguments": role_vars}}

    def flt(expr):
        return {"ansible.builtin.debug": {"msg": "{{ %s }}" % expr}}

    groups = {
        "device_plugin_config": [
            ("replicas-1", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": 1}]),
             ["profiles[0].replicas", "Fix"]),
            ("replicas-string", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": "four"}]),
             ["profiles[0].replicas", "whole number", "Fix"]),
            ("replicas-negative", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": -3}]),
             ["profiles[0].replicas", "Fix"]),
            ("fraction-too-big", m("device_plugin_config", cfg, profiles=[{"name": "ts", "fraction": 0.6}]),
             ["profiles[0].fraction", "Fix"]),
            ("fraction-zero", m("device_plugin_config", cfg, profiles=[{"name": "ts", "fraction": 0}]),
             ["fraction", "Fix"]),
            ("replicas-and-fraction", m("device_plugin_config", cfg,
                                        profiles=[{"name": "ts", "replicas": 4, "fraction": 0.25}]),
             ["replicas", "fraction"]),
            ("slice-bigger-than-gpu", m("device_plugin_config", cfg,
                                        profiles=[{"name": "ts", "slice_memory": "32Gi", "gpu_memory": "16Gi"}]),
             ["slice_memory", "Fix"]),
            ("slice-memory-garbage", m("device_plugin_config", cfg,
                                       profiles=[{"name": "ts", "slice_memory": "lots", "gpu_memory": "16Gi"}]),
             ["slice_memory", "Fix"]),
            ("unknown-strategy", m("device_plugin_config", cfg,
                                   profiles=[{"name": "ts", "strategy": "spatial", "replicas": 2}]),
             ["strategy", "time-slicing"]),
            ("mps-mixed-mig", m("device_plugin_config", cfg, profiles=[
                {"name": "m", "strategy": "mps", "replicas": 2, "mig_strategy": "mixed"}]),
             ["profiles[0].mig_strategy", "Fix"]),
            ("mps-49-replicas", m("device_plugin_config", cfg,
                                  profiles=[{"name": "m", "strategy": "mps", "replicas": 49}]),
             ["profiles[0].replicas", "Fix"]),
            ("duplicate-names", m("device_plugin_config", cfg, profiles=[{"name": "a", "replicas": 2},
                                                                         {"name": "a", "replicas": 4}]),
             ["profiles[1].name", "Fix"]),
            ("bad-profile-name", m("device_plugin_config", cfg, profiles=[{"name": "Bad Name!", "replicas": 2}]),
             ["profiles[0].name", "Fix"]),
            ("long-profile-name", m("device_plugin_config", cfg, profiles=[{"name": "x" * 70, "replicas": 2}]),
             ["profiles[0].name", "Fix"]),
            ("default-profile-unknown", m("device_plugin_config", cfg, default_profile="nope"),
             ["default_profile", "Fix"]),
            ("unknown-profile-key", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": 4,
                                                                             "replica": 8}]),
             ["replica", "profiles"]),
            ("unknown-module-option", m("device_plugin_config", cfg, replicas=4),
             ["replicas", "Supported parameters"]),
            ("empty-profiles", m("device_plugin_config", cfg, profiles=[]),
             ["profiles", "Fix"]),
            ("bad-resource-name", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": 2,
                                                                           "resource_name": "amd.com/gpu"}]),
             ["resource_name", "Fix"]),
            # NVIDIA's plugin skips sharing entries under names no device gets (issue 13)
            ("custom-resource-name", m("device_plugin_config", cfg, profiles=[{"name": "ts", "replicas": 4,
                                                                              "resource_name": "gpu-ts"}]),
             ["profiles[0].resource_name", "gpu-ts", "nvidia.com/gpu", "Fix"]),
            ("mig-resource-name-without-mixed", m("device_plugin_config", cfg, profiles=[
                {"name": "ts", "replicas": 4, "resource_name": "nvidia.com/mig-1g.5gb"}]),
             ["profiles[0].resource_name", "mig_strategy mixed", "Fix"]),
            ("mps-mig-single", m("device_plugin_config", cfg, profiles=[
                {"name": "m", "strategy": "mps", "replicas": 2, "mig_strategy": "single"}]),
             ["profiles[0].mig_strategy", "single", "MIG", "Fix"]),
            ("profile-name-yaml-bool", m("device_plugin_config", cfg, profiles=[{"name": "yes", "replicas": 4}]),
             ["profiles[0].name", "'yes'", "YAML", "Fix"]),
            ("profile-name-yaml-number", m("device_plugin_config", cfg, profiles=[{"name": "1e3", "replicas": 4}]),
             ["profiles[0].name", "'1e3'", "YAML", "Fix"]),
            ("bad-namespace", m("device_plugin_config", cfg, namespace="Not_A_Namespace"),
             ["namespace", "Not_A_Namespace", "Fix:"]),
            ("bad-state", m("device_plugin_config", cfg, state="installed"),
             ["state", "present, absent"]),
        ],
        "device_plugin": [
            ("chart-missing", m("device_plugin", dp, chart_ref=os.path.join(tmp, "no-such-chart")),
             ["chart_ref", "Fix"]),
            ("chart-repo-unreachable", m("device_plugin", dp, chart_ref="nvidia-device-plugin",
                                         chart_repo_url="http://127.0.0.1:1/charts"),
             ["chart_ref", "chart_repo_url", "127.0.0.1:1", "Fix"]),
            ("chart-wrong-version", m("device_plugin", dp, chart_version="9.9.9"),
             ["chart_version", "Fix"]),
            ("wait-timeout-string", m("device_plugin", dp, wait_timeout="soon"),
             ["wait_timeout", "int"]),
            ("values-not-dict", m("device_plugin", dp, values="nodeSelector=x"),
             ["values", "dict"]),
            ("values-fight-config", m("device_plugin", dp, values={"config": {"name": "other"}}),
             ["values", "config"]),
            ("image-tag-unpinned", m("device_plugin", dp, image_tag="latest"),
             ["image_tag", "sha256"]),
            ("replicas-1", m("device_plugin", dp, profiles=[{"name": "ts", "replicas": 1}]),
             ["profiles[0].replicas", "Fix"]),
            ("helm-missing", m("device_plugin", dp, binary_path=os.path.join(tmp, "no-helm")),
             ["helm"]),
            ("mps-without-gfd", m("device_plugin", dp, profiles=[{"name": "mps-2", "strategy": "mps", "replicas": 2}],
                                  gfd=False),
             ["gfd", "mps-2", "nvidia.com/mps.capable", "Fix"]),
            ("mps-gfd-off-in-values", m("device_plugin", dp, profiles=[{"name": "mps-2", "strategy": "mps",
                                                                        "replicas": 2}],
                                        values={"gfd": {"enabled": False}}),
             ["values.gfd.enabled", "mps-2", "Fix"]),
            ("profile-name-yaml-null", m("device_plugin", dp, profiles=[{"name": "null", "replicas": 4}]),
             ["profiles[0].name", "'null'", "YAML", "Fix"]),
            ("profile-name-yaml-hex", m("device_plugin", dp, profiles=[{"name": "0x1F", "replicas": 4}]),
             ["profiles[0].name", "'0x1F'", "YAML", "Fix"]),
        ],
        "karpenter_without_crds": [
            ("crds-missing", m("karpenter_gpu_nodepool", kp), ["NodePool", "karpenter.sh/v1", "not installed", "Fix"]),
        ],
        "karpenter_gpu_nodepool": [
            ("no-role-or-profile", m("karpenter_gpu_nodepool", kp, role=None),
             ["role", "instance_profile"]),
            ("role-and-profile", m("karpenter_gpu_nodepool", kp, instance_profile="p"),
             ["role", "instance_profile"]),
            ("weight-out-of-range", m("karpenter_gpu_nodepool", kp, weight=500),
             ["weight", "1"]),
            ("bad-consolidate-after", m("karpenter_gpu_nodepool", kp, consolidate_after="5 minutes"),
             ["consolidate_after", "Fix"]),
            ("bad-capacity-type", m("karpenter_gpu_nodepool", kp, capacity_types=["cheap"]),
             ["capacity_types", "on-demand"]),
            ("bad-ami-alias", m("karpenter_gpu_nodepool", kp, ami_alias="ubuntu@latest"),
             ["ami_alias", "al2023"]),
            # issue 13 item 10: versions Karpenter's AWS provider could never find in SSM
            ("ami-alias-al2023-version-format", m("karpenter_gpu_nodepool", kp, ami_alias="al2023@20240625"),
             ["ami_alias", "al2023@20240625", "al2023@v20240625", "SSM", "Fix"]),
            ("ami-alias-bottlerocket-version-format", m("karpenter_gpu_nodepool", kp, ami_alias="bottlerocket@1.46"),
             ["ami_alias", "bottlerocket@1.46", "bottlerocket@1.46.0", "Fix"]),
            # a well-formed version AWS never released: SSM (stand-in, see ssm_without_parameters)
            # answers ParameterNotFound for the parameter the provider would read
            (
                "ami-alias-version-not-published",
                dict(m("karpenter_gpu_nodepool", kp, ami_alias="al2023@v20990101", region="us-east-1",
                       access_key="AKIDBADINPUT00000001", secret_key="bad-input-secret"),
                     environment={"AWS_ENDPOINT_URL_SSM": ssm_without_parameters()}),
                ["ami_alias", "al2023@v20990101", "amazon-eks-node-al2023-x86_64-nvidia-1.36-v20990101",
                 "Nothing was written", "Fix"],
            ),
            ("bottlerocket-mps-before-1.54", m("karpenter_gpu_nodepool", kp, ami_alias="bottlerocket@v1.53.0",
                                               profiles=[{"name": "mps-2", "strategy": "mps", "replicas": 2}]),
             ["ami_alias", "bottlerocket@v1.53.0", "1.54.0", "Fix"]),
            ("unknown-instance-type", m("karpenter_gpu_nodepool", kp, instance_families=None,
                                        instance_types=["g9z.mega"]),
             ["instance_types", "g9z.mega"]),
            ("non-gpu-instance-type", m("karpenter_gpu_nodepool", kp, instance_families=None,
                                        instance_types=["m5.large"]),
             ["instance_types", "m5.large"]),
            ("type-outside-families", m("karpenter_gpu_nodepool", kp, instance_types=["g4dn.xlarge", "g6e.xlarge"]),
             ["instance_types[1]", "g6e.xlarge", "instance_families", "Fix"]),
            ("karpenter-domain-label", m("karpenter_gpu_nodepool", kp, labels={"karpenter.sh/foo": "x"}),
             ["labels", "karpenter.sh"]),
            ("bad-pool-name", m("karpenter_gpu_nodepool", kp, name="Bad_Pool"),
             ["name", "Bad_Pool"]),
            ("limit-slices-garbage", m("karpenter_gpu_nodepool", kp, limit_slices="many"),
             ["limit_slices", "Fix"]),
            ("node-class-wrong-api", m("karpenter_gpu_nodepool", kp, manage_node_class=False,
                                       node_class_ref={"group": "karpenter.k8s.aws/v1beta1",
                                                       "kind": "EC2NodeClass", "name": "x"}),
             ["node_class_ref", "group"]),
            ("crd-missing-node-class-kind", m("karpenter_gpu_nodepool", kp, manage_node_class=False,
                                              node_class_ref={"group": "example.com", "kind": "NoSuchNodeClass",
                                                              "name": "x"}),
             ["NoSuchNodeClass", "CRD"]),
            ("no-overlay-gate", m("karpenter_gpu_nodepool", kp, karpenter_feature_gates="NodeOverlay=false"),
             ["NodeOverlay", "allow_without_node_overlay"]),
            ("profile-not-in-profiles", m("karpenter_gpu_nodepool", kp, profile="ts-8"),
             ["profile", "ts-8"]),
        ],
        # gpu_sharing: each part's options checked (and the NodePool rendered) before either is written
        "gpu_sharing": [
            ("sharing-no-device-plugin", {"gpu_slicing.eks.gpu_sharing": {"profiles": PROFILES, "nodepool": kp_part}},
             ["device_plugin"]),
            ("sharing-unknown-nodepool-option", m("gpu_sharing", gs, nodepool=dict(kp_part, bogus=1)),
             ["bogus", "nodepool"]),
            ("sharing-unknown-instance-type", m("gpu_sharing", gs, nodepool=dict(kp_part, instance_types=["p9.huge"])),
             ["instance_types[0]", "p9.huge", "Fix"]),
            ("sharing-image-without-digest", m("gpu_sharing", gs, device_plugin=dict(dp_part, image_tag="v0.20.0")),
             ["image_tag", "v0.20.0"]),
            ("sharing-profile-not-in-profiles", m("gpu_sharing", gs, nodepool=dict(kp_part, profile="ts-8")),
             ["profile", "ts-8"]),
            ("sharing-mps-without-gfd", m("gpu_sharing", gs, profiles=[{"name": "mps-2", "strategy": "mps",
                                                                        "replicas": 2}],
                                          device_plugin=dict(dp_part, gfd=False)),
             ["gfd", "mps-2", "Fix"]),
        ],
        "gpu_slicing_verify": [
            ("profile-unknown", m("gpu_slicing_verify", vf, profile="ts-99"), ["profile", "ts-99"]),
            ("timeout-negative", m("gpu_slicing_verify", vf, wait_timeout=-5), ["wait_timeout", "-5", "Fix"]),
            ("node-wait-negative", m("gpu_slicing_verify", vf, node_wait_timeout=-2),
             ["node_wait_timeout", "-2", "0 or more", "Fix"]),
            ("cleanup-timeout-negative", m("gpu_slicing_verify", vf, cleanup_wait_timeout=-1),
             ["cleanup_wait_timeout", "-1", "0 or more", "Fix"]),
            ("hold-string", m("gpu_slicing_verify", vf, hold_seconds="forever"), ["hold_seconds", "int"]),
            ("hold-zero", m("gpu_slicing_verify", vf, hold_seconds=0), ["hold_seconds", "0", "Fix"]),
            ("karpenter-pods-zero", m("gpu_slicing_verify", vf, karpenter_nodepool_name="gpu-shared", karpenter_pods=0),
             ["karpenter_pods", "0", "Fix"]),
            ("karpenter-timeout-negative", m("gpu_slicing_verify", vf, karpenter_nodepool_name="gpu-shared",
                                             karpenter_wait_timeout=-1), ["karpenter_wait_timeout", "-1", "Fix"]),
            ("karpenter-settle-negative", m("gpu_slicing_verify", vf, karpenter_nodepool_name="gpu-shared",
                                            karpenter_settle=-3), ["karpenter_settle", "-3", "Fix"]),
            ("nodes-and-nodepool", m("gpu_slicing_verify", vf, node_names=["a"], nodepool_name="p"),
             ["node_names", "Fix"]),
            ("bad-tolerations", m("gpu_slicing_verify", vf, tolerations="all"), ["tolerations", "dict"]),
            ("profile-no-node-can-use", m("gpu_slicing_verify", vf, node_names=["no-such-node-bi"]),
             ["no-such-node-bi"]),
        ],
        "info_modules": [
            ("slicing-info-bad-selector", m("gpu_slicing_info", {"profiles": PROFILES}, label_selectors=["a=b=c!"]),
             ["expected", "BadRequest"]),
            ("instance-info-unknown", m("gpu_instance_info", {"instance_source": "offline"}, instance_types=["p9.huge"]),
             ["instance_type", "p9.huge", "Fix"]),
            ("instance-info-bad-source", m("gpu_instance_info", {"instance_source": "cache"}),
             ["instance_source", "offline"]),
            ("cost-fraction-and-replicas", m("gpu_cost_info", {"instance_types": ["g4dn.xlarge"], "pods": 4},
                                             fraction=0.25, replicas=4),
             ["fraction", "replicas"]),
            ("cost-no-instance-types", m("gpu_cost_info", {"pods": 4, "replicas": 4}, instance_types=[]),
             ["instance_types"]),
            ("eks-info-no-cluster", m("eks_connection_info", {"region": "us-east-1"}),
             ["eks_cluster_name"]),
        ],
        "admission_policy": [
            ("admission-no-profiles", m("admission_policy", {"name": "bi-adm"}), ["profiles", "Fix"]),
            ("admission-deny-and-warn", m("admission_policy", {"profiles": PROFILES}, validation_actions=["Deny", "Warn"]),
             ["validation_actions", "Deny or Warn, not both"]),
            ("admission-unknown-action", m("admission_policy", {"profiles": PROFILES}, validation_actions=["Block"]),
             ["validation_actions", "Block"]),
            ("admission-bad-label", m("admission_policy", {"profiles": PROFILES}, namespace_label="gpu team"),
             ["namespace_label", "gpu team", "Fix"]),
            ("admission-empty-label-value", m("admission_policy", {"profiles": PROFILES}, namespace_label_value=""),
             ["namespace_label_value", "Fix"]),
            ("admission-bad-name", m("admission_policy", {"profiles": PROFILES}, name="GPU_Policies"),
             ["name", "GPU_Policies", "Fix"]),
            ("admission-bad-plugin-namespace", m("admission_policy", {"profiles": PROFILES},
                                                 device_plugin_namespace="Kube System"),
             ["device_plugin_namespace", "Kube System", "Fix"]),
            ("admission-unknown-default-profile", m("admission_policy", {"profiles": PROFILES}, default_profile="ts-9"),
             ["default_profile", "ts-9", "Fix"]),
            ("admission-bad-replicas", m("admission_policy", {"profiles": [{"name": "ts-1", "replicas": 1}]}),
             ["replicas", "Fix"]),
            ("admission-role-opt-in-type", role("gpu_sharing", gpu_sharing_admission="sometimes"),
             ["gpu_sharing_admission", "bool"]),
            ("admission-role-required-type", role("gpu_sharing", gpu_sharing_admission_mutating_policy_required="maybe"),
             ["gpu_sharing_admission_mutating_policy_required", "bool"]),
        ],
        "roles_and_filters": [
            ("role-device-plugin-timeout-type", role("device_plugin", device_plugin_wait_timeout="soon",
                                                     device_plugin_chart_ref=ref),
             ["device_plugin_wait_timeout", "int"]),
            ("role-device-plugin-state", role("device_plugin", device_plugin_state="installed",
                                              device_plugin_chart_ref=ref),
             ["device_plugin_state", "present"]),
            ("role-verify-timeout-type", role("verify", verify_wait_timeout="long"), ["verify_wait_timeout", "int"]),
            ("role-gpu-sharing-state", role("gpu_sharing", gpu_sharing_state="on"), ["gpu_sharing_state", "on"]),
            ("role-gpu-sharing-nodepool-type", role("gpu_sharing", gpu_sharing_nodepool="sometimes"),
             ["gpu_sharing_nodepool", "bool"]),
            ("role-verify-profiles-type", role("verify", verify_profiles="ts-4"), ["verify_profiles", "dict"]),
            ("role-karpenter-overlay-key", role("karpenter_gpu", karpenter_gpu_nodepool_name="p",
                                                karpenter_gpu_overlay_key="zone"),
             ["karpenter_gpu_overlay_key", "instance-type"]),
            ("role-karpenter-manage-type", role("karpenter_gpu", karpenter_gpu_nodepool_name="p",
                                                karpenter_gpu_manage_node_class="maybe"),
             ["karpenter_gpu_manage_node_class", "bool"]),
            ("filter-fraction", flt("0.6 | gpu_slicing.eks.replicas_for_fraction"),
             ["replicas_for_fraction", "Fix"]),
            ("filter-pod-profile", flt("{'spec': {'containers': [{'name': 'c', 'resources': {'limits': "
                                       "{'nvidia.com/gpu': '0.5'}}}]}} | gpu_slicing.eks.shared_gpu_pod_spec("
                                       "{'profiles': [{'name': 'ts-4', 'replicas': 4}]}, 'nope')"),
             ["shared_gpu_pod_spec", "nope"]),
        ],
    }
    return groups


def result_text(result):
    parts = [str(result.get("msg", ""))]
    for key in ("module_stderr", "exception", "stderr"):
        if result.get(key):
            parts.append(str(result[key]))
    return "\n".join(parts)


GROUPS = ["device_plugin_config", "device_plugin", "karpenter_without_crds", "karpenter_gpu_nodepool", "gpu_sharing",
          "gpu_slicing_verify",
          "info_modules", "roles_and_filters", "admission_policy"]
ALL_CASES = []


KARPENTER_CRDS = ("nodepools.karpenter.sh", "nodeclaims.karpenter.sh", "nodeoverlays.karpenter.sh",
                  "ec2nodeclasses.karpenter.k8s.aws")


def _wait_discovery(c, served):
    """Wait until API discovery lists Karpenter's kinds (served=True) or none of them: it can
    trail a CRD's Established condition or its deletion, and snapshot() reads discovery."""
    def settled():
        now = _served(c)  # one discovery read per poll
        return all((crd in now) == served for crd in KARPENTER_CRDS)
    c.wait_for(settled, 60, "discovery to %s Karpenter's kinds" % ("list" if served else "drop"), interval=1)


def _remove_karpenter_crds(c):
    present = [crd for crd in KARPENTER_CRDS if crd in _served(c)]
    if present:
        c.kubectl("delete", "crd", *present, "--ignore-not-found", "--wait=true", "--timeout=60s")
        _wait_discovery(c, False)
    return bool(present)


@pytest.mark.parametrize("group", GROUPS)
def test_bad_input_group(local_cluster, group, tmp_path):
    c = local_cluster
    restore_crds = False
    if group == "karpenter_without_crds":
        # Earlier tests may have installed Karpenter's CRDs: take them away for this group and
        # put them back afterwards (they are idempotent to apply), so the case always runs.
        restore_crds = _remove_karpenter_crds(c)
    if group == "karpenter_gpu_nodepool":  # the CRDs are needed to reach the module's own checks
        c.apply_karpenter_crds()
        ec2 = c.artifacts / "karpenter-aws-crds" / "karpenter.k8s.aws_ec2nodeclasses.yaml"
        c.kubectl("apply", "--server-side", "--force-conflicts", "-f", ec2)
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/ec2nodeclasses.karpenter.k8s.aws")
        _wait_discovery(c, True)
    cases = _cases(c, str(tmp_path))[group]
    tasks = [dict(task, name=case_id, ignore_errors=True) for case_id, task, dummy in cases]
    play = [{"name": "bad input: " + group, "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    before = snapshot(c)
    t0 = time.monotonic()
    try:
        dummy, output = run_playbook(str(path), kubeconfig=str(c.kubeconfig), timeout=600)
        after = snapshot(c)
    finally:
        if restore_crds:
            c.apply_karpenter_crds()
    DUR[group] = time.monotonic() - t0
    results = dict(task_results(output))
    problems = []
    for case_id, dummy, must in cases:
        res = results.get(case_id)
        if res is None:
            problems.append("%s: no result (play aborted?)" % case_id)
            continue
        text = result_text(res)
        if not res.get("failed"):
            problems.append("%s: did not fail: %s" % (case_id, json.dumps(res)[:400]))
            continue
        missing = [s for s in must if s not in text]
        if missing:
            problems.append("%s: message lacks %s: %s" % (case_id, missing, text[:600]))
    ALL_CASES.extend(case_id for case_id, dummy, dummy in cases)
    print("%s: %d cases in %.1fs" % (group, len(cases), DUR[group]))
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    if changed:
        problems.append("bad input changed the cluster: %s" % json.dumps(changed)[:2000])
    assert not problems, "\n".join(problems)


def test_case_count(local_cluster, tmp_path):
    n = sum(len(v) for v in _cases(local_cluster, str(tmp_path)).values())
    print("bad-input cases: %d" % n)
    assert n >= 40, n


MAIN_JOB_TASK = "gpu_slicing.eks.gpu_sharing : Install the device plugin and set up the Karpenter GPU NodePool, checked before any write"
FOREIGN_POOL = "gse-bad-foreign"
KWOK_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


@pytest.mark.parametrize("case, overrides, must", [
    # inputs: refused before the API is contacted
    ("unknown-instance-type", {"gpu_slicing_instance_types": "g4dn.xlarge, p9.huge"},
     ["instance_types[1]", "p9.huge", "Fix"]),
    ("no-node-role", {"gpu_slicing_instance_types": "g4dn.xlarge", "karpenter_gpu_role": ""},
     ["role", "instance_profile", "Fix"]),
    # cluster state: refused after reading the cluster, still before the first write (two tasks,
    # the device plugin's and then the NodePool's, changed the plugin first)
    ("nodepool-owned-by-another-tool", {"karpenter_gpu_nodepool_name": FOREIGN_POOL},
     ["NodePool %s exists and was not created by gpu_slicing.eks" % FOREIGN_POOL, "Nothing was written", "Fix"]),
    ("node-overlay-gate-off", {"karpenter_gpu_feature_gates": "NodeOverlay=false"},
     ["NodeOverlay feature gate is off", "Nothing was written", "Fix"]),
])
def test_main_job_checks_the_nodepool_before_the_device_plugin(local_cluster, case, overrides, must):
    """playbooks/enable.yml with a profile change for the plugin (8 replicas) and a NodePool that
    would be refused, for its inputs or for the cluster's state: the one module run stops before
    its first write, so there is no Helm release and nothing in the cluster changed."""
    c = local_cluster
    c.apply_karpenter_crds()
    c.apply({"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": "default"}})
    # A NodePool another tool made (no gpu_slicing.eks labels), there before and after the run.
    c.apply({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": FOREIGN_POOL},
             "spec": {"template": {"spec": {"nodeClassRef": KWOK_CLASS, "requirements": [
                 {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}},
                 "disruption": {"consolidateAfter": "1m"}, "limits": {"cpu": "0"}}})
    ref, version = chart(c)
    extra = {"gpu_slicing_replicas": 8, "gpu_slicing_instance_types": "g4dn.xlarge",
             "device_plugin_chart_ref": ref, "device_plugin_chart_version": version,
             "device_plugin_helm_binary": str(c.bin / "helm"), "device_plugin_namespace": "gse-bad-main",
             "device_plugin_wait_timeout": 30, "karpenter_gpu_nodepool_name": "gse-bad-main",
             "karpenter_gpu_manage_node_class": False, "karpenter_gpu_node_class_ref": KWOK_CLASS,
             "karpenter_gpu_feature_gates": "NodeOverlay=true"}
    if case == "no-node-role":  # a managed EC2NodeClass needs a role or an instance profile
        extra.update(karpenter_gpu_manage_node_class=True, karpenter_gpu_node_class_ref={},
                     karpenter_gpu_discovery_tag_value="c")
    extra.update(overrides)
    try:
        before = snapshot(c)
        rc, output = run_playbook(os.path.join(REPO_ROOT, "playbooks", "enable.yml"),
                                  kubeconfig=str(c.kubeconfig), extra_vars=extra, timeout=600)
        after = snapshot(c)
    finally:
        c.kubectl("delete", "nodepools.karpenter.sh", FOREIGN_POOL, "--ignore-not-found", check=False)
    results = task_results(output)
    failed = [(name, res) for name, res in results if res.get("failed")]
    assert rc != 0 and failed, (case, output.get("_stderr"))
    name, res = failed[0]
    assert name == MAIN_JOB_TASK, (case, name, result_text(res))
    text = result_text(res)
    assert all(part in text for part in must), (case, text)
    assert c.helm("list", "-n", "gse-bad-main", "-q").stdout.strip() == ""
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, json.dumps(changed)[:2000]
