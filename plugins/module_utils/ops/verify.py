# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify module's I/O: select nodes, read them, run test pods, always clean up.

All judgement lives in ``verification.py`` (pure). This file only reads and writes the
cluster through ``kube.KubeAccess`` and times things.

Safety rules:
* every object is created in one namespace per run (``gpu-slicing-verify-<random>``,
  labelled ``gpu-slicing.eks/verify-run``), and that namespace is deleted in a ``finally``
  block, also on failure, timeout, KeyboardInterrupt and SIGTERM;
* at start, namespaces left by an interrupted earlier run (same label) are deleted first.
  Two verify runs against one cluster at the same time would remove each other's
  namespace: run them one after the other.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import signal
import time
import uuid

from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.waiter import poll_until
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import GPU_PRESENT_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import InstanceTypeError, lookup
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import PROFILE_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.slicing_info import (
    HOLDING_PODS_SELECTOR,
    requested_by_node,
)

NAMESPACE_PREFIX = "gpu-slicing-verify-"
RUN_LABEL = "gpu-slicing.eks/verify-run"
ROLE_LABEL = "gpu-slicing.eks/verify-role"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpu_slicing.eks"
PLUGIN_POD_SELECTOR = "app.kubernetes.io/name=nvidia-device-plugin"
DEFAULT_IMAGE = "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04"
POLL = 0.5


class VerifyInterrupted(Exception):
    """SIGTERM arrived: unwind so the finally blocks clean up."""


class RunTimeout(Exception):
    pass


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def namespace_definition(name, run_id):
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                MANAGED_BY_LABEL: MANAGED_BY,
                RUN_LABEL: run_id,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


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


# --------------------------------------------------------------------------- selection


def select_nodes(kube, profile_name=None, node_names=None, nodepool=None, is_default=False):
    """Nodes to verify, by node names, NodePool label or profile label (in that order).

    A node without the profile label runs the plugin's default config, so when the profile
    under test is the default one, unlabelled GPU nodes are selected too.

    Returns (nodes, how, missing_names).
    """
    if node_names:
        nodes, missing = [], []
        for name in node_names:
            node = kube.get("Node", "v1", name)
            if node is None:
                missing.append(name)
            else:
                nodes.append(node)
        return nodes, "node names", missing
    if nodepool:
        selector = "%s=%s" % (V.LABEL_NODEPOOL, nodepool)
    else:
        selector = "%s=%s" % (PROFILE_LABEL, profile_name)
    nodes = kube.list_raw("Node", "v1", label_selector=selector)
    how = "label %s" % selector
    if is_default and not nodepool:
        unlabelled = "%s=true,!%s" % (GPU_PRESENT_LABEL, PROFILE_LABEL)
        nodes += kube.list_raw("Node", "v1", label_selector=unlabelled)
        how += " or (default profile) %s" % unlabelled
    return sorted(nodes, key=lambda n: n["metadata"]["name"]), how, []


def plugin_pods_by_node(kube, namespace):
    pods = kube.list_raw("Pod", "v1", namespace=namespace, label_selector=PLUGIN_POD_SELECTOR)
    by_node = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(node, []).append(pod)
    return by_node


# --------------------------------------------------------------------------- the run


class Verifier(object):
    """One verification run. ``options`` is a plain dict (the module's params)."""

    def __init__(self, kube, plan, profile, options, check_mode=False, log=None):
        self.kube = kube
        self.plan = plan
        self.profile = profile
        self.opts = options
        self.check_mode = check_mode
        self.log = log or (lambda msg: None)
        self.run_id = uuid.uuid4().hex[:8]
        self.namespace = NAMESPACE_PREFIX + self.run_id
        self.namespace_created = False
        self.timings = {}
        self.cleanup = {"leftover_namespaces_removed": [], "leftover_namespaces_terminating": [],
                        "pods_removed": None, "namespace_deletion_requested": False,
                        "namespace_removed": None, "errors": []}
        self.verdicts = []
        self.exps = {}
        self.deadline = None

    # ------------------------------------------------------------------ helpers

    def _option(self, key, default):
        """The option's value, or ``default`` only when it is unset: 0 is a value (a zero timeout
        fails at once, a zero settle time judges at once), not a request for the default."""
        value = self.opts.get(key)
        return default if value is None else value

    def _remaining(self):
        return max(0.0, self.deadline - time.monotonic())

    def _selector(self, role=None):
        selector = "%s=%s" % (RUN_LABEL, self.run_id)
        return selector + (",%s=%s" % (ROLE_LABEL, role) if role else "")

    def _list_run_pods(self, role=None):
        # Raw JSON: with hundreds of nodes this list is polled with thousands of pods in it.
        return self.kube.list_raw("Pod", "v1", namespace=self.namespace, label_selector=self._selector(role))

    def _pod(self, node_name, name, slices, role):
        return V.test_pod(
            name, self.namespace, node_name, self.exps[node_name]["resource"], slices,
            self.opts["image"], self.command, self.run_id, role,
            resources=self.opts.get("pod_resources"), extra_tolerations=self.opts.get("tolerations"),
        )

    def _create_pods(self, pods):
        """Create test pods concurrently; the first error (after all were tried) aborts the run."""
        for dummy, exc in self.kube.create_many(pods):
            if exc is not None:
                raise exc

    @property
    def command(self):
        return self.opts.get("command") or V.default_command(self._option("hold_seconds", 3600))

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
        t0 = time.monotonic()
        try:
            self.kube.delete_collection("Pod", "v1", self.namespace, self._selector(), grace_period_seconds=0)
            self.cleanup["pods_removed"] = not self._list_run_pods()
        except Exception as exc:  # pylint: disable=broad-except
            self.cleanup["pods_removed"] = False
            self.cleanup["errors"].append("deleting pods: %s" % error_message(exc))
        try:
            self.kube.delete("Namespace", "v1", self.namespace)
            self.cleanup["namespace_deletion_requested"] = True
        except Exception as exc:  # pylint: disable=broad-except
            self.cleanup["errors"].append("deleting namespace: %s" % error_message(exc))
        wait = float(self._option("cleanup_wait_timeout", 0))
        gone, dummy = self.kube.wait_for(lambda: self.kube.get("Namespace", "v1", self.namespace) is None,
                                         wait, interval=POLL, what="namespace gone")  # 0: one look
        self.cleanup["namespace_removed"] = bool(gone)
        self.cleanup["namespace_gone_seconds"] = round(time.monotonic() - t0, 3) if gone else None
        self.timings["cleanup_seconds"] = round(time.monotonic() - t0, 3)

    # ------------------------------------------------------------------ phases

    def node_phase(self, nodes):
        t0 = time.monotonic()
        plugin = plugin_pods_by_node(self.kube, self.opts["device_plugin_namespace"])
        for node in nodes:
            name = node["metadata"]["name"]
            exp, checks = V.node_checks(node, self.profile, plugin.get(name, []),
                                        default_profile=self.plan.default_profile)
            self.exps[name] = exp
            self.verdicts.append(V.NodeVerdict(name, self.profile.name, checks))
        self.timings["node_checks_seconds"] = round(time.monotonic() - t0, 3)

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
                v.add(V.multi_slice_not_applicable(exp))
            elif exp["slice_pods"] < 2:
                v.add(V.not_available(V.CHECK_MULTI_SLICE, "the node has fewer than 2 slices"))
            else:
                todo.append(v)
        if not todo:
            return
        t0 = time.monotonic()
        names = dict((v.node, "multi-%d" % self.node_index[v.node]) for v in todo)
        self._create_pods([self._pod(v.node, names[v.node], 2, "multi-slice") for v in todo])
        budget = min(self._remaining(), float(self.opts["multi_slice_wait_timeout"]))
        cut = self._remaining() < float(self.opts["multi_slice_wait_timeout"])
        end = time.monotonic() + budget
        pods = {}
        # Running is only final once it holds for a moment: an emulated kubelet (kwok + the
        # device-plugin emulator) shows Running briefly before it records the rejection.
        running_since = {}
        settle = min(3.0, float(self.opts["multi_slice_wait_timeout"]))

        def decided(pod):
            if pod is None:
                return False
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Failed", "Succeeded"):
                return True
            if phase == "Running":
                first = running_since.setdefault(pod["metadata"]["name"], time.monotonic())
                return time.monotonic() - first >= settle
            return False

        while True:
            pods = {p["metadata"]["name"]: p for p in self._list_run_pods("multi-slice")}
            done = [decided(pods.get(names[v.node])) for v in todo]
            if all(done) or time.monotonic() >= end:
                break
            progress.waiting("verification, two-slice pods", time.monotonic() - t0, budget,
                             "%d of %d node(s) decided" % (sum(done), len(todo)))
            time.sleep(POLL)
        for v in todo:
            pod = pods.get(names[v.node])
            v.add(V.check_multi_slice(pod, timed_out=not decided(pod), run_timed_out=cut))
        try:
            self.kube.delete_collection("Pod", "v1", self.namespace, self._selector("multi-slice"), grace_period_seconds=0)
        except Exception:  # pylint: disable=broad-except
            pass  # the namespace goes at the end in any case
        # The pods must be gone before the slice pods go in, or a wrongly admitted one holds 2 slices.
        self.kube.wait_for(lambda: not self._list_run_pods("multi-slice"), min(self._remaining(), 30), interval=POLL)
        self.timings["multi_slice_seconds"] = round(time.monotonic() - t0, 3)

    def slice_phase(self, verdicts):
        """N one-slice pods per node, all Running at once; then one more must be Unschedulable."""
        t0 = time.monotonic()
        self._create_pods([self._pod(v.node, "slice-%d-%d" % (self.node_index[v.node], i), 1, "slice")
                           for v in verdicts for i in range(self.exps[v.node]["slice_pods"])])
        created = time.monotonic()
        created_at = dict((v.node, created) for v in verdicts)
        self.timings["slice_pods_created_seconds"] = round(time.monotonic() - t0, 3)

        open_nodes = {v.node: v for v in verdicts}
        settled_since = {}
        grace = float(self.opts["unschedulable_grace"])
        full_nodes = []
        while open_nodes:
            pods = self._list_run_pods("slice")
            observed_at = _now()
            by_node = {}
            for p in pods:
                by_node.setdefault(p["metadata"]["annotations"]["gpu-slicing.eks/node"], []).append(p)
            timed_out = self._remaining() <= 0
            for name in list(open_nodes):
                node_pods = by_node.get(name, [])
                exp = self.exps[name]
                running = [p for p in node_pods if V.pod_running_ready(p)
                           and p["spec"].get("nodeName") == name]
                waited = time.monotonic() - created_at[name]
                if len(running) == exp["slice_pods"]:
                    check = V.check_concurrent(name, exp, node_pods, observed_at, waited=waited)
                    open_nodes.pop(name).add(check)
                    self.node_timing(name, "all_slices_running_seconds", waited)
                    full_nodes.append(name)
                    continue
                undecided = [p for p in node_pods if not (V.pod_running_ready(p) or V.pod_unschedulable(p))]
                if undecided:
                    settled_since.pop(name, None)
                else:
                    settled_since.setdefault(name, time.monotonic())
                settled = name in settled_since and time.monotonic() - settled_since[name] >= grace
                if timed_out or settled:
                    check = V.check_concurrent(name, exp, node_pods, observed_at, timed_out=timed_out, waited=waited)
                    if settled and not timed_out:
                        check.reason += " (no change for %ss: the rest stay Unschedulable)" % int(grace)
                    open_nodes.pop(name).add(check)
            if open_nodes:
                progress.waiting("verification, one-slice pods", time.monotonic() - created, None, lambda: (
                    "%d of %d pods Running, %d node(s) not decided yet"
                    % (len([p for p in pods if V.pod_running_ready(p)]),
                       sum(self.exps[v.node]["slice_pods"] for v in verdicts), len(open_nodes))))
                time.sleep(POLL)
        self.timings["slice_pods_seconds"] = round(time.monotonic() - t0, 3)

        # One more pod on each node that reached N: it must stay Pending/Unschedulable.
        t1 = time.monotonic()
        extra = {}
        by_name = {v.node: v for v in verdicts}
        for v in verdicts:
            if v.node not in full_nodes:
                v.add(V.not_available(V.CHECK_LIMIT, "skipped: the %d one-slice pods did not all run"
                                      % self.exps[v.node]["slice_pods"]))
        for name in full_nodes:
            extra[name] = "extra-%d" % self.node_index[name]
        self._create_pods([self._pod(name, extra[name], 1, "extra") for name in full_nodes])
        pending = dict(extra)
        budget_end = time.monotonic() + max(self._remaining(), 0)
        pods = {}
        while pending:
            pods = {p["metadata"]["name"]: p for p in self._list_run_pods("extra")}
            for name, pod_name in list(pending.items()):
                pod = pods.get(pod_name)
                if pod is not None and (V.pod_unschedulable(pod) or pod["spec"].get("nodeName")):
                    by_name[name].add(V.check_extra_pod(name, pod))
                    pending.pop(name)
            if not pending:
                break
            if time.monotonic() >= budget_end:
                for name, pod_name in pending.items():
                    by_name[name].add(V.check_extra_pod(name, pods.get(pod_name), timed_out=True))
                break
            time.sleep(POLL)
        if extra:
            self.timings["extra_pod_seconds"] = round(time.monotonic() - t1, 3)
        return full_nodes

    def uuid_phase(self, verdicts, full_nodes):
        for v in verdicts:
            exp = self.exps[v.node]
            if exp["simulated"]:
                v.add(V.check_gpu_uuids(None, exp, {}))
                continue
            if v.node not in full_nodes:
                v.add(V.not_available(V.CHECK_UUID, "skipped: the one-slice pods did not all run"))
                continue
            idx = self.node_index[v.node]
            names = ["slice-%d-%d" % (idx, i) for i in range(exp["slice_pods"])]
            logs = {}
            # The sample prints its UUID within seconds; give the logs a short, bounded time.
            end = time.monotonic() + min(self._remaining() + 5, float(self.opts["log_wait_timeout"]))
            while True:
                logs = {n: self.kube.pod_log(n, self.namespace) for n in names}
                if all(V.gpu_uuids(t) for t in logs.values()) or time.monotonic() >= end:
                    break
                time.sleep(1.0)
            v.add(V.check_gpu_uuids(None, exp, logs))

    def karpenter_phase(self):
        """M pending one-slice pods for one NodePool: Karpenter must launch the minimum number of nodes.

        The pods live in the run's namespace (removed with it). The NodeClaims launched for them
        are deleted afterwards (karpenter_cleanup_nodes) so the check leaves no GPU node running.
        """
        pool = self.opts["karpenter_nodepool_name"]
        verdict = V.NodeVerdict("nodepool/%s" % pool, self.profile.name)
        self.verdicts.append(verdict)
        t0 = time.monotonic()
        nodepool = self.kube.get("NodePool", "karpenter.sh/v1", pool)
        if nodepool is None:
            verdict.add(V.failed(V.CHECK_KARPENTER, "NodePool %s not found" % pool, None, None))
            return
        itype, why = V.karpenter_instance_type(nodepool, self.opts.get("karpenter_instance_type"))
        if itype is None:
            verdict.add(V.not_available(V.CHECK_KARPENTER, why))
            return
        try:
            gpus = lookup(itype).gpu_count
        except InstanceTypeError as err:
            verdict.add(V.not_available(V.CHECK_KARPENTER, "GPU count of %s unknown: %s" % (itype, err)))
            return
        # The node checks' pods still hold slices: remove them first, so the free slices counted
        # below are the ones Karpenter sees.
        self.kube.delete_collection("Pod", "v1", self.namespace, self._selector(), grace_period_seconds=0)
        self.kube.wait_for(lambda: not self._list_run_pods(), min(self._remaining() + 30, 60), interval=POLL)
        resource = self.plan.advertised_resource(self.profile)
        slices_per_node = gpus * self.profile.replicas
        pods = int(self._option("karpenter_pods", slices_per_node + 1))
        selector = {V.LABEL_NODEPOOL: pool, V.LABEL_INSTANCE_TYPE: itype}
        label_selector = ",".join("%s=%s" % kv for kv in sorted(selector.items()))
        claims_before = set(c["metadata"]["name"] for c in self.kube.list_raw(
            "NodeClaim", "karpenter.sh/v1", label_selector="%s=%s" % (V.LABEL_NODEPOOL, pool)))
        # Free slices on the pool's existing nodes of that type take pods before any launch.
        existing = self.kube.list_raw("Node", "v1", label_selector=label_selector)
        requested = requested_by_node(self.kube.list_raw(
            "Pod", "v1", field_selector=HOLDING_PODS_SELECTOR, fields_only=True), [resource])
        free = 0
        for node in existing:
            have = int(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0") or 0)
            free += max(0, have - requested.get(node["metadata"]["name"], {}).get(resource, 0))

        self._create_pods([
            V.test_pod("karpenter-%d" % i, self.namespace, None, resource, 1, self.opts["image"], self.command,
                       self.run_id, "karpenter", resources=self.opts.get("pod_resources"),
                       extra_tolerations=self.opts.get("tolerations"), node_selector=selector)
            for i in range(pods)])
        budget = float(self._option("karpenter_wait_timeout", 600))
        settle = float(self._option("karpenter_settle", 10))
        end = time.monotonic() + budget
        launched, running, stable_since, last = set(), 0, None, None
        while True:
            launched = set(c["metadata"]["name"] for c in self.kube.list_raw(
                "NodeClaim", "karpenter.sh/v1", label_selector="%s=%s" % (V.LABEL_NODEPOOL, pool))) - claims_before
            running = len([p for p in self._list_run_pods("karpenter") if V.pod_running_ready(p)])
            state = (running, tuple(sorted(launched)))
            if state != last:
                last, stable_since = state, time.monotonic()
            # Done when every pod runs and no NodeClaim appeared for `settle` seconds (late launches count).
            if running == pods and time.monotonic() - stable_since >= settle:
                break
            if time.monotonic() >= end:
                break
            progress.waiting("verification, Karpenter launch", time.monotonic() - t0, budget,
                             "%d of %d pods Running, %d NodeClaim(s) launched" % (running, pods, len(launched)))
            time.sleep(1.0)
        waited = time.monotonic() - t0
        verdict.add(V.check_karpenter_launch(pool, itype, pods, slices_per_node, free, launched, running,
                                             timed_out=running < pods, waited=waited))
        verdict.timings["karpenter_seconds"] = round(waited, 3)
        try:
            self.kube.delete_collection("Pod", "v1", self.namespace, self._selector("karpenter"), grace_period_seconds=0)
        except Exception as exc:  # pylint: disable=broad-except
            self.cleanup["errors"].append("deleting the Karpenter check's pods: %s" % error_message(exc))
        removed = []
        if self.opts.get("karpenter_cleanup_nodes", True):
            for name in sorted(launched):
                try:
                    self.kube.delete("NodeClaim", "karpenter.sh/v1", name)
                    removed.append(name)
                except Exception as exc:  # pylint: disable=broad-except
                    self.cleanup["errors"].append("deleting NodeClaim %s: %s" % (name, error_message(exc)))
        self.cleanup["karpenter_nodeclaims_removed"] = removed
        self.timings["karpenter_seconds"] = round(time.monotonic() - t0, 3)

    def admission_phase(self):
        """The admission policies of ``admission_policy_name`` are active: in a second namespace of
        this run, created with their opt-in label (the test pods' namespace stays out of their
        reach), one pod the mutating policy must rewrite and one the validating policy must refuse,
        both as server dry runs (core/admission.py builds them and judges the answers)."""
        name = self.opts["admission_policy_name"]
        verdict = V.NodeVerdict("admission/%s" % name, self.profile.name)
        self.verdicts.append(verdict)
        binding_kind = admission.VALIDATING_KIND + "Binding"
        scope = admission.scope_of(self.kube.get(admission.VALIDATING_KIND, admission.API_VERSION, name),
                                   self.kube.get(binding_kind, admission.API_VERSION, name))
        if scope is None:
            verdict.add(V.failed(admission.CHECK_ADMISSION, "no ValidatingAdmissionPolicy %s with its binding written by "
                                 "gpu_slicing.eks; fix: write them with the admission_policy module" % name))
            return
        if self.check_mode:
            verdict.add(V.not_available(admission.CHECK_ADMISSION, "check mode: no namespace to send the pods to"))
            return
        if self.kube.get(admission.MUTATING_KIND, admission.API_VERSION, name) is None:
            verdict.add(V.not_available(admission.CHECK_ADMISSION, "no MutatingAdmissionPolicy %s (the cluster may not "
                                        "serve it): nothing to rewrite" % name))
            return
        label, value, actions = scope
        namespace = namespace_definition(self.namespace + "-admission", self.run_id)
        namespace["metadata"]["labels"][label] = value
        self.kube.create(namespace)
        try:
            probes = admission.probe_pods(self.plan, namespace["metadata"]["name"], self.opts["image"],
                                          self.profile.name)

            def answers():
                out = {}
                for role, (pod, dummy) in probes.items():
                    try:
                        out[role] = (self.kube.dry_run_apply(pod), None)
                    except Exception as exc:  # pylint: disable=broad-except
                        out[role] = (None, error_message(exc))
                return out

            # A new namespace refuses pods until its default ServiceAccount exists.
            seen = poll_until(answers, lambda a: not any('serviceaccount "default" not found' in (e or "")
                                                         for dummy, e in a.values()), 30, POLL)[1]
            verdict.add(admission.judge_probes(probes, seen, actions))
        finally:
            self.kube.delete("Namespace", "v1", namespace["metadata"]["name"])

    def node_timing(self, node, key, value):
        for v in self.verdicts:
            if v.node == node:
                v.timings[key] = round(value, 3)

    # ------------------------------------------------------------------ entry point

    def run(self, nodes):
        """Verify ``nodes``; returns the report dict. Cleans up whatever happens."""
        start = time.monotonic()
        self.deadline = start + float(self.opts["wait_timeout"])
        self.node_index = {n["metadata"]["name"]: i for i, n in enumerate(nodes)}
        previous = None
        if not self.check_mode:
            previous = _install_sigterm()
        error = None
        try:
            self.node_phase(nodes)
            if self.check_mode:
                for v in self.verdicts:
                    for c in V.skipped_pod_checks("check mode: no test pods were created (node-side checks only)"):
                        v.add(c)
            else:
                self.remove_leftovers()
                self.kube.create(namespace_definition(self.namespace, self.run_id))
                self.namespace_created = True
                verdicts = self._pod_nodes()
                self.multi_slice_phase(verdicts)
                full = self.slice_phase(verdicts)
                self.uuid_phase(verdicts, full)
            if self.opts.get("karpenter_nodepool_name"):
                if self.check_mode:
                    self.verdicts.append(V.NodeVerdict("nodepool/%s" % self.opts["karpenter_nodepool_name"], self.profile.name, [
                        V.not_available(V.CHECK_KARPENTER, "check mode: no test pods were created")]))
                else:
                    self.karpenter_phase()
            if self.opts.get("admission_policy_name"):
                self.admission_phase()
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
                self.timings["total_seconds"] = round(time.monotonic() - start, 3)
                if error:
                    self.cleanup["errors"].append(error)
        summary = V.summarize(self.verdicts, check_mode=self.check_mode)
        run = {
            "namespace": None if self.check_mode else self.namespace,
            "run_id": self.run_id,
            "check_mode": self.check_mode,
            "image": self.opts["image"],
            "profile": self.profile.to_dict(derived=True),
            "cleanup": self.cleanup,
        }
        return V.build_report(self.verdicts, self.timings, summary, run)


def _install_sigterm():
    def handler(signum, frame):  # pylint: disable=unused-argument
        raise VerifyInterrupted("SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        return None


def write_reports(report, json_path=None, junit_path=None):
    """Write the requested report files; returns the paths written."""
    written = {}
    for path, text in ((json_path, V.report_json), (junit_path, V.report_junit)):
        if not path:
            continue
        path = os.path.abspath(os.path.expanduser(path))
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text(report))
        os.replace(tmp, path)
        written[text.__name__] = path
    return written
