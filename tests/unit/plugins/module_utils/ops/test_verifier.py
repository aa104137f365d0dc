"""Unit tests for ops/verifier.py: a whole run against an in-memory fake cluster."""

import json

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_pods as P
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import verifier as R
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.verify import DEFAULT_IMAGE, VerifyOptions

from core.test_verification import node, plan, ready_plugin_pod
from kube.test_retries import Clock


class ServiceAccountMissing(Exception):
    """What the API server answers a pod in a namespace whose default ServiceAccount the
    controller-manager has not made yet."""

    body = ('{"kind":"Status","message":"pods \\"slice-0-0\\" is forbidden: error looking up service account '
            'ns/default: serviceaccount \\"default\\" not found","reason":"Forbidden","code":403}')


class FakeKube(object):
    """Nodes, pods and namespaces in memory; a tiny scheduler and admission on every pod list."""

    def __init__(self, nodes, plugin_pods, fail_multi=True, schedule=True, no_service_account_for=0):
        self.no_service_account_for = no_service_account_for  # pod creations refused first, as in a new namespace
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.plugin_pods = plugin_pods
        self.pods = {}
        self.namespaces = {}
        self.fail_multi = fail_multi
        self.schedule = schedule
        self.created_pods = 0

    def get(self, kind, api_version, name, namespace=None):
        if kind == "Node":
            return self.nodes.get(name)
        if kind == "Namespace":
            return self.namespaces.get(name)
        return self.pods.get((namespace, name))

    def list(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        if kind == "Node":
            key, dummy, value = label_selector.partition("=")
            return [n for n in self.nodes.values() if n["metadata"]["labels"].get(key) == value]
        if kind == "Namespace":
            return [ns for ns in self.namespaces.values()
                    if R.RUN_LABEL in ns["metadata"]["labels"]]
        if namespace == "nvidia-device-plugin":
            return list(self.plugin_pods)
        self._reconcile()
        return [p for (ns, dummy), p in sorted(self.pods.items()) if ns == namespace]

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        if kind == "Node":
            return self.list(kind, api_version, label_selector=label_selector)
        if namespace == "nvidia-device-plugin":
            return list(self.plugin_pods)
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if "=" in term)
        return [p for p in self.list(kind, api_version, namespace=namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]

    def create_many(self, objs):
        out = []
        for obj in objs:
            if self.no_service_account_for > 0:
                self.no_service_account_for -= 1
                out.append((obj, ServiceAccountMissing()))
            else:
                out.append((self.create(obj), None))
        return out

    def delete_collection(self, kind, api_version, namespace, label_selector, grace_period_seconds=None):
        for pod in self.list_raw(kind, api_version, namespace=namespace, label_selector=label_selector):
            self.delete(kind, api_version, pod["metadata"]["name"], namespace)

    def create(self, obj):
        if obj["kind"] == "Namespace":
            self.namespaces[obj["metadata"]["name"]] = obj
        else:
            assert obj["metadata"]["namespace"] in self.namespaces
            obj = json.loads(json.dumps(obj))
            obj["status"] = {"phase": "Pending"}
            self.pods[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
            self.created_pods += 1
        return obj

    def delete(self, kind, api_version, name, namespace=None, grace_period_seconds=None):
        if kind == "Namespace":
            self.namespaces.pop(name, None)
            for key in [k for k in self.pods if k[0] == name]:
                del self.pods[key]
            return True
        return self.pods.pop((namespace, name), None) is not None

    def pod_log(self, name, namespace):
        return None

    def _used(self, node_name):
        total = 0
        for pod in self.pods.values():
            if pod["spec"].get("nodeName") == node_name and pod["status"]["phase"] in ("Running", "Pending"):
                total += int(pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"])
        return total

    def _reconcile(self):
        now = "2026-01-01T00:00:01Z"
        for pod in self.pods.values():
            if pod["spec"].get("nodeName") or pod["status"]["phase"] != "Pending" or not self.schedule:
                continue
            target = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
            want = int(pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"])
            have = int(self.nodes[target]["status"]["allocatable"].get("nvidia.com/gpu", "0"))
            if self._used(target) + want > have:
                pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": "Insufficient nvidia.com/gpu"}]
                continue
            pod["spec"]["nodeName"] = target
            if want > 1 and self.fail_multi:
                pod["status"] = {"phase": "Failed", "reason": "UnexpectedAdmissionError",
                                 "message": "maximum request size for shared resources is 1"}
                continue
            pod["status"] = {"phase": "Running", "startTime": now, "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}


OPTS = {"device_plugin_namespace": "nvidia-device-plugin", "image": DEFAULT_IMAGE, "wait_timeout": 5,
        "multi_slice_wait_timeout": 2, "unschedulable_grace": 0, "log_wait_timeout": 1, "cleanup_wait_timeout": 1}


def options(p, opts, profile="ts-4"):
    """Typed options as the module would build them, for the plan's ``profile``."""
    return VerifyOptions(plan=p, profile=p.profile(profile), **opts)


def run_fake(nodes, profile_extra=None, check_mode=False, **kube_kwargs):
    p = plan(**(profile_extra or {}))
    kube = FakeKube(nodes, [ready_plugin_pod(n["metadata"]["name"]) for n in nodes], **kube_kwargs)
    verifier = R.Verifier(kube, options(p, dict(OPTS)), check_mode=check_mode)
    return kube, verifier.run(nodes)


def checks_of(report, node_index=0):
    return {c["name"]: c for c in report["nodes"][node_index]["checks"]}


def test_runner_passes_sliced_nodes_and_cleans_up():
    kube, report = run_fake([node("a"), node("b", gpus=2, alloc=8)], {"fail_requests_greater_than_one": True})
    assert report["passed"], report["summary"]
    c = checks_of(report, 1)
    assert c[V.CHECK_CONCURRENT]["observed"] == 8
    assert c[V.CHECK_LIMIT]["status"] == V.PASSED
    assert c[V.CHECK_MULTI_SLICE]["status"] == V.PASSED
    assert c[V.CHECK_UUID]["status"] == V.NOT_AVAILABLE
    assert kube.namespaces == {} and kube.pods == {}
    assert kube.created_pods == 2 + 12 + 2
    assert report["run"]["cleanup"]["namespace_removed"] is True
    assert report["timings"]["total_seconds"] >= 0


def test_runner_unsliced_node_fails_fast_with_numbers():
    kube, report = run_fake([node("a", replicas=1, alloc=1, strategy="none", product="T4")])
    assert not report["passed"]
    c = checks_of(report)
    assert (c[V.CHECK_ALLOCATABLE]["expected"], c[V.CHECK_ALLOCATABLE]["observed"]) == (4, 1)
    assert (c[V.CHECK_CONCURRENT]["expected"], c[V.CHECK_CONCURRENT]["observed"]) == (4, 1)
    assert c[V.CHECK_LIMIT]["status"] == V.NOT_AVAILABLE
    assert "allocatable (expected 4, observed 1)" in report["summary"]
    assert kube.namespaces == {} and kube.pods == {}


def test_runner_detects_accepted_multi_slice_request():
    dummy, report = run_fake([node("a")], {"fail_requests_greater_than_one": True}, fail_multi=False)
    assert checks_of(report)[V.CHECK_MULTI_SLICE]["status"] == V.FAILED
    assert checks_of(report)[V.CHECK_CONCURRENT]["status"] == V.PASSED  # the wrong pod was removed first


def test_runner_check_mode_creates_nothing():
    kube, report = run_fake([node("a")], check_mode=True)
    assert kube.created_pods == 0 and kube.namespaces == {}
    c = checks_of(report)
    assert c[V.CHECK_CONCURRENT]["status"] == V.NOT_AVAILABLE and "check mode" in c[V.CHECK_CONCURRENT]["reason"]
    assert report["passed"] and "check mode" in report["summary"]


def test_runner_timeout_and_exception_still_clean_up():
    kube, report = run_fake([node("a")], schedule=False)
    c = checks_of(report)
    assert c[V.CHECK_CONCURRENT]["status"] == V.FAILED and "timed out" in c[V.CHECK_CONCURRENT]["reason"]
    assert kube.namespaces == {} and kube.pods == {}

    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    verifier = R.Verifier(kube, options(p, dict(OPTS)))

    def boom(*args, **kwargs):
        raise KeyboardInterrupt()

    verifier.uuid_phase = boom
    with pytest.raises(KeyboardInterrupt):
        verifier.run([node("a")])
    assert kube.namespaces == {} and kube.pods == {}


def test_runner_by_default_removes_pods_and_does_not_wait_for_the_namespace():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    looks = []
    get = kube.get

    def counting_get(kind, api_version, name, namespace=None):
        if kind == "Namespace" and name.startswith(R.NAMESPACE_PREFIX):
            looks.append(name)
        return get(kind, api_version, name, namespace)

    kube.get = counting_get
    opts = dict(OPTS, cleanup_wait_timeout=0)
    report = R.Verifier(kube, options(p, opts)).run([node("a")])
    cleanup = report["run"]["cleanup"]
    assert cleanup["pods_removed"] is True and cleanup["namespace_deletion_requested"] is True
    assert kube.pods == {}
    assert len(looks) == 1  # one look, no waiting: the fake removes it at once, so it is seen gone
    assert cleanup["namespace_removed"] is True


def test_runner_leaves_a_terminating_leftover_namespace_alone():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    old = P.run_namespace("gpu-slicing-verify-old", "old")
    old["status"] = {"phase": "Terminating"}
    kube.create(old)
    report = R.Verifier(kube, options(p, dict(OPTS))).run([node("a")])
    assert report["run"]["cleanup"]["leftover_namespaces_removed"] == []
    assert report["run"]["cleanup"]["leftover_namespaces_terminating"] == ["gpu-slicing-verify-old"]
    assert "gpu-slicing-verify-old" in kube.namespaces  # not deleted a second time


def test_runner_removes_leftover_namespaces():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    kube.create(P.run_namespace("gpu-slicing-verify-old", "old"))
    kube.create({"kind": "Namespace", "metadata": {"name": "nvidia-device-plugin",
                                                   "labels": {"app.kubernetes.io/managed-by": "gpu_slicing.eks"}}})
    report = R.Verifier(kube, options(p, dict(OPTS))).run([node("a")])
    assert report["run"]["cleanup"]["leftover_namespaces_removed"] == ["gpu-slicing-verify-old"]
    assert list(kube.namespaces) == ["nvidia-device-plugin"]


def test_karpenter_check_creates_nothing_in_check_mode():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    opts = dict(OPTS, karpenter_nodepool_name="gpu")
    report = R.Verifier(kube, options(p, opts), check_mode=True).run([node("a")])
    pool = [n for n in report["nodes"] if n["node"] == "nodepool/gpu"][0]
    assert pool["checks"][0]["name"] == V.CHECK_KARPENTER
    assert pool["checks"][0]["status"] == V.NOT_AVAILABLE and "check mode" in pool["checks"][0]["reason"]
    assert kube.created_pods == 0


def test_remove_leftover_namespaces_deletes_only_earlier_runs_and_honours_check_mode():
    kube = FakeKube([], [])
    for name, run_id, phase in (("gpu-slicing-verify-aaaa", "aaaa", "Active"),
                                ("gpu-slicing-verify-bbbb", "bbbb", "Terminating"),
                                ("gpu-slicing-verify-keep", "keep", "Active"),
                                ("someone-elses", "cccc", "Active")):
        ns = P.run_namespace(name, run_id)
        ns["status"] = {"phase": phase}
        kube.namespaces[name] = ns
    assert R.remove_leftover_namespaces(kube, keep="gpu-slicing-verify-keep", check_mode=True) == (
        ["gpu-slicing-verify-aaaa"], ["gpu-slicing-verify-bbbb"])
    assert "gpu-slicing-verify-aaaa" in kube.namespaces  # check mode deletes nothing
    assert R.remove_leftover_namespaces(kube, keep="gpu-slicing-verify-keep") == (
        ["gpu-slicing-verify-aaaa"], ["gpu-slicing-verify-bbbb"])
    assert sorted(kube.namespaces) == ["gpu-slicing-verify-bbbb", "gpu-slicing-verify-keep", "someone-elses"]


def test_runner_waits_on_its_own_clock_for_the_running_settle_window():
    """An admitted two-slice pod shows Running: it is judged only after Running held 3 s (the
    emulated kubelet's window), polled every POLL seconds, and no real time passes."""
    p = plan(fail_requests_greater_than_one=True)
    kube = FakeKube([node("a")], [ready_plugin_pod("a")], fail_multi=False)
    clock = Clock()  # moves only when the run sleeps
    opts = dict(OPTS, wait_timeout=60, multi_slice_wait_timeout=30)
    report = R.Verifier(kube, options(p, opts), clock=clock.clock, sleep=clock.sleep).run([node("a")])
    c = checks_of(report)
    assert c[V.CHECK_MULTI_SLICE]["status"] == V.FAILED and "admitted and ran" in c[V.CHECK_MULTI_SLICE]["reason"]
    assert c[V.CHECK_CONCURRENT]["status"] == V.PASSED
    assert report["timings"]["multi_slice_seconds"] == 3.0  # settle = min(3, multi_slice_wait_timeout)
    assert clock.sleeps and all(s == R.POLL for s in clock.sleeps), clock.sleeps
    assert report["timings"]["total_seconds"] == round(sum(clock.sleeps), 3)
    assert kube.namespaces == {} and kube.pods == {}


def test_runner_sends_pods_again_until_the_namespace_has_its_service_account():
    """After an API server restart the controller-manager may take seconds to make a new namespace's
    default ServiceAccount; pods refused for that are sent again, not reported as a failure."""
    plain, dummy = run_fake([node("a")])
    kube, report = run_fake([node("a")], no_service_account_for=3)
    assert report["passed"], report["summary"]
    assert kube.no_service_account_for == 0 and kube.created_pods == plain.created_pods


def gfd_pending(n):
    """``n`` as it looks just after the plugin's rollout: GFD's labels not published yet."""
    n = json.loads(json.dumps(n))
    for key in ("nvidia.com/gpu.count", "nvidia.com/gpu.replicas", "nvidia.com/gpu.sharing-strategy",
                "nvidia.com/gpu.product"):
        n["metadata"]["labels"].pop(key)
    return n


class LateLabels(FakeKube):
    """Node reads return ``early`` versions of the nodes for the first ``late_reads`` GETs of each."""

    def __init__(self, nodes, early, late_reads):
        FakeKube.__init__(self, nodes, [ready_plugin_pod(n["metadata"]["name"]) for n in nodes])
        self.early = {n["metadata"]["name"]: n for n in early}
        self.late_reads = late_reads
        self.node_gets = {}

    def get(self, kind, api_version, name, namespace=None):
        if kind == "Node":
            self.node_gets[name] = self.node_gets.get(name, 0) + 1
            if self.node_gets[name] <= self.late_reads and name in self.early:
                return self.early[name]
        return FakeKube.get(self, kind, api_version, name, namespace)


def test_runner_reads_a_node_again_until_gfd_labels_arrive():
    """The run's selection read a node before GFD labelled it (the plugin pods were already Ready):
    the node is read again, every NODE_POLL s, and judged on the labels once they are there."""
    p = plan(fail_requests_greater_than_one=True)
    kube = LateLabels([node("a"), node("b")], [gfd_pending(node("a"))], late_reads=2)
    clock = Clock()
    opts = dict(OPTS, node_wait_timeout=30)
    report = R.Verifier(kube, options(p, opts), clock=clock.clock, sleep=clock.sleep).run(
        [gfd_pending(node("a")), node("b")])
    assert report["passed"], report["summary"]
    assert kube.node_gets == {"a": 3}  # only the waiting node is read again
    assert report["timings"]["node_checks_seconds"] == 3 * R.NODE_POLL
    assert checks_of(report)[V.CHECK_GFD_REPLICAS]["observed"] == 4


def test_runner_judges_missing_labels_when_node_wait_timeout_is_spent():
    p = plan()
    kube = LateLabels([node("a")], [gfd_pending(node("a"))], late_reads=1000)
    clock = Clock()
    report = R.Verifier(kube, options(p, dict(OPTS, node_wait_timeout=10)), clock=clock.clock,
                        sleep=clock.sleep).run([gfd_pending(node("a"))])
    assert not report["passed"]
    c = checks_of(report)
    assert c[V.CHECK_GPU_COUNT]["status"] == V.FAILED and c[V.CHECK_GPU_COUNT]["observed"] is None
    assert 10 <= report["timings"]["node_checks_seconds"] <= 10 + R.NODE_POLL
    # The pod checks' own budget (wait_timeout) starts after the node wait.
    assert c[V.CHECK_CONCURRENT]["status"] == V.NOT_AVAILABLE


def test_runner_judges_wrong_values_at_once():
    """A node showing a wrong value is misconfigured, not late: no second read."""
    p = plan()
    unsliced = node("a", replicas=1, alloc=1, strategy="none", product="T4")
    kube = LateLabels([unsliced], [], late_reads=0)
    clock = Clock()
    report = R.Verifier(kube, options(p, dict(OPTS, node_wait_timeout=30)), clock=clock.clock,
                        sleep=clock.sleep).run([unsliced])
    assert not report["passed"]
    assert kube.node_gets == {} and report["timings"]["node_checks_seconds"] == 0
