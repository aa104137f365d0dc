# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure verification core: what a sliced node must show, verdicts, summary and reports.

No I/O. ``verification_run.py`` reads the cluster and hands plain dicts (nodes, pods,
pod logs) to the functions here; they return :class:`CheckResult` objects.

Three facts together prove sharing (FACTS.md): allocatable == physical GPUs x replicas;
N one-slice pods Running at the same time on the node; all of them see the same GPU UUID.
A check is ``passed``, ``failed`` or ``not-available`` (evidence that cannot be had here,
for example GPU UUIDs on simulated nodes). ``not-available`` never fails a run and is
never turned into ``passed``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import json
import re
from xml.sax.saxutils import escape, quoteattr

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    STRATEGY_NONE,
    advertised_resource,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_COUNT_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_REPLICAS_LABEL,
    GPU_SHARING_LABEL,
    GPU_TAINT_KEY,
    INSTANCE_GPU_COUNT_LABEL,
    INSTANCE_TYPE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PROFILE_LABEL,
    SIMULATED_LABEL,
)

PASSED = "passed"
FAILED = "failed"
NOT_AVAILABLE = "not-available"
STATUSES = (PASSED, FAILED, NOT_AVAILABLE)

ANNOTATION_KWOK = "kwok.x-k8s.io/node"
SHARED_PRODUCT_SUFFIX = "-SHARED"

NOT_ON_SIMULATED = "not available on simulated nodes"
UUID_RE = re.compile(r"\bGPU-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")

# Check names (stable: they are the JUnit test case names and the keys users filter on).
CHECK_PROFILE_LABEL = "profile_label"
CHECK_GPU_COUNT = "gpu_count_label"
CHECK_ALLOCATABLE = "allocatable"
CHECK_GFD_REPLICAS = "gfd_replicas_label"
CHECK_GFD_STRATEGY = "gfd_sharing_strategy_label"
CHECK_GFD_PRODUCT = "gfd_product_label"
CHECK_PLUGIN_POD = "device_plugin_pod_ready"
CHECK_MULTI_SLICE = "multi_slice_request_rejected"
CHECK_CONCURRENT = "slices_running_concurrently"
CHECK_LIMIT = "extra_pod_unschedulable"
CHECK_UUID = "gpu_uuid_shared"
CHECK_KARPENTER = "karpenter_node_count"

POD_CHECKS = (CHECK_MULTI_SLICE, CHECK_CONCURRENT, CHECK_LIMIT, CHECK_UUID)


class CheckResult(object):
    """One verdict: name, status (passed | failed | not-available), reason, expected, observed."""

    __slots__ = ("name", "status", "reason", "expected", "observed", "details")

    def __init__(self, name, status, reason, expected=None, observed=None, details=None):
        if status not in STATUSES:
            raise ValueError("status must be one of %s, got %r" % (", ".join(STATUSES), status))
        self.name = name
        self.status = status
        self.reason = reason
        self.expected = expected
        self.observed = observed
        self.details = details

    @property
    def failed(self):
        return self.status == FAILED

    def to_dict(self):
        data = {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "expected": self.expected,
            "observed": self.observed,
        }
        if self.details:
            data["details"] = self.details
        return data

    def __repr__(self):
        return "CheckResult(%r, %r, %r)" % (self.name, self.status, self.reason)


def passed(name, reason, expected=None, observed=None, details=None):
    return CheckResult(name, PASSED, reason, expected, observed, details)


def failed(name, reason, expected=None, observed=None, details=None):
    return CheckResult(name, FAILED, reason, expected, observed, details)


def not_available(name, reason, expected=None, observed=None, details=None):
    return CheckResult(name, NOT_AVAILABLE, reason, expected, observed, details)


class NodeVerdict(object):
    """All checks of one node. Status: failed if any check failed, else passed."""

    def __init__(self, node, profile, checks=None, timings=None):
        self.node = node
        self.profile = profile
        self.checks = list(checks or [])
        self.timings = dict(timings or {})

    def add(self, check):
        self.checks.append(check)
        return check

    def check(self, name):
        for item in self.checks:
            if item.name == name:
                return item
        return None

    @property
    def status(self):
        return FAILED if any(c.failed for c in self.checks) else PASSED

    @property
    def failed_checks(self):
        return [c for c in self.checks if c.failed]

    def to_dict(self):
        return {
            "node": self.node,
            "profile": self.profile,
            "status": self.status,
            "checks": [c.to_dict() for c in self.checks],
            "timings": self.timings,
        }


# --------------------------------------------------------------------------- node facts


def _meta(obj):
    return obj.get("metadata") or {}


def node_labels(node):
    return _meta(node).get("labels") or {}


def is_simulated(node):
    """kwok fakes (annotation kwok.x-k8s.io/node: fake) or nodes labelled gpu-slicing.eks/simulated=true."""
    annotations = _meta(node).get("annotations") or {}
    return annotations.get(ANNOTATION_KWOK) == "fake" or node_labels(node).get(SIMULATED_LABEL) == "true"


def _int_or_none(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def quantity_int(value):
    """Extended-resource quantities are whole numbers ("4"); anything else -> None."""
    if value is None:
        return None
    return _int_or_none(value)


def physical_gpus(node):
    """(count, source): GFD's nvidia.com/gpu.count, else EKS/Karpenter's instance-gpu-count."""
    labels = node_labels(node)
    for key in (GPU_COUNT_LABEL, INSTANCE_GPU_COUNT_LABEL):
        count = _int_or_none(labels.get(key))
        if count is not None:
            return count, key
    return None, None


def expectations(profile, node, default_profile=None):
    """What ``node`` must show under ``profile`` (a SharingProfile)."""
    gpus, source = physical_gpus(node)
    resource = advertised_resource(profile)
    exp = {
        "profile": profile.name,
        "profile_label": profile.name,
        "profile_label_may_be_absent": default_profile == profile.name,
        "physical_gpus": gpus,
        "physical_gpus_source": source,
        "resource": resource,
        "replicas": profile.replicas,
        "sharing_strategy": profile.strategy,
        "product_shared_suffix": profile.shared and not profile.rename_by_default,
        "allocatable": None if gpus is None else gpus * profile.replicas,
        "slice_pods": None if gpus is None else gpus * profile.replicas,
        "fail_requests_greater_than_one": profile.fail_requests_greater_than_one,
        "simulated": is_simulated(node),
    }
    if profile.shared and profile.rename_by_default:
        exp["plain_resource_allocatable"] = 0
    return exp


# --------------------------------------------------------------------------- node-side checks


def check_profile_label(node, exp):
    value = node_labels(node).get(PROFILE_LABEL)
    if value == exp["profile_label"]:
        return passed(CHECK_PROFILE_LABEL, "node label %s selects profile %s" % (PROFILE_LABEL, value),
                      exp["profile_label"], value)
    if value is None and exp["profile_label_may_be_absent"]:
        return passed(CHECK_PROFILE_LABEL,
                      "no %s label: the plugin's default config (%s) applies" % (PROFILE_LABEL, exp["profile"]),
                      exp["profile_label"], None)
    return failed(CHECK_PROFILE_LABEL,
                  "node label %s is %r, not the profile under test %r" % (PROFILE_LABEL, value, exp["profile_label"]),
                  exp["profile_label"], value)


def check_gpu_count(node, exp):
    value = node_labels(node).get(GPU_COUNT_LABEL)
    if _int_or_none(value) is not None and _int_or_none(value) > 0:
        return passed(CHECK_GPU_COUNT, "GFD reports %s physical GPU(s)" % value, ">= 1", int(value))
    reason = "GFD label %s is missing or not a positive number (GPU feature discovery not running?)" % GPU_COUNT_LABEL
    return failed(CHECK_GPU_COUNT, reason, ">= 1", value)


def check_allocatable(node, exp):
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    resource = exp["resource"]
    raw = allocatable.get(resource)
    observed = quantity_int(raw)
    if exp["allocatable"] is None:
        return failed(CHECK_ALLOCATABLE,
                      "cannot compute the expected %s: the node has neither %s nor %s"
                      % (resource, GPU_COUNT_LABEL, INSTANCE_GPU_COUNT_LABEL), None, raw)
    expected = exp["allocatable"]
    if observed == expected:
        return passed(CHECK_ALLOCATABLE, "allocatable %s = %d = %d GPU(s) x %d replicas"
                      % (resource, observed, exp["physical_gpus"], exp["replicas"]), expected, observed)
    if observed is None:
        why = "the node advertises no %s" % resource
    elif exp["physical_gpus"] and observed == exp["physical_gpus"] and exp["replicas"] > 1:
        why = "the node advertises one %s per physical GPU: the plugin runs without the sharing config" % resource
    else:
        why = "allocatable %s is %s" % (resource, observed)
    return failed(CHECK_ALLOCATABLE, "%s; expected %d (%d GPU(s) x %d replicas)"
                  % (why, expected, exp["physical_gpus"], exp["replicas"]), expected, observed)


def check_gfd_replicas(node, exp):
    value = node_labels(node).get(GPU_REPLICAS_LABEL)
    expected = exp["replicas"]
    if _int_or_none(value) == expected:
        return passed(CHECK_GFD_REPLICAS, "%s=%s" % (GPU_REPLICAS_LABEL, value), expected, expected)
    return failed(CHECK_GFD_REPLICAS, "%s is %r, expected %d" % (GPU_REPLICAS_LABEL, value, expected),
                  expected, _int_or_none(value) if _int_or_none(value) is not None else value)


def check_gfd_strategy(node, exp):
    value = node_labels(node).get(GPU_SHARING_LABEL)
    expected = exp["sharing_strategy"]
    if value == expected or (value is None and expected == STRATEGY_NONE):
        return passed(CHECK_GFD_STRATEGY, "%s=%s" % (GPU_SHARING_LABEL, value), expected, value)
    return failed(CHECK_GFD_STRATEGY, "%s is %r, expected %r" % (GPU_SHARING_LABEL, value, expected),
                  expected, value)


def check_gfd_product(node, exp):
    value = node_labels(node).get(GPU_PRODUCT_LABEL)
    want_suffix = exp["product_shared_suffix"]
    expected = "ends with %s" % SHARED_PRODUCT_SUFFIX if want_suffix else "no %s suffix" % SHARED_PRODUCT_SUFFIX
    if value is None:
        return failed(CHECK_GFD_PRODUCT, "GFD label %s is missing" % GPU_PRODUCT_LABEL, expected, None)
    has_suffix = value.endswith(SHARED_PRODUCT_SUFFIX)
    if has_suffix == want_suffix:
        return passed(CHECK_GFD_PRODUCT, "%s=%s" % (GPU_PRODUCT_LABEL, value), expected, value)
    return failed(CHECK_GFD_PRODUCT, "%s=%s: expected %s" % (GPU_PRODUCT_LABEL, value, expected), expected, value)


def pod_condition(pod, ctype):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def pod_ready(pod):
    cond = pod_condition(pod, "Ready")
    return bool(cond) and cond.get("status") == "True"


PLUGIN_CONTAINER = "nvidia-device-plugin-ctr"


def is_plugin_pod(pod):
    """The device plugin's own pod (the chart's GFD and MPS pods carry the same app label)."""
    return any(c.get("name") == PLUGIN_CONTAINER for c in (pod.get("spec") or {}).get("containers") or [])


def is_bottlerocket(node):
    return "bottlerocket" in str(((node.get("status") or {}).get("nodeInfo") or {}).get("osImage", "")).lower()


def check_plugin_pod(node_name, plugin_pods, node=None):
    """``plugin_pods``: the chart's pods whose spec.nodeName is this node (GFD pods are ignored)."""
    plugin_pods = [p for p in plugin_pods if is_plugin_pod(p)]
    if not plugin_pods and node is not None and is_bottlerocket(node):
        return not_available(CHECK_PLUGIN_POD, "Bottlerocket runs the device plugin in the OS, not as a pod",
                             "Ready", None)
    if not plugin_pods:
        return failed(CHECK_PLUGIN_POD, "no NVIDIA device-plugin pod is scheduled on %s" % node_name, "Ready", None)
    ready = [p for p in plugin_pods if pod_ready(p)]
    names = [_meta(p).get("name") for p in plugin_pods]
    if ready:
        return passed(CHECK_PLUGIN_POD, "device-plugin pod %s is Ready" % _meta(ready[0]).get("name"),
                      "Ready", "Ready", details={"pods": names})
    phases = ["%s: %s" % (_meta(p).get("name"), (p.get("status") or {}).get("phase")) for p in plugin_pods]
    return failed(CHECK_PLUGIN_POD, "device-plugin pod not Ready (%s)" % ", ".join(phases), "Ready",
                  "not Ready", details={"pods": names})


def node_checks(node, profile, plugin_pods, default_profile=None):
    """Every node-side check for one node: (expectations, [CheckResult])."""
    exp = expectations(profile, node, default_profile=default_profile)
    name = _meta(node).get("name")
    checks = [
        check_profile_label(node, exp),
        check_gpu_count(node, exp),
        check_allocatable(node, exp),
        check_gfd_replicas(node, exp),
        check_gfd_strategy(node, exp),
        check_gfd_product(node, exp),
        check_plugin_pod(name, plugin_pods, node),
    ]
    return exp, checks


# --------------------------------------------------------------------------- test pods


def parse_time(value):
    """RFC 3339 timestamps as the API server writes them -> aware datetime (None when absent)."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # drop fractional seconds (fromisoformat on 3.6 is picky)
        head, dummy, tail = text.partition(".")
        offset = ""
        for sign in ("+", "-"):
            if sign in tail:
                offset = sign + tail.split(sign, 1)[1]
        text = head + offset
    return datetime.datetime.strptime(text.replace("+00:00", "+0000"), "%Y-%m-%dT%H:%M:%S%z")


def _iso(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def pod_times(pod):
    """start (status.startTime), ready (Ready condition's lastTransitionTime) and scheduled times."""
    status = pod.get("status") or {}
    ready = pod_condition(pod, "Ready")
    sched = pod_condition(pod, "PodScheduled")
    return {
        "pod": _meta(pod).get("name"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": status.get("phase"),
        "created": _meta(pod).get("creationTimestamp"),
        "scheduled": sched.get("lastTransitionTime") if sched and sched.get("status") == "True" else None,
        "started": status.get("startTime"),
        "ready": ready.get("lastTransitionTime") if ready and ready.get("status") == "True" else None,
    }


def pod_running_ready(pod):
    """Running and (where the node reports readiness) Ready."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    ready = pod_condition(pod, "Ready")
    return ready is None or ready.get("status") == "True"


def pod_unschedulable(pod):
    """Pending with PodScheduled=False reason Unschedulable (kube-scheduler found no room)."""
    status = pod.get("status") or {}
    cond = pod_condition(pod, "PodScheduled")
    return (status.get("phase") == "Pending" and not (pod.get("spec") or {}).get("nodeName")
            and bool(cond) and cond.get("status") == "False" and cond.get("reason") == "Unschedulable")


def overlap_window(pods, observed_at):
    """The window in which every pod was Running at once: [latest ready/start, observed_at].

    ``observed_at``: aware datetime of the API read that saw them all Running together.
    Returns dict(start, end, seconds) or None when times are missing.
    """
    starts = []
    for pod in pods:
        times = pod_times(pod)
        stamp = parse_time(times["ready"] or times["started"])
        if stamp is None:
            return None
        starts.append(stamp)
    if not starts:
        return None
    start = max(starts)
    end = observed_at
    # API timestamps have whole seconds; the observing read may be in the same second.
    seconds = max(0.0, (end - start).total_seconds())
    return {"start": _iso(start), "end": _iso(end), "seconds": seconds, "earliest_start": _iso(min(starts))}


def check_concurrent(node_name, exp, pods, observed_at, timed_out=False, waited=None):
    """N one-slice pods Running on the node at the same time (``pods``: one API read)."""
    expected = exp["slice_pods"]
    running = [p for p in pods if pod_running_ready(p) and (p.get("spec") or {}).get("nodeName") == node_name]
    elsewhere = [p for p in pods if (p.get("spec") or {}).get("nodeName") not in (None, node_name)]
    pending = [p for p in pods if pod_unschedulable(p)]
    details = {"pods": [pod_times(p) for p in pods]}
    if waited is not None:
        details["waited_seconds"] = round(waited, 3)
    if elsewhere:
        return failed(CHECK_CONCURRENT, "%d test pod(s) were scheduled on another node" % len(elsewhere),
                      expected, len(running), details)
    if expected is not None and len(running) == expected and len(pods) == expected:
        window = overlap_window(running, observed_at)
        details["overlap"] = window
        return passed(CHECK_CONCURRENT,
                      "%d one-slice pods Running at the same time on %s (all Running together from %s, seen at %s)"
                      % (expected, node_name, window and window["start"], window and window["end"]),
                      expected, len(running), details)
    why = "only %d of %d one-slice pods Running at the same time" % (len(running), expected)
    if pending:
        why += "; %d Pending as Unschedulable" % len(pending)
    if timed_out:
        why += " (timed out after %ss)" % (round(waited) if waited is not None else "?")
    return failed(CHECK_CONCURRENT, why, expected, len(running), details)


def check_extra_pod(node_name, pod, timed_out=False):
    """The (N+1)th one-slice pod must stay Pending, PodScheduled=False reason Unschedulable."""
    expected = "Pending, PodScheduled=False reason Unschedulable"
    if pod is None:
        return failed(CHECK_LIMIT, "the extra pod was not found", expected, None)
    status = pod.get("status") or {}
    cond = pod_condition(pod, "PodScheduled") or {}
    observed = "%s, PodScheduled=%s reason %s" % (status.get("phase"), cond.get("status"), cond.get("reason"))
    details = {"message": cond.get("message"), "pod": pod_times(pod)}
    if pod_unschedulable(pod):
        return passed(CHECK_LIMIT, "one pod more than the slice count stays Pending: %s" % (cond.get("message") or ""),
                      expected, observed, details)
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        return failed(CHECK_LIMIT, "the extra pod was scheduled on %s: the node has more slices than expected" % node,
                      expected, observed, details)
    why = "the scheduler did not mark the extra pod Unschedulable"
    if timed_out:
        why += " before the timeout"
    return failed(CHECK_LIMIT, why, expected, observed, details)


def multi_slice_not_applicable(exp):
    return not_available(CHECK_MULTI_SLICE,
                         "not applicable: the profile does not set fail_requests_greater_than_one",
                         None, None)


def check_multi_slice(pod, timed_out=False, run_timed_out=False):
    """With failRequestsGreaterThanOne a two-slice pod must fail admission or never be scheduled.

    ``timed_out``: the full multi-slice wait passed without a decision (Pending then counts as
    never scheduled). ``run_timed_out``: the run's overall timeout cut the wait short (no verdict).
    """
    expected = "Failed (UnexpectedAdmissionError) or never scheduled"
    if pod is None:
        return failed(CHECK_MULTI_SLICE, "the two-slice pod was not found", expected, None)
    status = pod.get("status") or {}
    phase = status.get("phase")
    reason = status.get("reason")
    observed = "%s%s" % (phase, " (%s)" % reason if reason else "")
    details = {"message": status.get("message"), "pod": pod_times(pod)}
    if phase == "Failed" and reason == "UnexpectedAdmissionError":
        return passed(CHECK_MULTI_SLICE, "a two-slice pod was rejected at admission: %s" % (status.get("message") or ""),
                      expected, observed, details)
    if phase == "Pending" and not (pod.get("spec") or {}).get("nodeName") and timed_out and not run_timed_out:
        cond = pod_condition(pod, "PodScheduled") or {}
        return passed(CHECK_MULTI_SLICE, "a two-slice pod was never scheduled (%s)" % (cond.get("message") or "Pending"),
                      expected, observed, details)
    if phase in ("Running", "Succeeded"):
        return failed(CHECK_MULTI_SLICE, "a two-slice pod was admitted and ran: the plugin accepts requests > 1",
                      expected, observed, details)
    if phase == "Failed":
        return failed(CHECK_MULTI_SLICE, "the two-slice pod failed for another reason: %s" % (status.get("message") or reason),
                      expected, observed, details)
    why = "no verdict before the run's timeout" if run_timed_out else "no verdict before the timeout"
    return failed(CHECK_MULTI_SLICE, "%s (pod %s)" % (why, observed), expected, observed, details)


def gpu_uuids(log_text):
    """Distinct GPU UUIDs (GPU-xxxxxxxx-...) in a log, in order of appearance."""
    seen = []
    for match in UUID_RE.findall(log_text or ""):
        if match not in seen:
            seen.append(match)
    return seen


def check_gpu_uuids(node, exp, logs):
    """Each pod sees one GPU and the pods share one UUID per physical GPU (real nodes only).

    ``logs``: {pod name: log text or None when it could not be read}.
    """
    if exp["simulated"]:
        return not_available(CHECK_UUID, NOT_ON_SIMULATED, exp["physical_gpus"], None)
    expected = exp["physical_gpus"]
    per_pod = {}
    problems = []
    for name in sorted(logs):
        text = logs[name]
        if text is None:
            problems.append("%s: log not readable" % name)
            continue
        found = gpu_uuids(text)
        per_pod[name] = found
        if len(found) != 1:
            problems.append("%s: %d GPU UUIDs in its log" % (name, len(found)))
    distinct = sorted(set(u for found in per_pod.values() for u in found))
    details = {"per_pod": per_pod, "vector_add_passed": {n: ("Test PASSED" in (logs[n] or "")) for n in logs}}
    if not logs:
        return failed(CHECK_UUID, "no pod logs to read", expected, None, details)
    if problems:
        return failed(CHECK_UUID, "; ".join(problems), expected, len(distinct), details)
    if len(distinct) == expected:
        return passed(CHECK_UUID, "%d pods share %d GPU UUID(s): %s" % (len(per_pod), len(distinct), ", ".join(distinct)),
                      expected, len(distinct), details)
    return failed(CHECK_UUID, "%d distinct GPU UUIDs across %d pods, expected %s (one per physical GPU)"
                  % (len(distinct), len(per_pod), expected), expected, len(distinct), details)


# --------------------------------------------------------------------------- Karpenter launch check
# M pending one-slice pods pinned to one NodePool and one instance type must make Karpenter launch
# ceil((M - free slices on the pool's existing nodes of that type) / (GPUs x replicas)) nodes: the
# number it launches only when it knows a GPU holds `replicas` slices (NodeOverlay).


def nodepool_instance_types(nodepool):
    """The instance types a NodePool admits through ``node.kubernetes.io/instance-type In [...]``,
    or None when it does not restrict them that way."""
    spec = ((nodepool.get("spec") or {}).get("template") or {}).get("spec") or {}
    for req in spec.get("requirements") or []:
        if req.get("key") == INSTANCE_TYPE_LABEL and req.get("operator") == "In":
            return list(req.get("values") or [])
    return None


def karpenter_instance_type(nodepool, requested=None):
    """(instance type, None) the launch check pins its pods to, or (None, reason) when there is
    no single answer: ``requested`` when given (it must be admitted by the NodePool), else the
    NodePool's only instance type."""
    admitted = nodepool_instance_types(nodepool)
    if requested:
        if admitted is not None and requested not in admitted:
            return None, ("karpenter_instance_type %s is not admitted by the NodePool (it admits %s)"
                          % (requested, ", ".join(admitted)))
        return requested, None
    if admitted and len(admitted) == 1:
        return admitted[0], None
    return None, ("the NodePool admits %s; give karpenter_instance_type so the expected node count is defined"
                  % ("instance types " + ", ".join(admitted) if admitted else "any instance type"))


def karpenter_expected_nodes(pods, slices_per_node, free_slices=0):
    """Nodes Karpenter needs for ``pods`` one-slice pods: ceil((pods - free) / slices per node)."""
    missing = max(0, int(pods) - max(0, int(free_slices)))
    return -(-missing // int(slices_per_node))


def check_karpenter_launch(nodepool, instance_type, pods, slices_per_node, free_slices, launched,
                           running, timed_out=False, waited=None):
    """Verdict of the launch check. ``launched``: names of the NodeClaims created during the check;
    ``running``: how many of the ``pods`` test pods ran."""
    expected = karpenter_expected_nodes(pods, slices_per_node, free_slices)
    details = {"nodepool": nodepool, "instance_type": instance_type, "pods": pods,
               "slices_per_node": slices_per_node, "free_slices_before": free_slices,
               "nodeclaims_launched": sorted(launched), "pods_running": running,
               "waited_seconds": None if waited is None else round(waited, 3)}
    observed = len(launched)
    if timed_out and running < pods:
        return failed(CHECK_KARPENTER, "timed out: %d of %d pods Running after %s s, %d NodeClaim(s) launched"
                      % (running, pods, details["waited_seconds"], observed), expected, observed, details)
    if observed == expected:
        return passed(CHECK_KARPENTER, "%d pods -> %d node(s) (%d slices per %s, %d free before): the minimum"
                      % (pods, observed, slices_per_node, instance_type, free_slices), expected, observed, details)
    hint = ""
    if observed > expected:
        hint = (": Karpenter over-provisions; it does not know a GPU holds %d slices (is the NodeOverlay feature "
                "gate on and the NodeOverlay for %s in place?)" % (slices_per_node, instance_type))
    return failed(CHECK_KARPENTER, "%d pods -> %d node(s), expected %d%s" % (pods, observed, expected, hint),
                  expected, observed, details)


def skipped_pod_checks(reason, names=POD_CHECKS):
    return [not_available(name, reason) for name in names]


# --------------------------------------------------------------------------- pod manifests


def restricted_security_context():
    """Container securityContext that passes Pod Security Admission 'restricted'."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_pod(name, namespace, node_name, resource, slices_requested, image, command, run_id, role,
             resources=None, extra_tolerations=None, labels=None, node_selector=None):
    """A one-container pod pinned to ``node_name`` through the scheduler (node affinity on
    metadata.name, as DaemonSets do), so kube-scheduler still counts the node's slices.
    With ``node_name`` None it goes wherever ``node_selector`` allows (the Karpenter check)."""
    res = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    for key in ("requests", "limits"):
        res[key].update((resources or {}).get(key) or {})
    res["requests"][resource] = str(slices_requested)
    res["limits"][resource] = str(slices_requested)
    tolerations = [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations.extend(extra_tolerations or [])
    meta_labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/name": "gpu-slicing-verify",
        "gpu-slicing.eks/verify-run": run_id,
        "gpu-slicing.eks/verify-role": role,
    }
    meta_labels.update(labels or {})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": meta_labels,
            "annotations": {"gpu-slicing.eks/node": node_name} if node_name else {},
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": tolerations,
            "containers": [{
                "name": "cuda",
                "image": image,
                "command": list(command),
                "env": [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"}],
                "resources": res,
                "securityContext": restricted_security_context(),
            }],
        },
    }
    if node_name:
        pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}
    if node_selector:
        pod["spec"]["nodeSelector"] = dict(node_selector)
    return pod


def default_command(hold_seconds):
    """Print the GPU UUID, run NVIDIA's vectorAdd sample, then hold the slice until deleted."""
    return ["/bin/sh", "-c",
            "nvidia-smi -L; /cuda-samples/vectorAdd || ./vectorAdd; sleep %d" % int(hold_seconds)]


# --------------------------------------------------------------------------- summary and reports


def summarize(verdicts, check_mode=False):
    """One line: overall verdict, counts and what failed (node: check expected/observed)."""
    total = len(verdicts)
    bad = [v for v in verdicts if v.status == FAILED]
    counts = {s: 0 for s in STATUSES}
    for v in verdicts:
        for c in v.checks:
            counts[c.status] += 1
    head = "GPU slicing verification %s: %d node(s), %d failed; checks %d passed, %d failed, %d not available" % (
        "FAILED" if bad else "PASSED", total, len(bad), counts[PASSED], counts[FAILED], counts[NOT_AVAILABLE])
    if check_mode:
        head += " (check mode: node-side checks only, no test pods)"
    if not bad:
        return head
    parts = []
    for v in bad:
        items = ["%s (expected %s, observed %s)" % (c.name, _short(c.expected), _short(c.observed))
                 for c in v.failed_checks]
        parts.append("%s: %s" % (v.node, ", ".join(items)))
    return head + " -- " + "; ".join(parts)


def _short(value):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_report(verdicts, timings, summary, run=None):
    """The structured result (also the JSON report's content)."""
    return {
        "passed": all(v.status != FAILED for v in verdicts) and bool(verdicts),
        "summary": summary,
        "nodes": [v.to_dict() for v in verdicts],
        "timings": timings,
        "run": run or {},
    }


def report_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def report_junit(report, suite_name="gpu_slicing.eks.verify"):
    """JUnit XML: one testsuite per node, one testcase per check; not-available -> skipped."""
    nodes = report.get("nodes") or []
    total_tests = sum(len(n["checks"]) for n in nodes)
    total_fail = sum(1 for n in nodes for c in n["checks"] if c["status"] == FAILED)
    total_skip = sum(1 for n in nodes for c in n["checks"] if c["status"] == NOT_AVAILABLE)
    seconds = (report.get("timings") or {}).get("total_seconds", 0) or 0
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<testsuites name=%s tests="%d" failures="%d" skipped="%d" time="%.3f">'
             % (quoteattr(suite_name), total_tests, total_fail, total_skip, seconds)]
    for node in nodes:
        checks = node["checks"]
        fails = sum(1 for c in checks if c["status"] == FAILED)
        skips = sum(1 for c in checks if c["status"] == NOT_AVAILABLE)
        lines.append('  <testsuite name=%s tests="%d" failures="%d" skipped="%d" errors="0">'
                     % (quoteattr("%s.%s" % (suite_name, node["node"])), len(checks), fails, skips))
        lines.append('    <properties><property name="profile" value=%s/></properties>'
                     % quoteattr(str(node.get("profile"))))
        for check in checks:
            lines.append('    <testcase classname=%s name=%s>'
                         % (quoteattr("%s.%s" % (suite_name, node["node"])), quoteattr(check["name"])))
            detail = "expected: %s\nobserved: %s" % (
                json.dumps(check.get("expected"), default=str), json.dumps(check.get("observed"), default=str))
            if check["status"] == FAILED:
                lines.append('      <failure message=%s type="failed">%s</failure>'
                             % (quoteattr(check["reason"]), escape(detail)))
            elif check["status"] == NOT_AVAILABLE:
                lines.append('      <skipped message=%s/>' % quoteattr(check["reason"]))
            else:
                lines.append('      <system-out>%s</system-out>' % escape(check["reason"] + "\n" + detail))
            lines.append('    </testcase>')
        lines.append('  </testsuite>')
    lines.append('</testsuites>')
    return "\n".join(lines) + "\n"
