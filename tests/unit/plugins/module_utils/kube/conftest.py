"""Fixtures shared by the kube tests."""

import os

import pytest


@pytest.fixture
def no_connection(tmp_path, monkeypatch):
    """No kubeconfig anywhere and no K8S_AUTH_* settings; returns the (empty) home directory."""
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_") or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path
