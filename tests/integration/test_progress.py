"""Progress lines in the job output while a module waits (plugins/plugin_utils/progress_action.py).

A real wait on the local cluster: the device plugin is installed with a nodeSelector that no GPU
node matches yet, so its rollout wait cannot end; ansible-playbook runs with its default output
(what a terminal or an AWX job shows) and each line is timed as it arrives. Once a progress line
has come, the test labels the node, the DaemonSets roll out, and the task ends. The lines must
arrive before the task's result line, while the module is still waiting.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "gse-progress-test"
RELEASE = "nvdp-progress"
NODE = "progress-g4dn"
GATE_LABEL = "gpu-slicing.eks/progress-test"


def test_rollout_wait_shows_progress_lines_while_it_waits(local_cluster, tmp_path):
    c = local_cluster
    chart = c.artifacts / "nvidia-device-plugin"
    version = str(yaml.safe_load((chart / "Chart.yaml").read_text())["version"])
    playbook = tmp_path / "install.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Install the device plugin", "gpu_slicing.eks.device_plugin": {
            "release_name": RELEASE, "namespace": NS, "chart_ref": str(chart), "chart_version": version,
            "binary_path": str(c.bin / "helm"), "profiles": [{"name": "ts-4", "replicas": 4}],
            "values": {"nodeSelector": {GATE_LABEL: "true"}}, "wait_timeout": 120}}],
    }]))
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               K8S_AUTH_KUBECONFIG=str(c.kubeconfig), KUBECONFIG=str(c.kubeconfig),
               GPU_SLICING_PROGRESS_INTERVAL="2",
               # ansible-runner (AWX) reads the output through a terminal, which is line-buffered;
               # through a pipe, Python would hold the lines back until exit.
               PYTHONUNBUFFERED="1",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_real_plugin()
    lines = []  # (seconds since start, line)
    labelled = threading.Event()
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                                 str(playbook)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watchdog = threading.Timer(300, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                lines.append((time.monotonic() - t0, line.rstrip("\n")))
                # A wait that already showed progress: let it show a few more lines, then end it.
                if "device plugin rollout:" in line and not labelled.is_set():
                    labelled.set()
                    threading.Timer(5, c.kubectl, ("label", "node", NODE, "%s=true" % GATE_LABEL)).start()
            rc = proc.wait()
        finally:
            watchdog.cancel()
        output = "\n".join("%6.1f %s" % item for item in lines)
        print(output)
        assert rc == 0, output
        progress = [(t, text) for t, text in lines if text.startswith("[localhost] device plugin rollout:")]
        result = [t for t, text in lines if text.startswith(("changed: [localhost]", "ok: [localhost]"))]
        assert result, output
        assert len(progress) >= 2, output
        # Seen while the module waited: seconds before the task's result, not flushed with it.
        assert progress[0][0] <= result[0] - 4, output
        assert all(t <= result[0] for t, dummy in progress), output
        # Each line says where the rollout stands.
        assert all(re.search(r": \d+s of 120s, .*; \d+ GPU node\(s\) to cover$", text) for dummy, text in progress), output
        assert any(re.search(r"nvidia-device-plugin \d+/\d+ Ready", text) for dummy, text in progress), output
    finally:
        c.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", check=False)
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
        c.stop_process("kubelet-device-emulator")
        c.delete_node(NODE)
