# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device-plugin modules' work: validate, then write the ConfigMap and the Helm release.

Order matters for safety: the options (names, the sharing plan, the chart values, helm) are
checked when they are built, the connection and the chart before the first write, so bad input
leaves the cluster as it was. A rollout that does not become ready restores the previous
ConfigMap content and Helm revision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ansible.module_utils.common.process import get_bin_path

from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress
from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
    CHART_NAME,
    chart_source,
    chart_values,
    config_hash,
    config_map_definition,
    daemonset_rollout,
    namespace_definition,
    nodes_missing_pods,
    plugin_option_errors,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import (
    GpuSlicingError,
    InvalidInput,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_PRESENT_LABEL,
    OS_DEVICE_PLUGIN_LABEL,
    name_errors,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.waiter import poll_until
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.helm import Helm

# DaemonSets of the chart that must run on every GPU node (NFD's own are not ours to wait on).
PLUGIN_APP_NAMES = ("nvidia-device-plugin", "gpu-feature-discovery")
ROLLOUT = "device plugin rollout"  # the progress lines' name for the wait


def check_names(labels=None, subdomains=None, max_label=63):
    """Raise before any request when a name would be refused by the API server (or Helm)."""
    errors = name_errors(labels=labels, subdomains=subdomains, max_label=max_label)
    if errors:
        raise GpuSlicingError("; ".join(errors), kind="invalid")


def helm_binary(path):
    """The helm binary to run (``path``, or helm from PATH); raises InvalidInput naming binary_path."""
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise InvalidInput("binary_path", path, why="no executable helm there",
                               fix="install helm >= 3.10 or point binary_path at it (or leave it unset to use "
                                   "helm from PATH)")
        return path
    try:
        return get_bin_path("helm")
    except ValueError:
        raise InvalidInput("binary_path", None, why="helm is not on PATH",
                           fix="install helm >= 3.10 (the execution environment's bindep.txt lists it) "
                               "or set binary_path") from None


@dataclass
class SharingConfigMap(object):
    """The sharing ConfigMap both device-plugin modules write: where it is and, with state
    present, the checked plan it holds."""

    state: str
    namespace: str
    config_map_name: str
    plan: object  # the SharingPlan (state present), else None

    @staticmethod
    def checked(params, release_name=False):
        """These fields from the params: the names checked (and the Helm release's name, when
        asked), then the profiles. Raises naming field, value and fix."""
        check_names(labels={"namespace": params["namespace"]}, subdomains={"config_map_name": params["config_map_name"]})
        if release_name:
            check_names(labels={"release_name": params["release_name"]}, max_label=53)  # Helm's own limit
        return dict(state=params["state"], namespace=params["namespace"], config_map_name=params["config_map_name"],
                    plan=sharing_plan(params) if params["state"] == "present" else None)


@dataclass
class ConfigMapOptions(SharingConfigMap):
    """device_plugin_config's options, checked."""

    create_namespace: bool

    @classmethod
    def from_params(cls, params):
        return cls(create_namespace=params["create_namespace"], **cls.checked(params))


@dataclass
class DevicePluginOptions(SharingConfigMap):
    """device_plugin's options, checked: names, the sharing plan, the image and chart values
    (state present) and the helm binary, all before the cluster is contacted."""

    release_name: str
    chart_ref: str
    chart_repo_url: str
    chart_version: str
    manage_config_map: bool
    image_tag: str
    gfd: bool
    values: dict
    wait: bool
    wait_timeout: int
    helm_binary: str

    @classmethod
    def from_params(cls, params):
        fields = cls.checked(params, release_name=True)
        if fields["plan"] is not None:
            problems = plugin_option_errors(params["image_tag"], params["values"], plan=fields["plan"],
                                            gfd=params["gfd"])
            if problems:  # every problem in the message, the first as the structured error
                raise GpuSlicingError("; ".join(str(e) for e in problems), kind="invalid", error=problems[0].to_dict())
        # helm is looked for before connecting: a missing helm must not leave half a change
        fields["helm_binary"] = helm_binary(params.get("binary_path"))
        names = ("release_name", "chart_ref", "chart_repo_url", "chart_version", "manage_config_map", "image_tag",
                 "gfd", "values", "wait", "wait_timeout")
        fields.update((name, params.get(name)) for name in names)
        return cls(**fields)


def _ensure_namespace(context, namespace):
    """Create the namespace when missing. Returns (changed, exists_now)."""
    kube = context.kube
    if kube.get("Namespace", "v1", namespace) is not None:
        return False, True
    if context.check_mode:
        return True, False
    kube.ensure(namespace_definition(namespace))
    return True, True


def _apply_config_map(context, plan, name, namespace, create_namespace):
    definition = config_map_definition(plan, name=name, namespace=namespace)
    ns_changed, ns_exists = False, True
    if create_namespace:
        ns_changed, ns_exists = _ensure_namespace(context, namespace)
    if not ns_exists:
        # Check mode with a namespace still to be created: a server-side dry run of the
        # ConfigMap would fail on the missing namespace, so report the object as it would be.
        result = {"changed": True, "method": "apply", "result": definition}
        if context.diff:
            result["diff"] = {"before": {}, "after": definition}
    else:
        result = context.kube.ensure(definition)
    result["changed"] = result.get("changed", False) or ns_changed
    return result, definition


def _config_map_stub(name, namespace):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


def ensure_config_map(options, context):
    """device_plugin_config: the sharing ConfigMap present (from the profiles) or absent."""
    name, namespace, plan = options.config_map_name, options.namespace, options.plan
    kube = context.kube
    try:
        if plan is None:
            result = kube.ensure(_config_map_stub(name, namespace), state="absent")
            return {"changed": result["changed"], "method": "delete", "result": result.get("result", {})}
        result, definition = _apply_config_map(context, plan, name, namespace, options.create_namespace)
    except Exception as exc:
        raise GpuSlicingError("Writing ConfigMap %s/%s failed: %s" % (namespace, name, error_message(exc)),
                              kind="api") from exc
    result.update(
        plan=plan.to_dict(derived=True),
        configs=definition["data"],
        config_hash=config_hash(definition["data"]),
    )
    return result


def _plugin_daemonsets(kube, release, namespace):
    items = kube.list("DaemonSet", "apps/v1", namespace=namespace, label_selector="app.kubernetes.io/instance=%s" % release)
    return [
        ds for ds in items
        if (ds["metadata"].get("labels") or {}).get("app.kubernetes.io/name") in PLUGIN_APP_NAMES
    ]


def gpu_nodes(kube):
    # Nodes whose OS runs its own plugin get no chart pod (gpu_node_affinity): not waited for.
    return kube.list_raw("Node", "v1", label_selector="%s=true,!%s" % (GPU_PRESENT_LABEL, OS_DEVICE_PLUGIN_LABEL))


def rollout_progress(summary):
    """One line on where the rollout stands: per DaemonSet, Ready pods of the GPU nodes it needs."""
    parts = ["%s %d/%d Ready" % (ds["name"], ds["ready"], ds["required"]) for ds in summary["daemonsets"]]
    text = ", ".join(parts) if parts else "no DaemonSet of the release yet"
    if summary["leaving_nodes"]:
        text += " (%d GPU node(s) leaving, not waited for)" % len(summary["leaving_nodes"])
    return "%s; %d GPU node(s) to cover" % (text, summary["target_nodes"])


def rolled_out(observed):
    """The rollout wait's predicate: ``observed`` is (GPU nodes, daemonset_rollout summary)."""
    return observed[1]["ready"]


def wait_for_rollout(kube, release, namespace, timeout, interval=1.0, **clock):
    """Wait until the plugin, GFD (and MPS daemon) DaemonSets are rolled out where they must run.
    ``clock``: poll_until's clock and sleep (tests)."""

    def read():
        # Nodes are re-read each round: GFD's mps.capable label can appear during the rollout.
        nodes = gpu_nodes(kube)
        return nodes, daemonset_rollout(_plugin_daemonsets(kube, release, namespace), nodes)

    def report(observed, waited):
        if not rolled_out(observed):
            progress.waiting(ROLLOUT, waited, timeout, lambda: rollout_progress(observed[1]))

    dummy, (nodes, summary), waited = poll_until(read, rolled_out, timeout, interval, on_poll=report, **clock)
    summary["waited_seconds"] = round(waited, 2)
    leaving = set(n["name"] for n in summary["leaving_nodes"])
    summary["target_node_names"] = sorted(n["metadata"]["name"] for n in nodes
                                          if n["metadata"]["name"] not in leaving)
    if not summary["ready"]:
        try:  # only to explain the failure: an API error here must not hide it
            pods = kube.list_raw("Pod", "v1", namespace=namespace,
                                 label_selector="app.kubernetes.io/instance=%s" % release)
            summary["nodes_missing_pods"] = nodes_missing_pods(
                _plugin_daemonsets(kube, release, namespace), nodes, pods)
        except Exception as exc:  # pylint: disable=broad-except
            summary["nodes_missing_pods_error"] = error_message(exc)
    return summary


def _chart_check(options, helm):
    """The chart's metadata, or a failure naming chart_ref/chart_version (before any write)."""
    chart_ref, version, repo_url = options.chart_ref, options.chart_version, options.chart_repo_url
    meta, err = helm.chart_metadata(chart_ref, version, repo_url)
    if meta is None:
        where = " ".join(chart_source(chart_ref, repo_url, os.path.exists(chart_ref)))
        raise GpuSlicingError(
            "chart_ref: %r cannot be read by helm as %r (%s). Fix: set chart_repo_url to a Helm repository "
            "that serves the nvidia-device-plugin chart (default: NVIDIA's), or give chart_ref as a chart "
            "directory, an oci:// reference or '<repo>/nvidia-device-plugin' for a repository added with "
            "'helm repo add'." % (chart_ref, where, err), kind="invalid")
    if meta.get("name") != CHART_NAME:
        raise GpuSlicingError(
            "chart_ref: %r is the chart %r, not %r. Fix: point chart_ref at NVIDIA's device-plugin chart."
            % (chart_ref, meta.get("name"), CHART_NAME), kind="invalid")
    if version and str(meta.get("version")) != version:
        raise GpuSlicingError(
            "chart_version: the chart at %r is version %s, not %s. Fix: use the %s chart or set chart_version."
            % (chart_ref, meta.get("version"), version, version), kind="invalid")
    return meta


class PluginChange(object):
    """What prepare_device_plugin found and computed, for apply_device_plugin to write."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def prepare_device_plugin(options, context):
    """Everything the device plugin's run reads and checks before its first write: the current
    release and (state present) the chart and the Helm values to install."""
    kube = context.kube
    helm = Helm(context, options.helm_binary, options.namespace)
    existing, current_values = helm.release_and_values(options.release_name, options.namespace)
    change = PluginChange(helm=helm, existing=existing, current_values=current_values)
    if options.state == "absent":
        return change

    chart = _chart_check(options, helm)  # before any write
    change.values = chart_values(options.plan, config_map_name=options.config_map_name, image_tag=options.image_tag,
                                 gfd=options.gfd, extra_values=options.values)
    change.previous_cm = (kube.get("ConfigMap", "v1", options.config_map_name, options.namespace)
                          if options.manage_config_map else None)
    change.release_current = (
        bool(existing)
        and existing.get("status") == "deployed"
        and existing.get("chart") == "%s-%s" % (chart["name"], chart["version"])
        and current_values == change.values
    )
    return change


def _remove_device_plugin(options, context, change, result):
    if change.existing:
        result["changed"] = True
        if not context.check_mode:
            change.helm.uninstall(options.release_name, options.namespace, options.wait_timeout)
    if options.manage_config_map:
        cm = context.kube.ensure(_config_map_stub(options.config_map_name, options.namespace), state="absent")
        result["changed"] = result["changed"] or cm["changed"]
    return result


def apply_device_plugin(options, context, change):
    """Write what prepare_device_plugin computed: the ConfigMap, the Helm release, then wait for
    the rollout (restoring the previous state when it does not become ready)."""
    kube, helm = context.kube, change.helm
    release, namespace, cm_name = options.release_name, options.namespace, options.config_map_name
    result = {"changed": False, "release_name": release, "namespace": namespace}
    if options.state == "absent":
        return _remove_device_plugin(options, context, change, result)

    values = change.values
    result["plan"] = options.plan.to_dict(derived=True)
    result["values"] = values
    result["config_hash"] = values["podAnnotations"]["checksum/config"]

    if options.manage_config_map:
        try:
            cm_result, dummy = _apply_config_map(context, options.plan, cm_name, namespace, True)
        except Exception as exc:
            raise GpuSlicingError("Writing ConfigMap %s/%s failed: %s" % (namespace, cm_name, error_message(exc)),
                                  kind="api") from exc
        result["config_map"] = {"changed": cm_result["changed"], "method": cm_result.get("method")}
        result["changed"] = cm_result["changed"]
    if context.diff:
        result["diff"] = {"before": {"values": change.current_values or {}}, "after": {"values": values}}

    after = change.existing
    if not change.release_current:
        result["changed"] = True
        if not context.check_mode:
            helm.upgrade_install(release, namespace, options.chart_ref, options.chart_version, values,
                                 options.wait_timeout, options.chart_repo_url)
            after = helm.release(release, namespace)
    result["release_revision"] = None
    if not context.check_mode:
        result["release_revision"] = int(after["revision"]) if after else None

    if options.wait and not context.check_mode:
        rollout = wait_for_rollout(kube, release, namespace, options.wait_timeout)
        result["rollout"] = rollout
        if not rollout["ready"]:
            restored = _restore(context, helm, change, options) if result["changed"] else []
            result["restored"] = restored
            msg = ("The device plugin did not become ready on every GPU node within %ss: %s. %s"
                   % (options.wait_timeout, _rollout_reason(rollout),
                      "Restored: %s." % ", ".join(restored) if restored else "Nothing was restored."))
            raise GpuSlicingError(msg, kind="not_ready", **result)
    return result


def ensure_device_plugin(options, context):
    """device_plugin: NVIDIA's chart installed with the sharing configs, rolled out and ready."""
    return apply_device_plugin(options, context, prepare_device_plugin(options, context))


def _rollout_reason(rollout):
    parts = ["%d GPU node(s) targeted" % rollout["target_nodes"]]
    for ds in rollout["daemonsets"]:
        parts.append("%s required=%d desired=%d updated=%d ready=%d available=%d"
                     % (ds["name"], ds["required"], ds["desired"], ds["updated"], ds["ready"], ds["available"]))
    if not rollout["daemonsets"]:
        parts.append("no device-plugin DaemonSet found")
    for ds_name, nodes in sorted((rollout.get("nodes_missing_pods") or {}).items()):
        parts.append("%s has no Ready pod on %s" % (ds_name, ", ".join(
            "%s (taints: %s)" % (n["name"], ", ".join(n["taints"]) or "none") for n in nodes)))
    return "; ".join(parts)


def _restore(context, helm, change, options):
    """Put back the previous ConfigMap content and Helm revision after a failed rollout."""
    restored = []
    namespace, release = options.namespace, options.release_name
    previous_cm, previous_release = change.previous_cm, change.existing
    if previous_cm is not None:
        definition = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": previous_cm["metadata"]["name"],
                "namespace": namespace,
                "labels": previous_cm["metadata"].get("labels") or {},
                "annotations": {k: v for k, v in (previous_cm["metadata"].get("annotations") or {}).items()
                                if not k.startswith("kubectl.kubernetes.io/")},
            },
            "data": previous_cm.get("data") or {},
        }
        context.kube.ensure(definition)
        restored.append("ConfigMap %s/%s" % (namespace, definition["metadata"]["name"]))
    if previous_release:
        rc, out, err = helm.rollback(release, namespace, previous_release["revision"])
        if rc == 0:
            restored.append("Helm release %s revision %s" % (release, previous_release["revision"]))
        else:
            context.warn("helm rollback of %s failed: %s" % (release, err.strip()))
    return restored
