"""karpenter_gpu_nodepool against the local cluster: real Karpenter CRDs (CEL included), then
Karpenter's KWOK provider deciding how many GPU nodes to launch, with and without NodeOverlays.

The module runs the way users run it (ansible-playbook, through tests/integration/playbook_runner.py).
The KWOK provider runs as a plain process, not a Deployment, so its NodeOverlay feature gate
cannot be read from the cluster: these tests state it with ``karpenter_feature_gates``
(the module documents that option for exactly this case), and separately test reading the
gate from a Deployment.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from playbook_runner import run_module  # tests/integration has no __init__.py: pytest puts it on sys.path

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    build_plan,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_config_map_data

pytestmark = pytest.mark.integration

PROFILES = [{"name": "ts-4", "strategy": "time-slicing", "replicas": 4}]
GATE_ON = "NodeOverlay=true"
OWNED = "app.kubernetes.io/managed-by=gpu_slicing.eks"
KINDS = {
    "nodepools.karpenter.sh": "NodePool",
    "ec2nodeclasses.karpenter.k8s.aws": "EC2NodeClass",
    "nodeoverlays.karpenter.sh": "NodeOverlay",
}
KWOK_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def eks_args(name="it-gpu", **over):
    args = {
        "name": name,
        "profiles": PROFILES,
        "discovery_tag_value": "it-cluster",
        "role": "KarpenterNodeRole-it",
        "instance_families": ["g4dn", "g5"],
        "limit_slices": 64,
        "budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "@daily", "duration": "8h"}],
        "weight": 20,
        "karpenter_feature_gates": GATE_ON,
    }
    args.update(over)
    return args


@pytest.fixture(scope="module")
def karpenter_crds(local_cluster):
    c = local_cluster
    c.apply_karpenter_crds()
    ec2 = c.artifacts / "karpenter-aws-crds" / "karpenter.k8s.aws_ec2nodeclasses.yaml"
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", ec2)
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/ec2nodeclasses.karpenter.k8s.aws")
    return c


def run(c, args, **kw):
    return run_module("karpenter_gpu_nodepool", args, kubeconfig=str(c.kubeconfig), **kw)


def snapshot(c):
    """name -> resourceVersion of every NodePool, EC2NodeClass and NodeOverlay."""
    out = {}
    for resource in KINDS:
        for item in c.kubectl_json("get", resource)["items"]:
            out["%s/%s" % (resource, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return out


def names(c, resource, selector=None):
    args = ["get", resource] + (["-l", selector] if selector else [])
    return sorted(i["metadata"]["name"] for i in c.kubectl_json(*args)["items"])


def absent(c, name):
    res = run(c, {"name": name, "state": "absent"})
    assert not res.failed, res.get("msg")
    return res


# --------------------------------------------------------------------------- module against the CRDs


def test_apply_idempotent_diff_check_mode_and_absent(karpenter_crds):
    c = karpenter_crds
    try:
        first = run(c, eks_args())
        assert not first.failed, first.get("msg")
        assert first.changed
        pool = c.kubectl_json("get", "nodepools.karpenter.sh", "it-gpu")
        assert pool["spec"]["limits"] == {"nvidia.com/gpu": "64"}
        assert pool["spec"]["template"]["metadata"]["labels"]["nvidia.com/device-plugin.config"] == "ts-4"
        assert pool["spec"]["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
        nodeclass = c.kubectl_json("get", "ec2nodeclasses.karpenter.k8s.aws", "it-gpu")
        assert nodeclass["spec"]["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
        # no AWS controller runs here: nobody sets the EC2NodeClass's conditions, and it says so
        assert first["ec2nodeclass_status"]["ready"] is None, first["ec2nodeclass_status"]
        assert first["ec2nodeclass_status"]["reported"].startswith("not reported yet")
        assert first["ami_check"]["checked"] is False and "no AWS connection" in first["ami_check"]["reason"]
        overlays = names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-gpu")
        assert len(overlays) == len(first["summary"]["instance_types"]) > 10
        g5_12 = c.kubectl_json("get", "nodeoverlays.karpenter.sh", "it-gpu-g5-12xlarge")
        assert g5_12["spec"]["capacity"] == {"nvidia.com/gpu": "16"}

        before = snapshot(c)
        second = run(c, eks_args())
        assert not second.failed and not second.changed, second.get("objects")
        assert snapshot(c) == before

        # check mode + diff of a change: reported, not written
        preview = run(c, eks_args(limit_slices=128), check=True, diff=True)
        assert not preview.failed and preview.changed, preview.get("msg")
        assert any(d["before_header"] == "NodePool/it-gpu" for d in preview["diff"])
        assert snapshot(c) == before

        # narrowing the pool prunes the overlays it no longer needs
        narrow = run(c, eks_args(instance_families=None, instance_types=["g5.xlarge"]))
        assert not narrow.failed and narrow.changed
        assert names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-gpu") == ["it-gpu-g5-xlarge"]
    finally:
        res = absent(c, "it-gpu")
    assert res.changed
    assert names(c, "nodepools.karpenter.sh", OWNED) == []
    assert names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-gpu") == []
    assert "it-gpu" not in names(c, "ec2nodeclasses.karpenter.k8s.aws")
    again = absent(c, "it-gpu")
    assert not again.changed


def test_bottlerocket_and_gpu_count_tiers_accepted(karpenter_crds):
    c = karpenter_crds
    try:
        res = run(c, eks_args(name="it-br", ami_alias="bottlerocket@latest", role=None,
                              instance_profile="KarpenterNodeProfile", overlay_key="gpu-count",
                              gpu_names=["t4"], gpu_counts=[1, 4], min_gpu_memory="16Gi",
                              capacity_types=["spot", "on-demand"], zones=["us-east-1a", "us-east-1b"],
                              root_volume_size="200Gi"))
        assert not res.failed, res.get("msg")
        nodeclass = c.kubectl_json("get", "ec2nodeclasses.karpenter.k8s.aws", "it-br")
        assert 'device-sharing-strategy = "time-slicing"' in nodeclass["spec"]["userData"]
        assert nodeclass["spec"]["instanceProfile"] == "KarpenterNodeProfile"
        assert names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-br") == ["it-br-1gpu", "it-br-4gpu"]
    finally:
        absent(c, "it-br")


def test_check_mode_creates_nothing(karpenter_crds):
    c = karpenter_crds
    before = snapshot(c)
    res = run(c, eks_args(name="it-check"), check=True)
    assert not res.failed and res.changed, res.get("msg")
    assert snapshot(c) == before


BAD = [
    ({"ami_alias": "al2@latest"}, "ami_alias"),
    ({"instance_profile": "KarpenterNodeProfile"}, "instance_profile"),
    ({"limit_slices": "lots"}, "limit_slices"),
    ({"limits": {"cpu": "many"}}, "limits.cpu"),
    ({"instance_families": None, "instance_types": ["g4dn.xlarg"]}, "instance_types[0]"),
    ({"instance_families": None}, "instance_types"),
    ({"weight": 500}, "weight"),
    ({"consolidate_after": "5 minutes"}, "consolidate_after"),
]


def test_bad_input_rejected_before_the_api(karpenter_crds):
    c = karpenter_crds
    try:
        assert not run(c, eks_args(name="it-keep")).failed
        before = snapshot(c)
        for over, field in BAD:
            res = run(c, eks_args(name="it-keep", **over))
            assert res.failed, over
            assert res["msg"].startswith(field + ": "), res["msg"]
            assert "Fix: " in res["msg"]
            assert snapshot(c) == before, over
    finally:
        absent(c, "it-keep")


def test_feature_gate_check(karpenter_crds):
    c = karpenter_crds
    ns = "it-karpenter"
    c.kubectl("create", "namespace", ns, check=False)
    try:
        before = snapshot(c)
        # no Karpenter Deployment to read and no stated gates: fail, write nothing
        res = run(c, eks_args(name="it-gate", karpenter_feature_gates=None, karpenter_namespace=ns))
        assert res.failed
        assert "settings.featureGates.nodeOverlay=true" in res["msg"] and "Nothing was written" in res["msg"]
        assert snapshot(c) == before
        # gate stated off + opt-out: NodePool without overlays and a warning
        res = run(c, eks_args(name="it-gate", karpenter_feature_gates="NodeOverlay=false",
                              allow_without_node_overlay=True))
        assert not res.failed and res.changed, res.get("msg")
        assert res["node_overlays"] == [] and "over-provision" in " ".join(res.get("warnings", []))
        assert names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-gate") == []
        assert "it-gate" in names(c, "nodepools.karpenter.sh")
        # gate read from a (scaled-to-zero) Karpenter Deployment's FEATURE_GATES env
        c.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "karpenter", "namespace": ns, "labels": {"app.kubernetes.io/name": "karpenter"}},
                 "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "karpenter"}},
                          "template": {"metadata": {"labels": {"app": "karpenter"}}, "spec": {"containers": [{
                              "name": "controller", "image": "karpenter:sim",
                              "env": [{"name": "FEATURE_GATES", "value": "NodeRepair=false,NodeOverlay=true"}]}]}}}})
        res = run(c, eks_args(name="it-gate", karpenter_feature_gates=None, karpenter_namespace=ns))
        assert not res.failed, res.get("msg")
        assert res["node_overlay_gate"] is True and "Deployment it-karpenter/karpenter" in res["gate_source"]
        assert len(names(c, "nodeoverlays.karpenter.sh", "gpu-slicing.eks/nodepool=it-gate")) > 0
    finally:
        absent(c, "it-gate")
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_absent_leaves_foreign_objects(karpenter_crds):
    c = karpenter_crds
    foreign = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "it-foreign"},
               "spec": {"template": {"spec": {"nodeClassRef": KWOK_CLASS, "requirements": [
                   {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}},
                   "disruption": {"consolidateAfter": "1m"}, "limits": {"cpu": "0"}}}
    c.apply(foreign)
    try:
        assert not run(c, eks_args(name="it-mine")).failed
        res = absent(c, "it-foreign")
        assert not res.changed
        assert any("left in place" in w for w in res.get("warnings", []))
        res = run(c, eks_args(name="it-foreign"))
        assert res.failed and "not created by gpu_slicing.eks" in res["msg"]
        absent(c, "it-mine")
        assert "it-foreign" in names(c, "nodepools.karpenter.sh")
    finally:
        absent(c, "it-mine")
        c.kubectl("delete", "nodepools.karpenter.sh", "it-foreign", "--ignore-not-found", check=False)


# --------------------------------------------------------------------------- Karpenter's KWOK provider


POOL = "it-sim"
# Karpenter runs as karpenter-kwok-eks: the upstream KWOK provider with the AWS provider's
# NodeClaim capacity (overlaid) and EKS's fresh-node order of events (no nvidia.com/gpu until the
# device plugin registers; here NVIDIA's plugin, run by kubelet-device-emulator). See tests/cluster/go/karpenter/cmd/karpenter-kwok-eks.
APP_NS = "it-karpenter-pods"
PLUGIN_NS = "it-karpenter-dp"
RELEASE = "nvdp-karp"


def sim_args(**over):
    args = {
        "name": POOL,
        "profiles": PROFILES,
        "instance_types": ["g4dn.xlarge"],
        "manage_node_class": False,
        "node_class_ref": KWOK_CLASS,
        "consolidation_policy": "WhenEmpty",
        "consolidate_after": "Never",
        "karpenter_feature_gates": GATE_ON,
    }
    args.update(over)
    return args


def slice_pod(i):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "slice-%02d" % i, "namespace": APP_NS, "labels": {"app": "karp-slice"}},
        "spec": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "cuda", "image": "cuda-sample:vectoradd",
                            "resources": {"requests": {"nvidia.com/gpu": "1", "cpu": "100m"},
                                          "limits": {"nvidia.com/gpu": "1"}}}],
        },
    }


def pool_nodes(c):
    return names(c, "nodes", "karpenter.sh/nodepool=%s" % POOL)


def nodeclaims(c):
    return names(c, "nodeclaims.karpenter.sh", "karpenter.sh/nodepool=%s" % POOL)


def wait(pred, timeout, what, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


def clean(c):
    c.kubectl("delete", "pods", "-n", APP_NS, "--all", "--grace-period=0", "--force", "--wait=false", check=False)
    wait(lambda: not c.kubectl_json("get", "pods", "-n", APP_NS)["items"], 60, "pods gone")
    forced = c.remove_karpenter_nodes("karpenter.sh/nodepool=%s" % POOL, timeout=180)
    assert not forced, "Karpenter did not remove its nodes: %s" % forced
    absent(c, POOL)


def overlays_taken_up(c):
    """Wait until Karpenter's NodeOverlay controller has validated every overlay of the pool.

    That controller writes the overlays' Ready condition and then, in the same reconcile, swaps
    in the instance types it will plan with; a fixed sleep could end before a loaded machine got there.
    """
    def ready():
        items = c.kubectl_json("get", "nodeoverlays.karpenter.sh", "-l", "gpu-slicing.eks/nodepool=%s" % POOL)["items"]
        return all(any(x["type"] == "Ready" and x["status"] == "True" for x in o.get("status", {}).get("conditions", []))
                   for o in items)
    wait(ready, 60, "NodeOverlays of %s Ready" % POOL, interval=0.5)
    time.sleep(1)  # the store swap follows the status write


def pending_unschedulable(c, pods):
    items = c.kubectl_json("get", "pods", "-n", APP_NS, "-l", "app=karp-slice")["items"]
    return len(items) == pods and all(
        any(x["type"] == "PodScheduled" and x["status"] == "False" and x.get("reason") == "Unschedulable"
            for x in p["status"].get("conditions", []))
        for p in items)


def launch(c, pods, args, settle=15):
    """``pods`` one-slice pods pending first, then the NodePool: the number of nodes Karpenter launches.

    The pods are all Unschedulable before the NodePool exists, so Karpenter plans for all of them in
    one pass (as it does for a Deployment scaled up at once; on a loaded 2-core machine the scheduler
    otherwise marks them over several of Karpenter's 0.5 s batch windows).
    """
    c.apply([slice_pod(i) for i in range(pods)])
    wait(lambda: pending_unschedulable(c, pods), 120, "%d pods Unschedulable" % pods)
    log = c.logs / "karpenter.log"
    offset = log.stat().st_size
    res = run(c, args)
    assert not res.failed, res.get("msg")
    overlays_taken_up(c)
    c.kubectl("label", "pods", "-n", APP_NS, "--all", "launch=%d" % pods, "--overwrite")  # wake the provisioner

    def all_running():
        items = c.kubectl_json("get", "pods", "-n", APP_NS, "-l", "app=karp-slice")["items"]
        return len([p for p in items if p["status"].get("phase") == "Running"]) == pods

    wait(all_running, 300, "%d slice pods Running" % pods)
    time.sleep(settle)  # no late launches
    return len(nodeclaims(c)), first_plan(log, offset, pods), res


def first_plan(log, offset, pods):
    """NodeClaims in Karpenter's first plan for all ``pods`` pods ("computed new nodeclaim(s) to fit pod(s)")."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode("utf-8", "replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "computed new nodeclaim(s) to fit pod(s)" and entry.get("pods") == pods:
                return entry["nodeclaims"]
    return None


@pytest.fixture(scope="module")
def karpenter_sim(karpenter_crds, tmp_path_factory):
    c = karpenter_crds
    c.start_karpenter()
    plan = build_plan({"profiles": PROFILES})
    values = {"gfd": {"enabled": True}, "config": {"default": "ts-4", "map": render_config_map_data(plan)},
              "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                              {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    values_file = tmp_path_factory.mktemp("karp") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    c.helm("install", RELEASE, c.artifacts / "nvidia-device-plugin", "--namespace", PLUGIN_NS,
           "--create-namespace", "-f", values_file)
    c.start_real_plugin()
    c.create_namespace(APP_NS)
    try:
        yield c
    finally:
        steps = [
            lambda: clean(c),
            lambda: c.helm("uninstall", RELEASE, "--namespace", PLUGIN_NS, "--no-hooks", check=False, timeout=120),
            lambda: c.kubectl("delete", "namespace", APP_NS, PLUGIN_NS, "--wait=false", check=False),
        ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # teardown goes on; the test result already says what failed
                print("karpenter_sim teardown: %s" % exc)
        c.stop_process("kubelet-device-emulator")
        c.stop_process("karpenter")


# With overlays: the theoretical minimum ceil(N / (1 GPU x 4 replicas)), in Karpenter's first plan
# and in the nodes it finally launched. Without overlays Karpenter plans one node per pod.
EXPECTED_FIRST_PLAN = {True: {4: 1, 8: 2, 17: 5}, False: {4: 4, 8: 8, 17: 17}}
RESULTS = {}


@pytest.mark.parametrize("overlays", [True, False], ids=["with-overlays", "without-overlays"])
def test_kwok_provider_node_counts(karpenter_sim, overlays):
    c = karpenter_sim
    args = sim_args() if overlays else sim_args(karpenter_feature_gates="NodeOverlay=false",
                                                allow_without_node_overlay=True)
    launched, planned = {}, {}
    try:
        for pods in (4, 8, 17):
            clean(c)
            launched[pods], planned[pods], res = launch(c, pods, args)
            assert len(res["node_overlays"]) == (1 if overlays else 0)

            # the emulated device plugin sliced every launched node: 4 allocatable per T4
            def gpu_allocatable():
                return {n: c.kubectl_json("get", "node", n)["status"]["allocatable"].get("nvidia.com/gpu")
                        for n in pool_nodes(c)}
            # a node no pod landed on may still be waiting for its plugin on a loaded machine
            deadline = time.monotonic() + 60
            while set(gpu_allocatable().values()) - {"4"} and time.monotonic() < deadline:
                time.sleep(1)
            for node, alloc in gpu_allocatable().items():
                assert alloc == "4", (node, alloc)
    finally:
        RESULTS[overlays] = launched
        print("KWOK provider, g4dn.xlarge, ts-4, overlays=%s: pods -> first plan %s, nodes launched %s"
              % (overlays, json.dumps(planned), json.dumps(launched)))
        clean(c)
    assert planned == EXPECTED_FIRST_PLAN[overlays]
    if overlays:
        assert launched == EXPECTED_FIRST_PLAN[True], launched
    if True in RESULTS and False in RESULTS:
        assert all(RESULTS[True][p] < RESULTS[False][p] for p in (4, 8, 17)), RESULTS


@pytest.mark.parametrize("overlays", [True, False], ids=["with-overlays", "without-overlays"])
def test_verify_karpenter_launch_check(karpenter_sim, overlays):
    """gpu_slicing_verify's Karpenter check: 5 one-slice pods for the pool must launch 2 nodes
    (ceil(5 / (1 GPU x 4))). With overlays it passes; without, Karpenter launches 5 and it fails
    with expected vs observed. Its pods and the NodeClaims it launched are gone afterwards."""
    c = karpenter_sim
    args = sim_args() if overlays else sim_args(karpenter_feature_gates="NodeOverlay=false",
                                                allow_without_node_overlay=True)
    clean(c)
    try:
        assert not run(c, args).failed
        overlays_taken_up(c)
        res = run_module("gpu_slicing_verify", {
            "profiles": PROFILES, "device_plugin_namespace": PLUGIN_NS, "nodepool_name": POOL,
            "karpenter_nodepool_name": POOL, "karpenter_pods": 5, "karpenter_wait_timeout": 240, "karpenter_settle": 10,
            "image": "cuda-sample@sha256:" + "0" * 64,
        }, kubeconfig=str(c.kubeconfig))
        pool = [n for n in res["nodes"] if n["node"] == "nodepool/%s" % POOL][0]
        check = pool["checks"][0]
        print("verify Karpenter check, overlays=%s: %s" % (overlays, check["reason"]))
        assert check["name"] == "karpenter_node_count" and check["expected"] == 2, check
        if overlays:
            assert not res.failed, res.get("msg")
            assert check["status"] == "passed" and check["observed"] == 2, check
        else:
            assert res.failed and "karpenter_node_count" in res["msg"], res.get("msg")
            assert check["status"] == "failed" and check["observed"] == 5 and "over-provisions" in check["reason"]
        assert sorted(res["run"]["cleanup"]["karpenter_nodeclaims_removed"]) == check["details"]["nodeclaims_launched"]
        wait(lambda: not nodeclaims(c), 120, "the check's NodeClaims gone")
        assert res["run"]["cleanup"]["pods_removed"] is True, res["run"]["cleanup"]
        c.wait_for(lambda: not names(c, "namespaces", "gpu-slicing.eks/verify-run"), 60, "verify namespace gone")
    finally:
        clean(c)
