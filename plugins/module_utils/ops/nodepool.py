# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""karpenter_gpu_nodepool's work: validate, check the cluster's Karpenter, then write or remove.

Order: the sharing plan and every option are validated (karpenter.py), then the API is asked
whether it serves the kinds we write and whether the NodeOverlay feature gate is on. Only then
is anything written: EC2NodeClass, NodeOverlays, NodePool (overlays before the NodePool so
Karpenter never sees the pool without them), and owned overlays no longer wanted are pruned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.ec2 import ssm_parameter_value
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import (
    FALLBACK_KINDS,
    AwsError,
    aws_requested,
    session_from_params,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.karpenter import (
    render_from_params,
)
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
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import (
    connect,
    error_message,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput

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


def node_overlay_gate(module, kube):
    """(state, source): state True/False/None (unknown) and where it was read."""
    params = module.params
    if params.get("karpenter_feature_gates") is not None:
        gates = parse_feature_gates(params["karpenter_feature_gates"])
        return gates.get("NodeOverlay", False), "karpenter_feature_gates option"
    namespace = params["karpenter_namespace"]
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


def _fail(module, msg, **extra):
    module.fail_json(msg=msg, **extra)


def render(module):
    """The NodePool, EC2NodeClass and overlays from the module's params, every option validated
    before the API is contacted (or fail_json naming field, value and fix)."""
    try:
        return render_from_params(module.params)
    except InvalidInput as err:  # InvalidInput is a InvalidInput
        _fail(module, str(err), error=err.to_dict())


def check_api(module, kube, docs):
    """Fail unless the API serves NodePool (and EC2NodeClass when managed). Returns overlay served."""
    if kube.resource(NODEPOOL_KIND, NODEPOOL_API) is None:
        _fail(module, "The cluster does not serve %s %s: Karpenter v1 is not installed. Fix: install Karpenter "
              ">= 1.7 (its CRDs) before managing GPU NodePools." % (NODEPOOL_KIND, NODEPOOL_API))
    if docs["ec2nodeclass"] is not None and kube.resource(NODECLASS_KIND, NODECLASS_API) is None:
        _fail(module, "The cluster does not serve %s %s. Fix: install Karpenter's AWS provider CRDs, or set "
              "manage_node_class: false with node_class_ref naming the node class to use."
              % (NODECLASS_KIND, NODECLASS_API))
    if docs["ec2nodeclass"] is None:
        ref = docs["nodepool"]["spec"]["template"]["spec"]["nodeClassRef"]
        if not kube.serves_kind(ref["group"], ref["kind"]):
            _fail(module, "node_class_ref: %s (group %s) is not served by the cluster: no CRD defines that kind, so "
                  "Karpenter could never launch nodes from this NodePool. Nothing was written. Fix: install the "
                  "provider's CRDs, or point node_class_ref at a served node class kind (EC2NodeClass in "
                  "karpenter.k8s.aws on EKS)." % (ref["kind"], ref["group"]))
    return kube.resource(OVERLAY_KIND, OVERLAY_API) is not None


def check_ami(module, kube, nodeclass):
    """Ask AWS whether the EC2NodeClass's alias resolves to an image, as Karpenter's AWS provider
    will (an SSM parameter per alias and Kubernetes version). Fails when AWS says there is none;
    without AWS (no region/credentials, unreachable, denied) it says it did not check."""
    alias = nodeclass["spec"]["amiSelectorTerms"][0]["alias"]
    family, version = alias.split("@", 1)
    params = module.params
    if not (aws_requested(params) or params.get("region")):
        return {"alias": alias, "checked": False,
                "reason": "no AWS connection given (region and credentials): Karpenter resolves it at run time"}
    try:
        k8s_version = kube.server_minor_version()
        parameter = ami_ssm_parameter(family, version, k8s_version)
        session = session_from_params(params)
        image = ssm_parameter_value(session, parameter)
    except AwsError as exc:
        if exc.kind not in FALLBACK_KINDS:
            _fail(module, "Checking ami_alias %s against AWS failed: %s. Nothing was written." % (alias, exc))
        module.warn("ami_alias %s was not checked against AWS (%s)" % (alias, exc))
        return {"alias": alias, "checked": False, "reason": str(exc)}
    if image is None:
        _fail(module, "ami_alias: %r is invalid: AWS publishes no SSM parameter %s in %s, so Karpenter would find "
              "no image for it and the EC2NodeClass would never become ready. Nothing was written. Fix: pin a "
              "version released for Kubernetes %s (the SSM parameters under the same path list them) or use %s@latest"
              % (alias, parameter, session.region_name, k8s_version, family),
              field="ami_alias", value=alias)
    return {"alias": alias, "ssm_parameter": parameter, "image_id": image, "checked": True}


def nodeclass_status(module, kube, name):
    """The EC2NodeClass's readiness as its controller reports it (a warning when not ready)."""
    obj = kube.get(NODECLASS_KIND, NODECLASS_API, name)
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
        module.warn("EC2NodeClass %s is not ready: %s" % (name, "; ".join(
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

    def __init__(self, module, kube):
        self.module = module
        self.kube = kube
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
        if self.module._diff and changed:
            diff = res.get("diff") or {}
            self.diffs.append({
                "before_header": "%s/%s" % (doc["kind"], doc["metadata"]["name"]),
                "after_header": "%s/%s" % (doc["kind"], doc["metadata"]["name"]),
                "before": diff.get("before", {} if method == "apply" else res.get("result", {})),
                "after": diff.get("after", res.get("result", {}) if method == "apply" else {}),
            })


def _owned_overlays(kube, name):
    return kube.list(OVERLAY_KIND, OVERLAY_API, label_selector=_owned_selector(name))


def ensure_absent(module, kube):
    name = module.params["name"]
    run = _Run(module, kube)
    overlay_served = kube.resource(OVERLAY_KIND, OVERLAY_API) is not None
    pool_served = kube.resource(NODEPOOL_KIND, NODEPOOL_API) is not None
    if pool_served:
        pool = kube.get(NODEPOOL_KIND, NODEPOOL_API, name)
        if pool is not None and not _is_owned(pool, name):
            module.warn("NodePool %s exists but was not created by gpu_slicing.eks (labels %s and %s missing): "
                        "left in place" % (name, MANAGED_BY_LABEL, OWNER_LABEL))
        elif pool is not None:
            run.delete(NODEPOOL_API, NODEPOOL_KIND, name)
    if overlay_served:
        for overlay in _owned_overlays(kube, name):
            run.delete(OVERLAY_API, OVERLAY_KIND, overlay["metadata"]["name"])
    if module.params["manage_node_class"] and kube.resource(NODECLASS_KIND, NODECLASS_API) is not None:
        class_name = module.params["node_class_name"] or name
        nodeclass = kube.get(NODECLASS_KIND, NODECLASS_API, class_name)
        if nodeclass is not None and _is_owned(nodeclass, name):
            run.delete(NODECLASS_API, NODECLASS_KIND, class_name)
        elif nodeclass is not None:
            module.warn("EC2NodeClass %s was not created for NodePool %s by gpu_slicing.eks: left in place"
                        % (class_name, name))
    result = {"changed": run.changed, "objects": run.objects}
    if run.diffs:
        result["diff"] = run.diffs
    return result


def _reraise_failures(exc):
    """fail_json ends a run by raising; that must pass through the handlers that wrap API errors."""
    if exc.__class__.__name__ in ("AnsibleFailJson", "SystemExit"):
        raise exc


def prepare_present(module, kube, docs):
    """Everything ensure_present checks before its first write: the kinds served, the NodeOverlay
    gate, ownership of existing objects and (outside check mode) the API server's dry run of each
    object. Returns the overlays to write and the gate's state and warnings."""
    params = module.params
    overlay_served = check_api(module, kube, docs)
    warnings = []
    gate, source = None, None
    want_overlays = bool(docs["overlays"])
    if want_overlays:
        gate, source = node_overlay_gate(module, kube)
        problem = None
        if not overlay_served:
            problem = ("the cluster does not serve %s %s (Karpenter older than v1.7 or its CRDs not upgraded)"
                       % (OVERLAY_KIND, OVERLAY_API))
        elif gate is not True:
            problem = "the NodeOverlay feature gate is %s (%s)" % ("off" if gate is False else "not shown on", source)
        if problem:
            if not params["allow_without_node_overlay"]:
                _fail(module, "Karpenter cannot be told about GPU slices: %s. Nothing was written. Fix: %s; if "
                      "Karpenter runs elsewhere or you cannot read its Deployment, state the gates with "
                      "karpenter_feature_gates: 'NodeOverlay=true'. Or set allow_without_node_overlay: true "
                      "to write the NodePool without overlays (Karpenter will over-provision)."
                      % (problem, GATE_FIX), node_overlay_gate=gate, gate_source=source)
            message = ("%s: NodeOverlays skipped. Karpenter will over-provision: it counts physical GPUs, not slices, and launches up to "
                       "%d times the nodes the pods need. Fix: %s." % (problem, docs["summary"]["replicas"], GATE_FIX))
            module.warn(message)
            warnings.append(message)
            want_overlays = False
    desired_overlays = docs["overlays"] if want_overlays else []
    try:
        if docs["ec2nodeclass"] is not None:
            existing = kube.get(NODECLASS_KIND, NODECLASS_API, docs["ec2nodeclass"]["metadata"]["name"])
            if existing is not None and not _is_owned(existing, params["name"]):
                _fail(module, "EC2NodeClass %s exists and is not managed by gpu_slicing.eks for NodePool %s. "
                      "Fix: choose another node_class_name, or set manage_node_class: false and node_class_ref."
                      % (docs["ec2nodeclass"]["metadata"]["name"], params["name"]))
        existing_pool = kube.get(NODEPOOL_KIND, NODEPOOL_API, params["name"])
        if existing_pool is not None and not _is_owned(existing_pool, params["name"]):
            _fail(module, "NodePool %s exists and was not created by gpu_slicing.eks. Nothing was written. Fix: "
                  "choose another name, or add the labels %s=%s and %s=%s to adopt it."
                  % (params["name"], MANAGED_BY_LABEL, MANAGED_BY, OWNER_LABEL, params["name"]))
    except Exception as exc:
        _reraise_failures(exc)
        _fail(module, "Reading the Karpenter objects failed: %s. Nothing was written." % error_message(exc))
    ami = check_ami(module, kube, docs["ec2nodeclass"]) if docs["ec2nodeclass"] is not None else None
    if not module.check_mode:
        # Every object passes the API server's own validation (CRD schemas, CEL rules) in a
        # dry run first, so a rejected NodePool cannot leave its class and overlays written.
        for doc in _write_order(docs, desired_overlays):
            try:
                kube.dry_run_apply(doc)
            except Exception as exc:  # pylint: disable=broad-except
                if getattr(exc, "status", None) == 404:
                    # The kind's path is gone: discovery was stale (CRDs deleted since it was cached).
                    kube.forget_discovery()
                    check_api(module, kube, docs)
                _fail(module, "The API server rejects %s %s: %s. Nothing was written."
                      % (doc["kind"], doc["metadata"]["name"], error_message(exc)))
    return {"overlay_served": overlay_served, "overlays": desired_overlays, "gate": gate, "source": source,
            "warnings": warnings, "ami": ami}


def _write_order(docs, overlays):
    """EC2NodeClass, overlays, then the NodePool: Karpenter never sees the pool without them."""
    return ([docs["ec2nodeclass"]] if docs["ec2nodeclass"] is not None else []) + list(overlays) + [docs["nodepool"]]


def apply_present(module, kube, docs, checked):
    """Write what prepare_present checked, and prune owned overlays no longer wanted."""
    params = module.params
    run = _Run(module, kube)
    try:
        for doc in _write_order(docs, checked["overlays"]):
            run.apply(doc)
        if checked["overlay_served"]:
            wanted = {o["metadata"]["name"] for o in checked["overlays"]}
            for overlay in _owned_overlays(kube, params["name"]):
                if overlay["metadata"]["name"] not in wanted:
                    run.delete(OVERLAY_API, OVERLAY_KIND, overlay["metadata"]["name"])
    except Exception as exc:
        _reraise_failures(exc)
        _fail(module, "Writing the Karpenter objects failed: %s" % error_message(exc), objects=run.objects)
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
        try:
            result["ec2nodeclass_status"] = nodeclass_status(module, kube, docs["ec2nodeclass"]["metadata"]["name"])
        except Exception as exc:  # pylint: disable=broad-except
            _reraise_failures(exc)
            result["ec2nodeclass_status"] = {"ready": None, "conditions": [],
                                             "reported": "could not be read: %s" % error_message(exc)}
    if checked["warnings"]:
        result["over_provisioning_warning"] = checked["warnings"][0]
    if run.diffs:
        result["diff"] = run.diffs
    return result


def ensure_present(module, kube, docs):
    return apply_present(module, kube, docs, prepare_present(module, kube, docs))


def remove(module, kube):
    """ensure_absent, with an API error reported as a failure that says what was being removed."""
    try:
        return ensure_absent(module, kube)
    except Exception as exc:
        _reraise_failures(exc)
        _fail(module, "Removing the Karpenter objects failed: %s" % error_message(exc))


def ensure_nodepool(module):
    """karpenter_gpu_nodepool: the NodePool, EC2NodeClass and NodeOverlays present or absent."""
    if module.params["state"] == "absent":
        return remove(module, connect(module))
    docs = render(module)  # every option validated before the API is contacted
    kube = connect(module)
    return ensure_present(module, kube, docs)
