# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""karpenter_gpu_nodepool's work: validate, check the cluster's Karpenter, then write or remove.

Order: the sharing plan and every option are validated (karpenter.py) when the options are
built (NodePoolOptions.from_params), then the API is asked
whether it serves the kinds we write and whether the NodeOverlay feature gate is on. Only then
is anything written: EC2NodeClass, NodeOverlays, NodePool (overlays before the NodePool so
Karpenter never sees the pool without them), and owned overlays no longer wanted are pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.ec2 import ssm_parameter_value
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    FALLBACK_KINDS,
    AwsError,
    aws_requested,
    session_from_params,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.karpenter import RENDER_OPTIONS, render
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.karpenter_ami import ami_ssm_parameter
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NODECLASS_API,
    NODECLASS_KIND,
    NODEPOOL_API,
    NODEPOOL_KIND,
    OVERLAY_API,
    OVERLAY_KIND,
    OWNER_LABEL,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import (
    GpuSlicingError,
    InvalidInput,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message

GATE_FIX = ("set the Karpenter Helm value settings.featureGates.nodeOverlay=true (it sets "
            "FEATURE_GATES=...NodeOverlay=true on the controller) and roll Karpenter")


def parse_feature_gates(text):
    """``"A=true,NodeOverlay=false"`` -> {"A": True, "NodeOverlay": False} (unparseable parts ignored)."""
    gates = {}
    if isinstance(text, dict):
        return {str(k): str(v).strip().lower() in ("true", "1", "yes") for k, v in text.items()}
    for part in str(text or "").split(","):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip():
            gates[key.strip()] = value.strip().lower() == "true"
    return gates


def gates_from_deployment(deployment):
    """Feature gates a Karpenter Deployment sets (env FEATURE_GATES or --feature-gates), or None."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        for env in container.get("env") or []:
            if env.get("name") == "FEATURE_GATES" and env.get("value") is not None:
                return parse_feature_gates(env["value"])
        args = list(container.get("args") or []) + list(container.get("command") or [])
        for i, arg in enumerate(args):
            if arg.startswith("--feature-gates="):
                return parse_feature_gates(arg.split("=", 1)[1])
            if arg == "--feature-gates" and i + 1 < len(args):
                return parse_feature_gates(args[i + 1])
    return None


def _is_karpenter(deployment):
    meta = deployment.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels.get("app.kubernetes.io/name") == "karpenter" or "karpenter" in meta.get("name", "")


# The AWS connection options (doc fragment eks_connection) the AMI check reads.
AWS_OPTIONS = ("eks_cluster_name", "region", "endpoint_url", "aws_role_arn", "aws_profile", "access_key",
               "secret_key", "session_token")


@dataclass
class NodePoolOptions(object):
    """karpenter_gpu_nodepool's options, checked: with state present every option is validated
    and the NodePool, EC2NodeClass and overlays rendered before the API is contacted."""

    state: str
    name: str
    manage_node_class: bool
    node_class_name: str
    karpenter_namespace: str
    karpenter_feature_gates: str
    allow_without_node_overlay: bool
    aws: dict  # the AWS connection options (AWS_OPTIONS), for the AMI check
    docs: dict = None  # karpenter.render's documents (state present)

    @classmethod
    def from_params(cls, params):
        docs = None
        if params["state"] == "present":
            docs = render_from_params(params)
        names = ("state", "name", "manage_node_class", "node_class_name", "karpenter_namespace",
                 "karpenter_feature_gates", "allow_without_node_overlay")
        return cls(aws={key: params.get(key) for key in AWS_OPTIONS}, docs=docs,
                   **{name: params.get(name) for name in names})


def render_from_params(params):
    """karpenter.render() from the module's validated params: the profiles, ``default_profile`` and
    the RENDER_OPTIONS (raises InvalidInput)."""
    options = {key: params.get(key) for key in RENDER_OPTIONS}
    # The discovery tag's value is by convention the cluster's name: the EKS connection's, unless given.
    options["discovery_tag_value"] = options["discovery_tag_value"] or params.get("eks_cluster_name")
    return render(sharing_plan(params), options)


def node_overlay_gate(options, kube):
    """(state, source): state True/False/None (unknown) and where it was read."""
    if options.karpenter_feature_gates is not None:
        gates = parse_feature_gates(options.karpenter_feature_gates)
        return gates.get("NodeOverlay", False), "karpenter_feature_gates option"
    namespace = options.karpenter_namespace
    try:
        deployments = kube.list("Deployment", "apps/v1", namespace=namespace)
    except Exception as exc:  # RBAC or a missing namespace: unknown, said so
        return None, "Deployments in %s could not be read (%s)" % (namespace, error_message(exc))
    found = [d for d in deployments if _is_karpenter(d)]
    if not found:
        return None, "no Karpenter Deployment in namespace %s" % namespace
    for deployment in found:
        gates = gates_from_deployment(deployment)
        if gates is not None:
            return gates.get("NodeOverlay", False), "Deployment %s/%s" % (namespace, deployment["metadata"]["name"])
    return False, "Deployment %s/%s sets no FEATURE_GATES" % (namespace, found[0]["metadata"]["name"])


def check_api(kube, docs):
    """Raise unless the API serves NodePool (and EC2NodeClass when managed). Returns overlay served."""
    if kube.resource(NODEPOOL_KIND, NODEPOOL_API) is None:
        raise GpuSlicingError(
            "The cluster does not serve %s %s: Karpenter v1 is not installed. Fix: install Karpenter "
            ">= 1.7 (its CRDs) before managing GPU NodePools." % (NODEPOOL_KIND, NODEPOOL_API), kind="not_served")
    if docs["ec2nodeclass"] is not None and kube.resource(NODECLASS_KIND, NODECLASS_API) is None:
        raise GpuSlicingError(
            "The cluster does not serve %s %s. Fix: install Karpenter's AWS provider CRDs, or set "
            "manage_node_class: false with node_class_ref naming the node class to use."
            % (NODECLASS_KIND, NODECLASS_API), kind="not_served")
    if docs["ec2nodeclass"] is None:
        ref = docs["nodepool"]["spec"]["template"]["spec"]["nodeClassRef"]
        if not kube.serves_kind(ref["group"], ref["kind"]):
            raise GpuSlicingError(
                "node_class_ref: %s (group %s) is not served by the cluster: no CRD defines that kind, so "
                "Karpenter could never launch nodes from this NodePool. Nothing was written. Fix: install the "
                "provider's CRDs, or point node_class_ref at a served node class kind (EC2NodeClass in "
                "karpenter.k8s.aws on EKS)." % (ref["kind"], ref["group"]), kind="not_served")
    return kube.resource(OVERLAY_KIND, OVERLAY_API) is not None


def check_ami(options, context, nodeclass):
    """Ask AWS whether the EC2NodeClass's alias resolves to an image, as Karpenter's AWS provider
    will (an SSM parameter per alias and Kubernetes version). Raises when AWS says there is none;
    without AWS (no region/credentials, unreachable, denied) it says it did not check."""
    alias = nodeclass["spec"]["amiSelectorTerms"][0]["alias"]
    family, version = alias.split("@", 1)
    aws = options.aws
    if not (aws_requested(aws) or aws.get("region")):
        return {"alias": alias, "checked": False,
                "reason": "no AWS connection given (region and credentials): Karpenter resolves it at run time"}
    try:
        k8s_version = context.kube.server_minor_version()
        parameter = ami_ssm_parameter(family, version, k8s_version)
        session = session_from_params(aws)
        image = ssm_parameter_value(session, parameter)
    except AwsError as exc:
        if exc.kind not in FALLBACK_KINDS:
            raise GpuSlicingError("Checking ami_alias %s against AWS failed: %s. Nothing was written."
                                  % (alias, exc), kind=exc.kind) from exc
        context.warn("ami_alias %s was not checked against AWS (%s)" % (alias, exc))
        return {"alias": alias, "checked": False, "reason": str(exc)}
    if image is None:
        raise InvalidInput(
            "ami_alias", alias,
            why="AWS publishes no SSM parameter %s in %s, so Karpenter would find no image for it and the "
                "EC2NodeClass would never become ready. Nothing was written" % (parameter, session.region_name),
            fix="pin a version released for Kubernetes %s (the SSM parameters under the same path list them) "
                "or use %s@latest" % (k8s_version, family))
    return {"alias": alias, "ssm_parameter": parameter, "image_id": image, "checked": True}


def nodeclass_status(context, name):
    """The EC2NodeClass's readiness as its controller reports it (a warning when not ready)."""
    obj = context.kube.get(NODECLASS_KIND, NODECLASS_API, name)
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    if not conditions:
        return {"ready": None, "conditions": [],
                "reported": "not reported yet: Karpenter's AWS controller sets the conditions once it has "
                            "resolved the AMI, subnets, security groups and instance profile"}
    ready = [c for c in conditions if c.get("type") == "Ready"]
    status = ready[0].get("status") if ready else None
    summary = {"ready": {"True": True, "False": False}.get(status), "reported": "by the controller",
               "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")} for c in conditions]}
    if summary["ready"] is False:
        context.warn("EC2NodeClass %s is not ready: %s" % (name, "; ".join(
            "%s=%s (%s)" % (c.get("type"), c.get("status"), c.get("message") or c.get("reason"))
            for c in conditions if c.get("status") != "True")))
    return summary


def _owned_selector(name):
    return "%s=%s,%s=%s" % (MANAGED_BY_LABEL, MANAGED_BY, OWNER_LABEL, name)


def _is_owned(obj, name):
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(OWNER_LABEL) == name


def _stub(api_version, kind, name):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


class _Run(object):
    """Collects per-object results, changes and diffs."""

    def __init__(self, context):
        self.kube = context.kube
        self.diff = context.diff
        self.changed = False
        self.objects = []
        self.diffs = []

    def apply(self, doc):
        res = self.kube.ensure(doc)
        self._record(doc, "apply", res)
        return res

    def delete(self, api_version, kind, name):
        res = self.kube.ensure(_stub(api_version, kind, name), state="absent")
        self._record(_stub(api_version, kind, name), "delete", res)
        return res

    def _record(self, doc, method, res):
        changed = bool(res.get("changed"))
        self.changed = self.changed or changed
        self.objects.append({"kind": doc["kind"], "name": doc["metadata"]["name"], "method": method,
                             "changed": changed})
        if self.diff and changed:
            diff = res.get("diff") or {}
            self.diffs.append({
                "before_header": "%s/%s" % (doc["kind"], doc["metadata"]["name"]),
                "after_header": "%s/%s" % (doc["kind"], doc["metadata"]["name"]),
                "before": diff.get("before", {} if method == "apply" else res.get("result", {})),
                "after": diff.get("after", res.get("result", {}) if method == "apply" else {}),
            })


def _owned_overlays(kube, name):
    return kube.list(OVERLAY_KIND, OVERLAY_API, label_selector=_owned_selector(name))


def ensure_absent(options, context):
    name, kube = options.name, context.kube
    run = _Run(context)
    overlay_served = kube.resource(OVERLAY_KIND, OVERLAY_API) is not None
    pool_served = kube.resource(NODEPOOL_KIND, NODEPOOL_API) is not None
    if pool_served:
        pool = kube.get(NODEPOOL_KIND, NODEPOOL_API, name)
        if pool is not None and not _is_owned(pool, name):
            context.warn("NodePool %s exists but was not created by gpu_slicing.eks (labels %s and %s missing): "
                         "left in place" % (name, MANAGED_BY_LABEL, OWNER_LABEL))
        elif pool is not None:
            run.delete(NODEPOOL_API, NODEPOOL_KIND, name)
    if overlay_served:
        for overlay in _owned_overlays(kube, name):
            run.delete(OVERLAY_API, OVERLAY_KIND, overlay["metadata"]["name"])
    if options.manage_node_class and kube.resource(NODECLASS_KIND, NODECLASS_API) is not None:
        class_name = options.node_class_name or name
        nodeclass = kube.get(NODECLASS_KIND, NODECLASS_API, class_name)
        if nodeclass is not None and _is_owned(nodeclass, name):
            run.delete(NODECLASS_API, NODECLASS_KIND, class_name)
        elif nodeclass is not None:
            context.warn("EC2NodeClass %s was not created for NodePool %s by gpu_slicing.eks: left in place"
                         % (class_name, name))
    result = {"changed": run.changed, "objects": run.objects}
    if run.diffs:
        result["diff"] = run.diffs
    return result


def _overlays_allowed(options, context, docs, overlay_served):
    """(write overlays, gate, source, warnings): fails when overlays are wanted and Karpenter
    cannot take them, unless allow_without_node_overlay."""
    if not docs["overlays"]:
        return False, None, None, []
    gate, source = node_overlay_gate(options, context.kube)
    problem = None
    if not overlay_served:
        problem = ("the cluster does not serve %s %s (Karpenter older than v1.7 or its CRDs not upgraded)"
                   % (OVERLAY_KIND, OVERLAY_API))
    elif gate is not True:
        problem = "the NodeOverlay feature gate is %s (%s)" % ("off" if gate is False else "not shown on", source)
    if not problem:
        return True, gate, source, []
    if not options.allow_without_node_overlay:
        raise GpuSlicingError(
            "Karpenter cannot be told about GPU slices: %s. Nothing was written. Fix: %s; if "
            "Karpenter runs elsewhere or you cannot read its Deployment, state the gates with "
            "karpenter_feature_gates: 'NodeOverlay=true'. Or set allow_without_node_overlay: true "
            "to write the NodePool without overlays (Karpenter will over-provision)."
            % (problem, GATE_FIX), kind="node_overlay_gate", node_overlay_gate=gate, gate_source=source)
    message = ("%s: NodeOverlays skipped. Karpenter will over-provision: it counts physical GPUs, not slices, and "
               "launches up to %d times the nodes the pods need. Fix: %s."
               % (problem, docs["summary"]["replicas"], GATE_FIX))
    context.warn(message)
    return False, gate, source, [message]


def _check_ownership(options, kube, docs):
    """Raise when the EC2NodeClass or NodePool to write exists and is not ours."""
    if docs["ec2nodeclass"] is not None:
        existing = kube.get(NODECLASS_KIND, NODECLASS_API, docs["ec2nodeclass"]["metadata"]["name"])
        if existing is not None and not _is_owned(existing, options.name):
            raise GpuSlicingError(
                "EC2NodeClass %s exists and is not managed by gpu_slicing.eks for NodePool %s. "
                "Fix: choose another node_class_name, or set manage_node_class: false and node_class_ref."
                % (docs["ec2nodeclass"]["metadata"]["name"], options.name), kind="not_owned")
    existing_pool = kube.get(NODEPOOL_KIND, NODEPOOL_API, options.name)
    if existing_pool is not None and not _is_owned(existing_pool, options.name):
        raise GpuSlicingError(
            "NodePool %s exists and was not created by gpu_slicing.eks. Nothing was written. Fix: "
            "choose another name, or add the labels %s=%s and %s=%s to adopt it."
            % (options.name, MANAGED_BY_LABEL, MANAGED_BY, OWNER_LABEL, options.name), kind="not_owned")


def prepare_present(options, context):
    """Everything ensure_present checks before its first write: the kinds served, the NodeOverlay
    gate, ownership of existing objects and (outside check mode) the API server's dry run of each
    object. Returns the overlays to write and the gate's state and warnings."""
    kube, docs = context.kube, options.docs
    overlay_served = check_api(kube, docs)
    want_overlays, gate, source, warnings = _overlays_allowed(options, context, docs, overlay_served)
    desired_overlays = docs["overlays"] if want_overlays else []
    try:
        _check_ownership(options, kube, docs)
    except GpuSlicingError:
        raise
    except Exception as exc:
        raise GpuSlicingError("Reading the Karpenter objects failed: %s. Nothing was written." % error_message(exc),
                              kind="api") from exc
    ami = check_ami(options, context, docs["ec2nodeclass"]) if docs["ec2nodeclass"] is not None else None
    if not context.check_mode:
        # Every object passes the API server's own validation (CRD schemas, CEL rules) in a
        # dry run first, so a rejected NodePool cannot leave its class and overlays written.
        for doc in _write_order(docs, desired_overlays):
            try:
                kube.dry_run_apply(doc)
            except Exception as exc:  # pylint: disable=broad-except
                if getattr(exc, "status", None) == 404:
                    # The kind's path is gone: discovery was stale (CRDs deleted since it was cached).
                    kube.forget_discovery()
                    check_api(kube, docs)
                raise GpuSlicingError("The API server rejects %s %s: %s. Nothing was written."
                                      % (doc["kind"], doc["metadata"]["name"], error_message(exc)),
                                      kind="rejected") from exc
    return {"overlay_served": overlay_served, "overlays": desired_overlays, "gate": gate, "source": source,
            "warnings": warnings, "ami": ami}


def _write_order(docs, overlays):
    """EC2NodeClass, overlays, then the NodePool: Karpenter never sees the pool without them."""
    return ([docs["ec2nodeclass"]] if docs["ec2nodeclass"] is not None else []) + list(overlays) + [docs["nodepool"]]


def _ec2nodeclass_status(context, name):
    try:
        return nodeclass_status(context, name)
    except Exception as exc:  # pylint: disable=broad-except
        return {"ready": None, "conditions": [], "reported": "could not be read: %s" % error_message(exc)}


def apply_present(options, context, checked):
    """Write what prepare_present checked, and prune owned overlays no longer wanted."""
    kube, docs = context.kube, options.docs
    run = _Run(context)
    try:
        for doc in _write_order(docs, checked["overlays"]):
            run.apply(doc)
        if checked["overlay_served"]:
            wanted = {o["metadata"]["name"] for o in checked["overlays"]}
            for overlay in _owned_overlays(kube, options.name):
                if overlay["metadata"]["name"] not in wanted:
                    run.delete(OVERLAY_API, OVERLAY_KIND, overlay["metadata"]["name"])
    except Exception as exc:
        raise GpuSlicingError("Writing the Karpenter objects failed: %s" % error_message(exc), kind="api",
                              objects=run.objects) from exc
    result = {
        "changed": run.changed,
        "objects": run.objects,
        "nodepool": docs["nodepool"],
        "ec2nodeclass": docs["ec2nodeclass"],
        "node_overlays": checked["overlays"],
        "summary": docs["summary"],
        "node_overlay_gate": checked["gate"],
        "gate_source": checked["source"],
    }
    if docs["ec2nodeclass"] is not None:
        result["ami_check"] = checked["ami"]
        result["ec2nodeclass_status"] = _ec2nodeclass_status(context, docs["ec2nodeclass"]["metadata"]["name"])
    if checked["warnings"]:
        result["over_provisioning_warning"] = checked["warnings"][0]
    if run.diffs:
        result["diff"] = run.diffs
    return result


def remove(options, context):
    """ensure_absent, with an API error reported as a failure that says what was being removed."""
    try:
        return ensure_absent(options, context)
    except Exception as exc:
        raise GpuSlicingError("Removing the Karpenter objects failed: %s" % error_message(exc), kind="api") from exc


def ensure_nodepool(options, context):
    """karpenter_gpu_nodepool: the NodePool, EC2NodeClass and NodeOverlays present or absent."""
    if options.state == "absent":
        return remove(options, context)
    return apply_present(options, context, prepare_present(options, context))
