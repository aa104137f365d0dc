"""ServiceAccount identities for tests that run as AWX would: bearer token + CA, no kubeconfig."""

from __future__ import annotations

import base64
import os

import yaml

from playbook_runner import REPO_ROOT

IDENTITY_NS = "gse-identities"


def service_account_token(cluster, name, clusterrole, manifest):
    """Apply rbac/<manifest>, bind ``clusterrole`` to a new ServiceAccount, return a 1 h token."""
    cluster.kubectl("apply", "-f", os.path.join(REPO_ROOT, "rbac", manifest))
    cluster.kubectl("create", "namespace", IDENTITY_NS, check=False)
    cluster.kubectl("create", "serviceaccount", name, "-n", IDENTITY_NS, check=False)
    cluster.kubectl("create", "clusterrolebinding", binding_name(name), "--clusterrole", clusterrole,
                    "--serviceaccount", "%s:%s" % (IDENTITY_NS, name), check=False)
    return cluster.kubectl("create", "token", name, "-n", IDENTITY_NS, "--duration", "1h").stdout.strip()


def installer_token(cluster, name, device_plugin_namespace="nvidia-device-plugin"):
    """Apply rbac/installer.yml as users do (its ClusterRole, and its Role in the plugin's
    namespace), bind both to a new ServiceAccount, return a 1 h token."""
    cluster.kubectl("apply", "-f", os.path.join(REPO_ROOT, "rbac", "installer.yml"))
    cluster.kubectl("create", "namespace", IDENTITY_NS, check=False)
    cluster.kubectl("create", "serviceaccount", name, "-n", IDENTITY_NS, check=False)
    subject = "%s:%s" % (IDENTITY_NS, name)
    cluster.kubectl("create", "clusterrolebinding", binding_name(name), "--clusterrole", "gpu-slicing-installer",
                    "--serviceaccount", subject, check=False)
    cluster.kubectl("create", "rolebinding", binding_name(name), "-n", device_plugin_namespace, "--role",
                    "gpu-slicing-installer", "--serviceaccount", subject, check=False)
    return cluster.kubectl("create", "token", name, "-n", IDENTITY_NS, "--duration", "1h").stdout.strip()


def binding_name(name):
    return "%s-%s" % (IDENTITY_NS, name)


def drop_identity(cluster, name, device_plugin_namespace="nvidia-device-plugin"):
    cluster.kubectl("delete", "clusterrolebinding", binding_name(name), "--ignore-not-found", check=False)
    cluster.kubectl("delete", "rolebinding", binding_name(name), "-n", device_plugin_namespace, "--ignore-not-found",
                    check=False)
    cluster.kubectl("delete", "serviceaccount", name, "-n", IDENTITY_NS, "--ignore-not-found", check=False)


def api_server_and_ca(cluster, tmp_path):
    """The API server URL and a CA file, as AWX's credential provides them."""
    config = yaml.safe_load(open(cluster.kubeconfig))
    entry = config["clusters"][0]["cluster"]
    ca_path = tmp_path / "ca.crt"
    if entry.get("certificate-authority-data"):
        ca_path.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    else:
        ca_path.write_bytes(open(entry["certificate-authority"], "rb").read())
    return entry["server"], str(ca_path)


def bearer_env(host, token, ca, home):
    """Exactly what AWX's Kubernetes Bearer Token credential injects (plus an empty HOME)."""
    return {
        "HOME": str(home),
        "K8S_AUTH_HOST": host,
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "yes",
        "K8S_AUTH_SSL_CA_CERT": ca,
    }
