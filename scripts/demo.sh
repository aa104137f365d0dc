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
lc emulator

chart=$GPU_SLICING_ARTIFACTS/nvidia-device-plugin
chart_version=$(awk '/^version:/ {gsub(/"/, "", $2); print $2}' "$chart/Chart.yaml")
export ANSIBLE_PYTHON_INTERPRETER=$py K8S_AUTH_KUBECONFIG=$KUBECONFIG

echo "== enabling GPU sharing (playbooks/enable.yml)"
ansible-playbook -i localhost, playbooks/enable.yml \
  -e device_plugin_chart_ref="$chart" -e device_plugin_chart_version="$chart_version"

if [ -f playbooks/verify.yml ]; then
  echo "== verifying (playbooks/verify.yml)"
  ansible-playbook -i localhost, playbooks/verify.yml -e verify_report_dir="$workdir/reports"
fi

echo "== what the GPU nodes advertise now"
kubectl get nodes -l nvidia.com/gpu.present=true \
  -o custom-columns='NODE:.metadata.name,TYPE:.metadata.labels.node\.kubernetes\.io/instance-type,GPUS:.metadata.labels.nvidia\.com/gpu\.count,REPLICAS:.metadata.labels.nvidia\.com/gpu\.replicas,STRATEGY:.metadata.labels.nvidia\.com/gpu\.sharing-strategy,ALLOCATABLE:.status.allocatable.nvidia\.com/gpu'
