# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the verification's test pods and the checks on what they show.

The pods' manifests (Pod Security ``restricted``, placed by kube-scheduler), their state
(Running and Ready, Unschedulable, start and ready times) and the pod checks: a two-slice pod
is rejected, N one-slice pods run at once, one more stays Unschedulable, and on real GPUs
every pod of a GPU prints the same UUID."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import re

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import GPU_TAINT_KEY, MANAGED_BY, MANAGED_BY_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification import (
    CHECK_CONCURRENT,
    CHECK_LIMIT,
    CHECK_MULTI_SLICE,
    CHECK_UUID,
    NOT_ON_SIMULATED,
    failed,
    metadata,
    not_available,
    passed,
    pod_condition,
)

UUID_RE = re.compile(r"\bGPU-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")


# --------------------------------------------------------------------------- test pods

#: Every object of a verification run carries its run id; its test pods also their role.
RUN_LABEL = "gpu-slicing.eks/verify-run"
ROLE_LABEL = "gpu-slicing.eks/verify-role"


def run_namespace(name, run_id):
    """The Namespace of a verification run (Pod Security ``restricted`` enforced)."""
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
        "pod": metadata(pod).get("name"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": status.get("phase"),
        "created": metadata(pod).get("creationTimestamp"),
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
        RUN_LABEL: run_id,
        ROLE_LABEL: role,
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
