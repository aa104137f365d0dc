# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One verification run: read the nodes, run the test pods phase by phase, always clean up.

All judgement lives in the pure ``core/verification*.py`` files (what a node must show, the
checks, when a wait is done). This file reads and writes the cluster through
``kube.access.KubeAccess``, waits through ``kube.waiter.poll_until`` and times things.

Safety rules:
* every object is created in one namespace per run (``gpu-slicing-verify-<random>``,
  labelled ``gpu-slicing.eks/verify-run``), and that namespace is deleted in a ``finally``
  block, also on failure, timeout, KeyboardInterrupt and SIGTERM;
* at start, namespaces left by an interrupted earlier run (same label) are deleted first.
  Two verify runs against one cluster at the same time would remove each other's
  namespace: run them one after the other.

A new pod check is one more method named in ``Verifier.POD_PHASES``: it gets the verdicts of
the nodes whose slice count is known and adds its CheckResults to them, using the run's
helpers (``create_pods``, ``list_run_pods``, ``wait``, ``remaining``...) as the Karpenter
check does from its own file (``ops/verify_karpenter.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import signal
import time
import uuid

from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_pods as P
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_waits as W
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import MANAGED_BY, MANAGED_BY_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_report import (
    build_report,
    summarize,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.waiter import poll_until
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.verify_admission import admission_phase
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.verify_karpenter import karpenter_phase

NAMESPACE_PREFIX = "gpu-slicing-verify-"
RUN_LABEL, ROLE_LABEL = P.RUN_LABEL, P.ROLE_LABEL
POLL = 0.5
NODE_POLL = 2.0  # node re-reads: labels arrive on GFD/NFD cycles, not sub-second


class VerifyInterrupted(Exception):
    """SIGTERM arrived: unwind so the finally blocks clean up. Internal: the verify operation
    reports it, like any other error that stops a run, as a GpuSlicingError (kind ``stopped``)."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def remove_leftover_namespaces(kube, keep=None, check_mode=False):
    """Delete the namespaces earlier verification runs left (labelled as ours, named with our
    prefix), except ``keep``. Returns (names deleted or to delete in check mode, names already
    terminating)."""
    removed, terminating = [], []
    selector = "%s=%s,%s" % (MANAGED_BY_LABEL, MANAGED_BY, RUN_LABEL)
    for ns in kube.list("Namespace", "v1", label_selector=selector):
        name = ns["metadata"]["name"]
        if not name.startswith(NAMESPACE_PREFIX) or name == keep:
            continue
        if (ns.get("status") or {}).get("phase") == "Terminating":
            # Already being removed (an earlier run asked and did not wait): nothing to do.
            terminating.append(name)
            continue
        if not check_mode:
            kube.delete("Namespace", "v1", name)
        removed.append(name)
    return removed, terminating


PLUGIN_POD_SELECTOR = "app.kubernetes.io/name=nvidia-device-plugin"


def plugin_pods_by_node(kube, namespace):
    pods = kube.list_raw("Pod", "v1", namespace=namespace, label_selector=PLUGIN_POD_SELECTOR)
    by_node = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(node, []).append(pod)
    return by_node


class Verifier(object):
    """One verification run with the typed ``options`` (ops.verify.VerifyOptions: plan, profile,
    image, timeouts...). ``clock`` and ``sleep`` are parameters so tests need not wait."""

    # The pod checks, in order: each takes the verdicts of the nodes with a known slice count.
    POD_PHASES = ("multi_slice_phase", "slice_phase", "extra_pod_phase", "uuid_phase")

    def __init__(self, kube, options, check_mode=False, clock=time.monotonic, sleep=time.sleep):
        self.kube = kube
        self.opts = options
        self.plan = options.plan
        self.profile = options.profile
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.run_id = uuid.uuid4().hex[:8]
        self.namespace = NAMESPACE_PREFIX + self.run_id
        self.namespace_created = False
        self.timings = {}
        self.cleanup = {"leftover_namespaces_removed": [], "leftover_namespaces_terminating": [],
                        "pods_removed": None, "namespace_deletion_requested": False,
                        "namespace_removed": None, "errors": []}
        self.verdicts = []
        self.exps = {}
        self.node_index = {}
        self.full_nodes = []
        self.deadline = None

    # ------------------------------------------------------------------ helpers

    def remaining(self):
        """Seconds left of the run's wait_timeout."""
        return max(0.0, self.deadline - self.clock())

    def seconds_since(self, t0):
        return round(self.clock() - t0, 3)

    def wait(self, read, done, timeout, interval=POLL, key=None, budget=None, detail=None):
        """poll_until with this run's clock; while not done, a throttled progress line ``key``
        (``detail(value)`` makes its text)."""
        def on_poll(value, waited):
            if key is not None and not done(value):
                progress.waiting(key, waited, budget, lambda: detail(value))
        return poll_until(read, done, timeout, interval, clock=self.clock, sleep=self.sleep, on_poll=on_poll)

    def selector(self, role=None):
        selector = "%s=%s" % (RUN_LABEL, self.run_id)
        return selector + (",%s=%s" % (ROLE_LABEL, role) if role else "")

    def list_run_pods(self, role=None):
        # Raw JSON: with hundreds of nodes this list is polled with thousands of pods in it.
        return self.kube.list_raw("Pod", "v1", namespace=self.namespace, label_selector=self.selector(role))

    def pods_by_name(self, role):
        return {p["metadata"]["name"]: p for p in self.list_run_pods(role)}

    def _pod(self, node_name, name, slices, role):
        return P.test_pod(
            name, self.namespace, node_name, self.exps[node_name]["resource"], slices,
            self.opts.image, self.command, self.run_id, role,
            resources=self.opts.pod_resources, extra_tolerations=self.opts.tolerations,
        )

    def create_pods(self, pods):
        """Create test pods concurrently; the first error (after all were tried) aborts the run.
        Pods a new namespace refuses for want of its default ServiceAccount are sent again until
        it exists (bounded by the run's time left)."""
        left, errors = list(pods), []

        def send():
            refused = []
            for pod, exc in self.kube.create_many(left):
                if exc is not None:
                    (refused if W.service_account_missing(exc) else errors).append((pod, exc))
            left[:] = [pod for pod, dummy in refused]
            return refused

        dummy, refused, dummy = self.wait(send, W.nothing_left, min(self.remaining() + 5, 60))
        for dummy, exc in errors + refused:
            raise exc

    def remove_pods(self, role, timeout):
        """Delete the run's pods of ``role`` (all with None) and wait until they are gone."""
        self.kube.delete_collection("Pod", "v1", self.namespace, self.selector(role), grace_period_seconds=0)
        self.wait(lambda: self.list_run_pods(role), W.nothing_left, timeout)

    @property
    def command(self):
        return self.opts.command or P.default_command(self.opts.hold_seconds)

    def node_timing(self, node, key, value):
        for v in self.verdicts:
            if v.node == node:
                v.timings[key] = round(value, 3)

    # ------------------------------------------------------------------ cleanup

    def remove_leftovers(self):
        removed, terminating = remove_leftover_namespaces(self.kube, keep=self.namespace)
        self.cleanup["leftover_namespaces_removed"].extend(removed)
        self.cleanup["leftover_namespaces_terminating"].extend(terminating)

    def remove_namespace(self):
        """Delete the run's pods (grace 0) and then its namespace.

        The pods are gone when the collection delete returns (grace 0 removes them at once), so
        their slices are free. Removing the namespace itself is the namespace controller's work
        (about 5 s even for an empty one, much longer with thousands of pods' events); it is
        waited for only up to ``cleanup_wait_timeout`` seconds (0: the deletion is requested, not
        waited for; a later run removes a namespace that is still there).
        """
        if not self.namespace_created:
            return
        t0 = self.clock()
        try:
            self.kube.delete_collection("Pod", "v1", self.namespace, self.selector(), grace_period_seconds=0)
            self.cleanup["pods_removed"] = not self.list_run_pods()
        except Exception as exc:  # pylint: disable=broad-except
            self.cleanup["pods_removed"] = False
            self.cleanup["errors"].append("deleting pods: %s" % error_message(exc))
        try:
            self.kube.delete("Namespace", "v1", self.namespace)
            self.cleanup["namespace_deletion_requested"] = True
        except Exception as exc:  # pylint: disable=broad-except
            self.cleanup["errors"].append("deleting namespace: %s" % error_message(exc))
        gone, dummy, dummy = self.wait(lambda: self.kube.get("Namespace", "v1", self.namespace), W.nothing_left,
                                       float(self.opts.cleanup_wait_timeout))  # 0: one look
        self.cleanup["namespace_removed"] = bool(gone)
        self.cleanup["namespace_gone_seconds"] = self.seconds_since(t0) if gone else None
        self.timings["cleanup_seconds"] = self.seconds_since(t0)

    # ------------------------------------------------------------------ phases

    def node_phase(self, nodes):
        """The node-side checks. A node whose failures are evidence not published yet (GFD's
        labels and the advertised allocatable lag the plugin's rollout by seconds, more under
        load) is read again, up to ``node_wait_timeout`` seconds; the others are judged on the
        first read. Only the waiting nodes are read again."""
        t0 = self.clock()
        judged = {}  # node name -> (expectations, checks) of its latest read
        pending = []

        def read():
            if judged:  # a node deleted meanwhile keeps its last verdict
                current = [n for n in (self.kube.get("Node", "v1", name) for name in pending) if n is not None]
            else:
                current = nodes  # the selection's read is the first one
            plugin = plugin_pods_by_node(self.kube, self.opts.device_plugin_namespace)
            for node in current:
                name = node["metadata"]["name"]
                judged[name] = V.node_checks(node, self.profile, plugin.get(name, []),
                                             default_profile=self.plan.default_profile)
            pending[:] = sorted(name for name, (dummy, checks) in judged.items() if W.node_evidence_pending(checks))
            return list(pending)

        budget = float(self.opts.node_wait_timeout)
        self.wait(read, W.nothing_left, budget, interval=NODE_POLL, key="verification, node labels", budget=budget,
                  detail=lambda pending: "%d node(s) without GFD labels, allocatable or a Ready plugin pod yet: %s"
                  % (len(pending), ", ".join(pending[:5]) + (", ..." if len(pending) > 5 else "")))
        for node in nodes:
            name = node["metadata"]["name"]
            self.exps[name], checks = judged[name]
            self.verdicts.append(V.NodeVerdict(name, self.profile.name, checks))
        self.timings["node_checks_seconds"] = self.seconds_since(t0)

    def _pod_nodes(self):
        """Nodes on which pod checks can run (the expected slice count is known)."""
        out = []
        for verdict in self.verdicts:
            if self.exps[verdict.node]["slice_pods"] is None:
                for c in V.skipped_pod_checks("the node's physical GPU count is unknown"):
                    verdict.add(c)
            else:
                out.append(verdict)
        return out

    def multi_slice_phase(self, verdicts):
        """Two-slice pods first, while every slice is free: they must be rejected."""
        todo = []
        for v in verdicts:
            exp = self.exps[v.node]
            if not exp["fail_requests_greater_than_one"]:
                v.add(P.multi_slice_not_applicable(exp))
            elif exp["slice_pods"] < 2:
                v.add(V.not_available(V.CHECK_MULTI_SLICE, "the node has fewer than 2 slices"))
            else:
                todo.append(v)
        if not todo:
            return
        t0 = self.clock()
        names = dict((v.node, "multi-%d" % self.node_index[v.node]) for v in todo)
        self.create_pods([self._pod(v.node, names[v.node], 2, "multi-slice") for v in todo])
        limit = float(self.opts.multi_slice_wait_timeout)
        budget = min(self.remaining(), limit)
        cut = self.remaining() < limit
        wait = W.MultiSliceWait(min(3.0, limit))
        dummy, (pods, dummy), dummy = self.wait(
            lambda: (self.pods_by_name("multi-slice"), self.clock()),
            lambda seen: wait.all_decided(seen[0], names.values(), seen[1]), budget,
            key="verification, two-slice pods", budget=budget,
            detail=lambda seen: "%d of %d node(s) decided" % (
                sum(wait.decided(seen[0].get(n), seen[1]) for n in names.values()), len(todo)))
        now = self.clock()
        for v in todo:
            pod = pods.get(names[v.node])
            v.add(P.check_multi_slice(pod, timed_out=not wait.decided(pod, now), run_timed_out=cut))
        # The pods must be gone before the slice pods go in, or a wrongly admitted one holds 2 slices.
        try:
            self.kube.delete_collection("Pod", "v1", self.namespace, self.selector("multi-slice"),
                                        grace_period_seconds=0)
        except Exception:  # pylint: disable=broad-except
            pass  # the namespace goes at the end in any case
        self.wait(lambda: self.list_run_pods("multi-slice"), W.nothing_left, min(self.remaining(), 30))
        self.timings["multi_slice_seconds"] = self.seconds_since(t0)

    def slice_phase(self, verdicts):
        """N one-slice pods per node, all Running at once."""
        t0 = self.clock()
        self.create_pods([self._pod(v.node, "slice-%d-%d" % (self.node_index[v.node], i), 1, "slice")
                          for v in verdicts for i in range(self.exps[v.node]["slice_pods"])])
        created = self.clock()
        self.timings["slice_pods_created_seconds"] = self.seconds_since(t0)
        by_name = {v.node: v for v in verdicts}
        wait = W.SlicePodsWait(dict((v.node, self.exps[v.node]) for v in verdicts),
                               float(self.opts.unschedulable_grace))
        total = sum(self.exps[v.node]["slice_pods"] for v in verdicts)

        def read(timed_out=None):
            pods, now, observed_at = self.list_run_pods("slice"), self.clock(), _now()
            timed_out = self.remaining() <= 0 if timed_out is None else timed_out
            for name, check, full in wait.step(pods, now, observed_at, timed_out=timed_out, waited=now - created):
                by_name[name].add(check)
                if full:
                    self.node_timing(name, "all_slices_running_seconds", now - created)
                    self.full_nodes.append(name)
            return pods

        # The run's timeout decides every node still open; a last read makes sure of it.
        finished, dummy, dummy = self.wait(
            read, lambda dummy: wait.done, self.remaining(), key="verification, one-slice pods",
            detail=lambda pods: "%d of %d pods Running, %d node(s) not decided yet"
            % (len([p for p in pods if P.pod_running_ready(p)]), total, len(wait.open)))
        if not finished:
            read(timed_out=True)
        self.timings["slice_pods_seconds"] = self.seconds_since(t0)

    def extra_pod_phase(self, verdicts):
        """One more pod on each node that reached N: it must stay Pending/Unschedulable."""
        t1 = self.clock()
        for v in verdicts:
            if v.node not in self.full_nodes:
                v.add(V.not_available(V.CHECK_LIMIT, "skipped: the %d one-slice pods did not all run"
                                      % self.exps[v.node]["slice_pods"]))
        if not self.full_nodes:
            return
        by_name = {v.node: v for v in verdicts}
        extra = dict((name, "extra-%d" % self.node_index[name]) for name in self.full_nodes)
        self.create_pods([self._pod(name, extra[name], 1, "extra") for name in self.full_nodes])
        answers = {}  # node -> the pod as first seen decided: the verdict is on that read

        def read():
            pods = self.pods_by_name("extra")
            for name, pod_name in extra.items():
                if name not in answers and W.extra_pod_decided(pods.get(pod_name)):
                    answers[name] = pods[pod_name]
            return pods

        dummy, pods, dummy = self.wait(read, lambda dummy: len(answers) == len(extra), max(self.remaining(), 0))
        for name in self.full_nodes:
            if name in answers:
                by_name[name].add(P.check_extra_pod(name, answers[name]))
            else:
                by_name[name].add(P.check_extra_pod(name, pods.get(extra[name]), timed_out=True))
        self.timings["extra_pod_seconds"] = self.seconds_since(t1)

    def uuid_phase(self, verdicts):
        for v in verdicts:
            exp = self.exps[v.node]
            if exp["simulated"]:
                v.add(P.check_gpu_uuids(None, exp, {}))
                continue
            if v.node not in self.full_nodes:
                v.add(V.not_available(V.CHECK_UUID, "skipped: the one-slice pods did not all run"))
                continue
            idx = self.node_index[v.node]
            names = ["slice-%d-%d" % (idx, i) for i in range(exp["slice_pods"])]
            # The sample prints its UUID within seconds; give the logs a short, bounded time.
            dummy, logs, dummy = self.wait(
                lambda: dict((n, self.kube.pod_log(n, self.namespace)) for n in names), W.logs_complete,
                min(self.remaining() + 5, float(self.opts.log_wait_timeout)), interval=1.0)
            v.add(P.check_gpu_uuids(None, exp, logs))

    # ------------------------------------------------------------------ entry point

    def run(self, nodes):
        """Verify ``nodes``; returns the report dict. Cleans up whatever happens."""
        start = self.clock()
        self.node_index = {n["metadata"]["name"]: i for i, n in enumerate(nodes)}
        previous = None
        if not self.check_mode:
            previous = _install_sigterm()
        error = None
        try:
            self.node_phase(nodes)
            self.deadline = self.clock() + float(self.opts.wait_timeout)  # the pod checks' budget
            if self.check_mode:
                for v in self.verdicts:
                    for c in V.skipped_pod_checks("check mode: no test pods were created (node-side checks only)"):
                        v.add(c)
            else:
                self.remove_leftovers()
                self.kube.create(P.run_namespace(self.namespace, self.run_id))
                self.namespace_created = True
                verdicts = self._pod_nodes()
                for phase in self.POD_PHASES:
                    getattr(self, phase)(verdicts)
            if self.opts.karpenter_nodepool_name:
                if self.check_mode:
                    self.verdicts.append(V.NodeVerdict("nodepool/%s" % self.opts.karpenter_nodepool_name, self.profile.name, [
                        V.not_available(V.CHECK_KARPENTER, "check mode: no test pods were created")]))
                else:
                    karpenter_phase(self)
            if self.opts.admission_policy_name:
                admission_phase(self)
        except VerifyInterrupted:
            error = "interrupted by SIGTERM"
            raise
        except KeyboardInterrupt:
            error = "interrupted"
            raise
        finally:
            try:
                self.remove_namespace()
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
                self.timings["total_seconds"] = self.seconds_since(start)
                if error:
                    self.cleanup["errors"].append(error)
        summary = summarize(self.verdicts, check_mode=self.check_mode)
        run = {
            "namespace": None if self.check_mode else self.namespace,
            "run_id": self.run_id,
            "check_mode": self.check_mode,
            "image": self.opts.image,
            "profile": self.profile.to_dict(derived=True),
            "cleanup": self.cleanup,
        }
        return build_report(self.verdicts, self.timings, summary, run)


def _install_sigterm():
    def handler(signum, frame):  # pylint: disable=unused-argument
        raise VerifyInterrupted("SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        return None
