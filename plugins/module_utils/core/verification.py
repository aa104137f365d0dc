# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure verification core: what a sliced node must show, the verdict model, the node-side checks.

No I/O. ``ops/verifier.py`` reads the cluster and hands plain dicts (nodes, pods, pod logs)
to the functions here and in the other ``verification_*`` files; they return
:class:`CheckResult` objects:

* ``verification.py``: check names, :class:`CheckResult`, :class:`NodeVerdict`, what a node
  must show (``expectations``) and the node-side checks (labels, allocatable, plugin pod);
* ``verification_pods.py``: the test pods' manifests and the pod checks (two-slice pod
  rejected, N slices at once, one more Unschedulable, GPU UUIDs);
* ``verification_karpenter.py``: the Karpenter launch check;
* ``verification_waits.py``: when each wait of a run is done (pure predicates for
  ``kube/waiter.poll_until``);
* ``verification_report.py``: summary line, JSON and JUnit reports.

A new check goes where its evidence comes from (a node read: here; a test pod: pods) and
into the Verifier's phases (``ops/verifier.py``).

Three facts together prove sharing: allocatable == physical GPUs x replicas;
N one-slice pods Running at the same time on the node; all of them see the same GPU UUID.
A check is ``passed``, ``failed`` or ``not-available`` (evidence that cannot be had here,
for example GPU UUIDs on simulated nodes). ``not-available`` never fails a run and is
never turned into ``passed``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_COUNT_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_REPLICAS_LABEL,
    GPU_SHARING_LABEL,
    INSTANCE_GPU_COUNT_LABEL,
    PROFILE_LABEL,
    SIMULATED_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    STRATEGY_NONE,
    advertised_resource,
)

PASSED = "passed"
FAILED = "failed"
NOT_AVAILABLE = "not-available"
STATUSES = (PASSED, FAILED, NOT_AVAILABLE)

ANNOTATION_KWOK = "kwok.x-k8s.io/node"
SHARED_PRODUCT_SUFFIX = "-SHARED"

NOT_ON_SIMULATED = "not available on simulated nodes"

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


def metadata(obj):
    return obj.get("metadata") or {}


def node_labels(node):
    return metadata(node).get("labels") or {}


def is_simulated(node):
    """kwok fakes (annotation kwok.x-k8s.io/node: fake) or nodes labelled gpu-slicing.eks/simulated=true."""
    annotations = metadata(node).get("annotations") or {}
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
    names = [metadata(p).get("name") for p in plugin_pods]
    if ready:
        return passed(CHECK_PLUGIN_POD, "device-plugin pod %s is Ready" % metadata(ready[0]).get("name"),
                      "Ready", "Ready", details={"pods": names})
    phases = ["%s: %s" % (metadata(p).get("name"), (p.get("status") or {}).get("phase")) for p in plugin_pods]
    return failed(CHECK_PLUGIN_POD, "device-plugin pod not Ready (%s)" % ", ".join(phases), "Ready",
                  "not Ready", details={"pods": names})


def node_checks(node, profile, plugin_pods, default_profile=None):
    """Every node-side check for one node: (expectations, [CheckResult])."""
    exp = expectations(profile, node, default_profile=default_profile)
    name = metadata(node).get("name")
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


def skipped_pod_checks(reason, names=POD_CHECKS):
    return [not_available(name, reason) for name in names]
