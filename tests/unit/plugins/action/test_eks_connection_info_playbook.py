# -*- coding: utf-8 -*-
"""End to end through ansible-playbook: eks_connection_info against a local stand-in for the EKS API.

The stand-in answers ``GET /clusters/<name>`` (EKS DescribeCluster, rest-json) on 127.0.0.1 and
botocore is pointed at it with ``AWS_ENDPOINT_URL_EKS``; the token is presigned locally. The
run shows that the registered result is usable (module_defaults style), while the displayed
output, even at -vvv, contains neither the token nor the secret key.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO_ROOT, ".build", "collections")
SECRET_KEY = "playbookSecretKeyDoNotLeak/0123456789abcd"
SESSION_TOKEN = "playbookSessionTokenDoNotLeak0123456789"
CA_B64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBplaybook\n-----END CERTIFICATE-----\n").decode()


class FakeEKS(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        name = self.path.rstrip("/").rsplit("/", 1)[-1]
        if self.path.startswith("/clusters/") and name == "gpu-demo":
            body = {"cluster": {"name": "gpu-demo", "arn": "arn:aws:eks:eu-west-1:123456789012:cluster/gpu-demo",
                                "status": "ACTIVE", "version": "1.36", "platformVersion": "eks.1",
                                "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
                                "certificateAuthority": {"data": CA_B64}}}
            status = 200
        else:
            body = {"message": "No cluster found for name: %s." % name}
            status = 404
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 404:
            self.send_header("x-amzn-ErrorType", "ResourceNotFoundException")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_eks():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeEKS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Connect with only what AWX's AWS credential injects
      gpu_slicing.eks.eks_connection_info:
        eks_cluster_name: gpu-demo
        region: eu-west-1
        ca_cert_path: "{{ ca_path }}"
      register: eks

    - name: The registered values are there for module_defaults
      ansible.builtin.assert:
        that:
          - eks.api_key is match('^k8s-aws-v1[.][A-Za-z0-9_-]+$')
          - eks.host == 'https://ABC.gr7.eu-west-1.eks.amazonaws.com'
          - eks.ca_cert == ca_path
          - eks.expiration is match('^[0-9-]+T[0-9:]+Z$')
          - eks is changed and eks.ca_cert_state == 'written'
        quiet: true

    - name: Record the token for the test (file only, never displayed)
      ansible.builtin.copy:
        content: "{{ eks.api_key }}"
        dest: "{{ token_path }}"
        mode: "0600"
      no_log: true

    - name: A missing cluster fails with a clear message
      gpu_slicing.eks.eks_connection_info:
        eks_cluster_name: missing
        region: eu-west-1
        access_key: AKIDPLAYBOOK0000001
        secret_key: "{{ secret }}"
      register: missing
      ignore_errors: true

    - name: Check the failure
      ansible.builtin.assert:
        that:
          - missing is failed
          - "'not found' in missing.msg"
          - missing.error_kind == 'not_found'
        quiet: true
"""


def test_playbook_run_hides_token_and_secret(fake_eks, tmp_path):
    playbook = tmp_path / "connect.yml"
    playbook.write_text(PLAYBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "K8S_AUTH_"))}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log"),
        "AWS_ACCESS_KEY_ID": "AKIDPLAYBOOK0000001",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SECURITY_TOKEN": SESSION_TOKEN,
        "AWS_ENDPOINT_URL_EKS": fake_eks,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CA_BUNDLE": os.environ.get("AWS_CA_BUNDLE", ""),
    })
    if not env["AWS_CA_BUNDLE"]:
        del env["AWS_CA_BUNDLE"]
    token_path = tmp_path / "token"
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run(
        [ansible_playbook, "-vvv", "-i", "localhost,", "-c", "local", str(playbook),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, "ca_path": str(tmp_path / "ca.crt"),
                           "token_path": str(token_path), "secret": SECRET_KEY})],
        env=env, capture_output=True, text=True, timeout=240, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    token = token_path.read_text()
    assert token.startswith("k8s-aws-v1.")
    log = (tmp_path / "ansible.log").read_text()
    for text in (output, log):
        assert token not in text
        assert token[len("k8s-aws-v1."):][:40] not in text
        assert SECRET_KEY not in text
        assert SESSION_TOKEN not in text
    assert "the output has been hidden" in output
