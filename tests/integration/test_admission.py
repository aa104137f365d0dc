"""Admission policies (plugins/module_utils/core/admission.py), written by the admission_policy
module, on the local cluster's real v1.36.3 API server: the MutatingAdmissionPolicy rewrites
fractional GPU requests, the ValidatingAdmissionPolicy refuses what no slice serves, and both
agree with the shared_gpu_pod_spec filter on every row of the shared fraction table
(tests/unit/plugins/module_utils/core/admission_cases.py). The module's own behaviour (check
mode, idempotence, diff, absent, clusters without MutatingAdmissionPolicy) is in
test_admission_policy.py.

Scheduling uses simulated GPU nodes and NVIDIA's real device plugin with its chart, as
test_verify.py does (over emulated NVML and kubelet; no node here uses the MPS profile).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import pathlib

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.gpu_slicing.eks.plugins.filter.gpu_slicing import shared_gpu_pod_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_admission import CHECK_ADMISSION
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_config_map_data

from playbook_runner import run_module

pytestmark = pytest.mark.integration

_CASES_FILE = pathlib.Path(__file__).parents[1] / "unit" / "plugins" / "module_utils" / "core" / "admission_cases.py"
_spec = importlib.util.spec_from_file_location("admission_cases", _CASES_FILE)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

NS = "gse-adm"              # opted in
OTHER = "gse-adm-other"     # no label
PLUGIN_NS = "gse-adm-plugin"  # labelled, but the plugin's namespace: never matched
RELEASE = "nvdp-adm"
LABEL, VALUE = "gpu-slicing.eks/admission", "enabled"
NODE_TS2, NODE_TS4 = "adm-ts-2", "adm-ts-4"
OPTIONS = {"plugin_namespace": PLUGIN_NS, "namespace_label": LABEL, "namespace_label_value": VALUE}
PROFILE_LABEL = "nvidia.com/device-plugin.config"


def seed_pod(namespace, value="0.5", name="my-pod", selector=None):
    """The seed's pod, without gpuDevicePolicy (see test_seed_gpu_device_policy_is_refused)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": [{"name": "my-container", "image": "my-image",
                                    "resources": {"limits": {"gpu": value}, "requests": {"gpu": value}}}]}}
    if selector:
        pod["spec"]["nodeSelector"] = {PROFILE_LABEL: selector}
    return pod


def dry_run(c, obj):
    """kubectl create --dry-run=server: (returncode, object or None, stderr)."""
    p = c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj), check=False)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def policy_objects():
    return admission.render_policies(cases.PLAN, OPTIONS)


def write_policies(c, **overrides):
    """The admission_policy module with the shared table's plan and this file's scope."""
    args = {"profiles": cases.PLAN["profiles"], "default_profile": cases.PLAN["default_profile"],
            "device_plugin_namespace": PLUGIN_NS, "namespace_label": LABEL, "namespace_label_value": VALUE}
    args.update(overrides)
    result = run_module("admission_policy", args, kubeconfig=str(c.kubeconfig))
    assert not result.failed, result
    return result


def policies_active(c):
    """The policies are enforced (they take a moment after creation): the seed pod is rewritten
    and a 2-slice MPS pod is refused."""
    rc, out, dummy = dry_run(c, seed_pod(NS))
    if rc != 0 or PROFILE_LABEL not in out["spec"].get("nodeSelector", {}):
        return False
    mps = seed_pod(NS, selector="mps-3")
    mps["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "2"}}
    return dry_run(c, mps)[0] != 0


@pytest.fixture(scope="module")
def policies(local_cluster):
    c = local_cluster
    served = c.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout.split()
    assert "mutatingadmissionpolicies.admissionregistration.k8s.io" in served, served
    assert "validatingadmissionpolicies.admissionregistration.k8s.io" in served, served
    for ns in (NS, OTHER, PLUGIN_NS):
        c.create_namespace(ns)
    c.kubectl("label", "namespace", NS, PLUGIN_NS, "%s=%s" % (LABEL, VALUE), "--overwrite")
    objs = policy_objects()
    try:
        assert len(write_policies(c)["objects"]) == len(objs)
        c.wait_for(lambda: policies_active(c), 30, "admission policies enforced")
        yield c
    finally:
        for obj in reversed(objs):
            c.kubectl("delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found", check=False)
        for ns in (NS, OTHER, PLUGIN_NS):
            c.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)


def test_seed_pod_is_rewritten(policies):
    rc, out, err = dry_run(policies, seed_pod(NS))
    assert rc == 0, err
    spec = out["spec"]
    assert spec["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu.shared": "1"},
                                                  "requests": {"nvidia.com/gpu.shared": "1"}}
    assert spec["nodeSelector"] == {PROFILE_LABEL: "ts-2"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_annotation_form_is_rewritten(policies):
    pod = seed_pod(NS)
    pod["spec"]["containers"] = [{"name": "main", "image": "x"}, {"name": "sidecar", "image": "x"}]
    pod["metadata"]["annotations"] = {admission.ANNOTATION_FRACTION: "0.25"}
    pod["spec"]["nodeSelector"] = {PROFILE_LABEL: "ts-4"}
    rc, out, err = dry_run(policies, pod)
    assert rc == 0, err
    assert out["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "limits" not in out["spec"]["containers"][1].get("resources", {})
    assert out["spec"]["nodeSelector"] == {PROFILE_LABEL: "ts-4"}


def test_seed_gpu_device_policy_is_refused(policies):
    """gpuDevicePolicy is no Kubernetes field: kubectl's strict field validation refuses the seed's
    pod before admission runs. Remove the field (the policies need nothing from it)."""
    pod = seed_pod(NS)
    pod["spec"]["containers"][0]["resources"]["gpuDevicePolicy"] = "Shared"
    p = policies.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert p.returncode != 0
    assert 'unknown field "spec.containers[0].resources.gpuDevicePolicy"' in p.stderr, p.stderr


@pytest.mark.parametrize("value,selector,expected", cases.CASES)
def test_policy_answers_the_shared_table(policies, value, selector, expected):
    """Every row: the policy's answer is the table's, which the filter gives too (unit tests)."""
    rc, out, err = dry_run(policies, seed_pod(NS, value, selector=selector))
    if isinstance(expected, str):
        assert rc != 0, out
        assert "ValidatingAdmissionPolicy 'gpu-slicing-eks'" in err and expected in err, err
        assert "container my-container" in err and "fix:" in err, err
        return
    assert rc == 0, err
    profile, resource, count = expected
    assert out["spec"]["containers"][0]["resources"] == {"limits": {resource: str(count)},
                                                         "requests": {resource: str(count)}}
    assert out["spec"]["nodeSelector"] == {PROFILE_LABEL: profile}


def test_resources_are_rounded_up_to_milli_before_admission(policies):
    """The one known disagreement with the filter, from the real API server: it rounds a
    resources value up to milli units when it decodes the pod, so 0.333333333 arrives as 0.334,
    which mps-3 (1/3 of a GPU) cannot serve; the filter reads the text and serves it. The
    annotation form is text too and keeps nano precision, as the filter does."""
    value, selector, filter_answer, resources_answer = cases.ROUNDED
    rc, out, err = dry_run(policies, seed_pod(NS, value, selector=selector))
    assert rc != 0 and resources_answer in err and "asks for gpu: 0.334" in err, err
    pod = seed_pod(NS, selector=selector)
    pod["spec"]["containers"][0].pop("resources")
    pod["metadata"]["annotations"] = {admission.ANNOTATION_FRACTION: value}
    rc, out, err = dry_run(policies, pod)
    assert rc == 0, err
    profile, resource, count = filter_answer
    assert out["spec"]["containers"][0]["resources"]["limits"] == {resource: str(count)}
    assert out["spec"]["nodeSelector"] == {PROFILE_LABEL: profile}


@pytest.mark.parametrize("selector,resource,count,refused", [
    ("ts-4", "nvidia.com/gpu", "2", "fail_requests_greater_than_one"),
    ("mps-3", "nvidia.com/gpu", "2", "(MPS)"),
    ("ts-2", "nvidia.com/gpu.shared", "2", None),
    ("ts-4", "nvidia.com/gpu", "1", None),
])
def test_more_than_one_slice(policies, selector, resource, count, refused):
    pod = seed_pod(NS, selector=selector)
    pod["spec"]["containers"][0]["resources"] = {"limits": {resource: count}}
    rc, out, err = dry_run(policies, pod)
    if refused:
        assert rc != 0 and refused in err and "container my-container asks for %s %s" % (count, resource) in err, err
    else:
        assert rc == 0, err


@pytest.mark.parametrize("given", [None, "false", "true"])
def test_check_label_cannot_be_set_to_skip_the_validating_policies(policies, given):
    """The pods' validating policies see only pods the mutating policy marked (a cost measure);
    a value the user sets is overwritten, so a two-slice request is refused whatever the pod says."""
    pod = seed_pod(NS, selector="ts-4")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "2"}}
    if given is not None:
        pod["metadata"]["labels"] = {admission.LABEL_CHECK: given}
    rc, dummy, err = dry_run(policies, pod)
    assert rc != 0 and "fail_requests_greater_than_one" in err, err


def test_valid_pods_are_not_marked(policies):
    """A slice request the profile serves, with its selector, and a rewritten seed pod: not marked,
    so the validating policies never run on them."""
    native = seed_pod(NS, selector="ts-4")
    native["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    for pod in (native, seed_pod(NS, "0.25", selector="ts-4")):
        rc, out, err = dry_run(policies, pod)
        assert rc == 0 and "Warning" not in err, err
        assert admission.LABEL_CHECK not in (out["metadata"].get("labels") or {}), out["metadata"]


def test_messages_users_see(policies):
    """The refusal texts, whole: they name the container, the value and the fix."""
    rc, dummy, err = dry_run(policies, seed_pod(NS, "0.6"))
    assert rc != 0
    assert ("GPU request refused: container my-container asks for gpu: 0.6, which profile ts-2 (one slice is 1/2 "
            "of a GPU) cannot serve; fix: no profile serves it: request a share that one of ts-4, ts-2, mps-3, "
            "whole serves") in err, err
    rc, dummy, err = dry_run(policies, seed_pod(NS, "0.5", selector="ts-4"))
    assert ("container my-container asks for gpu: 0.5, which profile ts-4 (one slice is 1/4 of a GPU) cannot "
            "serve; fix: select a profile that serves it with nodeSelector nvidia.com/device-plugin.config: ts-2"
            ) in err, err
    rc, dummy, err = dry_run(policies, seed_pod(NS, "1"))
    assert "asks for gpu: 1, which means one or more whole GPUs, not a slice" in err, err


def test_several_containers(policies):
    pod = seed_pod(NS, "0.25", selector="ts-4")
    second = copy.deepcopy(pod["spec"]["containers"][0])
    second["name"] = "second"
    plain = {"name": "plain", "image": "x"}
    pod["spec"]["containers"] = [plain, pod["spec"]["containers"][0], second]
    rc, out, err = dry_run(policies, pod)
    assert rc == 0, err
    assert [c.get("resources", {}).get("limits") for c in out["spec"]["containers"]] == [
        None, {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}]
    second["resources"] = {"limits": {"gpu": "0.3"}}
    rc, out, err = dry_run(policies, pod)
    assert rc != 0 and "container second asks for gpu: 0.3, which profile ts-4" in err, err
    assert "container my-container" not in err, err


def test_warn_action_admits_and_keeps_the_pod_off_gpus(policies):
    """validationActions Warn: a request no slice serves is admitted with the message as a
    warning, asking for gpu-slicing.eks/unservable-gpu (no node has it: the pod stays Pending)."""
    c = policies
    try:
        updated = [o for o in write_policies(c, validation_actions=["Warn", "Audit"])["objects"] if o["action"] != "unchanged"]
        assert {(o["kind"], o["name"]) for o in updated} == {("ValidatingAdmissionPolicyBinding", "gpu-slicing-eks" + t)
                                                             for t in ("", "-workloads", "-cronjobs")}, updated

        def warned():
            rc, out, err = dry_run(c, seed_pod(NS, "0.7"))
            return rc == 0 and "Warning" in err and (out, err)
        c.wait_for(warned, 30, "Warn action in force")
        out, err = warned()
        assert "asks for gpu: 0.7, which profile ts-2" in err, err
        assert out["spec"]["containers"][0]["resources"]["limits"] == {admission.UNSERVABLE_RESOURCE: "1"}
        assert admission.ANNOTATION_REFUSED in out["metadata"]["annotations"]
        assert "nodeSelector" not in out["spec"]
    finally:
        write_policies(c)
        c.wait_for(lambda: policies_active(c) and dry_run(c, seed_pod(NS, "0.7"))[0] != 0, 30, "Deny again")


def test_requests_differ_from_limits(policies):
    """As the filter: a GPU request in requests that differs from limits is refused."""
    pod = seed_pod(NS, "0.25")
    pod["spec"]["containers"][0]["resources"]["requests"]["gpu"] = "0.1"
    rc, dummy, err = dry_run(policies, pod)
    assert rc != 0, err
    assert "container my-container asks for gpu: 0.25 in limits and 0.1 in requests; fix: make requests equal" in err, err
    with pytest.raises(AnsibleFilterError):
        shared_gpu_pod_spec(pod, cases.PLAN)


def test_slice_without_selector_warns(policies):
    pod = seed_pod(NS)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    rc, out, err = dry_run(policies, pod)
    assert rc == 0, err
    assert "Warning: Validation failed for ValidatingAdmissionPolicy 'gpu-slicing-eks-warn'" in err, err
    assert "without nodeSelector nvidia.com/device-plugin.config" in err and "ts-4, ts-2, mps-3, whole" in err, err
    pod["spec"]["nodeSelector"] = {PROFILE_LABEL: "ts-4"}
    rc, out, err = dry_run(policies, pod)
    assert rc == 0 and "Warning" not in err, err


def test_pods_without_gpu_are_untouched(policies):
    pod = seed_pod(NS)
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    rc, out, err = dry_run(policies, pod)
    assert rc == 0, err
    assert "nodeSelector" not in out["spec"]
    assert not [t for t in out["spec"]["tolerations"] if t.get("key") == "nvidia.com/gpu"]
    assert out["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert not out["metadata"].get("annotations")
    assert admission.LABEL_CHECK not in (out["metadata"].get("labels") or {})


@pytest.mark.parametrize("namespace", [OTHER, PLUGIN_NS])
def test_other_namespaces_are_untouched(policies, namespace):
    """No label, or the plugin's own namespace (labelled, excluded by name): the API server sees
    the seed's request as is and refuses the bare gpu name itself."""
    rc, dummy, err = dry_run(policies, seed_pod(namespace))
    assert rc != 0
    assert "must be a standard resource type or fully qualified" in err, err
    assert "AdmissionPolicy" not in err, err


def workload(kind, value):
    pod = seed_pod(NS, value)
    template = {"metadata": {"labels": {"app": "seed"}}, "spec": pod["spec"]}
    if kind == "CronJob":
        template["spec"]["restartPolicy"] = "Never"
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": "seed", "namespace": NS},
                "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": template}}}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "seed", "namespace": NS},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "seed"}}, "template": template}}


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_workload_templates(policies, kind):
    """Workloads are rewritten (and refused) in their pod template, at the workload's creation."""
    rc, out, err = dry_run(policies, workload(kind, "0.5"))
    assert rc == 0, err
    spec = out["spec"]["template"]["spec"] if kind != "CronJob" else out["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu.shared": "1"}
    assert spec["nodeSelector"] == {PROFILE_LABEL: "ts-2"}
    rc, out, err = dry_run(policies, workload(kind, "0.7"))
    assert rc != 0
    assert "container my-container asks for gpu: 0.7, which profile ts-2" in err, err


@pytest.fixture(scope="module")
def gpu_nodes(policies):
    """Two simulated g4dn.xlarge nodes (ts-2, ts-4) and NVIDIA's chart with the plan's configs."""
    c = policies
    c.add_gpu_node(NODE_TS2, "g4dn.xlarge", zone="us-east-1a", labels={PROFILE_LABEL: "ts-2"})
    c.add_gpu_node(NODE_TS4, "g4dn.xlarge", zone="us-east-1a", labels={PROFILE_LABEL: "ts-4"})
    plan = build_plan(cases.PLAN)
    values = {"gfd": {"enabled": True}, "config": {"default": plan.default_profile, "map": render_config_map_data(plan)}}
    values_file = c.workdir / "admission-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    try:
        c.helm("install", RELEASE, c.artifacts / "nvidia-device-plugin", "--namespace", PLUGIN_NS, "-f", values_file)
        c.start_real_plugin()

        def allocatable(node, resource):
            return c.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get(resource)
        c.wait_for(lambda: allocatable(NODE_TS2, "nvidia.com/gpu.shared") == "2", 120, "ts-2 node: 2 shared slices")
        c.wait_for(lambda: allocatable(NODE_TS4, "nvidia.com/gpu") == "4", 120, "ts-4 node: 4 slices")
        yield c
    finally:
        c.helm("uninstall", RELEASE, "-n", PLUGIN_NS, "--no-hooks", "--timeout", "30s", check=False)
        c.stop_process("kubelet-device-emulator")
        for node in (NODE_TS2, NODE_TS4):
            c.delete_node(node)


def test_deployment_pods_rewritten_and_scheduled(gpu_nodes):
    c = gpu_nodes
    c.kubectl("create", "-f", "-", input=json.dumps(workload("Deployment", "0.5")))
    try:
        def scheduled():
            return [p for p in c.kubectl_json("get", "pods", "-n", NS, "-l", "app=seed")["items"]
                    if p["spec"].get("nodeName")]
        c.wait_for(lambda: len(scheduled()) == 2, 120, "2 seed pods scheduled")
        pods = scheduled()
        assert len(pods) == 2
        for pod in pods:
            assert pod["spec"]["nodeName"] == NODE_TS2
            assert pod["spec"]["nodeSelector"] == {PROFILE_LABEL: "ts-2"}
            assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu.shared": "1"}
        # The Deployment's template was rewritten at admission (the API server validates a
        # template as a pod, so the bare gpu name would have been refused there).
        kept = c.kubectl_json("get", "deployment", "seed", "-n", NS)["spec"]["template"]["spec"]
        assert kept["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu.shared": "1"}
        assert kept["nodeSelector"] == {PROFILE_LABEL: "ts-2"}
    finally:
        c.kubectl("delete", "deployment", "seed", "-n", NS, "--ignore-not-found", check=False)
        # its pods hold both ts-2 slices until the garbage collector removes them; the next test needs one
        c.wait_for(lambda: not c.kubectl_json("get", "pods", "-n", NS, "-l", "app=seed")["items"], 90,
                   "the Deployment's pods gone")


@pytest.mark.parametrize("value,selector,node", [("0.5", None, NODE_TS2), ("0.25", "ts-4", NODE_TS4)])
def test_seed_pod_runs_on_a_node_of_its_profile(gpu_nodes, value, selector, node):
    """The seed's pod itself (without gpuDevicePolicy), created for real: rewritten at admission and
    scheduled onto the node whose profile serves its share."""
    c = gpu_nodes
    name = "seed-%s" % (selector or "default")
    c.kubectl("create", "-f", "-", input=json.dumps(seed_pod(NS, value, name=name, selector=selector)))
    try:
        c.wait_for(lambda: c.kubectl_json("get", "pod", name, "-n", NS)["spec"].get("nodeName"), 60, "seed pod scheduled")
        pod = c.kubectl_json("get", "pod", name, "-n", NS)
        assert pod["spec"]["nodeName"] == node
        resource = "nvidia.com/gpu.shared" if node == NODE_TS2 else "nvidia.com/gpu"
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {resource: "1"}
    finally:
        c.kubectl("delete", "pod", name, "-n", NS, "--ignore-not-found", "--grace-period=0", "--force", check=False)


@pytest.mark.parametrize("name,status", [("gpu-slicing-eks", "passed"), ("gse-none", "failed")])
def test_verification_reports_the_policies_active(gpu_nodes, name, status):
    """gpu_slicing_verify's admission check: a dry-run pod rewritten, one refused; missing policies fail."""
    c = gpu_nodes
    result = run_module("gpu_slicing_verify", {
        "profiles": cases.PLAN["profiles"], "default_profile": cases.PLAN["default_profile"], "profile": "ts-2",
        "node_names": [NODE_TS2], "device_plugin_namespace": PLUGIN_NS, "wait_timeout": 120,
        "admission_policy_name": name}, kubeconfig=str(c.kubeconfig))
    entry = [v for v in result["nodes"] if v["node"] == "admission/%s" % name]
    assert len(entry) == 1, result
    check = entry[0]["checks"][0]
    assert check["name"] == CHECK_ADMISSION and check["status"] == status, check
    if status == "passed":
        assert not result.failed, result["summary"]
        assert "gpu: 0.500 with nodeSelector nvidia.com/device-plugin.config: ts-2 was rewritten to 1 " \
               "nvidia.com/gpu.shared on profile ts-2; gpu: 1.5 was refused" in check["reason"], check
        assert "GPU request refused: container probe asks for gpu: 1.5" in check["reason"], check
    else:
        assert result.failed and "write them with the admission_policy module" in check["reason"], check


def test_absent_removes_policies(gpu_nodes):
    """Runs last: state absent removes the policies and bindings and the rewrite stops."""
    c = gpu_nodes
    objs = policy_objects()
    result = write_policies(c, state="absent")
    assert result.changed and [o["action"] for o in result["objects"]] == ["deleted"] * len(objs), result
    for obj in objs:
        p = c.kubectl("get", obj["kind"], obj["metadata"]["name"], check=False)
        assert p.returncode != 0 and "NotFound" in p.stderr, p.stderr

    def plain():
        rc, dummy, err = dry_run(c, seed_pod(NS))
        return rc != 0 and "must be a standard resource type or fully qualified" in err
    c.wait_for(plain, 30, "the seed pod no longer rewritten")
