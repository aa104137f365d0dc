"""Unit tests for core/verification_waits.py: when each wait of a run is done (pure, no clock)."""

import datetime

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_waits as W

from .test_verification import node, plan, ready_plugin_pod
from .test_verification_pods import running_pod, unschedulable_pod

SEEN = datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc)


def test_since_counts_from_the_poll_that_first_saw_the_state():
    since = W.Since()
    assert since.held("a", "Running", 100.0) == 0.0
    assert since.held("a", "Running", 102.5) == 2.5
    assert since.held("a", "Pending", 103.0) == 0.0  # a new state starts again
    assert since.held("a", "Running", 104.0) == 0.0
    assert since.held("b", "Running", 104.0) == 0.0  # one clock per key


def test_nothing_left():
    assert W.nothing_left(None) and W.nothing_left([])
    assert not W.nothing_left({"metadata": {}}) and not W.nothing_left([{}])


def failed_pod(name):
    return {"metadata": {"name": name}, "spec": {"nodeName": "n"},
            "status": {"phase": "Failed", "reason": "UnexpectedAdmissionError"}}


def test_multi_slice_running_is_final_only_after_the_settle_window():
    wait = W.MultiSliceWait(settle=3.0)
    pod = running_pod("multi-0", "n")
    assert not wait.decided(None, 0.0)
    assert not wait.decided(pod, 10.0)  # first seen Running
    assert not wait.decided(pod, 12.9)
    assert wait.decided(pod, 13.0)
    assert wait.decided(failed_pod("multi-1"), 0.0)  # a rejection is final at once
    assert not wait.decided(unschedulable_pod("multi-2"), 99.0)  # Pending waits for the timeout
    assert not wait.all_decided({"multi-0": pod}, ["multi-0", "multi-1"], 20.0)
    assert wait.all_decided({"multi-0": pod, "multi-1": failed_pod("multi-1")}, ["multi-0", "multi-1"], 20.0)


def slice_pod(name, node, state):
    """A one-slice pod made for ``node``: running on it, unschedulable, or pending undecided."""
    if state == "running":
        pod = running_pod(name, node)
    elif state == "unschedulable":
        pod = unschedulable_pod(name)
    else:
        pod = {"metadata": {"name": name}, "spec": {}, "status": {"phase": "Pending"}}
    pod["metadata"]["annotations"] = {W.NODE_ANNOTATION: node}
    return pod


def test_slice_pods_all_running_decide_a_node_at_once():
    wait = W.SlicePodsWait({"n": {"slice_pods": 2}}, grace=10.0)
    decided = wait.step([slice_pod("s0", "n", "running"), slice_pod("s1", "n", "running")], 0.0, SEEN, waited=1.0)
    assert [(name, check.status, full) for name, check, full in decided] == [("n", V.PASSED, True)]
    assert wait.done and decided[0][1].details["waited_seconds"] == 1.0


def test_slice_pods_quiet_for_the_grace_decide_with_the_numbers():
    wait = W.SlicePodsWait({"n": {"slice_pods": 2}, "m": {"slice_pods": 1}}, grace=10.0)
    quiet = [slice_pod("s0", "n", "running"), slice_pod("s1", "n", "unschedulable")]
    assert wait.step(quiet, 0.0, SEEN) == []
    assert wait.step(quiet, 9.9, SEEN) == []
    decided = wait.step(quiet, 10.0, SEEN)
    # m has no pod in the list: nothing changes there either (as on main's loop).
    assert [(name, check.status, full) for name, check, full in decided] == [("n", V.FAILED, False),
                                                                             ("m", V.FAILED, False)]
    assert "(no change for 10s: the rest stay Unschedulable)" in decided[0][1].reason
    assert (decided[0][1].expected, decided[0][1].observed) == (2, 1)
    assert wait.done


def test_slice_pods_a_pod_still_deciding_restarts_the_grace_and_the_timeout_decides_all():
    wait = W.SlicePodsWait({"n": {"slice_pods": 2}}, grace=5.0)
    quiet = [slice_pod("s0", "n", "running"), slice_pod("s1", "n", "unschedulable")]
    busy = [slice_pod("s0", "n", "running"), slice_pod("s1", "n", "pending")]
    assert wait.step(quiet, 0.0, SEEN) == []
    assert wait.step(busy, 4.0, SEEN) == []
    assert wait.step(quiet, 6.0, SEEN) == []  # quiet again since 6.0, not 0.0
    decided = wait.step(busy, 7.0, SEEN, timed_out=True, waited=7.0)
    assert decided[0][1].status == V.FAILED and "timed out" in decided[0][1].reason
    assert "no change" not in decided[0][1].reason and wait.done


def test_extra_pod_and_logs_and_karpenter_predicates():
    assert not W.extra_pod_decided(None)
    assert W.extra_pod_decided(unschedulable_pod("x"))
    assert W.extra_pod_decided(running_pod("x", "n"))  # bound: decided (and a failure)
    assert not W.extra_pod_decided({"metadata": {"name": "x"}, "spec": {}, "status": {"phase": "Pending"}})
    uuid = "GPU-1a2b3c4d-0000-1111-2222-333344445555"
    assert W.logs_complete({"a": uuid, "b": "GPU 0: T4 (UUID: %s)" % uuid})
    assert not W.logs_complete({"a": uuid, "b": None})
    assert W.karpenter_settled(5, 5, 10.0, 10.0)
    assert not W.karpenter_settled(5, 5, 9.0, 10.0)
    assert not W.karpenter_settled(4, 5, 60.0, 10.0)


def _checks(n, plugin_pods=None, profile="ts-4"):
    p = plan()
    pods = [ready_plugin_pod(n["metadata"]["name"])] if plugin_pods is None else plugin_pods
    return V.node_checks(n, p.profile(profile), pods, p.default_profile)[1]


def test_node_evidence_pending_while_gfd_labels_or_allocatable_are_missing():
    assert not W.node_evidence_pending(_checks(node("a")))
    no_labels = node("a", gpus=None, replicas=None, strategy=None, product=None, alloc=4)
    assert W.node_evidence_pending(_checks(no_labels))
    no_alloc = node("a")
    del no_alloc["status"]["allocatable"]["nvidia.com/gpu"]
    assert W.node_evidence_pending(_checks(no_alloc))


def test_node_evidence_pending_while_the_plugin_pod_is_missing_or_not_ready():
    assert W.node_evidence_pending(_checks(node("a"), plugin_pods=[]))
    starting = ready_plugin_pod("a")
    starting["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    assert W.node_evidence_pending(_checks(node("a"), plugin_pods=[starting]))


def test_node_evidence_not_pending_for_wrong_values_or_another_profile_label():
    unsliced = node("a", replicas=1, alloc=1, strategy="none", product="T4")
    assert not W.node_evidence_pending(_checks(unsliced))
    # ts-2's label on a node verified as ts-4: the user's label, it does not lag a rollout.
    other = node("a", label="ts-2", gpus=None, replicas=None, strategy=None, product=None, alloc=2)
    checks = _checks(other)
    assert W.node_evidence_pending(checks)  # its GFD labels are missing: those are worth waiting for
    only_label = [c for c in checks if c.name == V.CHECK_PROFILE_LABEL]
    assert only_label[0].failed and not W.node_evidence_pending(only_label)
