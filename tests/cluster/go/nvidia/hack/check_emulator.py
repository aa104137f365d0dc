#!/usr/bin/env python3
"""By-hand end-to-end check of gpu-plugin-emulator against a running cluster.

Needs: $KUBECONFIG, kwok running (pods on fake nodes become Running), gpu-plugin-emulator running
with that kubeconfig (all namespaces), the `kubernetes` Python package. It creates node emu-check-1
(1x T4), a ConfigMap and a pod shaped like the chart's device-plugin pod in namespace emu-check,
then walks through: no config selectable -> 0; ts-4 -> 4 + GFD labels; renameByDefault ->
gpu.shared 8 / gpu 0; a 2-slice pod Failed with UnexpectedAdmissionError; mps-2 (stale gpu.shared -> 0,
earlier admitted pods untouched); invalid config -> 0; plugin pod deleted -> 0. Cleans up after itself.
    KUBECONFIG=... python tests/cluster/go/nvidia/hack/check_emulator.py
"""
import time, sys, warnings
warnings.filterwarnings("ignore")
from kubernetes import client, config
config.load_kube_config()  # $KUBECONFIG
v1 = client.CoreV1Api()
NS = "emu-check"  # not the chart's namespace: no clash with a real release
NODE = "emu-check-1"
CM = "emu-check-configs"

def wait(fn, what, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = fn()
        if r:
            print(f"OK {what} after {time.time()-t0:.2f}s")
            return r
        time.sleep(0.1)
    print(f"FAIL {what}")
    n = v1.read_node(NODE)
    print(" alloc", n.status.allocatable, "\n labels", {k: v for k, v in n.metadata.labels.items() if "nvidia" in k}, "\n ann", n.metadata.annotations)
    sys.exit(1)

def alloc(key):
    return (v1.read_node(NODE).status.allocatable or {}).get(key)

def labels():
    return v1.read_node(NODE).metadata.labels or {}

for ns in (NS, "default"):
    try: v1.create_namespace({"metadata": {"name": ns}})
    except client.ApiException: pass
    try: v1.create_namespaced_service_account(ns, {"metadata": {"name": "default"}})
    except client.ApiException: pass
for f in (lambda: v1.delete_node(NODE), lambda: v1.delete_namespaced_config_map(CM, NS)):
    try: f()
    except client.ApiException: pass
for ns, names in ((NS, ["nvdp-a"]), ("default", ["two-slices-ts", "two-slices", "one-slice"])):
    for name in names:
        try: v1.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        except client.ApiException: pass
while any(n.metadata.name == NODE for n in v1.list_node().items):
    time.sleep(0.2)
time.sleep(1)
v1.create_node({"metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
    "labels": {"karpenter.k8s.aws/instance-gpu-count": "1", "karpenter.k8s.aws/instance-gpu-name": "t4",
               "karpenter.k8s.aws/instance-gpu-memory": "16384",  # no nvidia.com/gpu.present: keeps a real chart DaemonSet off it
               "node.kubernetes.io/instance-type": "g4dn.xlarge"}},
    "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
    "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "29"}, "allocatable": {"cpu": "4", "memory": "15Gi", "pods": "29"}}})
wait(lambda: v1.read_node(NODE).metadata.annotations.get("gpu-slicing.eks/emulated-by") == "gpu-plugin-emulator", "node annotated emulated-by")
assert alloc("nvidia.com/gpu") is None, "fresh node must not advertise GPUs"

ts = lambda r, extra="": f"version: v1\nsharing:\n  timeSlicing:\n{extra}    resources:\n    - name: nvidia.com/gpu\n      replicas: {r}\n"
v1.create_namespaced_config_map(NS, {"metadata": {"name": CM}, "data": {
    "ts-4": ts(4), "ren-8": ts(8, "    renameByDefault: true\n    failRequestsGreaterThanOne: true\n"),
    "mps-2": "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n",
    "bad": ts(1)}})

cm_env = lambda oneshot: [{"name": "ONESHOT", "value": oneshot}, {"name": "NODE_LABEL", "value": "nvidia.com/device-plugin.config"},
    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    {"name": "CONFIG_FILE_SRCDIR", "value": "/available-configs"}, {"name": "CONFIG_FILE_DST", "value": "/config/config.yaml"},
    {"name": "DEFAULT_CONFIG", "value": ""}, {"name": "FALLBACK_STRATEGIES", "value": "named,single"}]
mounts = [{"name": "available-configs", "mountPath": "/available-configs"}, {"name": "config", "mountPath": "/config"}]
def plugin_pod(name):
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": "nvdp"}},
     "spec": {"nodeName": NODE, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
      "initContainers": [{"name": "nvidia-device-plugin-init", "image": "x", "command": ["config-manager"], "env": cm_env("true"), "volumeMounts": mounts}],
      "containers": [{"name": "nvidia-device-plugin-sidecar", "image": "x", "command": ["config-manager"], "env": cm_env("false"), "volumeMounts": mounts},
                     {"name": "nvidia-device-plugin-ctr", "image": "x", "command": ["nvidia-device-plugin"],
                      "env": [{"name": "MPS_ROOT", "value": "/run/nvidia/mps"}, {"name": "CONFIG_FILE", "value": "/config/config.yaml"}], "volumeMounts": mounts}],
      "volumes": [{"name": "available-configs", "configMap": {"name": CM}}, {"name": "config", "emptyDir": {}}]}}
t0 = time.time()
v1.create_namespaced_pod(NS, plugin_pod("nvdp-a"))
wait(lambda: v1.read_namespaced_pod("nvdp-a", NS).status.phase == "Running", "plugin pod Running (kwok)")
wait(lambda: "fallbacks failed" in v1.read_node(NODE).metadata.annotations.get("gpu-slicing.eks/emulator-state", ""), "no label, 4 configs: config-manager fails")
v1.patch_node(NODE, {"metadata": {"labels": {"nvidia.com/device-plugin.config": "ts-4"}}})
wait(lambda: alloc("nvidia.com/gpu") == "4", "ts-4 -> nvidia.com/gpu 4")
l = labels(); print({k: v for k, v in l.items() if k.startswith("nvidia.com/")})
assert l["nvidia.com/gpu.product"] == "Tesla-T4-SHARED" and l["nvidia.com/gpu.replicas"] == "4" and l["nvidia.com/gpu.count"] == "1" and l["nvidia.com/gpu.sharing-strategy"] == "time-slicing"

def gpu_pod(name, res, n):
    return {"metadata": {"name": name}, "spec": {"nodeName": NODE, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {res: str(n)}}}]}}
v1.create_namespaced_pod("default", gpu_pod("two-slices-ts", "nvidia.com/gpu", 2))
wait(lambda: v1.read_namespaced_pod("two-slices-ts", "default").status.phase == "Running", "2-slice pod Running with failRequests false")

v1.patch_node(NODE, {"metadata": {"labels": {"nvidia.com/device-plugin.config": "ren-8"}}})
wait(lambda: alloc("nvidia.com/gpu.shared") == "8" and alloc("nvidia.com/gpu") == "0", "ren-8 -> gpu.shared 8, gpu 0")
assert labels()["nvidia.com/gpu.product"] == "Tesla-T4"
v1.create_namespaced_pod("default", gpu_pod("two-slices", "nvidia.com/gpu.shared", 2))
p = wait(lambda: (lambda p: p if p.status.phase == "Failed" else None)(v1.read_namespaced_pod("two-slices", "default")), "2-slice pod Failed")
print(" ", p.status.reason, "|", p.status.message)
time.sleep(2)
assert v1.read_namespaced_pod("two-slices", "default").status.phase == "Failed", "kwok flipped it back"
v1.create_namespaced_pod("default", gpu_pod("one-slice", "nvidia.com/gpu.shared", 1))
wait(lambda: v1.read_namespaced_pod("one-slice", "default").status.phase == "Running", "1-slice pod Running")

v1.patch_node(NODE, {"metadata": {"labels": {"nvidia.com/device-plugin.config": "mps-2"}}})
wait(lambda: alloc("nvidia.com/gpu") == "2" and alloc("nvidia.com/gpu.shared") == "0" and labels().get("nvidia.com/mps.capable") == "true", "mps-2 -> gpu 2, gpu.shared 0, mps.capable")
time.sleep(1)
assert v1.read_namespaced_pod("two-slices-ts", "default").status.phase == "Running", "admitted pod must not be re-judged"
print({k: v for k, v in labels().items() if k.startswith("nvidia.com/")}, v1.read_node(NODE).status.allocatable)

v1.patch_node(NODE, {"metadata": {"labels": {"nvidia.com/device-plugin.config": "bad"}}})
wait(lambda: alloc("nvidia.com/gpu") == "0" and "nvidia.com/gpu.replicas" not in labels(), "bad config -> 0, labels gone")
print(" state:", v1.read_node(NODE).metadata.annotations["gpu-slicing.eks/emulator-state"])

v1.patch_node(NODE, {"metadata": {"labels": {"nvidia.com/device-plugin.config": "ts-4"}}})
wait(lambda: alloc("nvidia.com/gpu") == "4", "back to ts-4")
v1.delete_namespaced_pod("nvdp-a", NS, grace_period_seconds=0)
wait(lambda: alloc("nvidia.com/gpu") == "0" and "nvidia.com/gpu.count" not in labels(), "plugin pod deleted -> 0")
print("ALL OK", f"{time.time()-t0:.1f}s")
for p in ("two-slices-ts", "two-slices", "one-slice"):
    v1.delete_namespaced_pod(p, "default", grace_period_seconds=0)
v1.delete_node(NODE)
v1.delete_namespace(NS)
