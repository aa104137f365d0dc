"""Faults on the local cluster: apiserver restarts mid-converge and mid-verification, 409/429 from a proxy.

* 409 Conflict / 429 Too Many Requests (with Retry-After) are injected by fault_proxy.py (a
  plain-HTTP proxy on 127.0.0.1 in front of the real apiserver, see its docstring): the module
  must retry, succeed, and report the retries as ``api_retries`` in its result.
* The kube-apiserver process (started by kwokctl's binary runtime) is killed in the middle of a
  device_plugin converge while the module waits for the rollout, and restarted a few seconds
  later with the exact command line kwokctl recorded in ``kwok.yaml`` (``kwokctl start cluster``
  does not restart a single component). The module must retry and succeed or fail clearly, a
  re-run must converge, and nothing may be left half-written. The same for a verification that
  is waiting for its test pods: its namespace must be gone afterwards and a re-run must pass.
* A rollout that never becomes ready (previous ConfigMap + Helm revision restored) is covered in
  test_device_plugin.py::test_device_plugin_install_idempotence_rollout_and_restore.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from playbook_runner import run_module
from fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

NS = "gse-faults"
CM = "nvidia-device-plugin-configs"
RELEASE = "nvdp-faults"
NODE = "faults-g4dn"
LEAKS = {}


def control_plane_component(c, name):
    base = c.kwok_workdir / "clusters" / c.name
    docs = list(yaml.safe_load_all((base / "kwok.yaml").read_text()))
    comp = next(x for d in docs if d for x in (d.get("components") or []) if x["name"] == name)
    return base, comp


def apiserver_component(c):
    return control_plane_component(c, "kube-apiserver")


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _launch(c, name):
    """Start a control-plane component with the command line kwokctl recorded in kwok.yaml."""
    base, comp = control_plane_component(c, name)
    log = open(base / "logs" / ("%s.log" % name), "a")
    proc = subprocess.Popen([comp["binary"]] + list(comp.get("args") or []), cwd=comp.get("workDir") or str(base),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (base / "pids" / ("%s.pid" % name)).write_text(str(proc.pid))  # kwokctl delete cluster stops it
    return proc.pid


# kube-scheduler and kube-controller-manager exit when they cannot renew their leader lease
# ("Leaderelection lost") while the apiserver is away. On EKS (and any kubeadm or systemd control
# plane) a supervisor starts them again; kwokctl's binary runtime does not, so this helper plays
# that supervisor after an apiserver restart.
SUPERVISED = ("kube-controller-manager", "kube-scheduler")


def restart_exited_components(c, settle=12.0):
    """Start again the supervised components that exited, watching for ``settle`` seconds: one
    that was still retrying its lease when the apiserver came back exits within its renew
    deadline (10 s by default), so a single look could come too early."""
    restarted = []
    deadline = time.monotonic() + settle
    while True:
        for name in SUPERVISED:
            base, dummy = control_plane_component(c, name)
            if not _alive(int((base / "pids" / ("%s.pid" % name)).read_text().strip())):
                _launch(c, name)
                restarted.append(name)
        if time.monotonic() >= deadline:
            return restarted
        time.sleep(1.0)


def stop_apiserver(c):
    base, dummy = apiserver_component(c)
    pid = int((base / "pids" / "kube-apiserver.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def start_apiserver(c, timeout=60):
    _launch(c, "kube-apiserver")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.is_up():
            restarted = restart_exited_components(c)
            if restarted:
                print("supervisor: restarted %s after the apiserver came back" % ", ".join(restarted))
            return
        time.sleep(0.3)
    raise AssertionError("kube-apiserver did not come back within %ss" % timeout)


def restart_apiserver(c, down_seconds=6):
    """Stop the apiserver, keep it down ``down_seconds``, start it again; return the downtime."""
    t_stop = time.monotonic()
    stop_apiserver(c)
    time.sleep(down_seconds)
    start_apiserver(c)
    return time.monotonic() - t_stop


def clean_after_restart(c, *nodes):
    """What a restart test leaves on its cluster, removed even when it failed mid-fault."""
    if not c.is_up():
        start_apiserver(c)
    c.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", check=False)
    c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
    c.stop_process("kubelet-device-emulator")
    for node in nodes:
        c.delete_node(node)


def wait_for_marker(c, worker, box, what, kubectl_args, seen, timeout=120):
    """Wait until ``kubectl kubectl_args`` prints what ``seen`` accepts (the module under test is
    then where the fault should hit it); fail if the module ended first or nothing appeared."""
    deadline = time.monotonic() + timeout
    appeared = False
    while not appeared and time.monotonic() < deadline and worker.is_alive():
        p = c.kubectl(*kubectl_args, check=False, timeout=10)
        appeared = p.returncode == 0 and seen(p.stdout)
        if not appeared:
            time.sleep(0.2)
    if not worker.is_alive():
        worker.join()
        pytest.fail("the module ended before the fault (%s appeared: %s): %s" % (what, appeared, box.get("result")))
    if not appeared:
        pytest.fail("%s never appeared within %ss" % (what, timeout))


def chart(c):
    path = c.artifacts / "nvidia-device-plugin"
    return str(path), str(yaml.safe_load((path / "Chart.yaml").read_text())["version"])


def plugin_args(c, **over):
    ref, version = chart(c)
    args = {"release_name": RELEASE, "namespace": NS, "chart_ref": ref, "chart_version": version,
            "binary_path": str(c.bin / "helm"), "profiles": [{"name": "ts-4", "replicas": 4}], "wait_timeout": 120}
    args.update(over)
    return args


def test_409_and_429_are_retried_and_counted(local_cluster, tmp_path):
    c = local_cluster
    with FaultProxy(c.kubeconfig) as proxy:
        kc = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig")
        # Only the Python client's requests (helm is not used by device_plugin_config).
        proxy.inject(429, method="GET", path=r"/api/v1/namespaces/%s$" % NS, count=2, retry_after=1)
        proxy.inject(409, method="PATCH", path=r"/configmaps/%s$" % CM, count=2)
        proxy.inject(429, method="PATCH", path=r"/configmaps/%s$" % CM, count=1, retry_after=1)
        t0 = time.monotonic()
        result = run_module("device_plugin_config", {"namespace": NS, "config_map_name": CM,
                                                     "profiles": [{"name": "ts-4", "replicas": 4}]},
                            env={"KUBECONFIG": kc, "K8S_AUTH_KUBECONFIG": kc})
        seconds = time.monotonic() - t0
        injected = proxy.injected
    try:
        assert not result.failed, result
        assert result.changed
        assert injected == 5, proxy.requests
        retries = result["api_retries"]
        print("409/429 run: %.1fs, injected %d, api_retries %s" % (seconds, injected, retries))
        # The two GET 429s carry Retry-After and GET is idempotent, so urllib3's own Retry (inside the
        # kubernetes client) repeats them before our layer sees them; the PATCHes are ours to retry.
        assert retries["by_reason"] == {"throttled": 1, "conflict": 2}, retries
        assert retries["count"] == 3, retries
        assert retries["slept_seconds"] >= 1.0  # Retry-After: 1 honoured
        data = c.kubectl_json("get", "configmap", CM, "-n", NS)["data"]
        assert sorted(data) == ["ts-4"]
    finally:
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=60s", check=False)


def test_create_post_409_is_not_blindly_retried(local_cluster, tmp_path):
    """A 409 on a create (POST) is the caller's to judge: no retry is counted for it."""
    c = local_cluster
    with FaultProxy(c.kubeconfig) as proxy:
        kc = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig")
        proxy.inject(409, method="POST", path=r"/namespaces$", count=5)
        result = run_module("device_plugin_config", {"namespace": NS + "-post", "config_map_name": CM,
                                                     "profiles": [{"name": "ts-4", "replicas": 4}]},
                            env={"KUBECONFIG": kc, "K8S_AUTH_KUBECONFIG": kc})
        posts = [r for r in proxy.requests if r[0] == "POST" and r[1].endswith("/namespaces")]
    c.kubectl("delete", "namespace", NS + "-post", "--ignore-not-found", "--wait=false", check=False)
    # kubernetes.core creates namespaces by server-side apply (PATCH), so no POST may even happen;
    # if one did, it was sent once per create.
    assert len(posts) <= 1, posts
    assert result.failed or not (result.get("api_retries") or {}).get("by_reason", {}).get("conflict")


def leaked(c):
    """Objects of a failed/aborted converge that must not stay: verify namespaces, pending releases."""
    out = {}
    ns = c.kubectl_json("get", "namespaces", "-l", "gpu-slicing.eks/verify-run")["items"]
    out["verify_namespaces"] = [n["metadata"]["name"] for n in ns]
    releases = json.loads(c.helm("list", "-A", "-a", "-o", "json").stdout or "[]")
    out["pending_releases"] = [r["name"] for r in releases if r.get("status", "").startswith("pending")]
    return out


@pytest.fixture
def restart_cluster(local_cluster, tmp_path_factory):
    """A cluster of its own: killing the apiserver leaves controllers of the shared session
    cluster in a state later tests should not inherit."""
    import localcluster

    cluster = localcluster.LocalCluster(name="faults-restart-%d" % os.getpid(),
                                        workdir=str(tmp_path_factory.mktemp("restart-cluster")))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def test_apiserver_restart_during_device_plugin_rollout(restart_cluster):
    c = restart_cluster
    kc = str(c.kubeconfig)
    c.add_gpu_node(NODE, "g4dn.xlarge", zone="us-east-1a")
    c.start_real_plugin()
    # A GPU node with room for no pods holds the rollout open: the DaemonSet controller counts it
    # (it matches the chart's affinity and tolerates the taint), the scheduler cannot place its plugin
    # pod, so the module is surely still waiting when the apiserver is killed. (kwokctl's binary
    # runtime manages every node, so leaving kwok's annotation off holds nothing.)
    import localcluster

    held = localcluster.gpu_node_manifest(NODE + "-held", "g4dn.xlarge", zone="us-east-1a")
    room = held["status"]["allocatable"]["pods"]
    held["status"]["capacity"]["pods"] = held["status"]["allocatable"]["pods"] = "0"
    c.kubectl("create", "-f", "-", input=json.dumps(held))
    box = {}
    try:
        def converge():
            t0 = time.monotonic()
            box["result"] = run_module("device_plugin", plugin_args(c), kubeconfig=kc)
            box["seconds"] = time.monotonic() - t0

        worker = threading.Thread(target=converge)
        worker.start()
        # Wait for the chart's DaemonSet (helm upgrade done, module now waiting), then kill the apiserver.
        wait_for_marker(c, worker, box, "the chart's DaemonSet", ["get", "daemonsets", "-n", NS, "-o", "name"],
                        lambda out: "nvidia-device-plugin" in out)
        downtime = restart_apiserver(c)
        # The held node gets room for pods: its plugin pod is scheduled and the rollout can finish.
        c.kubectl("patch", "node", NODE + "-held", "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"capacity": {"pods": room}, "allocatable": {"pods": room}}}))
        worker.join(timeout=400)
        result = box["result"]
        print("apiserver down %.1fs during the converge; module took %.1fs; failed=%s api_retries=%s"
              % (downtime, box["seconds"], result.failed, result.get("api_retries")))
        if result.failed:
            # Allowed, but it must say clearly what happened.
            assert "budget" in result["msg"] or "did not become ready" in result["msg"], result["msg"]
        else:
            assert result["rollout"]["ready"] is True
            assert result["api_retries"]["count"] >= 1
            # The kill lands wherever the module is: in a request (refused, transient) or in a helm
            # command (helm_transient, now that a no-change read needs no helm before the upgrade).
            assert set(result["api_retries"]["by_reason"]) & {"refused", "transient", "helm_transient"}, \
                result["api_retries"]
        again = run_module("device_plugin", plugin_args(c), kubeconfig=kc)
        assert not again.failed, again
        assert again["rollout"]["ready"] is True
        LEAKS["device_plugin_restart"] = leaked(c)
        assert LEAKS["device_plugin_restart"] == {"verify_namespaces": [], "pending_releases": []}
    finally:
        clean_after_restart(c, NODE, NODE + "-held")


def test_apiserver_restart_during_verification(restart_cluster):
    """The apiserver goes away while gpu_slicing_verify waits for its test pods: the module rides
    it out (or fails clearly), its namespace and pods are gone afterwards, and a re-run passes."""
    c = restart_cluster
    kc = str(c.kubeconfig)
    node = NODE + "-verify"
    c.add_gpu_node(node, "g4dn.xlarge", zone="us-east-1a", labels={"nvidia.com/device-plugin.config": "ts-4"})
    c.start_real_plugin()
    verify_args = {"profiles": [{"name": "ts-4", "replicas": 4}], "device_plugin_namespace": NS, "wait_timeout": 240,
                   "image": "cuda-sample@sha256:" + "0" * 64}
    box = {}
    try:
        installed = run_module("device_plugin", plugin_args(c), kubeconfig=kc)
        assert not installed.failed, installed.get("msg")
        c.wait_for(lambda: c.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get(
            "nvidia.com/gpu") == "4", 60, "4 slices on %s" % node)

        def verify():
            t0 = time.monotonic()
            box["result"] = run_module("gpu_slicing_verify", verify_args, kubeconfig=kc)
            box["seconds"] = time.monotonic() - t0

        worker = threading.Thread(target=verify)
        worker.start()
        # Kill the apiserver once the run's test pods exist (the module is then polling them).
        wait_for_marker(c, worker, box, "the verification's slice pods",
                        ["get", "pods", "-A", "-l", "gpu-slicing.eks/verify-role=slice", "-o", "name"],
                        lambda out: bool(out.strip()))
        downtime = restart_apiserver(c)
        worker.join(timeout=600)
        result = box["result"]
        print("apiserver down %.1fs during the verification; module took %.1fs; failed=%s api_retries=%s msg=%s"
              % (downtime, box["seconds"], result.failed, result.get("api_retries"), result.get("msg")))
        if result.failed:
            assert "budget" in result["msg"] or "FAILED" in result["msg"] or "Verification stopped" in result["msg"]
        else:
            assert result["passed"] is True and result["api_retries"]["count"] >= 1
        if not result.failed:  # a run that gave up may not have reached the apiserver to clean up
            assert result["run"]["cleanup"]["pods_removed"] is True, result["run"]["cleanup"]
        # The re-run removes whatever an interrupted run left, then passes; afterwards nothing is left.
        again = run_module("gpu_slicing_verify", verify_args, kubeconfig=kc)
        assert not again.failed and again["passed"] is True, again.get("msg")
        c.wait_for(lambda: not c.kubectl_json("get", "namespaces", "-l", "gpu-slicing.eks/verify-run")["items"],
                   120, "every verification namespace gone")
        LEAKS["verify_restart"] = leaked(c)
        assert LEAKS["verify_restart"] == {"verify_namespaces": [], "pending_releases": []}
    finally:
        clean_after_restart(c, node)


def test_retry_budget_spent_is_a_clear_failure(local_cluster, tmp_path):
    """The apiserver stays down longer than the budget: a clean failure naming the operation."""
    c = local_cluster
    with FaultProxy(c.kubeconfig) as proxy:
        kc = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig")
        proxy.inject(503, method="GET", path=r"/api/v1/namespaces/", count=1000)
        result = run_module("device_plugin_config", {"namespace": NS + "-budget", "config_map_name": CM,
                                                     "profiles": [{"name": "ts-4", "replicas": 4}]},
                            env={"KUBECONFIG": kc, "K8S_AUTH_KUBECONFIG": kc, "GPU_SLICING_EKS_RETRY_BUDGET": "4"})
    assert result.failed
    text = str(result.get("msg")) + str(result.get("module_stderr", ""))
    # A 5xx that outlasts the budget is handed back as the HTTP error: the module names the object.
    assert "503" in text and NS + "-budget" in text, text[:800]
    assert c.kubectl("get", "namespace", NS + "-budget", check=False).returncode != 0
