# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: when each wait of a verification run is done.

``ops/verifier.py`` polls the cluster through ``kube/waiter.poll_until``; what counts as done
lives here, as functions of what a poll read and the time it read it (the caller passes the
time in, so a unit test drives every settle window without waiting). Some waits need memory
across polls ("Running for 3 s", "no change for 10 s"): :class:`Since` keeps it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification import CHECK_PLUGIN_POD, CHECK_PROFILE_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_pods import (
    check_concurrent,
    gpu_uuids,
    pod_running_ready,
    pod_unschedulable,
)

NODE_ANNOTATION = "gpu-slicing.eks/node"


class Since(object):
    """How long each key has been in its current state, as seen by the polls.

    ``held(key, state, now)`` is 0 the first time ``key`` is seen in ``state`` (or after it
    left it) and then the seconds since that poll.
    """

    def __init__(self):
        self._seen = {}

    def held(self, key, state, now):
        old = self._seen.get(key)
        if old is None or old[0] != state:
            self._seen[key] = (state, now)
            return 0.0
        return now - old[1]


def nothing_left(value):
    """A read found nothing: the object is deleted (None) or the list is empty."""
    return not value


# --------------------------------------------------------------------------- node-side evidence


def node_evidence_pending(checks):
    """A node's failed checks include evidence a fresh rollout publishes late: a GFD label or
    the advertised allocatable not there yet (observed None), or the plugin pod not Ready.

    Such a node is read again; a wrong value (a label or allocatable that is there and
    differs) and a wrong profile label (the user's, it does not lag) are judged at once.
    """
    return any(c.failed and c.name != CHECK_PROFILE_LABEL and (c.observed is None or c.name == CHECK_PLUGIN_POD)
               for c in checks)


# --------------------------------------------------------------------------- two-slice pods


class MultiSliceWait(object):
    """The two-slice pods: each must fail (admission), succeed, or stay Running ``settle`` s.

    Running is only final once it holds for a moment: an emulated kubelet (kwok + the
    device-plugin emulator) shows Running briefly before it records the rejection.
    """

    def __init__(self, settle):
        self.settle = settle
        self._since = Since()

    def decided(self, pod, now):
        if pod is None:
            return False
        phase = (pod.get("status") or {}).get("phase")
        held = self._since.held((pod.get("metadata") or {}).get("name"), phase, now)
        if phase in ("Failed", "Succeeded"):
            return True
        return phase == "Running" and held >= self.settle

    def all_decided(self, pods, names, now):
        """``pods``: {pod name: pod} of one read at ``now``; ``names``: the pods waited for."""
        return all(self.decided(pods.get(name), now) for name in names)


# --------------------------------------------------------------------------- one-slice pods


def slice_pods_by_node(pods):
    """The one-slice pods of one read by the node they were made for (their annotation)."""
    by_node = {}
    for pod in pods:
        node = ((pod.get("metadata") or {}).get("annotations") or {}).get(NODE_ANNOTATION)
        by_node.setdefault(node, []).append(pod)
    return by_node


class SlicePodsWait(object):
    """N one-slice pods per node. A node is decided by the first read that shows

    * all N Running (and Ready) on it at once: the concurrency check passes;
    * every pod Running or Unschedulable and no change for ``grace`` seconds: the rest stay
      Unschedulable, the check fails with the numbers;
    * the run's timeout: the check fails as timed out.

    ``exps``: {node name: expectations}; the nodes stay in ``open`` until decided.
    """

    def __init__(self, exps, grace):
        self.exps = exps
        self.grace = grace
        self.open = list(exps)
        self._since = Since()

    @property
    def done(self):
        return not self.open

    def step(self, pods, now, observed_at, timed_out=False, waited=None):
        """Decide what this read (``pods`` at monotonic ``now``, wall clock ``observed_at``)
        settles: a list of (node name, CheckResult, all N ran)."""
        by_node = slice_pods_by_node(pods)
        decided = []
        for name in list(self.open):
            node_pods = by_node.get(name, [])
            exp = self.exps[name]
            running = [p for p in node_pods if pod_running_ready(p) and p["spec"].get("nodeName") == name]
            if len(running) == exp["slice_pods"]:
                decided.append((name, check_concurrent(name, exp, node_pods, observed_at, waited=waited), True))
                self.open.remove(name)
                continue
            quiet = all(pod_running_ready(p) or pod_unschedulable(p) for p in node_pods)
            settled = quiet and self._since.held(name, True, now) >= self.grace
            if not quiet:
                self._since.held(name, False, now)
            if timed_out or settled:
                check = check_concurrent(name, exp, node_pods, observed_at, timed_out=timed_out, waited=waited)
                if settled and not timed_out:
                    check.reason += " (no change for %ss: the rest stay Unschedulable)" % int(self.grace)
                decided.append((name, check, False))
                self.open.remove(name)
        return decided


def extra_pod_decided(pod):
    """The (N+1)th pod has its answer: Unschedulable, or bound to a node (a failure)."""
    return pod is not None and (pod_unschedulable(pod) or bool((pod.get("spec") or {}).get("nodeName")))


# --------------------------------------------------------------------------- logs and Karpenter


def logs_complete(logs):
    """Every pod's log shows a GPU UUID (``logs``: {pod name: text or None})."""
    return all(gpu_uuids(text) for text in logs.values())


def karpenter_settled(running, pods, unchanged_for, settle):
    """The launch check may count: every pod runs and neither the Running count nor the set of
    launched NodeClaims changed for ``settle`` seconds (late launches count too)."""
    return running == pods and unchanged_for >= settle


def service_account_missing(error):
    """The refusal a new namespace gives a pod until the controller-manager has made its default
    ServiceAccount (seconds; longer while it catches up after an API server restart)."""
    # The API server's Status body is JSON: the quotes in its message come escaped.
    text = "%s %s" % (error or "", getattr(error, "body", None) or "")
    return 'serviceaccount "default" not found' in text.replace('\\"', '"')
