"""Unit tests for the verification core (pure) and the runner against an in-memory fake cluster."""

import datetime
import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import verify as R
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

UUID_A = "GPU-1a2b3c4d-0000-1111-2222-333344445555"
UUID_B = "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"


def plan(**extra):
    prof = {"name": "ts-4", "strategy": "time-slicing", "replicas": 4}
    prof.update(extra)
    return build_plan({"profiles": [prof, {"name": "ts-2", "strategy": "time-slicing", "replicas": 2}]})


def node(name="gpu-1", gpus=1, replicas=4, label="ts-4", alloc=None, strategy="time-slicing",
         product="Tesla-T4-SHARED", simulated=True, resource="nvidia.com/gpu"):
    labels = {"nvidia.com/gpu.present": "true"}
    if label is not None:
        labels["nvidia.com/device-plugin.config"] = label
    if gpus is not None:
        labels["nvidia.com/gpu.count"] = str(gpus)
    if replicas is not None:
        labels["nvidia.com/gpu.replicas"] = str(replicas)
    if strategy is not None:
        labels["nvidia.com/gpu.sharing-strategy"] = strategy
    if product is not None:
        labels["nvidia.com/gpu.product"] = product
    annotations = {"kwok.x-k8s.io/node": "fake"} if simulated else {}
    allocatable = {"cpu": "4", "memory": "15Gi", "pods": "29"}
    allocatable[resource] = str(gpus * replicas if alloc is None else alloc)
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations},
            "status": {"allocatable": allocatable}}


def ready_plugin_pod(node_name):
    return {"metadata": {"name": "nvdp-" + node_name},
            "spec": {"nodeName": node_name, "containers": [{"name": "nvidia-device-plugin-ctr"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


# --------------------------------------------------------------------------- pure checks


def test_sliced_node_passes_all_node_checks():
    p = plan()
    exp, checks = V.node_checks(node(), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    assert [c.status for c in checks] == [V.PASSED] * 7, [c.to_dict() for c in checks]
    assert exp["allocatable"] == 4 and exp["slice_pods"] == 4 and exp["simulated"]


def test_unsliced_node_fails_with_expected_and_observed():
    p = plan()
    n = node(replicas=1, alloc=1, strategy="none", product="Tesla-T4")
    dummy, checks = V.node_checks(n, p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    by = {c.name: c for c in checks}
    alloc = by[V.CHECK_ALLOCATABLE]
    assert alloc.status == V.FAILED and alloc.expected == 4 and alloc.observed == 1
    assert "without the sharing config" in alloc.reason
    assert by[V.CHECK_GFD_REPLICAS].observed == 1 and by[V.CHECK_GFD_REPLICAS].expected == 4
    assert by[V.CHECK_GFD_STRATEGY].status == V.FAILED
    assert by[V.CHECK_GFD_PRODUCT].status == V.FAILED


def test_wrong_profile_label_fails_and_absent_label_passes_for_default():
    p = plan()
    dummy, checks = V.node_checks(node(label="ts-2"), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], p.default_profile)
    c = checks[0]
    assert c.name == V.CHECK_PROFILE_LABEL and c.status == V.FAILED
    assert (c.expected, c.observed) == ("ts-4", "ts-2")
    dummy, checks = V.node_checks(node(label=None), p.profile("ts-4"), [ready_plugin_pod("gpu-1")], "ts-4")
    assert checks[0].status == V.PASSED
    dummy, checks = V.node_checks(node(label=None), p.profile("ts-2"), [], "ts-4")
    assert checks[0].status == V.FAILED


def test_renamed_resource_and_product_without_suffix():
    p = plan(rename_by_default=True)
    prof = p.profile("ts-4")
    n = node(product="Tesla-T4", resource="nvidia.com/gpu.shared")
    dummy, checks = V.node_checks(n, prof, [ready_plugin_pod("gpu-1")], p.default_profile)
    assert all(c.status == V.PASSED for c in checks), [c.to_dict() for c in checks]
    dummy, checks = V.node_checks(node(), prof, [ready_plugin_pod("gpu-1")], p.default_profile)
    assert {c.name for c in checks if c.failed} == {V.CHECK_ALLOCATABLE, V.CHECK_GFD_PRODUCT}


def test_plugin_pod_missing_or_not_ready():
    assert V.check_plugin_pod("n", []).status == V.FAILED
    pod = ready_plugin_pod("n")
    pod["status"]["conditions"][0]["status"] = "False"
    assert V.check_plugin_pod("n", [pod]).status == V.FAILED
    assert V.check_plugin_pod("n", [ready_plugin_pod("n")]).status == V.PASSED
    gfd = ready_plugin_pod("n")
    gfd["spec"]["containers"] = [{"name": "gpu-feature-discovery-ctr"}]
    assert V.check_plugin_pod("n", [gfd]).status == V.FAILED  # GFD Ready is not the plugin Ready
    br = {"status": {"nodeInfo": {"osImage": "Bottlerocket OS 1.54.0 (aws-k8s-1.36-nvidia)"}}}
    assert V.check_plugin_pod("n", [], br).status == V.NOT_AVAILABLE


def test_gpu_count_falls_back_to_aws_label():
    n = node(gpus=None, alloc=0)
    n["metadata"]["labels"]["karpenter.k8s.aws/instance-gpu-count"] = "4"
    assert V.physical_gpus(n) == (4, "karpenter.k8s.aws/instance-gpu-count")
    assert V.check_gpu_count(n, {}).status == V.FAILED  # GFD itself is not reporting


def running_pod(name, node_name, ready="2026-01-01T00:00:05Z", started="2026-01-01T00:00:03Z"):
    return {"metadata": {"name": name}, "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "startTime": started,
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready},
                                      {"type": "PodScheduled", "status": "True", "lastTransitionTime": started}]}}


def unschedulable_pod(name):
    return {"metadata": {"name": name}, "spec": {},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}


def test_concurrency_overlap_window():
    exp = {"slice_pods": 3}
    pods = [running_pod("a", "n", ready="2026-01-01T00:00:05Z"), running_pod("b", "n", ready="2026-01-01T00:00:07Z"),
            running_pod("c", "n", ready="2026-01-01T00:00:06.123456Z")]
    seen = datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc)
    c = V.check_concurrent("n", exp, pods, seen)
    assert c.status == V.PASSED and c.observed == 3
    assert c.details["overlap"]["start"] == "2026-01-01T00:00:07Z"
    assert c.details["overlap"]["seconds"] == 3.0
    c = V.check_concurrent("n", {"slice_pods": 4}, pods + [unschedulable_pod("d")], seen, timed_out=True, waited=9)
    assert c.status == V.FAILED and (c.expected, c.observed) == (4, 3)
    assert "1 Pending as Unschedulable" in c.reason and "timed out" in c.reason
    c = V.check_concurrent("n", exp, [running_pod("a", "other")] + pods[1:], seen)
    assert c.status == V.FAILED and "another node" in c.reason


def test_extra_pod_and_multi_slice():
    assert V.check_extra_pod("n", unschedulable_pod("x")).status == V.PASSED
    assert V.check_extra_pod("n", running_pod("x", "n")).status == V.FAILED
    rejected = {"metadata": {"name": "m"}, "spec": {"nodeName": "n"},
                "status": {"phase": "Failed", "reason": "UnexpectedAdmissionError",
                           "message": "maximum request size for shared resources is 1"}}
    assert V.check_multi_slice(rejected).status == V.PASSED
    assert V.check_multi_slice(running_pod("m", "n")).status == V.FAILED
    assert V.check_multi_slice(unschedulable_pod("m"), timed_out=True).status == V.PASSED
    assert V.check_multi_slice(unschedulable_pod("m"), timed_out=False).status == V.FAILED
    cut = V.check_multi_slice(unschedulable_pod("m"), timed_out=True, run_timed_out=True)
    assert cut.status == V.FAILED and "run's timeout" in cut.reason


def test_gpu_uuid_evidence():
    exp_sim = {"simulated": True, "physical_gpus": 1}
    c = V.check_gpu_uuids(None, exp_sim, {})
    assert c.status == V.NOT_AVAILABLE and c.reason == "not available on simulated nodes"
    exp = {"simulated": False, "physical_gpus": 1}
    log = "GPU 0: Tesla T4 (UUID: %s)\n[Vector addition of 50000 elements]\nTest PASSED\n" % UUID_A
    c = V.check_gpu_uuids(None, exp, {"p1": log, "p2": log})
    assert c.status == V.PASSED and c.observed == 1
    c = V.check_gpu_uuids(None, exp, {"p1": log, "p2": log.replace(UUID_A, UUID_B)})
    assert c.status == V.FAILED and c.observed == 2
    c = V.check_gpu_uuids(None, exp, {"p1": log, "p2": "no gpu here"})
    assert c.status == V.FAILED and "p2: 0 GPU UUIDs" in c.reason
    c = V.check_gpu_uuids(None, {"simulated": False, "physical_gpus": 2},
                          {"p1": log, "p2": log.replace(UUID_A, UUID_B)})
    assert c.status == V.PASSED


def test_test_pod_is_psa_restricted_and_scheduler_placed():
    pod = V.test_pod("p", "ns", "node-a", "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "slice")
    spec = pod["spec"]
    assert "nodeName" not in spec
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"][0] == {"key": "metadata.name", "operator": "In", "values": ["node-a"]}
    ctr = spec["containers"][0]
    sc = ctr["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 1000 and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("requests", "limits"):
        assert {"cpu", "memory", "nvidia.com/gpu"} <= set(ctr["resources"][key])
        assert ctr["resources"][key]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_summary_and_reports():
    ok = V.NodeVerdict("a", "ts-4", [V.passed("allocatable", "ok", 4, 4), V.not_available("gpu_uuid_shared", "sim")])
    bad = V.NodeVerdict("b", "ts-4", [V.failed("allocatable", "plugin without sharing", 4, 1)])
    line = V.summarize([ok, bad])
    assert "\n" not in line and line.startswith("GPU slicing verification FAILED")
    assert "b: allocatable (expected 4, observed 1)" in line
    assert V.summarize([ok]).startswith("GPU slicing verification PASSED")
    report = V.build_report([ok, bad], {"total_seconds": 1.5}, line)
    assert report["passed"] is False
    assert json.loads(V.report_json(report))["nodes"][1]["checks"][0]["observed"] == 1
    root = ET.fromstring(V.report_junit(report))
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("skipped") == "1"
    cases = root.findall(".//testcase")
    assert cases[1].find("skipped") is not None and cases[2].find("failure") is not None
    assert V.build_report([], {}, "")["passed"] is False  # nothing verified is not a pass


def test_parse_time_variants():
    assert V.parse_time("2026-01-01T00:00:05Z").second == 5
    assert V.parse_time("2026-01-01T00:00:05.5Z").second == 5
    assert V.parse_time(None) is None


# --------------------------------------------------------------------------- runner on a fake cluster


class FakeKube(object):
    """Nodes, pods and namespaces in memory; a tiny scheduler and admission on every pod list."""

    def __init__(self, nodes, plugin_pods, fail_multi=True, schedule=True):
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
        return [(self.create(obj), None) for obj in objs]

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

    def wait_for(self, predicate, timeout, interval=1.0, what=""):
        return predicate(), 0.0

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


OPTS = {"device_plugin_namespace": "nvidia-device-plugin", "image": R.DEFAULT_IMAGE, "wait_timeout": 5,
        "multi_slice_wait_timeout": 2, "unschedulable_grace": 0, "log_wait_timeout": 1, "cleanup_wait_timeout": 1}


def run_fake(nodes, profile_extra=None, check_mode=False, **kube_kwargs):
    p = plan(**(profile_extra or {}))
    kube = FakeKube(nodes, [ready_plugin_pod(n["metadata"]["name"]) for n in nodes], **kube_kwargs)
    verifier = R.Verifier(kube, p, p.profile("ts-4"), dict(OPTS), check_mode=check_mode)
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
    verifier = R.Verifier(kube, p, p.profile("ts-4"), dict(OPTS))

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
    report = R.Verifier(kube, p, p.profile("ts-4"), opts).run([node("a")])
    cleanup = report["run"]["cleanup"]
    assert cleanup["pods_removed"] is True and cleanup["namespace_deletion_requested"] is True
    assert kube.pods == {}
    assert len(looks) == 1  # one look, no waiting: the fake removes it at once, so it is seen gone
    assert cleanup["namespace_removed"] is True


def test_runner_leaves_a_terminating_leftover_namespace_alone():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    old = R.namespace_definition("gpu-slicing-verify-old", "old")
    old["status"] = {"phase": "Terminating"}
    kube.create(old)
    report = R.Verifier(kube, p, p.profile("ts-4"), dict(OPTS)).run([node("a")])
    assert report["run"]["cleanup"]["leftover_namespaces_removed"] == []
    assert report["run"]["cleanup"]["leftover_namespaces_terminating"] == ["gpu-slicing-verify-old"]
    assert "gpu-slicing-verify-old" in kube.namespaces  # not deleted a second time


def test_runner_removes_leftover_namespaces():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    kube.create(R.namespace_definition("gpu-slicing-verify-old", "old"))
    kube.create({"kind": "Namespace", "metadata": {"name": "nvidia-device-plugin",
                                                   "labels": {"app.kubernetes.io/managed-by": "gpu_slicing.eks"}}})
    report = R.Verifier(kube, p, p.profile("ts-4"), dict(OPTS)).run([node("a")])
    assert report["run"]["cleanup"]["leftover_namespaces_removed"] == ["gpu-slicing-verify-old"]
    assert list(kube.namespaces) == ["nvidia-device-plugin"]


def test_karpenter_check_creates_nothing_in_check_mode():
    p = plan()
    kube = FakeKube([node("a")], [ready_plugin_pod("a")])
    opts = dict(OPTS, karpenter_nodepool_name="gpu")
    report = R.Verifier(kube, p, p.profile("ts-4"), opts, check_mode=True).run([node("a")])
    pool = [n for n in report["nodes"] if n["node"] == "nodepool/gpu"][0]
    assert pool["checks"][0]["name"] == V.CHECK_KARPENTER
    assert pool["checks"][0]["status"] == V.NOT_AVAILABLE and "check mode" in pool["checks"][0]["reason"]
    assert kube.created_pods == 0


def test_write_reports(tmp_path):
    report = V.build_report([V.NodeVerdict("a", "p", [V.passed("x", "ok")])], {"total_seconds": 0.1}, "s")
    written = R.write_reports(report, str(tmp_path / "r" / "v.json"), str(tmp_path / "v.xml"))
    assert json.loads((tmp_path / "r" / "v.json").read_text())["passed"] is True
    ET.parse(str(tmp_path / "v.xml"))
    assert set(written) == {"report_json", "report_junit"}


# --------------------------------------------------------------------------- Karpenter launch check


def _pool(*types):
    reqs = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]
    if types:
        reqs.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(types)})
    return {"spec": {"template": {"spec": {"requirements": reqs}}}}


def test_karpenter_instance_type_needs_one_answer():
    assert V.karpenter_instance_type(_pool("g4dn.xlarge")) == ("g4dn.xlarge", None)
    assert V.karpenter_instance_type(_pool("g4dn.xlarge", "g5.xlarge"), "g5.xlarge") == ("g5.xlarge", None)
    itype, why = V.karpenter_instance_type(_pool("g4dn.xlarge", "g5.xlarge"))
    assert itype is None and "karpenter_instance_type" in why and "g5.xlarge" in why
    itype, why = V.karpenter_instance_type(_pool("g4dn.xlarge"), "p4d.24xlarge")
    assert itype is None and "not admitted" in why
    itype, why = V.karpenter_instance_type(_pool())
    assert itype is None and "any instance type" in why
    assert V.karpenter_instance_type(_pool(), "g5.12xlarge") == ("g5.12xlarge", None)


@pytest.mark.parametrize("pods,per_node,free,expected", [
    (5, 4, 0, 2), (4, 4, 0, 1), (17, 4, 0, 5), (17, 16, 0, 2), (5, 4, 3, 1), (3, 4, 3, 0), (3, 4, 9, 0)])
def test_karpenter_expected_nodes(pods, per_node, free, expected):
    assert V.karpenter_expected_nodes(pods, per_node, free) == expected


def test_check_karpenter_launch_verdicts():
    ok = V.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a", "b"}, 5, waited=12.3)
    assert ok.status == V.PASSED and ok.expected == 2 and ok.observed == 2
    assert ok.details["nodeclaims_launched"] == ["a", "b"]
    over = V.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, set("abcde"), 5)
    assert over.status == V.FAILED and over.expected == 2 and over.observed == 5
    assert "over-provisions" in over.reason and "NodeOverlay" in over.reason
    under = V.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a"}, 5)
    assert under.status == V.FAILED and "over-provisions" not in under.reason
    late = V.check_karpenter_launch("gpu", "g4dn.xlarge", 5, 4, 0, {"a"}, 3, timed_out=True, waited=600)
    assert late.status == V.FAILED and "timed out: 3 of 5" in late.reason


def test_karpenter_pod_goes_by_node_selector_not_node_name():
    pod = V.test_pod("k", "ns", None, "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "karpenter",
                     node_selector={"karpenter.sh/nodepool": "gpu"})
    assert pod["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "gpu"}
    assert "affinity" not in pod["spec"] and pod["metadata"]["annotations"] == {}
    pinned = V.test_pod("p", "ns", "node-a", "nvidia.com/gpu", 1, "img", ["sleep", "1"], "abc", "slice")
    assert pinned["spec"]["affinity"]["nodeAffinity"] and "nodeSelector" not in pinned["spec"]


def test_remove_leftover_namespaces_deletes_only_earlier_runs_and_honours_check_mode():
    kube = FakeKube([], [])
    for name, run_id, phase in (("gpu-slicing-verify-aaaa", "aaaa", "Active"),
                                ("gpu-slicing-verify-bbbb", "bbbb", "Terminating"),
                                ("gpu-slicing-verify-keep", "keep", "Active"),
                                ("someone-elses", "cccc", "Active")):
        ns = R.namespace_definition(name, run_id)
        ns["status"] = {"phase": phase}
        kube.namespaces[name] = ns
    assert R.remove_leftover_namespaces(kube, keep="gpu-slicing-verify-keep", check_mode=True) == (
        ["gpu-slicing-verify-aaaa"], ["gpu-slicing-verify-bbbb"])
    assert "gpu-slicing-verify-aaaa" in kube.namespaces  # check mode deletes nothing
    assert R.remove_leftover_namespaces(kube, keep="gpu-slicing-verify-keep") == (
        ["gpu-slicing-verify-aaaa"], ["gpu-slicing-verify-bbbb"])
    assert sorted(kube.namespaces) == ["gpu-slicing-verify-bbbb", "gpu-slicing-verify-keep", "someone-elses"]
