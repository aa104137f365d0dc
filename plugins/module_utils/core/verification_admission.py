# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure: the admission check of the verification (option admission_policy_name).

What gpu_slicing_verify sends to check that the policies are active (two server dry-run pods,
so nothing is created) and how it judges the API server's answers; the I/O is
``ops/verify_admission.py``'s. The rule the pods are judged by is ``admission.decide``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.admission import (
    ANNOTATION_REFUSED,
    UNSERVABLE_RESOURCE,
    serves_value,
    decide,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_TAINT_KEY,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PROFILE_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.pod_spec import SEED_GPU_KEY
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_waits import service_account_missing

CHECK_ADMISSION = "admission_policies_active"
PROBE_NAME = "gpu-slicing-admission-probe"
_REFUSED_VALUE = "1.5"


def _probe_value(profile):
    """The largest share with 3 decimals that one slice of ``profile`` serves ("1" for strategy
    none). 3 decimals, because the API server rounds resources values up to milli units."""
    if not profile.shared:
        return "1"
    return "0.%03d" % (1000 // profile.replicas)


def probe_pods(plan, namespace, image, profile_name=None):
    """The two dry-run pods: ``rewrite`` (the seed's form, a share the profile serves: the mutating
    policy must turn it into one slice, the toleration and the node selector) and ``refuse`` (a
    share no slice serves: the validating policy must refuse it). Returns ``{role: (pod, expected)}``;
    ``expected`` of ``rewrite`` is what ``admission.decide`` (the filter's rule) makes of it."""
    plan = build_plan(plan)
    profile = plan.profile(profile_name)
    value = _probe_value(profile)
    expected = decide(plan, value, profile.name)
    if serves_value(plan, _REFUSED_VALUE, profile.name):
        raise InvalidInput("profiles.%s" % profile.name, _REFUSED_VALUE, "report it: admission.probe_pods",
                           why="the refusal probe is served by the rule")

    def pod(role, share):
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "%s-%s" % (PROBE_NAME, role), "namespace": namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
                # Pod Security "restricted" (the verification's namespace enforces it).
                "spec": {"nodeSelector": {PROFILE_LABEL: profile.name},
                         "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [{"name": "probe", "image": image,
                                         "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}},
                                         "resources": {"limits": {SEED_GPU_KEY: share}}}]}}
    return {"rewrite": (pod("rewrite", value), expected), "refuse": (pod("refuse", _REFUSED_VALUE), None)}


def _limits(obj):
    containers = ((obj or {}).get("spec") or {}).get("containers") or [{}]
    return (containers[0].get("resources") or {}).get("limits") or {}


def service_account_ready(answers):
    """True once no probe answer is the refusal a new namespace gives before its default
    ServiceAccount exists (the probes are then judged on what admission said)."""
    return not any(service_account_missing(error) for dummy, error in answers.values())


def judge_probes(probes, answers, validation_actions=("Deny",)):
    """The check from the API server's answers to :func:`probe_pods`' pods.

    ``answers`` is ``{role: (object or None, error text or None)}``: the dry run's object when the
    server admitted the pod, else its error. Returns a verification CheckResult.
    """
    pod, expected = probes["rewrite"]
    obj, error = answers["rewrite"]
    profile, resource, count = expected
    namespace = pod["metadata"]["namespace"]
    sent = "gpu: %s with nodeSelector %s: %s" % (_limits(pod)[SEED_GPU_KEY], PROFILE_LABEL, profile)
    want = {"limits": {resource: str(count)}, "nodeSelector": profile}
    if obj is None:
        why = ("the API server refused the bare gpu name itself: no mutating policy matched (is namespace %s "
               "labelled, and are the policies written?)" % namespace
               if error and "must be a standard resource type" in error else "the pod was refused: %s" % error)
        return V.failed(CHECK_ADMISSION, "the pod asking for %s was not rewritten: %s" % (sent, why),
                        expected=want, observed=error)
    seen = {"limits": _limits(obj), "nodeSelector": ((obj.get("spec") or {}).get("nodeSelector") or {}).get(PROFILE_LABEL)}
    tolerated = any(t.get("key") == GPU_TAINT_KEY for t in (obj.get("spec") or {}).get("tolerations") or [])
    if seen != want or not tolerated:
        return V.failed(CHECK_ADMISSION, "the pod asking for %s was admitted but not rewritten as the rule says" % sent,
                        expected=want, observed=dict(seen, toleration=tolerated))
    obj, error = answers["refuse"]
    refused = "gpu: %s" % _REFUSED_VALUE
    if "Deny" in validation_actions:
        if obj is None and error and "GPU request refused" in error:
            return V.passed(CHECK_ADMISSION, "%s was rewritten to %s %s on profile %s; %s was refused: %s"
                            % (sent, count, resource, profile, refused, error.strip()),
                            expected=want, observed=seen)
        return V.failed(CHECK_ADMISSION, "the pod asking for %s was %s, not refused by the validating policy"
                        % (refused, "admitted" if obj is not None else "refused for another reason"),
                        expected="GPU request refused: ...", observed=error or _limits(obj))
    # Warn or Audit admit the pod: the mutating policy's verdict is what can be seen.
    if obj is not None and UNSERVABLE_RESOURCE in _limits(obj) and ANNOTATION_REFUSED in (
            (obj.get("metadata") or {}).get("annotations") or {}):
        return V.passed(CHECK_ADMISSION, "%s was rewritten to %s %s on profile %s; %s was admitted with "
                        "validationActions %s, marked %s and asking for %s (it stays Pending)"
                        % (sent, count, resource, profile, refused, ", ".join(validation_actions),
                           ANNOTATION_REFUSED, UNSERVABLE_RESOURCE), expected=want, observed=seen)
    return V.failed(CHECK_ADMISSION, "the pod asking for %s was not marked as unservable" % refused,
                    expected={"limits": {UNSERVABLE_RESOURCE: "1"}}, observed=error or _limits(obj))
