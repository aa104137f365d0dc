"""gpu_slicing_verify against the local cluster: real apiserver, real scheduler, real chart,
NVIDIA's real device plugin and GFD over the emulated NVML and kubelet device manager
(kubelet-device-emulator), kwok pods (Running on paper).

One Helm release of NVIDIA's chart serves three named configs: ts-4 (4 replicas,
failRequestsGreaterThanOne), ts-2 (2 replicas) and ``plain`` (no sharing), with ``plain`` as
the chart's default. So a node without the profile label runs the plugin without the
sharing config (1 slice per GPU), exactly the misconfiguration verify must catch.
"""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

from playbook_runner import run_module

pytestmark = pytest.mark.integration

NS = "gse-verify-dp"
RELEASE = "nvdp-verify"
OK, UNSLICED, WRONG = "vfy-ok", "vfy-unsliced", "vfy-wrong-label"
NODEPOOL = "verify-20"
PROFILES = [
    {"name": "ts-4", "strategy": "time-slicing", "replicas": 4, "fail_requests_greater_than_one": True},
    {"name": "ts-2", "strategy": "time-slicing", "replicas": 2},
]
CONFIGS = {
    "ts-4": "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n"
            "    failRequestsGreaterThanOne: true\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n",
    "ts-2": "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n"
            "    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n",
    "plain": "version: v1\nflags:\n  migStrategy: none\n",
}
RUN_LABEL = "gpu-slicing.eks/verify-run"


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail("timed out after %ss waiting for %s" % (timeout, what))


def allocatable(c, node):
    return c.kubectl_json("get", "node", node)["status"].get("allocatable", {}).get("nvidia.com/gpu")


def leftovers(c):
    """What verify runs left that nothing is removing: their namespaces that are not being deleted
    (a run requests the deletion and by default does not wait for the namespace controller), and
    any of their pods (a run deletes those before it returns)."""
    ns = [n["metadata"]["name"] for n in c.kubectl_json("get", "namespaces", "-l", RUN_LABEL)["items"]
          if n.get("status", {}).get("phase") != "Terminating"]
    pods = [p["metadata"]["name"] for p in c.kubectl_json("get", "pods", "-A", "-l", RUN_LABEL)["items"]]
    return ns, pods


def run_namespaces(c):
    """Every namespace of a verify run, Terminating or not."""
    return [n["metadata"]["name"] for n in c.kubectl_json("get", "namespaces", "-l", RUN_LABEL)["items"]]


@pytest.fixture(scope="module")
def sliced(local_cluster, tmp_path_factory):
    """Three simulated g4dn.xlarge nodes (1 T4 each) and the plugin with the three configs."""
    c = local_cluster
    c.add_gpu_node(OK, "g4dn.xlarge", zone="us-east-1a", labels={"nvidia.com/device-plugin.config": "ts-4"})
    c.add_gpu_node(UNSLICED, "g4dn.xlarge", zone="us-east-1a")
    c.add_gpu_node(WRONG, "g4dn.xlarge", zone="us-east-1b", labels={"nvidia.com/device-plugin.config": "ts-2"})
    values = {"gfd": {"enabled": True}, "config": {"default": "plain", "map": CONFIGS}}
    values_file = tmp_path_factory.mktemp("verify") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    chart = c.artifacts / "nvidia-device-plugin"
    try:
        c.helm("install", RELEASE, chart, "--namespace", NS, "--create-namespace", "-f", values_file)
        c.start_real_plugin("--namespace", NS)
        wait_until(lambda: allocatable(c, OK) == "4", 90, "%s: 4 slices" % OK)
        wait_until(lambda: allocatable(c, UNSLICED) == "1", 90, "%s: 1 slice" % UNSLICED)
        wait_until(lambda: allocatable(c, WRONG) == "2", 90, "%s: 2 slices" % WRONG)

        def plugin_ready():
            pods = c.kubectl_json("get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=nvidia-device-plugin")["items"]
            ready = {p["spec"].get("nodeName") for p in pods
                     if any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))}
            return {OK, UNSLICED, WRONG} <= ready
        wait_until(plugin_ready, 90, "device-plugin pods Ready")
        yield c
    finally:
        # --no-hooks: the NFD subchart's delete hook Job never completes on kwok nodes (pods never exit).
        c.helm("uninstall", RELEASE, "-n", NS, "--no-hooks", "--timeout", "30s", check=False)
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)
        c.stop_process("kubelet-device-emulator")
        for node in (OK, UNSLICED, WRONG):
            c.delete_node(node)


def verify(c, check=False, **args):
    params = {"profiles": PROFILES, "device_plugin_namespace": NS, "wait_timeout": 60, "unschedulable_grace": 3,
              "multi_slice_wait_timeout": 15}
    params.update(args)
    t0 = time.monotonic()
    result = run_module("gpu_slicing_verify", params, kubeconfig=str(c.kubeconfig), check=check)
    result["_wall_seconds"] = time.monotonic() - t0
    return result


def checks(result, node):
    for item in result["nodes"]:
        if item["node"] == node:
            return {ch["name"]: ch for ch in item["checks"]}
    raise AssertionError("node %s not in result" % node)


def test_sliced_node_passes(sliced, tmp_path):
    c = sliced
    # cleanup_wait_timeout: this run waits until its namespace is gone (the default only requests it).
    result = verify(c, node_names=[OK], report_json=str(tmp_path / "v.json"), report_junit=str(tmp_path / "v.xml"),
                    cleanup_wait_timeout=60)
    assert not result.failed, result.get("msg")
    assert result["passed"] is True
    assert result["run"]["cleanup"]["namespace_removed"] is True, result["run"]["cleanup"]
    assert result["run"]["namespace"] not in run_namespaces(c)
    ch = checks(result, OK)
    for name in ("profile_label", "allocatable", "gfd_replicas_label", "gfd_sharing_strategy_label",
                 "gfd_product_label", "device_plugin_pod_ready", "slices_running_concurrently",
                 "extra_pod_unschedulable", "multi_slice_request_rejected"):
        assert ch[name]["status"] == "passed", ch[name]
    assert ch["slices_running_concurrently"]["observed"] == 4
    assert ch["slices_running_concurrently"]["details"]["overlap"]["start"]
    assert "Insufficient nvidia.com/gpu" in ch["extra_pod_unschedulable"]["details"]["message"]
    assert ch["gpu_uuid_shared"] == {**ch["gpu_uuid_shared"], "status": "not-available",
                                     "reason": "not available on simulated nodes"}
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] is True and report["nodes"][0]["node"] == OK
    suite = ET.parse(str(tmp_path / "v.xml")).getroot()
    assert suite.get("failures") == "0"
    assert leftovers(c) == ([], [])
    print("\nverify 1 node: module %.1fs, ansible task wall %.1fs"
          % (result["timings"]["total_seconds"], result["_wall_seconds"]))


GFD_LABELS = ("nvidia.com/gpu.count", "nvidia.com/gpu.replicas", "nvidia.com/gpu.sharing-strategy",
              "nvidia.com/gpu.product")


def test_gfd_labels_arriving_after_the_first_read(sliced, tmp_path):
    """Just after a rollout, more so on a loaded machine, GFD's labels reach a node seconds after
    the plugin pods are Ready (a whole-suite CI run once failed the test above on that). Here the
    labels are removed while the emulator that stands in for NFD master is paused: verify's first
    read sees the node without them; they come back when the emulator continues, and the node,
    read again, passes."""
    from fault_proxy import FaultProxy

    c, box = sliced, {}
    params = {"profiles": PROFILES, "device_plugin_namespace": NS, "wait_timeout": 60, "unschedulable_grace": 3,
              "multi_slice_wait_timeout": 15, "node_names": [OK]}  # node_wait_timeout: its default
    with FaultProxy(c.kubeconfig) as proxy:
        kc = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig")
        with c.paused_process("kubelet-device-emulator"):
            c.kubectl("label", "node", OK, *[key + "-" for key in GFD_LABELS])
            worker = threading.Thread(target=lambda: box.update(result=run_module(
                "gpu_slicing_verify", params, env={"KUBECONFIG": kc, "K8S_AUTH_KUBECONFIG": kc})))
            worker.start()
            wait_until(lambda: any(r[0] == "GET" and r[1].split("?")[0].endswith("/nodes/" + OK)
                                   for r in list(proxy.requests)), 120, "verify's first read of %s" % OK)
            time.sleep(1)  # its answer, without GFD's labels, is on its way
        worker.join(300)
    assert not worker.is_alive()
    result = box["result"]
    assert not result.failed, result.get("msg")
    assert result["timings"]["node_checks_seconds"] >= 2, result["timings"]  # at least one more read
    ch = checks(result, OK)
    for name in ("gpu_count_label", "gfd_replicas_label", "gfd_sharing_strategy_label", "gfd_product_label"):
        assert ch[name]["status"] == "passed", ch[name]
    assert leftovers(c) == ([], [])


def test_unsliced_node_fails_with_numbers(sliced):
    result = verify(sliced, node_names=[UNSLICED])
    assert result.failed
    ch = checks(result, UNSLICED)
    assert ch["profile_label"]["status"] == "passed"  # no label: the default profile is expected...
    assert (ch["allocatable"]["status"], ch["allocatable"]["expected"], ch["allocatable"]["observed"]) == ("failed", 4, 1)
    assert "without the sharing config" in ch["allocatable"]["reason"]
    assert (ch["slices_running_concurrently"]["expected"], ch["slices_running_concurrently"]["observed"]) == (4, 1)
    assert "allocatable (expected 4, observed 1)" in result["msg"]
    assert "\n" not in result["msg"]
    assert leftovers(sliced) == ([], [])


def test_wrong_profile_label_fails(sliced):
    result = verify(sliced, node_names=[WRONG], profile="ts-4")
    assert result.failed
    ch = checks(result, WRONG)
    assert (ch["profile_label"]["status"], ch["profile_label"]["expected"], ch["profile_label"]["observed"]) == \
        ("failed", "ts-4", "ts-2")
    assert ch["allocatable"]["observed"] == 2
    assert "profile_label" in result["msg"]
    # The same node verified against the profile it carries passes.
    ok = verify(sliced, node_names=[WRONG], profile="ts-2")
    assert not ok.failed, ok.get("msg")
    assert checks(ok, WRONG)["multi_slice_request_rejected"]["status"] == "not-available"


def test_forced_timeout_leaves_nothing_behind(sliced):
    # An interrupted earlier run left a namespace behind: the next run removes it first.
    stale_labels = {RUN_LABEL: "stale1", "app.kubernetes.io/managed-by": "gpu_slicing.eks"}
    sliced.apply({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "gpu-slicing-verify-stale1", "labels": stale_labels}})
    # The unsliced node's 4 one-slice pods cannot all run (1 slice), so the run is still waiting
    # when its zero timeout is checked: concurrent pod creation makes a sliced node finish first.
    result = verify(sliced, node_names=[UNSLICED], wait_timeout=0)
    assert result.failed
    ch = checks(result, UNSLICED)
    assert any("timed out" in x["reason"] or "timeout" in x["reason"] for x in ch.values() if x["status"] == "failed")
    assert "gpu-slicing-verify-stale1" in result["run"]["cleanup"]["leftover_namespaces_removed"]
    cleanup = result["run"]["cleanup"]
    assert cleanup["pods_removed"] is True and cleanup["namespace_deletion_requested"] is True, cleanup
    assert leftovers(sliced) == ([], [])
    wait_until(lambda: not run_namespaces(sliced), 60, "the run's and the stale namespace gone")


def test_pods_removed_one_by_one_when_deletecollection_is_forbidden(sliced, tmp_path):
    """An identity that may delete pods but not deletecollection them (a ClusterRole from before the
    collection used it): every pod of the run is still removed, one DELETE each, and no phase waits
    on a pod that stayed."""
    from fault_proxy import FaultProxy

    with FaultProxy(sliced.kubeconfig) as proxy:
        kc = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig")
        proxy.inject(403, method="DELETE", path=r"/namespaces/gpu-slicing-verify-[^/]+/pods$", count=1000)
        result = run_module("gpu_slicing_verify", {"profiles": PROFILES, "device_plugin_namespace": NS, "wait_timeout": 60,
                                                   "unschedulable_grace": 3, "multi_slice_wait_timeout": 15, "node_names": [OK]},
                            env={"KUBECONFIG": kc, "K8S_AUTH_KUBECONFIG": kc})
        refused = proxy.injected
        single = [r for r in proxy.requests if r[0] == "DELETE" and "/pods/" in r[1]]
    assert not result.failed, result.get("msg")
    assert result["passed"] is True
    assert refused >= 2, refused  # the multi-slice pod, then the run's pods at the end
    assert len(single) >= 6, single  # multi-0, slice-0-0..3 and extra-0, each by name
    cleanup = result["run"]["cleanup"]
    assert cleanup["pods_removed"] is True and cleanup["errors"] == [], cleanup
    print("\ndeletecollection forbidden: timings %s" % json.dumps(result["timings"]))
    assert result["timings"]["multi_slice_seconds"] < 15, result["timings"]
    assert leftovers(sliced) == ([], [])


def test_check_mode_creates_no_pods(sliced):
    before = sliced.kubectl_json("get", "pods", "-A")["items"]
    # Selection by the profile label: ts-4 is not the default profile here, so unlabelled nodes
    # (which run the default config) are not selected with it.
    result = verify(sliced, check=True, profile="ts-4", default_profile="ts-2")
    assert not result.failed, result.get("msg")
    assert [n["node"] for n in result["nodes"]] == [OK]
    assert result["run"]["check_mode"] is True and result["run"]["namespace"] is None
    assert "check mode" in result["summary"]
    ch = checks(result, OK)
    assert ch["slices_running_concurrently"]["status"] == "not-available"
    after = sliced.kubectl_json("get", "pods", "-A")["items"]
    # No pod was created. (Pods of an earlier run whose deletion was requested may be gone by now.)
    assert {p["metadata"]["uid"] for p in after} <= {p["metadata"]["uid"] for p in before}
    assert leftovers(sliced) == ([], [])


def test_twenty_nodes_timing(sliced):
    c = sliced
    names = ["vfy-pool-%02d" % i for i in range(20)]
    try:
        for i, name in enumerate(names):
            c.add_gpu_node(name, "g4dn.xlarge", zone="us-east-1%s" % "abc"[i % 3],
                           labels={"nvidia.com/device-plugin.config": "ts-4", "karpenter.sh/nodepool": NODEPOOL})
        wait_until(lambda: all(allocatable(c, n) == "4" for n in names), 180, "20 nodes sliced")
        wait_until(lambda: len([p for p in c.kubectl_json("get", "pods", "-n", NS)["items"]
                                if p["spec"].get("nodeName") in names
                                and any(x["name"] == "nvidia-device-plugin-ctr" for x in p["spec"]["containers"])
                                and any(x["type"] == "Ready" and x["status"] == "True"
                                        for x in p["status"].get("conditions", []))]) == 20,
                   180, "plugin pods Ready on 20 nodes")
        result = verify(c, nodepool_name=NODEPOOL, wait_timeout=300)
        assert not result.failed, result.get("msg")
        assert len(result["nodes"]) == 20
        assert all(n["status"] == "passed" for n in result["nodes"])
        assert leftovers(c) == ([], [])
        print("\nverify 20 nodes (80 slice pods): module %.1fs (%s), ansible task wall %.1fs"
              % (result["timings"]["total_seconds"], json.dumps(result["timings"]), result["_wall_seconds"]))
    finally:
        for name in names:
            c.delete_node(name)


def test_verify_playbook_and_role(sliced, tmp_path):
    from playbook_runner import REPO_ROOT, run_playbook, task_results

    junit = tmp_path / "verify.xml"
    rc, output = run_playbook(
        "%s/playbooks/verify.yml" % REPO_ROOT, kubeconfig=str(sliced.kubeconfig),
        extra_vars={"verify_profiles": PROFILES, "verify_node_names": [OK], "verify_device_plugin_namespace": NS,
                    "verify_wait_timeout": 60, "verify_report_junit": str(junit)})
    results = [r for name, r in task_results(output) if name.endswith("Verify GPU slicing on the selected nodes")]
    assert results, [name for name, dummy in task_results(output)]
    verify_result = results[0]
    assert rc == 0, verify_result.get("msg")
    assert verify_result["passed"] is True
    assert ET.parse(str(junit)).getroot().get("failures") == "0"
    # The role's default: the pods are gone when the run ends, the namespace is being deleted.
    cleanup = verify_result["run"]["cleanup"]
    assert cleanup["pods_removed"] is True and cleanup["namespace_deletion_requested"] is True, cleanup
    assert leftovers(sliced) == ([], [])
    wait_until(lambda: verify_result["run"]["namespace"] not in run_namespaces(sliced), 60,
               "the run's namespace removed by the namespace controller")


def test_verify_role_runs_as_least_privilege_service_account(sliced, tmp_path, monkeypatch):
    """The verify playbook converges with only the verifier ClusterRole (rbac/verifier.yml)."""
    from playbook_runner import REPO_ROOT, run_playbook, task_results
    from kube_identity import api_server_and_ca, bearer_env, drop_identity, service_account_token

    c = sliced
    for var in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    token = service_account_token(c, "verify-only", "gpu-slicing-verifier", "verifier.yml")
    host, ca = api_server_and_ca(c, tmp_path)
    try:
        rc, output = run_playbook(
            "%s/playbooks/verify.yml" % REPO_ROOT,
            extra_vars={"verify_profiles": PROFILES, "verify_profile": "ts-4", "verify_node_names": [OK],
                        "verify_device_plugin_namespace": NS, "verify_wait_timeout": 60},
            env=bearer_env(host, token, ca, tmp_path),
        )
        failed = [r.get("msg") for dummy, r in task_results(output) if r.get("failed")]
        assert rc == 0, failed
        assert token not in json.dumps(output)
        assert leftovers(c) == ([], [])
    finally:
        drop_identity(c, "verify-only")
