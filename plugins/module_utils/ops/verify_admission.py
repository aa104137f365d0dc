# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The admission check of a verification run (option admission_policy_name).

A phase of ``ops/verifier.Verifier``: the pods it sends and how their answers are judged are
pure code in ``core/verification_admission.py`` (``probe_pods``, ``judge_probes``); here is only the I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification as V
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_admission as VA
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import verification_pods as P
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message


def admission_phase(run):
    """The admission policies of ``admission_policy_name`` are active: in a second namespace of
    this run, created with their opt-in label (the test pods' namespace stays out of their
    reach), one pod the mutating policy must rewrite and one the validating policy must refuse,
    both as server dry runs."""
    name = run.opts.admission_policy_name
    verdict = V.NodeVerdict("admission/%s" % name, run.profile.name)
    run.verdicts.append(verdict)
    binding_kind = admission.VALIDATING_KIND + "Binding"
    scope = admission.scope_of(run.kube.get(admission.VALIDATING_KIND, admission.API_VERSION, name),
                               run.kube.get(binding_kind, admission.API_VERSION, name))
    if scope is None:
        verdict.add(V.failed(VA.CHECK_ADMISSION, "no ValidatingAdmissionPolicy %s with its binding written by "
                             "gpu_slicing.eks; fix: write them with the admission_policy module" % name))
        return
    if run.check_mode:
        verdict.add(V.not_available(VA.CHECK_ADMISSION, "check mode: no namespace to send the pods to"))
        return
    if run.kube.get(admission.MUTATING_KIND, admission.API_VERSION, name) is None:
        verdict.add(V.not_available(VA.CHECK_ADMISSION, "no MutatingAdmissionPolicy %s (the cluster may not "
                                    "serve it): nothing to rewrite" % name))
        return
    label, value, actions = scope
    namespace = P.run_namespace(run.namespace + "-admission", run.run_id)
    namespace["metadata"]["labels"][label] = value
    run.kube.create(namespace)
    try:
        probes = VA.probe_pods(run.plan, namespace["metadata"]["name"], run.opts.image, run.profile.name)

        def answers():
            out = {}
            for role, (pod, dummy) in probes.items():
                try:
                    out[role] = (run.kube.dry_run_apply(pod), None)
                except Exception as exc:  # pylint: disable=broad-except
                    out[role] = (None, error_message(exc))
            return out

        # A new namespace refuses pods until its default ServiceAccount exists.
        dummy, seen, dummy = run.wait(answers, VA.service_account_ready, 30)
        verdict.add(VA.judge_probes(probes, seen, actions))
    finally:
        run.kube.delete("Namespace", "v1", namespace["metadata"]["name"])
