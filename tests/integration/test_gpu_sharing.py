"""gpu_sharing against the local cluster (real apiserver, NVIDIA's chart, Karpenter's CRDs).

What is checked: check mode writes nothing; one run installs the plugin (rolled out on a
simulated GPU node that then advertises GPUs x replicas) and writes the NodePool and its
overlay, with a diff for both parts; a second run reports no change; state=absent removes the
NodePool's objects and the plugin, and a second absent changes nothing. The order of checks
before writes, for bad input and cluster state, is in test_bad_input.py (main job cases).
"""

from __future__ import annotations

import time

import pytest
import yaml

from playbook_runner import run_module, run_playbook, task_results

pytestmark = pytest.mark.integration

NS = "gse-sharing-test"
RELEASE = "nvdp-sharing"
POOL = "it-sharing"
NODE = "sharing-g4dn"
KWOK_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}
POOL_KINDS = ("nodepools.karpenter.sh", "nodeoverlays.karpenter.sh")


def sharing_args(cluster, **overrides):
    path = cluster.artifacts / "nvidia-device-plugin"
    args = {
        "profiles": [{"name": "ts-4", "replicas": 4}],
        "device_plugin": {"release_name": RELEASE, "namespace": NS, "chart_ref": str(path),
                          "chart_version": str(yaml.safe_load((path / "Chart.yaml").read_text())["version"]),
                          "binary_path": str(cluster.bin / "helm"), "wait_timeout": 90},
        "nodepool": {"name": POOL, "instance_types": ["g4dn.xlarge"], "manage_node_class": False,
                     "node_class_ref": KWOK_CLASS, "karpenter_feature_gates": "NodeOverlay=true"},
    }
    args.update(overrides)
    return args


def state(cluster, namespace=NS):
    """The plugin's releases (name and revision) and the NodePool's objects (name -> resourceVersion)."""
    releases = sorted((r["name"], int(r["revision"])) for r in yaml.safe_load(
        cluster.helm("list", "-n", namespace, "-a", "-o", "json").stdout or "[]"))
    objects = {}
    for kind in POOL_KINDS:
        for item in cluster.kubectl_json("get", kind, "-l", "gpu-slicing.eks/nodepool=%s" % POOL)["items"]:
            objects["%s/%s" % (kind, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return {"releases": releases, "objects": objects}


def allocatable(cluster, node):
    return cluster.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get("nvidia.com/gpu")


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def test_gpu_sharing_check_mode_install_idempotence_diff_and_absent(local_cluster):
    c = local_cluster
    kc = str(c.kubeconfig)
    c.apply_karpenter_crds()
    c.apply({"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": "default"}})
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_real_plugin()
    try:
        before = state(c)
        assert before == {"releases": [], "objects": {}}, before
        checked = run_module("gpu_sharing", sharing_args(c), kubeconfig=kc, check=True)
        assert not checked.failed and checked.changed, checked
        assert state(c) == before, "check mode wrote something"

        first = run_module("gpu_sharing", sharing_args(c), kubeconfig=kc, diff=True)
        assert not first.failed, first.get("msg")
        assert first.changed and first["device_plugin"]["changed"] and first["nodepool"]["changed"]
        assert first["device_plugin"]["rollout"]["ready"] is True
        assert NODE in first["device_plugin"]["rollout"]["target_node_names"]
        written = state(c)
        assert written["releases"] == [(RELEASE, 1)]
        assert sorted(written["objects"]) == ["nodeoverlays.karpenter.sh/%s-g4dn-xlarge" % POOL,
                                              "nodepools.karpenter.sh/%s" % POOL]
        overlay = c.kubectl_json("get", "nodeoverlays.karpenter.sh", "%s-g4dn-xlarge" % POOL)
        assert overlay["spec"]["capacity"] == {"nvidia.com/gpu": "4"}  # 1 T4 x 4 replicas, from the same profile
        wait_until(lambda: allocatable(c, NODE) == "4", 60, "allocatable nvidia.com/gpu: 4 on the simulated node")
        headers = [d.get("before_header") for d in first["diff"]]
        assert headers[0] == "Helm values of %s/%s" % (NS, RELEASE), headers
        assert "NodePool/%s" % POOL in headers and "NodeOverlay/%s-g4dn-xlarge" % POOL in headers, headers

        second = run_module("gpu_sharing", sharing_args(c), kubeconfig=kc, diff=True)
        assert not second.failed and not second.changed, second
        assert not second["device_plugin"]["changed"] and not second["nodepool"]["changed"]
        assert second["diff"] == [], second["diff"]
        assert state(c) == written, "a run with nothing to change wrote something"

        gone = run_module("gpu_sharing", sharing_args(c, state="absent"), kubeconfig=kc)
        assert not gone.failed and gone.changed, gone
        assert state(c) == {"releases": [], "objects": {}}
        again = run_module("gpu_sharing", sharing_args(c, state="absent"), kubeconfig=kc)
        assert not again.failed and not again.changed, again
    finally:
        c.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", check=False)
        for kind in POOL_KINDS:
            c.kubectl("delete", kind, "-l", "gpu-slicing.eks/nodepool=%s" % POOL, "--ignore-not-found", check=False)
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
        c.stop_process("kubelet-device-emulator")
        c.delete_node(NODE)


PLUGIN_TASK = "gpu_slicing.eks.device_plugin : Install NVIDIA's device plugin with the sharing profiles"
POOL_TASK = "gpu_slicing.eks.karpenter_gpu : Manage the Karpenter GPU NodePool, its EC2NodeClass and NodeOverlays"
BOTH_TASK = ("gpu_slicing.eks.gpu_sharing : Install the device plugin and set up the Karpenter GPU NodePool, "
             "checked before any write")


def roles_in_check_mode(cluster, tmp_path, namespace, role_vars):
    """The device_plugin + karpenter_gpu roles and the gpu_sharing role from the same variables (the
    chart, the namespace and a KWOK node class added), in check mode: their three module results,
    after checking that nothing was written."""
    cluster.apply_karpenter_crds()
    cluster.apply({"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
                   "metadata": {"name": "default"}})
    path = cluster.artifacts / "nvidia-device-plugin"
    role_vars = dict(role_vars, device_plugin_chart_ref=str(path),
                     device_plugin_chart_version=str(yaml.safe_load((path / "Chart.yaml").read_text())["version"]),
                     device_plugin_helm_binary=str(cluster.bin / "helm"), device_plugin_namespace=namespace,
                     device_plugin_release_name=RELEASE, karpenter_gpu_nodepool_name=POOL,
                     karpenter_gpu_manage_node_class=False, karpenter_gpu_node_class_ref=KWOK_CLASS,
                     karpenter_gpu_feature_gates="NodeOverlay=true")
    plays = [{"name": " + ".join(roles), "hosts": "localhost", "gather_facts": False, "vars": role_vars,
              "roles": ["gpu_slicing.eks.%s" % r for r in roles]}
             for roles in (["device_plugin", "karpenter_gpu"], ["gpu_sharing"])]
    playbook = tmp_path / "roles.yml"
    playbook.write_text(yaml.safe_dump(plays))
    before = state(cluster, namespace)
    rc, output = run_playbook(str(playbook), kubeconfig=str(cluster.kubeconfig), check=True)
    assert rc == 0, [res.get("msg") for dummy, res in task_results(output) if res.get("failed")] or output.get("_stderr")
    assert state(cluster, namespace) == before, "check mode wrote something"
    results = dict(task_results(output))
    return results[PLUGIN_TASK], results[POOL_TASK], results[BOTH_TASK]


def test_main_job_role_and_the_two_roles_configure_the_same_plugin_and_nodepool(local_cluster, tmp_path):
    """The gpu_sharing role (the main job's) and the device_plugin + karpenter_gpu roles, from the
    same variables, in check mode: the same Helm values and the same NodePool and overlays, and
    nothing written by either."""
    profiles = [{"name": "ts-4", "replicas": 4}, {"name": "mps-2", "strategy": "mps", "replicas": 2}]
    # Not NS: the test above deletes NS without waiting, and a dry run into a namespace that is
    # being terminated is refused.
    plugin, pool, both = roles_in_check_mode(local_cluster, tmp_path, NS + "-roles", {
        "device_plugin_profiles": profiles, "device_plugin_default_profile": "ts-4",
        "karpenter_gpu_profiles": profiles, "karpenter_gpu_profile": "mps-2",
        "karpenter_gpu_instance_types": ["g4dn.xlarge", "g5.12xlarge"]})
    assert plugin["changed"] and pool["changed"] and both["changed"]
    assert both["device_plugin"]["values"] == plugin["values"]
    for key in ("nodepool", "node_overlays", "summary"):
        assert both["nodepool"][key] == pool[key], key
    assert both["nodepool"]["summary"]["profile"] == "mps-2"


@pytest.mark.parametrize("types, admitted", [
    (["g6e.xlarge"], ["g6e.xlarge"]),
    (["g5.xlarge", "g6e.xlarge"], ["g5.xlarge", "g6e.xlarge"]),
])
def test_roles_take_the_users_profiles_and_instance_types_without_contradicting_defaults(
        local_cluster, tmp_path, types, admitted):
    """Only the profiles and the instance types set, the roles' other defaults as shipped: the
    default profile is the first profile (as the modules do), and the NodePool admits exactly the
    instance types given (the default families must not filter them). Check mode."""
    profiles = [{"name": "mps-2", "strategy": "mps", "replicas": 2}]
    plugin, pool, both = roles_in_check_mode(local_cluster, tmp_path, NS + "-defaults", {
        "device_plugin_profiles": profiles, "karpenter_gpu_profiles": profiles,
        "karpenter_gpu_instance_types": types})
    assert plugin["values"]["config"]["default"] == "mps-2"
    assert both["device_plugin"]["values"]["config"]["default"] == "mps-2"
    for summary in (pool["summary"], both["nodepool"]["summary"]):
        assert sorted(t["name"] for t in summary["instance_types"]) == admitted, summary
