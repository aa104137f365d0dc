"""Unit tests for ops/verify_karpenter.py: the Karpenter launch check on a fake cluster and clock."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import verifier as R

from core.test_verification import node, plan, ready_plugin_pod
from core.test_verification_karpenter import _pool

from kube.test_retries import Clock

from .test_verifier import OPTS, FakeKube, options


class FakeKarpenter(FakeKube):
    """FakeKube plus one NodePool and a Karpenter that launches one NodeClaim per ``per_node``
    pending pods pinned to the pool (by nodeSelector) and runs them there."""

    def __init__(self, nodepool, per_node, nodes=()):
        FakeKube.__init__(self, list(nodes), [ready_plugin_pod(n["metadata"]["name"]) for n in nodes])
        self.nodepool = nodepool
        self.per_node = per_node
        self.claims = {}
        self.deleted_claims = []

    def get(self, kind, api_version, name, namespace=None):
        if kind == "NodePool":
            return self.nodepool
        return FakeKube.get(self, kind, api_version, name, namespace)

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, field_selector=None, fields_only=False):
        if kind == "NodeClaim":
            self._reconcile()
            return list(self.claims.values())
        if kind == "Node" and "node.kubernetes.io/instance-type" in (label_selector or ""):
            return []  # the pool has no node yet
        if kind == "Pod" and namespace is None:
            return []  # nothing else holds slices
        return FakeKube.list_raw(self, kind, api_version, namespace, label_selector, field_selector)

    def delete(self, kind, api_version, name, namespace=None, grace_period_seconds=None):
        if kind == "NodeClaim":
            self.deleted_claims.append(name)
            return self.claims.pop(name, None) is not None
        return FakeKube.delete(self, kind, api_version, name, namespace, grace_period_seconds)

    def _reconcile(self):
        pending = [p for p in self.pods.values() if p["spec"].get("nodeSelector") and not p["spec"].get("nodeName")]
        first = len(self.claims)
        for i, pod in enumerate(pending):
            claim = "claim-%d" % (first + i // self.per_node)
            self.claims.setdefault(claim, {"metadata": {"name": claim}})
            pod["spec"]["nodeName"] = claim
            pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        FakeKube._reconcile(self)


def karpenter_run(kube, **extra):
    clock = Clock()
    opts = dict(OPTS, karpenter_nodepool_name="gpu", karpenter_settle=2, **extra)
    report = R.Verifier(kube, options(plan(), opts), clock=clock.clock, sleep=clock.sleep).run([])
    return report, [n for n in report["nodes"] if n["node"] == "nodepool/gpu"][0]["checks"][0]


def test_karpenter_check_counts_the_launched_nodes_and_removes_them():
    kube = FakeKarpenter(_pool("g4dn.xlarge"), per_node=4)
    report, check = karpenter_run(kube, karpenter_pods=5)
    assert (check["name"], check["status"], check["expected"], check["observed"]) == (V.CHECK_KARPENTER, V.PASSED, 2, 2)
    assert report["run"]["cleanup"]["karpenter_nodeclaims_removed"] == ["claim-0", "claim-1"]
    assert kube.claims == {} and kube.pods == {} and kube.namespaces == {}
    assert check["details"]["waited_seconds"] >= 2.0  # the settle window, on the fake clock


def test_karpenter_check_sees_over_provisioning():
    kube = FakeKarpenter(_pool("g4dn.xlarge"), per_node=1)  # a Karpenter that knows no slices
    dummy, check = karpenter_run(kube)  # default pods: 1 GPU x 4 replicas + 1
    assert (check["status"], check["expected"], check["observed"]) == (V.FAILED, 2, 5)
    assert "over-provisions" in check["reason"]


def test_karpenter_check_without_a_single_answer_is_not_available_or_failed():
    dummy, check = karpenter_run(FakeKarpenter(_pool("g4dn.xlarge", "g5.xlarge"), per_node=4))
    assert check["status"] == V.NOT_AVAILABLE and "karpenter_instance_type" in check["reason"]
    dummy, check = karpenter_run(FakeKarpenter(None, per_node=4))
    assert check["status"] == V.FAILED and check["reason"] == "NodePool gpu not found"
    dummy, check = karpenter_run(FakeKarpenter(_pool("g4dn.xlarge"), per_node=4), karpenter_instance_type="x9.huge")
    assert check["status"] == V.NOT_AVAILABLE and "x9.huge" in check["reason"]


def test_karpenter_check_keeps_the_nodeclaims_when_asked():
    kube = FakeKarpenter(_pool("g4dn.xlarge"), per_node=4, nodes=[node("a")])
    report, check = karpenter_run(kube, karpenter_pods=5, karpenter_cleanup_nodes=False)
    assert check["status"] == V.PASSED and report["run"]["cleanup"]["karpenter_nodeclaims_removed"] == []
    assert sorted(kube.claims) == ["claim-0", "claim-1"] and kube.deleted_claims == []
