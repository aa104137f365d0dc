# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of a Karpenter GPU NodePool, validated and defaulted before anything is rendered.

``normalize_options(options, plan)`` returns a new dict or raises :class:`InvalidInput` naming the
field, the value and the fix. Field rules follow the CRDs of Karpenter v1.14.1 and its AWS provider.
"""

from __future__ import annotations

import difflib
import re

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import INSTANCE_TYPES, by_family, lookup
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.karpenter_ami import ami_family, check_bottlerocket_release
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import DNS_SUBDOMAIN_RE, LABEL_NAME_RE, LABEL_VALUE_RE, NODECLASS_GROUP, NODECLASS_KIND
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.plugin_config import render_bottlerocket_settings
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.scalars import parse_int, parse_quantity
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import resolve_profile


# --------------------------------------------------------------------------- small validators


# --------------------------------------------------------------------------- instance types


# --------------------------------------------------------------------------- options


# --------------------------------------------------------------------------- documents

__metaclass__ = type  # pylint: disable=invalid-name


OVERLAY_KEYS = ("instance-type", "gpu-count")


CAPACITY_TYPES = ("on-demand", "spot", "reserved")


ARCHITECTURES = ("amd64", "arm64")


CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized")


BUDGET_REASONS = ("Underutilized", "Empty", "Drifted")


# Patterns copied from the v1.14.1 CRDs (so we refuse what the API server would refuse, earlier).
_DURATION_RE = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")


_BUDGET_NODES_RE = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")


_BUDGET_DURATION_RE = re.compile(r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$")


_QUANTITY_RE = re.compile(
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][0-9]+)?$"
)


_VOLUME_SIZE_RE = re.compile(r"^[1-9][0-9]*(Gi|G|Ti|T)$")


DEFAULTS = {
    "profile": None,
    "discovery_tag_value": None,
    "instance_types": None,
    "instance_families": None,
    "gpu_names": None,
    "gpu_manufacturer": "nvidia",
    "gpu_counts": None,
    "min_gpu_memory": None,
    "capacity_types": ["on-demand"],
    "architectures": ["amd64"],
    "zones": None,
    "limit_slices": None,
    "limit_gpus": None,
    "limits": None,
    "consolidation_policy": "WhenEmptyOrUnderutilized",
    "consolidate_after": "5m",
    "budgets": None,
    "expire_after": "720h",
    "weight": None,
    "manage_node_class": True,
    "node_class_name": None,
    "node_class_ref": None,
    "ami_alias": "al2023@latest",
    "role": None,
    "instance_profile": None,
    "subnet_selector_terms": None,
    "security_group_selector_terms": None,
    "root_volume_size": "100Gi",
    "root_volume_type": "gp3",
    "root_volume_encrypted": True,
    "node_class_tags": None,
    "overlays": True,
    "overlay_key": "instance-type",
    "overlay_weight": 10,
    "gpus_per_instance_type": None,
    "labels": None,
    "startup_taints": None,
}


def _err(field, value, fix, why):
    return InvalidInput(field, value, fix, why=why)


def _str_list(value, field, allow_empty=False):
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _err(field, value, "give a list of strings", "not a list")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _err("%s[%d]" % (field, i), item, "give a non-empty string", "not a non-empty string")
        item = item.strip()
        if item not in out:
            out.append(item)
    if not out and not allow_empty:
        raise _err(field, value, "give at least one value or leave the option out",
                   "an empty list would make an In requirement without values, which admits nothing")
    return out


def _label_values(values, field):
    for i, value in enumerate(values):
        if len(value) > 63 or not LABEL_VALUE_RE.match(value):
            raise _err("%s[%d]" % (field, i), value,
                       "use letters, digits, '-', '_' and '.', starting and ending alphanumeric, at most 63 characters",
                       "not a valid Kubernetes label value")
    return values


def _choices(values, field, allowed):
    for i, value in enumerate(values):
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = "did you mean %s? " % close[0] if close else ""
            raise _err("%s[%d]" % (field, i), value, "%suse one of %s" % (hint, ", ".join(allowed)),
                       "not a known value")
    return values


def _duration(value, field, example):
    if not isinstance(value, str) or not _DURATION_RE.match(value.strip()):
        raise _err(field, value,
                   "write a duration of whole s, m or h units such as %s (or Never)" % example,
                   "not a Karpenter duration (only s, m, h units; no spaces, no fractions)")
    return value.strip()


def _positive_count(value, field, allow_zero=False):
    try:
        number = parse_int(value, field)
    except InvalidInput:
        raise _err(field, value, "write a whole number such as 8 (a count, not a quantity with units)",
                   "not a whole number")
    if number < 0 or (number == 0 and not allow_zero):
        raise _err(field, value, "give a count of 1 or more", "must be greater than zero")
    return number


def _quantity(value, field):
    if isinstance(value, bool) or value is None:
        raise _err(field, value, "write a Kubernetes quantity such as 1000 or 4000Gi", "not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise _err(field, value, "give a positive quantity", "negative")
        return str(value)
    text = str(value).strip()
    if not _QUANTITY_RE.match(text):
        raise _err(field, value, "write a Kubernetes quantity such as 100, 500m, 1000Gi or 2T",
                   "not a Kubernetes resource quantity")
    return text


def _dict(value, field):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _err(field, value, "give a mapping", "not a mapping")
    return value


def _name(value, field):
    if not isinstance(value, str) or len(value) > 253 or not DNS_SUBDOMAIN_RE.match(value):
        raise _err(field, value, "use lower-case letters, digits, '-' and '.', starting and ending alphanumeric",
                   "not a valid Kubernetes object name")
    return value


def gpu_count_of(name, gpus_per_instance_type):
    if gpus_per_instance_type and name in gpus_per_instance_type:
        return gpus_per_instance_type[name]
    return INSTANCE_TYPES[name].gpu_count if name in INSTANCE_TYPES else None


def _admitted_instance_types(opts, gpus_per_instance_type):
    """Instance types the NodePool admits: explicit types, or the known types of the families, filtered."""
    types_given = opts["instance_types"]
    families = opts["instance_families"]
    known_families = sorted({t.split(".", 1)[0] for t in INSTANCE_TYPES})
    if families:
        for i, fam in enumerate(families):
            if not by_family(fam.lower()):
                close = difflib.get_close_matches(fam.lower(), known_families, n=2)
                fix = "use a known GPU family (%s)" % ", ".join(known_families)
                if close:
                    fix = "did you mean %s? Otherwise %s" % (" or ".join(close), fix)
                raise _err("instance_families[%d]" % i, fam, fix, "not a known GPU instance family")
    if types_given:
        names = []
        for i, itype in enumerate(types_given):
            key = itype.lower()
            if gpus_per_instance_type and key in gpus_per_instance_type:
                names.append(key)
                continue
            try:
                names.append(lookup(key).name)
            except InvalidInput as exc:
                raise _err("instance_types[%d]" % i, itype,
                           exc.fix + ", or give its GPU count in gpus_per_instance_type", exc.why)
        for i, name in enumerate(names):
            # Both requirements apply on the NodePool: a type outside the families could never launch.
            family = name.split(".", 1)[0]
            if families and family not in families:
                raise _err("instance_types[%d]" % i, types_given[i],
                           "add %s to instance_families, or leave instance_families unset (the instance "
                           "types alone say what may launch)" % family,
                           "its family %s is not in instance_families %s" % (family, ", ".join(families)))
    elif families:
        names = [t.name for fam in families for t in by_family(fam.lower())]
    else:
        raise _err("instance_types", None,
                   "give instance_types (for example [g4dn.xlarge]) or instance_families (for example [g5, g6])",
                   "empty requirements: a GPU NodePool must name the instance types or families it may launch")
    # filters known to the table
    result = []
    for name in names:
        info = INSTANCE_TYPES.get(name)
        if info is not None:
            if opts["gpu_names"] and info.gpu_name not in opts["gpu_names"]:
                continue
            if opts["gpu_counts"] and info.gpu_count not in opts["gpu_counts"]:
                continue
            if opts["min_gpu_memory_mib"] and info.gpu_memory_mib < opts["min_gpu_memory_mib"]:
                continue
        result.append(name)
    if not result:
        raise _err("instance_types", types_given or families,
                   "widen instance_types / instance_families or relax gpu_names, gpu_counts and min_gpu_memory",
                   "empty requirements: no instance type satisfies all the requirements together")

    def order(n):
        info = INSTANCE_TYPES.get(n)
        return (n.split(".", 1)[0], gpu_count_of(n, gpus_per_instance_type) or 0, info.vcpu if info else 0, n)

    return sorted(set(result), key=order)


def normalize_options(options, plan):
    """Validated, defaulted options (a new dict). Raises InvalidInput / InvalidInput."""
    raw = dict(DEFAULTS)
    raw.update({k: v for k, v in (options or {}).items() if v is not None})
    unknown = sorted(set(raw) - set(DEFAULTS) - {"name"})
    if unknown:
        raise _err(unknown[0], raw[unknown[0]], "remove it; known options: %s" % ", ".join(sorted(DEFAULTS)),
                   "not an option of the Karpenter GPU NodePool")
    opts = {"name": _name(raw.get("name"), "name")}
    try:
        profile = resolve_profile(plan, raw["profile"])
    except InvalidInput as exc:
        raise _err("profile", raw["profile"], exc.fix, exc.why)
    opts["profile"] = profile

    gpus_per_instance_type = _dict(raw["gpus_per_instance_type"], "gpus_per_instance_type")
    if gpus_per_instance_type:
        normalized = {}
        for key, value in gpus_per_instance_type.items():
            normalized[str(key).strip().lower()] = _positive_count(value, "gpus_per_instance_type.%s" % key)
        gpus_per_instance_type = normalized
    opts["gpus_per_instance_type"] = gpus_per_instance_type

    opts["instance_types"] = _str_list(raw["instance_types"], "instance_types")
    opts["instance_families"] = _str_list(raw["instance_families"], "instance_families")
    if opts["instance_families"]:
        opts["instance_families"] = [f.lower() for f in opts["instance_families"]]
    opts["gpu_names"] = _label_values([n.lower() for n in _str_list(raw["gpu_names"], "gpu_names") or []],
                                      "gpu_names") or None
    opts["gpu_manufacturer"] = raw["gpu_manufacturer"] or None
    counts = raw["gpu_counts"]
    if counts is not None:
        if not isinstance(counts, (list, tuple)) or not counts:
            raise _err("gpu_counts", counts, "give a list of GPU counts such as [1, 4]", "not a non-empty list")
        counts = sorted({_positive_count(c, "gpu_counts[%d]" % i) for i, c in enumerate(counts)})
    opts["gpu_counts"] = counts
    opts["min_gpu_memory_mib"] = None
    if raw["min_gpu_memory"] is not None:
        try:
            opts["min_gpu_memory_mib"] = parse_quantity(raw["min_gpu_memory"], "min_gpu_memory") // (1024 * 1024)
        except InvalidInput as exc:
            raise _err("min_gpu_memory", raw["min_gpu_memory"], exc.fix, exc.why)
    opts["capacity_types"] = _choices(_str_list(raw["capacity_types"], "capacity_types"), "capacity_types",
                                      CAPACITY_TYPES)
    opts["architectures"] = _choices(_str_list(raw["architectures"], "architectures"), "architectures",
                                     ARCHITECTURES)
    opts["zones"] = _label_values(_str_list(raw["zones"], "zones") or [], "zones") or None
    opts["admitted"] = _admitted_instance_types(opts, gpus_per_instance_type)

    # limits
    opts["limit_slices"] = None if raw["limit_slices"] is None else _positive_count(raw["limit_slices"], "limit_slices")
    opts["limit_gpus"] = None if raw["limit_gpus"] is None else _positive_count(raw["limit_gpus"], "limit_gpus")
    limits = _dict(raw["limits"], "limits") or {}
    opts["limits"] = {}
    for key, value in limits.items():
        opts["limits"][str(key)] = _quantity(value, "limits.%s" % key)

    # disruption
    if raw["consolidation_policy"] not in CONSOLIDATION_POLICIES:
        raise _err("consolidation_policy", raw["consolidation_policy"],
                   "use one of %s" % ", ".join(CONSOLIDATION_POLICIES), "not a consolidation policy")
    opts["consolidation_policy"] = raw["consolidation_policy"]
    opts["consolidate_after"] = _duration(raw["consolidate_after"], "consolidate_after", "30s, 5m or 1h")
    opts["expire_after"] = _duration(raw["expire_after"], "expire_after", "720h")
    opts["budgets"] = _budgets(raw["budgets"])
    opts["weight"] = None
    if raw["weight"] is not None:
        weight = _positive_count(raw["weight"], "weight", allow_zero=True)
        if not 1 <= weight <= 100:
            raise _err("weight", raw["weight"], "give a weight from 1 to 100 (higher is tried first)",
                       "NodePool weight must be between 1 and 100")
        opts["weight"] = weight

    # node class
    opts["manage_node_class"] = bool(raw["manage_node_class"])
    opts["node_class_name"] = _name(raw["node_class_name"] or opts["name"], "node_class_name")
    ref = _dict(raw["node_class_ref"], "node_class_ref")
    if ref is not None:
        for key in ("group", "kind", "name"):
            if not isinstance(ref.get(key), str) or not ref.get(key):
                raise _err("node_class_ref.%s" % key, ref.get(key),
                           "give group, kind and name, e.g. {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}",
                           "missing")
        extra = sorted(set(ref) - {"group", "kind", "name"})
        if extra:
            raise _err("node_class_ref.%s" % extra[0], ref[extra[0]], "keep only group, kind and name", "unknown key")
        if not DNS_SUBDOMAIN_RE.match(ref["group"]) or len(ref["group"]) > 253:
            fix = "give the API group alone, e.g. karpenter.k8s.aws (EC2NodeClass) or karpenter.kwok.sh"
            if "/" in ref["group"]:
                fix = "drop the version: %s" % ref["group"].split("/", 1)[0]
            raise _err("node_class_ref.group", ref["group"], fix, "not an API group (a lower-case DNS name, no version)")
        if opts["manage_node_class"] and (ref["group"], ref["kind"], ref["name"]) != (
                NODECLASS_GROUP, NODECLASS_KIND, opts["node_class_name"]):
            raise _err("node_class_ref", ref,
                       "set manage_node_class: false when the NodePool points at a node class managed elsewhere",
                       "the module would create EC2NodeClass %s but the NodePool would not use it"
                       % opts["node_class_name"])
        opts["node_class_ref"] = {"group": ref["group"], "kind": ref["kind"], "name": ref["name"]}
    else:
        opts["node_class_ref"] = {"group": NODECLASS_GROUP, "kind": NODECLASS_KIND, "name": opts["node_class_name"]}

    alias = raw["ami_alias"]
    family = ami_family(alias)
    opts["ami_alias"] = alias
    opts["ami_family"] = family
    opts["role"] = raw["role"] or None
    opts["instance_profile"] = raw["instance_profile"] or None
    opts["discovery_tag_value"] = raw["discovery_tag_value"] or None
    if opts["manage_node_class"]:
        if opts["role"] and opts["instance_profile"]:
            raise _err("instance_profile", opts["instance_profile"],
                       "give either role (Karpenter creates the instance profile) or instance_profile, not both",
                       "EC2NodeClass takes exactly one of role and instanceProfile")
        if not opts["role"] and not opts["instance_profile"]:
            raise _err("role", None, "give role (the node IAM role name) or instance_profile",
                       "EC2NodeClass needs exactly one of role and instanceProfile")
    opts["subnet_selector_terms"] = _selector_terms(raw["subnet_selector_terms"], "subnet_selector_terms",
                                                    ("tags", "id"), opts)
    opts["security_group_selector_terms"] = _selector_terms(raw["security_group_selector_terms"],
                                                            "security_group_selector_terms",
                                                            ("tags", "id", "name"), opts)
    size = raw["root_volume_size"]
    if not isinstance(size, str) or not _VOLUME_SIZE_RE.match(size.strip()):
        raise _err("root_volume_size", size, "write a size such as 100Gi (whole Gi, G, Ti or T)",
                   "not an EBS volume size")
    opts["root_volume_size"] = size.strip()
    if raw["root_volume_type"] not in ("gp2", "gp3", "io1", "io2"):
        raise _err("root_volume_type", raw["root_volume_type"], "use gp3 (or gp2, io1, io2)", "not an EBS root volume type")
    opts["root_volume_type"] = raw["root_volume_type"]
    opts["root_volume_encrypted"] = bool(raw["root_volume_encrypted"])
    tags = _dict(raw["node_class_tags"], "node_class_tags") or {}
    opts["node_class_tags"] = {str(k): str(v) for k, v in tags.items()}
    if opts["manage_node_class"] and opts["ami_family"] == "bottlerocket":
        render_bottlerocket_settings(profile)  # raises for what Bottlerocket cannot express
        check_bottlerocket_release(alias, profile)

    # overlays
    opts["overlays"] = bool(raw["overlays"])
    if raw["overlay_key"] not in OVERLAY_KEYS:
        raise _err("overlay_key", raw["overlay_key"], "use instance-type or gpu-count", "not an overlay key")
    opts["overlay_key"] = raw["overlay_key"]
    weight = _positive_count(raw["overlay_weight"], "overlay_weight", allow_zero=True)
    if not 1 <= weight <= 10000:
        raise _err("overlay_weight", raw["overlay_weight"], "give a weight from 1 to 10000",
                   "NodeOverlay weight must be between 1 and 10000")
    opts["overlay_weight"] = weight
    for name in opts["admitted"]:
        if gpu_count_of(name, gpus_per_instance_type) is None:
            raise _err("gpus_per_instance_type", gpus_per_instance_type,
                       "add %s: <GPUs per instance> to gpus_per_instance_type" % name,
                       "the GPU count of %s is not known" % name)
    labels = _dict(raw["labels"], "labels") or {}
    opts["labels"] = {str(k): str(v) for k, v in labels.items()}
    opts["startup_taints"] = _taints(raw["startup_taints"], "startup_taints")
    _limits_keys(opts)
    return opts


def _budgets(value):
    if value is None:
        return None
    if not isinstance(value, list):
        raise _err("budgets", value, "give a list such as [{nodes: '10%'}]", "not a list")
    out = []
    for i, budget in enumerate(value):
        field = "budgets[%d]" % i
        if not isinstance(budget, dict):
            raise _err(field, budget, "give a mapping with nodes (and optionally schedule with duration, reasons)",
                       "not a mapping")
        extra = sorted(set(budget) - {"nodes", "schedule", "duration", "reasons"})
        if extra:
            raise _err("%s.%s" % (field, extra[0]), budget[extra[0]], "use nodes, schedule, duration, reasons",
                       "unknown key")
        nodes = str(budget.get("nodes", "10%"))
        if not _BUDGET_NODES_RE.match(nodes):
            raise _err(field + ".nodes", budget.get("nodes"), "write a node count such as 1 or a percentage such as 10%",
                       "not a budget")
        item = {"nodes": nodes}
        if ("schedule" in budget) != ("duration" in budget):
            raise _err(field, budget, "give schedule and duration together, or neither",
                       "Karpenter needs both to define a budget window")
        if "schedule" in budget:
            item["schedule"] = str(budget["schedule"])
            duration = str(budget["duration"])
            if not _BUDGET_DURATION_RE.match(duration):
                raise _err(field + ".duration", budget["duration"], "write hours and minutes such as 8h or 1h30m",
                           "not a budget duration")
            item["duration"] = duration
        if budget.get("reasons"):
            item["reasons"] = _choices(_str_list(budget["reasons"], field + ".reasons"), field + ".reasons",
                                       BUDGET_REASONS)
        out.append(item)
    return out


# A label-style key: an optional DNS-subdomain prefix and "/", then a label name.
_TAINT_KEY_RE = re.compile(r"^(%s/)?%s$" % (DNS_SUBDOMAIN_RE.pattern[1:-1], LABEL_NAME_RE.pattern[1:-1]))


def _taints(value, field):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _err(field, value, "give a list such as [{key: example.com/not-ready, effect: NoSchedule}]", "not a list")
    out = []
    for i, taint in enumerate(value):
        path = "%s[%d]" % (field, i)
        if not isinstance(taint, dict) or set(taint) - {"key", "value", "effect"}:
            raise _err(path, taint, "use a mapping with key, optional value, and effect", "not a taint")
        key = taint.get("key")
        if not isinstance(key, str) or not _TAINT_KEY_RE.match(key):
            raise _err(path + ".key", key, "use a label-style key such as example.com/not-ready", "not a taint key")
        effect = taint.get("effect", "NoSchedule")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise _err(path + ".effect", effect, "use NoSchedule, PreferNoSchedule or NoExecute", "not a taint effect")
        item = {"key": key, "effect": effect}
        if taint.get("value") not in (None, ""):
            item["value"] = _label_values([str(taint["value"])], path + ".value")[0]
        out.append(item)
    return out


def _selector_terms(value, field, keys, opts):
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _err(field, value, "give a list such as [{tags: {karpenter.sh/discovery: my-cluster}}]",
                   "not a non-empty list")
    for i, term in enumerate(value):
        if not isinstance(term, dict) or not term or set(term) - set(keys):
            raise _err("%s[%d]" % (field, i), term, "use a mapping with %s" % " or ".join(keys),
                       "not a selector term")
    return value


def _limits_keys(opts):
    """spec.limits: slices under the advertised resource, GPUs under the base resource."""
    profile = opts["profile"]
    advertised = profile.advertised_resource
    base = profile.resource_name
    limits = dict(opts["limits"])
    if opts["limit_slices"] is not None and opts["limit_gpus"] is not None and advertised == base:
        if opts["limit_slices"] != opts["limit_gpus"] * profile.replicas:
            raise _err("limit_gpus", opts["limit_gpus"],
                       "give only one of limit_slices and limit_gpus (profile %s advertises its slices as %s)"
                       % (profile.name, base),
                       "limit_slices %d and limit_gpus %d x %d replicas disagree on %s"
                       % (opts["limit_slices"], opts["limit_gpus"], profile.replicas, base))
    if opts["limit_slices"] is not None:
        limits[advertised] = str(opts["limit_slices"])
    if opts["limit_gpus"] is not None:
        if advertised == base and profile.shared:
            # the node advertises slices under the same name: the limit counts slices
            limits.setdefault(base, str(opts["limit_gpus"] * profile.replicas))
        else:
            limits[base] = str(opts["limit_gpus"])
    opts["limits_rendered"] = limits
