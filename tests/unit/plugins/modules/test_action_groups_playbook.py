# -*- coding: utf-8 -*-
"""The README's module_defaults pattern, through ansible-playbook.

``group/gpu_slicing.eks.kubernetes`` gets ``kubeconfig`` and ``group/gpu_slicing.eks.aws`` gets
``region`` in one play; the AWS-only modules then run in the same play (before: one
``all`` group gave them ``kubeconfig`` and they failed with "Unsupported parameters"), and a
Kubernetes module uses the kubeconfig from the group (its error names the kubeconfig's server,
here a closed port on 127.0.0.1: no cluster is needed to see which connection it took).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import yaml

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO_ROOT, ".build", "collections")

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/gpu_slicing.eks.kubernetes:
      kubeconfig: "{{ kubeconfig_path }}"
    group/gpu_slicing.eks.aws:
      region: us-east-1
  tasks:
    - name: AWS-only module in a play with a kubeconfig default
      gpu_slicing.eks.gpu_instance_info:
        instance_types: [g4dn.xlarge]
        instance_source: offline
      register: info

    - name: Another AWS-only module
      gpu_slicing.eks.gpu_cost_info:
        pods: 8
        fraction: 0.25
        instance_types: [g4dn.xlarge]
      register: cost

    - name: A Kubernetes module takes the kubeconfig from its group
      gpu_slicing.eks.gpu_slicing_info:
      register: kube
      ignore_errors: true

    - name: Results
      ansible.builtin.copy:
        content: "{{ {'info': info, 'cost': cost, 'kube': kube} | to_json }}"
        dest: "{{ result_path }}"
        mode: "0600"
"""


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_module_defaults_groups_readme_pattern(tmp_path):
    port = closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:%d" % port, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    playbook = tmp_path / "groups.yml"
    playbook.write_text(PLAYBOOK)
    result_path = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "K8S_AUTH_", "KUBECONFIG"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_NOCOLOR="1", HOME=str(tmp_path),
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run(
        [ansible_playbook, "-i", "localhost,", "-c", "local", str(playbook),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, "kubeconfig_path": str(kubeconfig),
                           "result_path": str(result_path)})],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    results = json.loads(result_path.read_text())
    assert results["info"]["instance_types"]["g4dn.xlarge"]["gpu_count"] == 1
    assert "cheapest_sliced" in results["cost"], results["cost"]
    kube = results["kube"]
    assert kube.get("failed"), kube
    # It used the group's kubeconfig: it tried that server, and did not say no connection was given.
    assert "127.0.0.1:%d" % port in kube["msg"] or str(port) in json.dumps(kube), kube["msg"]
    assert "No Kubernetes connection" not in kube["msg"] and "Unsupported parameters" not in kube["msg"], kube["msg"]
