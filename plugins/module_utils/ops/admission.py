# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""admission_policy's work: write, check or remove the admission policies and their bindings.

Typed options in (:class:`AdmissionOptions`, validated before the API is contacted), a result
dict out. The objects come from the pure core (core/admission.py); this file only reads and
writes them. Order: every read and every server dry run before the first write, so nothing is
written when the API server would refuse any object.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import admission
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import MANAGED_BY, MANAGED_BY_LABEL

API = admission.API_VERSION
UNSERVED_MUTATING = (
    "The cluster does not serve %s MutatingAdmissionPolicy (GA and on by default in Kubernetes 1.36)"
    % admission.API_VERSION)


class AdmissionOptions(object):
    """The module's options, checked: ``state``, ``plan`` (a SharingPlan, None for absent),
    ``scope`` (core/admission.normalize_options' dict) and ``mutating_policy_required``."""

    def __init__(self, state, plan, scope, mutating_policy_required):
        self.state = state
        self.plan = plan
        self.scope = scope
        self.mutating_policy_required = mutating_policy_required

    @property
    def name(self):
        return self.scope["name"]

    @classmethod
    def from_params(cls, params):
        """From the module's params; raises InvalidInput naming the field, the value and the fix."""
        state = params.get("state") or "present"
        try:
            scope = admission.normalize_options({
                "name": params.get("name"),
                "namespace_label": params.get("namespace_label"),
                "namespace_label_value": params.get("namespace_label_value"),
                "validation_actions": params.get("validation_actions"),
                "plugin_namespace": params.get("device_plugin_namespace"),
            })
            plan = None
            if state == "present":
                if not params.get("profiles"):
                    raise InvalidInput("profiles", params.get("profiles"),
                                       "give the same profiles as to device_plugin, e.g. [{name: ts-4, replicas: 4}]",
                                       why="the policies are rendered from the sharing profiles")
                plan = sharing_plan(params)
                admission.render_policies(plan, scope)  # the rule's own checks, before any request
        except InvalidInput as err:
            # Validation errors of the pure core, re-raised as the collection's one input error.
            field = err.field.replace("admission.plugin_namespace", "device_plugin_namespace").replace("admission.", "")
            raise InvalidInput(field, err.value, err.fix, why=err.why) from None
        return cls(state, plan, scope, bool(params.get("mutating_policy_required")))


class _Changes(object):
    """What one run did to each object: ``objects`` (kind, name, action) and Ansible's diff list."""

    def __init__(self, kube, diff):
        self.kube = kube
        self.diff = diff
        self.objects = []
        self.diffs = []

    def record(self, kind, name, action, result=None):
        self.objects.append({"kind": kind, "name": name, "action": action})
        if self.diff and result and result.get("changed"):
            seen = result.get("diff") or {}
            header = "%s/%s" % (kind, name)
            self.diffs.append({"before_header": header, "after_header": header,
                               "before": seen.get("before", {}), "after": seen.get("after", {})})

    @property
    def changed(self):
        return any(o["action"] in ("created", "updated", "deleted") for o in self.objects)

    def apply(self, obj, existed):
        res = self.kube.ensure(obj)
        action = ("updated" if existed else "created") if res.get("changed") else "unchanged"
        self.record(obj["kind"], obj["metadata"]["name"], action, res)

    def delete(self, kind, name):
        stub = {"apiVersion": API, "kind": kind, "metadata": {"name": name}}
        self.record(kind, name, "deleted", self.kube.ensure(stub, state="absent"))


def _served(kube, kind):
    """Whether the API server serves ``kind`` in admissionregistration.k8s.io/v1. A kind missing
    from kubernetes.core's discovery cache (which never expires) is looked up once more."""
    if kube.resource(kind, API) is not None:
        return True
    kube.forget_discovery()
    return kube.resource(kind, API) is not None


def _existing(kube, served):
    """{(kind, name): object} of the objects under this run's names that exist now."""
    found = {}
    for kind, name in served:
        obj = kube.get(kind, API, name)
        if obj is not None:
            found[(kind, name)] = obj
    return found


def admission_policy(options, context):
    """The operation: ``state: present`` writes the policies and bindings (the validating ones
    only, with a warning, where MutatingAdmissionPolicy is not served), ``absent`` removes them."""
    kube = context.kube
    mutating = _served(kube, admission.MUTATING_KIND)
    validating = _served(kube, admission.VALIDATING_KIND)
    kinds = {admission.MUTATING_KIND: mutating, admission.VALIDATING_KIND: validating}
    names = [(k, n) for k, n in admission.removal_order(options.name) if kinds[k.replace("Binding", "")]]
    existing = _existing(kube, names)
    for (kind, name), obj in sorted(existing.items()):
        if admission.foreign(obj) and options.state == "present":
            raise GpuSlicingError(
                "%s %s exists and was not written by gpu_slicing.eks (no label %s=%s): nothing was written. "
                "Fix: choose another name, or remove that object" % (kind, name, MANAGED_BY_LABEL, MANAGED_BY),
                kind="conflict")
    changes = _Changes(kube, context.diff)
    result = {"mutating_policy_served": mutating, "validating_policy_served": validating}
    if options.state == "absent":
        for kind, name in names:
            obj = existing.get((kind, name))
            if obj is None:
                continue
            if admission.foreign(obj):
                context.warn("%s %s was not written by gpu_slicing.eks: left in place" % (kind, name))
                continue
            changes.delete(kind, name)
        return _result(changes, result)

    if not validating:
        raise GpuSlicingError("The cluster does not serve %s ValidatingAdmissionPolicy (GA since Kubernetes 1.30): "
                              "nothing was written. Fix: upgrade the cluster to 1.30 or later (1.36 for the mutating "
                              "policy too)" % API, kind="unsupported")
    if not mutating:
        if options.mutating_policy_required:
            raise GpuSlicingError("%s: nothing was written (mutating_policy_required is true). Fix: upgrade the cluster "
                                  "to Kubernetes 1.36, or set mutating_policy_required: false to write the validating "
                                  "policies only" % UNSERVED_MUTATING, kind="unsupported")
        context.warn("%s: only the validating policies are written. Fractional requests (gpu: \"0.5\") are not "
                     "rewritten, and the API server refuses the bare gpu name; slice requests that the profile "
                     "cannot serve are still refused. Fix: upgrade to Kubernetes 1.36 for the rewrite, or set "
                     "mutating_policy_required: true to fail instead" % UNSERVED_MUTATING)
    rendered = admission.render_policies(options.plan, options.scope, mutating=mutating)
    wanted = admission.write_order(rendered, mutating=mutating)
    # The API server checks every object (schema, CEL compilation, references) before anything is written.
    for obj in wanted:
        kube.dry_run_apply(obj)
    for obj in wanted:
        changes.apply(obj, (obj["kind"], obj["metadata"]["name"]) in existing)
    keep = {(o["kind"], o["metadata"]["name"]) for o in wanted}
    for kind, name in names:
        # Objects of this name that the plan no longer needs (the -warn pair once one profile is left).
        if (kind, name) in existing and (kind, name) not in keep:
            changes.delete(kind, name)
    result.update(
        scope={"namespace_label": options.scope["namespace_label"],
               "namespace_label_value": options.scope["namespace_label_value"],
               "excluded_namespaces": sorted({"kube-system", options.scope["plugin_namespace"]})},
        validation_actions=options.scope["validation_actions"],
        profile_table=admission.profile_table(options.plan),
        default_profile=options.plan.default_profile,
    )
    return _result(changes, result)


def _result(changes, result):
    result.update(changed=changes.changed, objects=changes.objects)
    if changes.diffs:
        result["diff"] = changes.diffs
    return result
