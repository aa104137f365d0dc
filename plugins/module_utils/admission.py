# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Admission policies from the sharing profiles (pure core: no I/O, no Ansible).

From a SharingPlan this renders, as plain data for the API server:

* a MutatingAdmissionPolicy (``admissionregistration.k8s.io/v1``, GA in Kubernetes 1.36) + binding
  that turns a container's fractional GPU request (the seed's ``limits``/``requests``
  ``gpu: "0.5"``, or the pod annotation ``gpu-slicing.eks/gpu-fraction: "0.5"`` for the first
  container) into one slice of the pod's profile, the ``nvidia.com/gpu`` toleration and the
  profile's node selector;
* a ValidatingAdmissionPolicy + binding (actions selectable) that refuses what no slice serves;
* a second ValidatingAdmissionPolicy + binding, always ``Warn``, for slice requests without a
  profile selector when there are several profiles.

Which profile serves a request is the ``shared_gpu_pod_spec`` filter's rule: the profile named by
the pod's ``nvidia.com/device-plugin.config`` node selector, else the plan's default profile, and
that profile serves the fraction when ``sharing``'s container check accepts it (:func:`decide`).
:func:`profile_table` turns that rule into per-profile limits that are rendered into CEL, and the
unit tests prove the limits against :func:`decide`. See docs/ADMISSION.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import re
from fractions import Fraction

from ansible_collections.gpu_slicing.eks.plugins.module_utils import sharing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.sharing import (
    GPU_TAINT_KEY,
    PROFILE_LABEL,
    SEED_GPU_KEY,
    SharingError,
    advertised_resource,
    build_plan,
)

API_VERSION = "admissionregistration.k8s.io/v1"
ANNOTATION_FRACTION = "gpu-slicing.eks/gpu-fraction"
#: Set by the mutating policy on a pod whose GPU request no slice serves; the validating
#: policy refuses such pods with the text it holds (mutation runs before validation, and only
#: the validating phase can refuse).
ANNOTATION_REFUSED = "gpu-slicing.eks/admission-refused"
#: What a refused container asks for instead of ``gpu`` (the API server refuses the bare
#: ``gpu`` name): no node has it, so under Warn or Audit the pod stays Pending with this
#: name in its reason rather than running without a GPU.
UNSERVABLE_RESOURCE = "gpu-slicing.eks/unservable-gpu"
VALIDATION_ACTIONS = ("Deny", "Warn", "Audit")
DEFAULT_NAME = "gpu-slicing-eks"
DEFAULT_PLUGIN_NAMESPACE = "nvidia-device-plugin"
DEFAULT_NAMESPACE_LABEL = "gpu-slicing.eks/admission"
DEFAULT_NAMESPACE_LABEL_VALUE = "enabled"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: The API server keeps at most 9 decimal places of a quantity (it rounds up to nano units), so
#: a fraction f is served by 1/r slices exactly when f in nano units <= floor(10^9 / r).
NANO = 10 ** 9
ADMISSION_KEYS = ("name", "namespace_label", "namespace_label_value", "validation_actions", "plugin_namespace")

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --------------------------------------------------------------------------- the rule


def decide(plan, value, profile_name=None):
    """What the filter makes of one container asking for ``gpu: value`` on a pod whose profile
    selector is ``profile_name`` (None: no selector).

    Returns ``(profile name, resource, count)``; raises SharingError as the filter does.
    This is the filter's own code path: ``resolve_profile`` then the container check.
    """
    profile = sharing.resolve_profile(build_plan(plan), profile_name)
    container = {"name": "c", "resources": {"limits": {SEED_GPU_KEY: value}}}
    # pylint: disable-next=protected-access
    count = sharing._container_gpu_request(container, "containers[c]", profile)
    return profile.name, advertised_resource(profile), count


def _nano(frac):
    return int(frac * NANO)


def profile_table(plan):
    """Per profile, what the CEL needs: ``{name: {strategy, replicas, resource, max, fail}}``.

    ``max`` is the largest fraction (a quantity in nano units) one slice serves: the largest
    nano amount :func:`decide` accepts for that profile. Strategy none serves whole numbers only
    (``max`` empty). All values are strings so the CEL map literal has one value type.
    """
    plan = build_plan(plan)
    table = {}
    for prof in plan.profiles:
        limit = ""
        if prof.shared:
            nanos = NANO // prof.replicas
            # The rule's own answer decides: step down while decide() refuses (it does not for
            # floor(10^9/r), unless the rule changes; the unit tests check both sides).
            while nanos > 0:
                try:
                    decide(plan, Fraction(nanos, NANO), prof.name)
                    break
                except SharingError:
                    nanos -= 1
            limit = "%dn" % nanos
        table[prof.name] = {
            "strategy": prof.strategy,
            "replicas": str(prof.replicas),
            "resource": advertised_resource(prof),
            "max": limit,
            "fail": "true" if (prof.shared and prof.fail_requests_greater_than_one) else "false",
        }
    return table


# --------------------------------------------------------------------------- options


def normalize_options(options=None):
    """Validate the admission options; every error names the field, the value and the fix."""
    opts = dict(options or {})
    opts = {k: v for k, v in opts.items() if v is not None}
    for key in sorted(opts):
        if key not in ADMISSION_KEYS:
            raise SharingError("admission.%s" % key, opts[key], "remove it or use one of: %s" % ", ".join(ADMISSION_KEYS),
                               why="unknown key")
    name = opts.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or len(name) > 200 or not _NAME_RE.match(name):
        raise SharingError("admission.name", name, "use lower-case letters, digits and '-' (e.g. gpu-slicing-eks)",
                           why="not a valid object name prefix")
    label = opts.get("namespace_label", DEFAULT_NAMESPACE_LABEL)
    prefix, dummy, short = label.rpartition("/") if isinstance(label, str) else ("", "", "")
    if (not isinstance(label, str) or not short or len(short) > 63 or not _LABEL_NAME_RE.match(short)
            or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)))):
        raise SharingError("admission.namespace_label", label,
                           "use a label key such as gpu-slicing.eks/admission", why="not a valid label key")
    value = opts.get("namespace_label_value", DEFAULT_NAMESPACE_LABEL_VALUE)
    if not isinstance(value, str) or len(value) > 63 or not value or not _LABEL_VALUE_RE.match(value):
        raise SharingError("admission.namespace_label_value", value, "use a label value such as enabled",
                           why="not a valid, non-empty label value")
    actions = opts.get("validation_actions", ["Deny"])
    if isinstance(actions, str):
        actions = [actions]
    if (not isinstance(actions, (list, tuple)) or not actions
            or any(a not in VALIDATION_ACTIONS for a in actions) or len(set(actions)) != len(actions)):
        raise SharingError("admission.validation_actions", actions,
                           "give one or more of Deny, Warn, Audit (e.g. [Deny] or [Warn, Audit])",
                           why="unknown, repeated or no actions")
    if "Deny" in actions and "Warn" in actions:
        raise SharingError("admission.validation_actions", actions, "use Deny or Warn, not both (Audit goes with either)",
                           why="the API server refuses Deny and Warn together")
    plugin_ns = opts.get("plugin_namespace", DEFAULT_PLUGIN_NAMESPACE)
    if not isinstance(plugin_ns, str) or len(plugin_ns) > 63 or not _NAME_RE.match(plugin_ns):
        raise SharingError("admission.plugin_namespace", plugin_ns,
                           "give the device plugin's namespace, e.g. nvidia-device-plugin", why="not a namespace name")
    return {"name": name, "namespace_label": label, "namespace_label_value": value,
            "validation_actions": [a for a in VALIDATION_ACTIONS if a in actions], "plugin_namespace": plugin_ns}


# --------------------------------------------------------------------------- CEL


def _cel_str(text):
    """A CEL string literal (JSON's escaping is valid CEL for the characters used here)."""
    return json.dumps(text)


def _has_key(obj, field, key):
    return "has(%s.%s) && %s in %s.%s" % (obj, field, _cel_str(key), obj, field)


def _container_request(c, i, anno="variables.annotation"):
    """CEL: the container's seed-form request as text ('' when none): limits, then requests, then
    the pod annotation (first container only)."""
    lim = "has(%s.resources) && has(%s.resources.limits) && %s in %s.resources.limits" % (c, c, _cel_str(SEED_GPU_KEY), c)
    req = "has(%s.resources) && has(%s.resources.requests) && %s in %s.resources.requests" % (c, c, _cel_str(SEED_GPU_KEY), c)
    return ("(%s) ? string(%s.resources.limits[%s]) : ((%s) ? string(%s.resources.requests[%s]) : "
            "((%s == 0) ? %s : ''))"
            % (lim, c, _cel_str(SEED_GPU_KEY), req, c, _cel_str(SEED_GPU_KEY), i, anno))


def _serves(entry, q):
    """CEL: profile ``entry`` (a table row) serves quantity ``q`` (the rule of :func:`decide`)."""
    return ("(%s.strategy == 'none' ? %s.isInteger() : %s.compareTo(quantity(%s.max)) <= 0)"
            % (entry, q, q, entry))


def _verdict():
    """CEL, per container ``c`` at ``i``: '' when its request is served by the pod's profile (or
    it asks for none), else the message."""
    v = "variables.requests[i]"
    q = "quantity(%s)" % v
    p = "variables.table[variables.profile]"
    others = ("variables.table.filter(k, %s).map(k, %s + k).join(', ')"
              % (_serves("variables.table[k]", q), _cel_str(PROFILE_LABEL + ": ")))
    # The API server has already read a resources value as a quantity (0.5 is 500m by now): show
    # it as a decimal, as the user wrote it.
    where = "'container ' + c.name + ' asks for gpu: ' + (isQuantity(%s) ? string(%s.asApproximateFloat()) : %s)" % (v, q, v)
    checks = [
        ("!isQuantity({v})", "', which is not a number; fix: write a share of one GPU such as 0.5'"),
        ("!{q}.isGreaterThan(quantity('0'))", "', which is not a positive share; fix: write a share of one GPU such as 0.5'"),
        ("!(variables.profile in variables.table)",
         "' but its node selector {label}: ' + variables.profile + ' names no sharing profile; fix: use one of ' "
         "+ variables.names"),
        ("{p}.strategy != 'none' && {q}.compareTo(quantity('1')) >= 0",
         "', which means one or more whole GPUs, not a slice; fix: request nvidia.com/gpu (whole GPUs) on a "
         "profile with strategy none, or a share below 1'"),
        ("!{serves}",
         "', which profile ' + variables.profile + ({p}.strategy == 'none' ? ' (no sharing: whole GPUs only)' : "
         "' (one slice is 1/' + {p}.replicas + ' of a GPU)') + ' cannot serve; fix: ' + ({others} == '' ? "
         "'no profile serves it: request a share that one of ' + variables.names + ' serves' : "
         "'select a profile that serves it with nodeSelector ' + {others})"),
    ]
    expr = "''"
    for cond, msg in reversed(checks):
        expr = "(%s) ? %s + %s : %s" % (cond, where, msg, "(%s)" % expr)
    expr = "{v} == '' ? '' : (%s)" % expr
    return expr.format(v=v, q=q, p=p, label=PROFILE_LABEL, serves=_serves(p, q), others=others)


def _container_patches():
    """CEL, per container ``c`` at ``i``: its JSONPatch list."""
    base = "'/spec/containers/' + string(i) + '/resources'"
    ok = "variables.verdicts[i] == ''"
    p = "variables.table[variables.profile]"
    resource = "(%s ? %s.resource : %s)" % (ok, p, _cel_str(UNSERVABLE_RESOURCE))
    count = "(%s && %s.strategy == 'none' ? string(quantity(variables.requests[i]).asInteger()) : '1')" % (ok, p)
    has_res = "has(c.resources)"
    lim = "has(c.resources) && has(c.resources.limits)"
    lim_gpu = "%s && 'gpu' in c.resources.limits" % lim
    req_gpu = "has(c.resources) && has(c.resources.requests) && 'gpu' in c.resources.requests"
    add = "JSONPatch{op: 'add', path: %s, value: %s}"
    return (
        "variables.requests[i] == '' ? [] : "
        "(({lim_gpu}) ? [JSONPatch{{op: 'remove', path: {base} + '/limits/gpu'}}] : []) + "
        "(({req_gpu}) ? [JSONPatch{{op: 'remove', path: {base} + '/requests/gpu'}}, {add_req}] : []) + "
        "[({lim}) ? {add_lim} : (({has_res}) ? {add_lims} : {add_res})]"
    ).format(
        lim_gpu=lim_gpu, req_gpu=req_gpu, lim=lim, has_res=has_res, base=base,
        add_req=add % ("%s + '/requests/' + jsonpatch.escapeKey(%s)" % (base, resource), count),
        add_lim=add % ("%s + '/limits/' + jsonpatch.escapeKey(%s)" % (base, resource), count),
        add_lims=add % ("%s + '/limits'" % base, "{%s: %s}" % (resource, count)),
        add_res=add % (base, "{'limits': {%s: %s}}" % (resource, count)),
    )


def _variables(plan):
    table = profile_table(plan)
    names = ", ".join(p.name for p in plan.profiles)
    return [
        {"name": "table", "expression": json.dumps(table, sort_keys=True)},
        {"name": "names", "expression": _cel_str(names)},
        {"name": "profile", "expression": "has(object.spec.nodeSelector) && %s in object.spec.nodeSelector ? "
                                          "object.spec.nodeSelector[%s] : %s"
                                          % (_cel_str(PROFILE_LABEL), _cel_str(PROFILE_LABEL), _cel_str(plan.default_profile))},
        {"name": "annotation", "expression": "%s ? object.metadata.annotations[%s] : ''"
                                             % (_has_key("object.metadata", "annotations", ANNOTATION_FRACTION),
                                                _cel_str(ANNOTATION_FRACTION))},
    ]


def _match(opts):
    return {
        "namespaceSelector": {"matchExpressions": [
            {"key": opts["namespace_label"], "operator": "In", "values": [opts["namespace_label_value"]]},
            {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn",
             "values": sorted({"kube-system", opts["plugin_namespace"]})},
        ]},
        "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
    }


def _obj(kind, name, spec):
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gpu_slicing.eks"}},
            "spec": spec}


def render_policies(plan, options=None):
    """The admission objects for ``plan`` (a SharingPlan or a sharing spec), in apply order.

    Raises SharingError (nothing rendered) when the plan or the options are invalid.
    """
    plan = build_plan(plan)
    opts = normalize_options(options)
    name = opts["name"]
    anno = _variables(plan)[-1]["expression"]
    any_request = "object.spec.containers.transformList(i, c, %s).exists(r, r != '')" % _container_request("c", "i", "(%s)" % anno)
    tolerated = ("has(object.spec.tolerations) && object.spec.tolerations.exists(t, (has(t.key) ? t.key == %s : "
                 "(has(t.operator) && t.operator == 'Exists')) && (!has(t.effect) || t.effect == 'NoSchedule'))"
                 % _cel_str(GPU_TAINT_KEY))
    toleration = "{'key': %s, 'operator': 'Exists', 'effect': 'NoSchedule'}" % _cel_str(GPU_TAINT_KEY)
    pod_patches = (
        "variables.verdicts.exists(m, m != '') ? "
        "[has(object.metadata.annotations) ? "
        "JSONPatch{op: 'add', path: '/metadata/annotations/' + jsonpatch.escapeKey(%(refused)s), "
        "value: variables.verdicts.filter(m, m != '').join('; ')} : "
        "JSONPatch{op: 'add', path: '/metadata/annotations', value: {%(refused)s: variables.verdicts.filter(m, m != '').join('; ')}}] : "
        "((%(tolerated)s) ? [] : [has(object.spec.tolerations) ? "
        "JSONPatch{op: 'add', path: '/spec/tolerations/-', value: %(toleration)s} : "
        "JSONPatch{op: 'add', path: '/spec/tolerations', value: [%(toleration)s]}]) + "
        "[has(object.spec.nodeSelector) ? "
        "JSONPatch{op: 'add', path: '/spec/nodeSelector/' + jsonpatch.escapeKey(%(label)s), value: variables.profile} : "
        "JSONPatch{op: 'add', path: '/spec/nodeSelector', value: {%(label)s: variables.profile}}]"
    ) % {"refused": _cel_str(ANNOTATION_REFUSED), "tolerated": tolerated, "toleration": toleration,
         "label": _cel_str(PROFILE_LABEL)}
    mutating = _obj("MutatingAdmissionPolicy", name, {
        "failurePolicy": "Fail",
        "reinvocationPolicy": "Never",
        "matchConstraints": _match(opts),
        "matchConditions": [{"name": "gpu-fraction-request", "expression": any_request}],
        "variables": _variables(plan) + [
            {"name": "requests", "expression": "object.spec.containers.transformList(i, c, %s)" % _container_request("c", "i")},
            {"name": "verdicts", "expression": "object.spec.containers.transformList(i, c, %s)" % _verdict()},
        ],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": (
            "object.spec.containers.transformList(i, c, %s).flatten() + (%s)" % (_container_patches(), pod_patches)
        )}}],
    })
    table = profile_table(plan)
    resources = sorted({row["resource"] for row in table.values()})
    row = "variables.table[variables.profile]"
    slice_count = "quantity(string(c.resources.limits[%s.resource]))" % row
    too_many = ("has(c.resources) && has(c.resources.limits) && %s.resource in c.resources.limits && %s.fail == 'true' "
                "&& %s.compareTo(quantity('1')) > 0" % (row, row, slice_count))
    validating = _obj("ValidatingAdmissionPolicy", name, {
        "failurePolicy": "Fail",
        "matchConstraints": _match(opts),
        "variables": _variables(plan),
        "validations": [
            {"expression": "!(%s)" % _has_key("object.metadata", "annotations", ANNOTATION_REFUSED),
             "messageExpression": "'GPU request refused: ' + object.metadata.annotations[%s]" % _cel_str(ANNOTATION_REFUSED),
             "reason": "Invalid"},
            {"expression": "!(variables.profile in variables.table) || !object.spec.containers.exists(c, %s)" % too_many,
             "messageExpression": (
                 "'GPU request refused: ' + object.spec.containers.filter(c, %s).map(c, 'container ' + c.name + "
                 "' asks for ' + string(c.resources.limits[%s.resource]) + ' ' + %s.resource + ' but profile ' + "
                 "variables.profile + ' gives one slice per container (' + (%s.strategy == 'mps' ? 'MPS' : "
                 "'fail_requests_greater_than_one') + '); fix: request 1 per container and run more pods, or use a "
                 "profile without fail_requests_greater_than_one').join('; ')" % (too_many, row, row, row)),
             "reason": "Invalid"},
        ],
    })
    slice_request = "object.spec.containers.exists(c, has(c.resources) && has(c.resources.limits) && %s.exists(r, r in c.resources.limits))" % json.dumps(resources)
    no_selector = "!(%s)" % _has_key("object.spec", "nodeSelector", PROFILE_LABEL)
    warning = _obj("ValidatingAdmissionPolicy", name + "-warn", {
        "failurePolicy": "Ignore",
        "matchConstraints": _match(opts),
        "validations": [{
            "expression": "!(%s && %s && %s)" % ("true" if len(plan.profiles) > 1 else "false", slice_request, no_selector),
            "message": "the pod requests a GPU slice without nodeSelector %s, so it may land on a node of any of the "
                       "profiles %s, whose slices differ; fix: set nodeSelector %s: <profile>"
                       % (PROFILE_LABEL, ", ".join(plan.profile_names), PROFILE_LABEL),
            "reason": "Invalid"}],
    })
    return [
        mutating,
        _obj("MutatingAdmissionPolicyBinding", name, {"policyName": name}),
        validating,
        _obj("ValidatingAdmissionPolicyBinding", name,
             {"policyName": name, "validationActions": list(opts["validation_actions"])}),
        warning,
        _obj("ValidatingAdmissionPolicyBinding", name + "-warn", {"policyName": name + "-warn", "validationActions": ["Warn"]}),
    ]
