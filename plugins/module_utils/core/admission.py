# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Admission policies from the sharing profiles (pure core: no I/O, no Ansible).

From a SharingPlan this renders, as plain data for the API server:

* a MutatingAdmissionPolicy (``admissionregistration.k8s.io/v1``, GA in Kubernetes 1.36) + binding
  that, in pods and in the pod templates of workloads and CronJobs (:data:`TARGETS`), turns a
  container's fractional GPU request (the seed's ``limits``/``requests`` ``gpu: "0.5"``, or the
  pod annotation ``gpu-slicing.eks/gpu-fraction: "0.5"`` for the first
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
from fractions import Fraction

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import pod_spec, sharing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    advertised_resource,
    build_plan,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.pod_spec import SEED_GPU_KEY
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    DNS_LABEL_RE,
    DNS_SUBDOMAIN_RE,
    GPU_TAINT_KEY,
    LABEL_NAME_RE,
    LABEL_VALUE_RE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PROFILE_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

API_VERSION = "admissionregistration.k8s.io/v1"
ANNOTATION_FRACTION = "gpu-slicing.eks/gpu-fraction"
#: Set by the mutating policy on a pod whose GPU request no slice serves; the validating
#: policy refuses such pods with the text it holds (mutation runs before validation, and only
#: the validating phase can refuse).
ANNOTATION_REFUSED = "gpu-slicing.eks/admission-refused"
#: Set by the mutating policy on a pod the validating policies must look at (refused, or a
#: direct request that is more than one slice or has no profile selector). The pods' validating
#: policies select on it when the mutating policy is written, so every other pod costs the API
#: server one policy's CEL conversion instead of three (see benchmarks/README.md, g.). Users
#: cannot avoid it: the mutating policy sets it on every pod that needs it, over any value given.
LABEL_CHECK = "gpu-slicing.eks/admission-check"
LABEL_CHECK_VALUE = "true"
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


# --------------------------------------------------------------------------- the rule


def decide(plan, value, profile_name=None):
    """What the filter makes of one container asking for ``gpu: value`` on a pod whose profile
    selector is ``profile_name`` (None: no selector).

    Returns ``(profile name, resource, count)``; raises InvalidInput as the filter does.
    This is the filter's own code path: ``resolve_profile`` then the container check.
    """
    profile = sharing.resolve_profile(build_plan(plan), profile_name)
    container = {"name": "c", "resources": {"limits": {SEED_GPU_KEY: value}}}
    # pylint: disable-next=protected-access
    count = pod_spec.container_gpu_request(container, "containers[c]", profile)
    return profile.name, advertised_resource(profile), count


def _accepts(plan, nanos, name):
    return serves_value(plan, Fraction(nanos, NANO), name)


def serves_value(plan, value, name):
    try:
        decide(plan, value, name)
        return True
    except InvalidInput:
        return False


def profile_table(plan):
    """Per profile, what the CEL needs: ``{name: {strategy, replicas, resource, max, fail}}``.

    ``max`` is the largest share (a quantity in nano units) one slice serves: floor(10^9 / r),
    confirmed against the rule itself (:func:`decide` accepts it and refuses one nano unit more),
    so the CEL cannot drift from the filter. Strategy none serves whole numbers only (``max``
    empty). All values are strings so the CEL map literal has one value type.
    """
    plan = build_plan(plan)
    table = {}
    for prof in plan.profiles:
        limit = ""
        if prof.shared:
            nanos = NANO // prof.replicas
            if not _accepts(plan, nanos, prof.name) or _accepts(plan, nanos + 1, prof.name):
                raise InvalidInput(
                    "profiles.%s" % prof.name, "%dn" % nanos,
                    "report it: admission.profile_table must follow sharing's container check",
                    why="the filter's rule no longer has its boundary at 1/replicas")
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
            raise InvalidInput("admission.%s" % key, opts[key], "remove it or use one of: %s" % ", ".join(ADMISSION_KEYS),
                               why="unknown key")
    name = opts.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or len(name) > 200 or not DNS_LABEL_RE.match(name):
        raise InvalidInput("admission.name", name, "use lower-case letters, digits and '-' (e.g. gpu-slicing-eks)",
                           why="not a valid object name prefix")
    label = opts.get("namespace_label", DEFAULT_NAMESPACE_LABEL)
    prefix, dummy, short = label.rpartition("/") if isinstance(label, str) else ("", "", "")
    if (not isinstance(label, str) or not short or len(short) > 63 or not LABEL_NAME_RE.match(short)
            or (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix)))):
        raise InvalidInput("admission.namespace_label", label,
                           "use a label key such as gpu-slicing.eks/admission", why="not a valid label key")
    value = opts.get("namespace_label_value", DEFAULT_NAMESPACE_LABEL_VALUE)
    if not isinstance(value, str) or len(value) > 63 or not value or not LABEL_VALUE_RE.match(value):
        raise InvalidInput("admission.namespace_label_value", value, "use a label value such as enabled",
                           why="not a valid, non-empty label value")
    actions = opts.get("validation_actions", ["Deny"])
    if isinstance(actions, str):
        actions = [actions]
    if (not isinstance(actions, (list, tuple)) or not actions
            or any(a not in VALIDATION_ACTIONS for a in actions) or len(set(actions)) != len(actions)):
        raise InvalidInput("admission.validation_actions", actions,
                           "give one or more of Deny, Warn, Audit (e.g. [Deny] or [Warn, Audit])",
                           why="unknown, repeated or no actions")
    if "Deny" in actions and "Warn" in actions:
        raise InvalidInput("admission.validation_actions", actions, "use Deny or Warn, not both (Audit goes with either)",
                           why="the API server refuses Deny and Warn together")
    plugin_ns = opts.get("plugin_namespace", DEFAULT_PLUGIN_NAMESPACE)
    if not isinstance(plugin_ns, str) or len(plugin_ns) > 63 or not DNS_LABEL_RE.match(plugin_ns):
        raise InvalidInput("admission.plugin_namespace", plugin_ns,
                           "give the device plugin's namespace, e.g. nvidia-device-plugin", why="not a namespace name")
    return {"name": name, "namespace_label": label, "namespace_label_value": value,
            "validation_actions": [a for a in VALIDATION_ACTIONS if a in actions], "plugin_namespace": plugin_ns}


# --------------------------------------------------------------------------- CEL


def _cel_str(text):
    """A CEL string literal (JSON's escaping is valid CEL for the characters used here)."""
    return json.dumps(text)


def _has_key(obj, field, key):
    return "has(%s.%s) && %s in %s.%s" % (obj, field, _cel_str(key), obj, field)


# Where the pod spec sits in each kind the policies rewrite. The CEL and JSON paths below are
# written for a Pod with the tokens @S@ (CEL: the pod spec), @M@ (CEL: the pod metadata), @HM@
# (CEL: whether that metadata exists), @JS@ and @JM@ (their JSONPatch paths); each target
# replaces them. Workloads are rewritten in their template: the API server validates a
# template as a pod and would refuse the seed's bare gpu name before any pod exists.
TARGETS = (
    {"suffix": "", "rules": [("", ["pods"])], "operations": ["CREATE"],
     "@S@": "object.spec", "@M@": "object.metadata", "@HM@": "true", "@JS@": "/spec", "@JM@": "/metadata"},
    {"suffix": "-workloads", "rules": [("apps", ["daemonsets", "deployments", "replicasets", "statefulsets"]),
                                       ("batch", ["jobs"])],
     "operations": ["CREATE", "UPDATE"],
     "@S@": "object.spec.template.spec", "@M@": "object.spec.template.metadata",
     "@HM@": "has(object.spec.template.metadata)", "@JS@": "/spec/template/spec", "@JM@": "/spec/template/metadata"},
    {"suffix": "-cronjobs", "rules": [("batch", ["cronjobs"])], "operations": ["CREATE", "UPDATE"],
     "@S@": "object.spec.jobTemplate.spec.template.spec", "@M@": "object.spec.jobTemplate.spec.template.metadata",
     "@HM@": "has(object.spec.jobTemplate.spec.template.metadata)",
     "@JS@": "/spec/jobTemplate/spec/template/spec", "@JM@": "/spec/jobTemplate/spec/template/metadata"},
)
_TOKENS = ("@HM@", "@S@", "@M@", "@JS@", "@JM@")


def _at(data, target):
    """``data`` with the tokens replaced for ``target`` (strings inside dicts and lists too)."""
    if isinstance(data, dict):
        return {key: _at(value, target) for key, value in data.items()}
    if isinstance(data, list):
        return [_at(value, target) for value in data]
    if isinstance(data, str):
        for token in _TOKENS:
            data = data.replace(token, target[token])
    return data


def _container_request(c, i, anno="variables.annotation"):
    """CEL: the container's seed-form request as text ('' when none): limits, then requests, then
    the pod annotation (first container, and only while it asks for no nvidia.com resource: the
    pods of a rewritten template keep the annotation)."""
    lim = "has(%s.resources) && has(%s.resources.limits) && 'gpu' in %s.resources.limits" % (c, c, c)
    req = "has(%s.resources) && has(%s.resources.requests) && 'gpu' in %s.resources.requests" % (c, c, c)
    no_gpu = ("!(has(%s.resources) && has(%s.resources.limits) && %s.resources.limits.exists(k, "
              "k.startsWith('nvidia.com/') || k == %s))" % (c, c, c, _cel_str(UNSERVABLE_RESOURCE)))
    return ("(%s) ? string(%s.resources.limits['gpu']) : ((%s) ? string(%s.resources.requests['gpu']) : "
            "((%s == 0 && %s) ? %s : ''))" % (lim, c, req, c, i, no_gpu, anno))


def _serves(entry, q):
    """CEL: profile ``entry`` (a table row) serves quantity ``q`` (the rule of :func:`decide`)."""
    return ("(%s.strategy == 'none' ? %s.isInteger() : %s.compareTo(quantity(%s.max)) <= 0)"
            % (entry, q, q, entry))


def _shown(q):
    """CEL: quantity ``q`` as a decimal rounded to nano units (the float of 700m is 0.7000000000000001)."""
    f = "%s.asApproximateFloat()" % q
    return "string(double(int(%s * 1e9 + (%s < 0.0 ? -0.5 : 0.5))) / 1e9)" % (f, f)


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
    where = "'container ' + c.name + ' asks for gpu: ' + (isQuantity(%s) ? %s : %s)" % (v, _shown(q), v)
    both = ("has(c.resources) && has(c.resources.limits) && 'gpu' in c.resources.limits && "
            "has(c.resources.requests) && 'gpu' in c.resources.requests")
    checks = [
        ("!isQuantity({v})", "', which is not a number; fix: write a share of one GPU such as 0.5'"),
        ("%s && quantity(string(c.resources.requests['gpu'])).compareTo({q}) != 0" % both,
         "' in limits and ' + %s + ' in requests; fix: make requests equal to "
         "limits, or give only limits'" % _shown("quantity(string(c.resources.requests['gpu']))")),
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
        expr = "(%s) ? %s + %s : (%s)" % (cond, where, msg, expr)
    expr = "{v} == '' ? '' : (%s)" % expr
    return expr.format(v=v, q=q, p=p, label=PROFILE_LABEL, serves=_serves(p, q), others=others)


def _container_patches():
    """CEL, per container ``c`` at ``i``: its JSONPatch list."""
    base = "'@JS@/containers/' + string(i) + '/resources'"
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


def _annotation():
    has = _has_key("@M@", "annotations", ANNOTATION_FRACTION)
    return "@HM@ && %s ? @M@.annotations[%s] : ''" % (has, _cel_str(ANNOTATION_FRACTION))


def _variables(plan):
    table = profile_table(plan)
    names = ", ".join(p.name for p in plan.profiles)
    return [
        {"name": "table", "expression": json.dumps(table, sort_keys=True)},
        {"name": "names", "expression": _cel_str(names)},
        {"name": "profile", "expression": _profile_expr(plan)},
        {"name": "annotation", "expression": _annotation()},
    ]


def _match(opts, target):
    return {
        "namespaceSelector": {"matchExpressions": [
            {"key": opts["namespace_label"], "operator": "In", "values": [opts["namespace_label_value"]]},
            {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn",
             "values": sorted({"kube-system", opts["plugin_namespace"]})},
        ]},
        "resourceRules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": list(target["operations"]),
                           "resources": list(resources)} for group, resources in target["rules"]],
    }


def _gated(match, gate):
    if not gate:
        return match
    return dict(match, objectSelector={"matchLabels": {LABEL_CHECK: LABEL_CHECK_VALUE}})


def _obj(kind, name, spec):
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "spec": spec}


def _too_many(row):
    """CEL, per container ``c``: it asks for more than one slice of profile ``row`` (a table row
    expression) and that profile refuses such requests."""
    return ("has(c.resources) && has(c.resources.limits) && %s.resource in c.resources.limits && %s.fail == 'true' "
            "&& quantity(string(c.resources.limits[%s.resource])).compareTo(quantity('1')) > 0" % (row, row, row))


def _no_selector_slice(plan):
    """CEL: the pod asks for a slice of some profile's resource without a profile selector."""
    resources = sorted({row["resource"] for row in profile_table(plan).values()})
    slice_request = ("@S@.containers.exists(c, has(c.resources) && has(c.resources.limits) && "
                     "%s.exists(r, r in c.resources.limits))" % json.dumps(resources))
    return "%s && !(%s)" % (slice_request, _has_key("@S@", "nodeSelector", PROFILE_LABEL))


def _needs_check(plan, table, profile):
    """CEL: what the validating policies judge on a pod's own (not rewritten) requests could refuse
    or warn: a request for more than one slice where the profile fails it, or (with several
    profiles) a slice request without a profile selector. ``table``/``profile``: CEL for the
    profile table and the pod's profile name (match conditions cannot use variables)."""
    row = "%s[%s]" % (table, profile)
    check = "(%s in %s && @S@.containers.exists(c, %s))" % (profile, table, _too_many(row))
    if len(plan.profiles) > 1:
        check += " || (%s)" % _no_selector_slice(plan)
    return check


def _profile_expr(plan):
    return "%s ? @S@.nodeSelector[%s] : %s" % (_has_key("@S@", "nodeSelector", PROFILE_LABEL), _cel_str(PROFILE_LABEL),
                                               _cel_str(plan.default_profile))


def _mutating_spec(plan, gate=False):
    any_request = "@S@.containers.transformList(i, c, %s).exists(r, r != '')" % _container_request(
        "c", "i", "(%s)" % _annotation())
    tolerated = ("has(@S@.tolerations) && @S@.tolerations.exists(t, (has(t.key) ? t.key == %s : "
                 "(has(t.operator) && t.operator == 'Exists')) && (!has(t.effect) || t.effect == 'NoSchedule'))"
                 % _cel_str(GPU_TAINT_KEY))
    toleration = "{'key': %s, 'operator': 'Exists', 'effect': 'NoSchedule'}" % _cel_str(GPU_TAINT_KEY)
    refusals = "variables.verdicts.filter(m, m != '').join('; ')"
    pod_patches = (
        "variables.verdicts.exists(m, m != '') ? "
        "[@HM@ && has(@M@.annotations) ? "
        "JSONPatch{op: 'add', path: '@JM@/annotations/' + jsonpatch.escapeKey(%(refused)s), value: %(refusals)s} : "
        "(@HM@ ? JSONPatch{op: 'add', path: '@JM@/annotations', value: {%(refused)s: %(refusals)s}} : "
        "JSONPatch{op: 'add', path: '@JM@', value: {'annotations': {%(refused)s: %(refusals)s}}})] : "
        "(!variables.requests.exists(r, r != '') ? [] : "
        "((%(tolerated)s) ? [] : [has(@S@.tolerations) ? "
        "JSONPatch{op: 'add', path: '@JS@/tolerations/-', value: %(toleration)s} : "
        "JSONPatch{op: 'add', path: '@JS@/tolerations', value: [%(toleration)s]}]) + "
        "[has(@S@.nodeSelector) ? "
        "JSONPatch{op: 'add', path: '@JS@/nodeSelector/' + jsonpatch.escapeKey(%(label)s), value: variables.profile} : "
        "JSONPatch{op: 'add', path: '@JS@/nodeSelector', value: {%(label)s: variables.profile}}])"
    ) % {"refused": _cel_str(ANNOTATION_REFUSED), "refusals": refusals, "tolerated": tolerated,
         "toleration": toleration, "label": _cel_str(PROFILE_LABEL)}
    variables = _variables(plan) + [
        {"name": "requests", "expression": "@S@.containers.transformList(i, c, %s)" % _container_request("c", "i")},
        {"name": "verdicts", "expression": "@S@.containers.transformList(i, c, %s)" % _verdict()},
    ]
    if gate:
        # Mark the pods the validating policies must see; the others skip them.
        any_request = "(%s) || %s" % (any_request, _needs_check(
            plan, json.dumps(profile_table(plan), sort_keys=True), "(%s)" % _profile_expr(plan)))
        variables.append({"name": "check", "expression": "variables.verdicts.exists(m, m != '') || %s"
                          % _needs_check(plan, "variables.table", "variables.profile")})
        pod_patches = "(%s) + (variables.check ? [has(@M@.labels) ? " \
            "JSONPatch{op: 'add', path: '@JM@/labels/' + jsonpatch.escapeKey(%s), value: %s} : " \
            "JSONPatch{op: 'add', path: '@JM@/labels', value: {%s: %s}}] : [])" % (
                pod_patches, _cel_str(LABEL_CHECK), _cel_str(LABEL_CHECK_VALUE), _cel_str(LABEL_CHECK),
                _cel_str(LABEL_CHECK_VALUE))
    return {
        "failurePolicy": "Fail",
        "reinvocationPolicy": "Never",
        "matchConditions": [{"name": "gpu-fraction-request", "expression": any_request}],
        "variables": variables,
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": (
            "@S@.containers.transformList(i, c, %s).flatten() + (%s)" % (_container_patches(), pod_patches))}}],
    }


def _validating_spec(plan):
    row = "variables.table[variables.profile]"
    too_many = _too_many(row)
    return {
        "failurePolicy": "Fail",
        "variables": _variables(plan),
        "validations": [
            {"expression": "!(@HM@ && %s)" % _has_key("@M@", "annotations", ANNOTATION_REFUSED),
             "messageExpression": "'GPU request refused: ' + @M@.annotations[%s]" % _cel_str(ANNOTATION_REFUSED),
             "reason": "Invalid"},
            {"expression": "!(variables.profile in variables.table) || !@S@.containers.exists(c, %s)" % too_many,
             "messageExpression": (
                 "'GPU request refused: ' + @S@.containers.filter(c, %s).map(c, 'container ' + c.name + "
                 "' asks for ' + string(c.resources.limits[%s.resource]) + ' ' + %s.resource + ' but profile ' + "
                 "variables.profile + ' gives one slice per container (' + (%s.strategy == 'mps' ? 'MPS' : "
                 "'fail_requests_greater_than_one') + '); fix: request 1 per container and run more pods, or use a "
                 "profile without fail_requests_greater_than_one').join('; ')" % (too_many, row, row, row)),
             "reason": "Invalid"},
        ],
    }


def _warning_spec(plan):
    return {
        "failurePolicy": "Ignore",
        "validations": [{
            "expression": "!(%s)" % _no_selector_slice(plan),
            "message": "the pod requests a GPU slice without nodeSelector %s, so it may land on a node of any of the "
                       "profiles %s, whose slices differ; fix: set nodeSelector %s: <profile>"
                       % (PROFILE_LABEL, ", ".join(plan.profile_names), PROFILE_LABEL),
            "reason": "Invalid"}],
    }


def render_policies(plan, options=None, mutating=True):
    """The admission objects for ``plan`` (a SharingPlan or a sharing spec), in apply order:
    for pods, workloads (their pod template) and CronJobs each, a MutatingAdmissionPolicy, a
    ValidatingAdmissionPolicy (actions from the options) and a Warn-only ValidatingAdmissionPolicy,
    each with its binding.

    With ``mutating`` (the cluster serves MutatingAdmissionPolicy), the pods' validating policies
    see only the pods the mutating policy marked with :data:`LABEL_CHECK`; without it no mutating
    policy is rendered and the validating ones see every pod.

    Raises InvalidInput (nothing rendered) when the plan or the options are invalid.
    """
    plan = build_plan(plan)
    opts = normalize_options(options)
    out = []
    for target in TARGETS:
        name = opts["name"] + target["suffix"]
        warn = name + "-warn"
        match = _match(opts, target)
        # Each policy that matches a pod costs the API server a conversion of the pod for CEL,
        # the most of a policy's cost (a CPU profile of the benchmark): on pods, where the rate
        # is high, the mutating policy's one look decides whether the validating ones run.
        gate = mutating and target["suffix"] == ""
        policies = [
            ("Mutating", name, _mutating_spec(plan, gate=gate), None, match),
            ("Validating", name, _validating_spec(plan), opts["validation_actions"], _gated(match, gate)),
            ("Validating", warn, _warning_spec(plan), ["Warn"], _gated(match, gate)),
        ]
        if not mutating:
            policies.pop(0)
        if len(plan.profiles) == 1:
            policies.pop()  # nothing to warn about with one profile
        for kind, pname, spec, actions, match in policies:
            spec = dict(_at(spec, target), matchConstraints=match)
            binding = {"policyName": pname}
            if actions is not None:
                binding["validationActions"] = list(actions)
            out.append(_obj(kind + "AdmissionPolicy", pname, spec))
            out.append(_obj(kind + "AdmissionPolicyBinding", pname, binding))
    return out


# --------------------------------------------------------------------------- what the module manages

MUTATING_KIND = "MutatingAdmissionPolicy"
VALIDATING_KIND = "ValidatingAdmissionPolicy"


def object_names(name=DEFAULT_NAME):
    """(kind, name) of every object :func:`render_policies` may write for ``name``, in its order:
    what ``state: absent`` removes (it needs no profiles). With one profile the ``-warn`` pairs
    are not written."""
    out = []
    for target in TARGETS:
        base = name + target["suffix"]
        for kind, pname in ((MUTATING_KIND, base), (VALIDATING_KIND, base), (VALIDATING_KIND, base + "-warn")):
            out += [(kind, pname), (kind + "Binding", pname)]
    return out


def write_order(objects, mutating=True):
    """The objects in the order they are written: the validating policies first (a pod the mutating
    policy marks as unservable must meet its refusal), then the mutating ones, or none of those
    when the cluster does not serve them (``mutating`` False). Removal is the reverse."""
    validating = [o for o in objects if o["kind"].startswith(VALIDATING_KIND)]
    rest = [o for o in objects if o["kind"].startswith(MUTATING_KIND)] if mutating else []
    return validating + rest


def removal_order(name=DEFAULT_NAME):
    """(kind, name) of :func:`object_names` in the order they are removed, the reverse of
    :func:`write_order`: the mutating policies first, each binding before its policy."""
    names = object_names(name)
    return list(reversed([n for n in names if n[0].startswith(VALIDATING_KIND)]
                         + [n for n in names if n[0].startswith(MUTATING_KIND)]))


def foreign(obj):
    """True when an existing object of the same name was not written by this collection."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return obj is not None and labels.get(MANAGED_BY_LABEL) != MANAGED_BY


def scope_of(policy, binding):
    """What the verification needs from the written policies: ``(label, value, actions)``, the
    opt-in namespace label of the ValidatingAdmissionPolicy ``policy`` and the validationActions of
    its ``binding``; None when they are not this collection's policies."""
    if foreign(policy) or not policy or not binding:
        return None
    selector = ((policy.get("spec") or {}).get("matchConstraints") or {}).get("namespaceSelector") or {}
    for expr in selector.get("matchExpressions") or []:
        if expr.get("operator") == "In" and expr.get("key") != NAMESPACE_NAME_LABEL and expr.get("values"):
            return expr["key"], expr["values"][0], list((binding.get("spec") or {}).get("validationActions") or [])
    return None
