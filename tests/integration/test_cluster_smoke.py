"""Smoke test of the local cluster: real chart, real scheduler, NVIDIA's real device plugin.

A simulated g4dn.xlarge (1x T4) gets NVIDIA's device-plugin chart with a 4-replica
time-slicing config; NVIDIA's plugin, run for the chart's pod by kubelet-device-emulator over the
emulated NVML, makes it allocatable nvidia.com/gpu: 4; kube-scheduler places 4 one-slice pods there and leaves a fifth Pending.
"""

from __future__ import annotations

import time

import pytest
import yaml

pytestmark = pytest.mark.integration

NODE = "smoke-g4dn-xlarge"
PLUGIN_NS = "nvidia-device-plugin"
RELEASE = "nvdp"
APP_NS = "smoke"

TIME_SLICING_4 = """\
version: v1
flags:
  migStrategy: none
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 4
"""


def slice_pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": APP_NS, "labels": {"app": "smoke-slice"}},
        "spec": {
            "nodeSelector": {"node.kubernetes.io/instance-type": "g4dn.xlarge"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "cuda",
                "image": "cuda-sample:vectoradd",
                "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
            }],
        },
    }


def wait(cluster, pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def allocatable_gpus(cluster) -> str | None:
    node = cluster.kubectl_json("get", "node", NODE)
    return node["status"].get("allocatable", {}).get("nvidia.com/gpu")


def test_time_slicing_smoke(local_cluster, tmp_path):
    c = local_cluster
    t0 = time.monotonic()
    try:
        # 1. a fresh simulated EKS GPU node: labels, taint, no nvidia.com/gpu yet
        node = c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
        labels = node["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] == "g4dn.xlarge"
        assert labels["topology.kubernetes.io/zone"] == "us-east-1a"
        assert labels["karpenter.k8s.aws/instance-gpu-name"] == "t4"
        assert labels["karpenter.k8s.aws/instance-gpu-count"] == "1"
        assert labels["karpenter.k8s.aws/instance-gpu-memory"] == "16384"
        assert labels["nvidia.com/gpu.present"] == "true"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in node["spec"]["taints"]
        assert "nvidia.com/gpu" not in node["status"]["allocatable"]
        assert node["status"]["capacity"]["cpu"] == "4"

        # 2. NVIDIA's real chart, 4-replica time-slicing, GFD on
        values = {"gfd": {"enabled": True}, "config": {"default": "ts-4", "map": {"ts-4": TIME_SLICING_4}}}
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        c.helm("install", RELEASE, c.artifacts / "nvidia-device-plugin", "--namespace", PLUGIN_NS,
               "--create-namespace", "-f", values_file)

        # 3. the DaemonSet pod runs on the node (kwok plays the kubelet)
        def plugin_pod_running():
            pods = c.kubectl_json("get", "pods", "-n", PLUGIN_NS, "-l", "app.kubernetes.io/name=nvidia-device-plugin",
                                  "--field-selector", f"spec.nodeName={NODE}")["items"]
            return any(p["status"].get("phase") == "Running" for p in pods)
        wait(c, plugin_pod_running, 90, "device-plugin DaemonSet pod Running on the node")

        # 4. NVIDIA's plugin registers 1 T4 x 4 replicas with the (emulated) kubelet
        c.start_real_plugin()
        wait(c, lambda: allocatable_gpus(c) == "4", 60, "allocatable nvidia.com/gpu: 4")

        # 5. four one-slice pods through the real scheduler, all on the node, all Running
        c.create_namespace(APP_NS)
        c.apply([slice_pod(f"slice-{i}") for i in range(4)])

        def four_running():
            pods = c.kubectl_json("get", "pods", "-n", APP_NS, "-l", "app=smoke-slice")["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == NODE]
            return len(running) == 4
        wait(c, four_running, 60, "4 slice pods Running on the node")

        # 6. a fifth stays Pending, Unschedulable (by kube-scheduler: Insufficient nvidia.com/gpu)
        c.apply(slice_pod("slice-4"))

        def fifth_unschedulable():
            pod = c.kubectl_json("get", "pod", "-n", APP_NS, "slice-4")
            conds = {x["type"]: x for x in pod["status"].get("conditions", [])}
            sched = conds.get("PodScheduled", {})
            return (pod["status"].get("phase") == "Pending" and sched.get("status") == "False"
                    and sched.get("reason") == "Unschedulable") and sched
        cond = wait(c, fifth_unschedulable, 60, "fifth pod Pending/Unschedulable")
        assert "nvidia.com/gpu" in cond.get("message", ""), cond
        time.sleep(2)
        pod = c.kubectl_json("get", "pod", "-n", APP_NS, "slice-4")
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    finally:
        print(f"smoke test body: {time.monotonic() - t0:.1f}s")
        c.stop_process("kubelet-device-emulator")
        # Wait for the pods to go: a Pending one left behind would make the next test's Karpenter
        # launch a node for it.
        c.kubectl("delete", "pods", "-n", APP_NS, "--all", "--grace-period=0", "--force", check=False)
        c.kubectl("delete", "namespace", APP_NS, "--ignore-not-found", "--timeout=90s", check=False, timeout=120)
        c.helm("uninstall", RELEASE, "--namespace", PLUGIN_NS, "--no-hooks", check=False)
        c.delete_node(NODE)


NODEPOOL = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "smoke-gpu"},
    "spec": {
        "template": {
            "spec": {
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g4dn.xlarge"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                ],
                "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                "expireAfter": "Never",
            }
        },
        "limits": {"nvidia.com/gpu": "2"},
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5s"},
    },
}


def test_karpenter_kwok_launches_gpu_node(local_cluster, tmp_path):
    """A pending GPU pod makes Karpenter's KWOK provider launch a simulated g4dn.xlarge, which
    (like a fresh EKS GPU node) has no nvidia.com/gpu until the device plugin runs on it."""
    c = local_cluster
    ns = "smoke-karpenter"
    try:
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump({"gfd": {"enabled": True}}))  # no sharing config: physical GPUs
        c.helm("install", RELEASE, c.artifacts / "nvidia-device-plugin", "--namespace", PLUGIN_NS,
               "--create-namespace", "-f", values_file)
        c.start_real_plugin()
        c.start_karpenter()
        c.apply(NODEPOOL)
        c.create_namespace(ns)
        pod = slice_pod("wants-gpu")
        pod["metadata"]["namespace"] = ns
        pod["spec"]["nodeSelector"] = {"karpenter.sh/nodepool": "smoke-gpu"}
        c.apply(pod)

        def launched():
            nodes = c.kubectl_json("get", "nodes", "-l", "karpenter.sh/nodepool=smoke-gpu")["items"]
            return nodes[0] if nodes else None
        node = wait(c, launched, 120, "Karpenter to launch a node for the pending GPU pod")
        labels = node["metadata"]["labels"]
        assert labels["node.kubernetes.io/instance-type"] == "g4dn.xlarge"
        assert labels["karpenter.k8s.aws/instance-gpu-name"] == "t4"
        assert labels["karpenter.k8s.aws/instance-gpu-count"] == "1"
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["topology.kubernetes.io/zone"].startswith("us-east-1")

        # The launched NodeClaim carries the physical GPU (no overlay for this pool), as the AWS provider's does.
        # The KWOK provider makes the Node before Karpenter writes the claim's status, so wait for that.
        def claims():
            return [cl for cl in c.kubectl_json("get", "nodeclaims.karpenter.sh", "-l",
                                                "karpenter.sh/nodepool=smoke-gpu")["items"]
                    if cl.get("status", {}).get("providerID") == node["spec"].get("providerID")]
        launched_claims = wait(c, claims, 60, "the NodeClaim of Karpenter's node")
        assert [cl["status"]["allocatable"].get("nvidia.com/gpu") for cl in launched_claims] == ["1"], launched_claims

        def pod_running():
            p = c.kubectl_json("get", "pod", "-n", ns, "wants-gpu")
            return p["status"].get("phase") == "Running" and p["spec"].get("nodeName") == node["metadata"]["name"]
        wait(c, pod_running, 90, "the GPU pod Running on Karpenter's node")
        # The GPU came from NVIDIA's device plugin, not from the node's creation.
        assert allocatable_of(c, node["metadata"]["name"]) == "1"
    finally:
        c.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
        c.remove_karpenter_nodes("karpenter.sh/nodepool=smoke-gpu")
        c.kubectl("delete", "nodepool", "smoke-gpu", "--ignore-not-found", "--timeout=60s", check=False, timeout=90)
        c.stop_process("karpenter")
        c.stop_process("kubelet-device-emulator")
        c.helm("uninstall", RELEASE, "--namespace", PLUGIN_NS, "--no-hooks", check=False)


def allocatable_of(cluster, name):
    return cluster.kubectl_json("get", "node", name)["status"].get("allocatable", {}).get("nvidia.com/gpu")
