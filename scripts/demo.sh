#!/usr/bin/env bash
# The main job, on the local cluster by default: build/start a cluster from real upstream
# binaries with simulated EKS GPU nodes, enable GPU sharing with the collection's playbook,
# verify it by scheduling test pods, print what the nodes advertise, and tear everything down.
#
#   scripts/demo.sh                 # local cluster (default)
#   KEEP_CLUSTER=1 scripts/demo.sh  # leave it running; stop with: python tests/cluster/localcluster.py down
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
eval "$(scripts/setup-venv.sh | grep '^export ')"
eval "$(tests/cluster/build.sh | grep '^export ')"
export PATH="$GPU_SLICING_BIN:$root/.venv/bin:$PATH"
py=$root/.venv/bin/python
workdir=${GPU_SLICING_WORKDIR:-$(mktemp -d /tmp/gpu-slicing-demo.XXXXXX)}
lc() { "$py" tests/cluster/localcluster.py "$@" --workdir "$workdir"; }
cleanup() { [ -n "${KEEP_CLUSTER:-}" ] || lc down >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

echo "== starting the local cluster in $workdir"
eval "$(lc up | grep '^export ')"
lc add-node gpu-t4-1 g4dn.xlarge --zone us-east-1a
lc add-node gpu-a10g-4 g5.12xlarge --zone us-east-1b
lc real-plugin  # NVIDIA's plugin, GFD and config-manager over emulated NVML and kubelet

chart=$GPU_SLICING_ARTIFACTS/nvidia-device-plugin
chart_version=$(awk '/^version:/ {gsub(/"/, "", $2); print $2}' "$chart/Chart.yaml")
export ANSIBLE_PYTHON_INTERPRETER=$py K8S_AUTH_KUBECONFIG=$KUBECONFIG

lc karpenter
# The local stand-ins for what EKS provides: NVIDIA's chart from the Go module cache, Karpenter's
# KWOK provider (its KWOKNodeClass instead of an EC2NodeClass; its NodeOverlay gate is on, stated
# here because it runs as a process, not as a Deployment the module could read).
cat >"$workdir/local-cluster-vars.json" <<JSON
{
  "gpu_slicing_profile_name": "ts-4",
  "gpu_slicing_replicas": 4,
  "gpu_slicing_instance_types": "g4dn.xlarge",
  "gpu_slicing_verify": true,
  "device_plugin_chart_ref": "$chart",
  "device_plugin_chart_version": "$chart_version",
  "device_plugin_helm_binary": "$GPU_SLICING_BIN/helm",
  "karpenter_gpu_manage_node_class": false,
  "karpenter_gpu_node_class_ref": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
  "karpenter_gpu_feature_gates": "NodeOverlay=true",
  "verify_karpenter_nodepool_name": "gpu-shared",
  "verify_report_json": "$workdir/reports/verify.json",
  "verify_report_junit": "$workdir/reports/verify.xml"
}
JSON
mkdir -p "$workdir/reports"

echo "== enabling GPU sharing and verifying it (playbooks/enable.yml)"
ansible-playbook -i localhost, playbooks/enable.yml -e @"$workdir/local-cluster-vars.json"

mkdir -p .build/demo-reports && cp "$workdir"/reports/verify.* .build/demo-reports/
echo "== verification reports (JSON, JUnit): .build/demo-reports/"
echo "== the GPU nodes once the run has settled (the verification's Karpenter nodes gone, every plugin reporting)"
"$py" scripts/demo_nodes.py --settle 180
