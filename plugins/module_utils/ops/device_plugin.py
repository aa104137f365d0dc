# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device-plugin modules' work: validate, then write the ConfigMap and the Helm release.

Order matters for safety: the sharing plan, the connection and the chart are all checked
before the first write, so bad input leaves the cluster as it was. A rollout that does not
become ready restores the previous ConfigMap content and Helm revision.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    plan_from_params,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
    CHART_NAME,
    chart_source,
    chart_values,
    config_hash,
    config_map_definition,
    daemonset_rollout,
    helm_release_selector,
    latest_helm_release,
    namespace_definition,
    nodes_missing_pods,
    plugin_option_errors,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    GPU_PRESENT_LABEL,
    OS_DEVICE_PLUGIN_LABEL,
    name_errors,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import (
    ParamsView,
    connect,
    error_message,
    helm_environment,
    helm_token,
    helm_with_retries,
)

# DaemonSets of the chart that must run on every GPU node (NFD's own are not ours to wait on).
PLUGIN_APP_NAMES = ("nvidia-device-plugin", "gpu-feature-discovery")


def check_names(module, labels=None, subdomains=None, max_label=63):
    """Fail before any request when a name would be refused by the API server (or Helm)."""
    errors = name_errors(labels=labels, subdomains=subdomains, max_label=max_label)
    if errors:
        module.fail_json(msg="; ".join(errors))


def _ensure_namespace(module, kube, namespace):
    """Create the namespace when missing. Returns (changed, exists_now)."""
    if kube.get("Namespace", "v1", namespace) is not None:
        return False, True
    if module.check_mode:
        return True, False
    kube.ensure(namespace_definition(namespace))
    return True, True


def _apply_config_map(module, kube, plan, name, namespace, create_namespace):
    definition = config_map_definition(plan, name=name, namespace=namespace)
    ns_changed, ns_exists = False, True
    if create_namespace:
        ns_changed, ns_exists = _ensure_namespace(module, kube, namespace)
    if not ns_exists:
        # Check mode with a namespace still to be created: a server-side dry run of the
        # ConfigMap would fail on the missing namespace, so report the object as it would be.
        result = {"changed": True, "method": "apply", "result": definition}
        if module._diff:
            result["diff"] = {"before": {}, "after": definition}
    else:
        result = kube.ensure(definition)
    result["changed"] = result.get("changed", False) or ns_changed
    return result, definition


def ensure_config_map(module):
    """device_plugin_config: the sharing ConfigMap present (from the profiles) or absent."""
    params = module.params
    name, namespace = params["config_map_name"], params["namespace"]
    check_names(module, labels={"namespace": namespace}, subdomains={"config_map_name": name})
    plan = plan_from_params(module) if params["state"] == "present" else None
    kube = connect(module)
    try:
        if plan is None:
            stub = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
            result = kube.ensure(stub, state="absent")
            return {"changed": result["changed"], "method": "delete", "result": result.get("result", {})}
        result, definition = _apply_config_map(module, kube, plan, name, namespace, params["create_namespace"])
    except Exception as exc:
        module.fail_json(msg="Writing ConfigMap %s/%s failed: %s" % (namespace, name, error_message(exc)))
    result.update(
        plan=plan.to_dict(derived=True),
        configs=definition["data"],
        config_hash=config_hash(definition["data"]),
    )
    return result


# --------------------------------------------------------------------------- helm


class Helm(object):
    """helm run through kubernetes.core's AnsibleHelmModule with our resolved connection.

    The helm CLI (and kubernetes.core's helm module_utils) is only set up when a helm command
    runs: a run with nothing to change reads the release from its Secret and the chart from its
    directory, and so needs neither."""

    def __init__(self, module, kube, binary):
        self.module = module
        self.kube = kube
        self.binary = binary
        self._helm_module = None

    @property
    def _helm(self):
        if self._helm_module is None:
            from ansible_collections.kubernetes.core.plugins.module_utils.helm import (
                AnsibleHelmModule,
            )

            params = helm_environment(self.module, self.kube)
            params["binary_path"] = self.binary
            params["release_namespace"] = self.module.params["namespace"]  # kubernetes.core.helm's name
            self._helm_module = AnsibleHelmModule(module=ParamsView(self.module._module, params))
        return self._helm_module

    def run(self, args, fails_on_error=True):
        def once(argv):
            command = " ".join(_quote(a) for a in [self.binary] + list(argv))
            environ = dict(self._helm.env_update, **helm_token(self.kube))
            return self._helm.run_command(command, environ_update=environ)

        # Read-only helm commands are repeated on transient API failures (kube.helm_with_retries).
        rc, out, err = helm_with_retries(once, list(args), stats=getattr(self.module, "_gse_retry_stats_obj", None))
        if fails_on_error and rc != 0:
            self._helm.fail_json(
                msg="Failure when executing Helm command. Exited {0}.\nstdout: {1}\nstderr: {2}".format(rc, out, err),
                stdout=out, stderr=err, command=" ".join(_quote(a) for a in [self.binary] + list(args)))
        return rc, out, err

    def chart_metadata(self, chart_ref, version=None, repo_url=None):
        chart_file = os.path.join(chart_ref, "Chart.yaml")
        if os.path.isfile(chart_file):
            # A chart directory: its Chart.yaml is what `helm show chart` would print.
            import yaml

            try:
                with open(chart_file) as handle:
                    return yaml.safe_load(handle), None
            except (IOError, OSError, yaml.YAMLError) as exc:
                return None, "%s: %s" % (chart_file, exc)
        args = ["show", "chart"] + chart_source(chart_ref, repo_url, os.path.exists(chart_ref))
        if version and not os.path.isdir(chart_ref):
            args += ["--version", version]
        rc, out, err = self.run(args, fails_on_error=False)
        if rc != 0:
            return None, err.strip() or out.strip()
        import yaml

        return yaml.safe_load(out), None

    def release_and_values(self, name, namespace):
        """(summary as `helm list -o json` gives it, user-supplied values) of the latest revision,
        or (None, None). Read from Helm's release Secret (one API request) when Helm uses its
        default secret storage and the Secrets can be read; else from the helm CLI."""
        if os.environ.get("HELM_DRIVER", "secret").lower() in ("secret", "secrets", ""):
            try:
                secrets = self.kube.list_raw("Secret", "v1", namespace=namespace,
                                             label_selector=helm_release_selector(name))
                return latest_helm_release(secrets)
            except Exception:  # pylint: disable=broad-except
                pass  # RBAC without Secret reads, or a release Helm wrote differently: ask helm
        existing = self.release(name, namespace)
        return existing, (self.values(name, namespace) if existing else None)

    def release(self, name, namespace):
        rc, out, err = self.run(["list", "-n", namespace, "--filter", "^%s$" % name, "-a", "-o", "json"])
        items = json.loads(out or "[]")
        return items[0] if items else None

    def values(self, name, namespace):
        rc, out, err = self.run(["get", "values", name, "-n", namespace, "-o", "json"])
        return json.loads(out or "{}") or {}

    def upgrade_install(self, name, namespace, chart_ref, version, values, timeout, repo_url=None):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        try:
            # --timeout bounds chart hooks; readiness is judged by wait_for_rollout, not helm --wait.
            args = (["upgrade", "--install", name] + chart_source(chart_ref, repo_url, os.path.exists(chart_ref))
                    + ["-n", namespace, "--create-namespace", "-f", path, "--timeout", "%ds" % timeout])
            if version and not os.path.isdir(chart_ref):
                args += ["--version", version]
            return self.run(args)
        finally:
            os.unlink(path)

    def rollback(self, name, namespace, revision):
        return self.run(["rollback", name, str(revision), "-n", namespace], fails_on_error=False)

    def uninstall(self, name, namespace, timeout):
        # Hooks (NFD's prune job) and deletions are bounded, so a stuck uninstall fails clearly.
        return self.run(["uninstall", name, "-n", namespace, "--wait", "--timeout", "%ds" % timeout])


def _quote(arg):
    import shlex

    return shlex.quote(str(arg))


def _plugin_daemonsets(kube, release, namespace):
    items = kube.list("DaemonSet", "apps/v1", namespace=namespace, label_selector="app.kubernetes.io/instance=%s" % release)
    return [
        ds for ds in items
        if (ds["metadata"].get("labels") or {}).get("app.kubernetes.io/name") in PLUGIN_APP_NAMES
    ]


def _helm_binary(module):
    """The helm binary to run, or a failure naming binary_path (before anything is written)."""
    path = module.params.get("binary_path")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            module.fail_json(msg="binary_path: %r is invalid: no executable helm there. Fix: install helm >= 3.10 "
                             "or point binary_path at it (or leave it unset to use helm from PATH)" % path)
        return path
    found = getattr(module, "_module", module).get_bin_path("helm")  # AnsibleK8SModule wraps AnsibleModule
    if not found:
        module.fail_json(msg="binary_path: None is invalid: helm is not on PATH. Fix: install helm >= 3.10 "
                         "(the execution environment's bindep.txt lists it) or set binary_path")
    return found


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


def wait_for_rollout(kube, release, namespace, timeout):
    """Wait until the plugin, GFD (and MPS daemon) DaemonSets are rolled out where they must run."""
    state = {}

    def check():
        # Nodes are re-read each round: GFD's mps.capable label can appear during the rollout.
        state["nodes"] = gpu_nodes(kube)
        state["summary"] = daemonset_rollout(_plugin_daemonsets(kube, release, namespace), state["nodes"])
        return state["summary"]["ready"]

    dummy, elapsed = kube.wait_for(check, timeout=timeout, interval=1.0, what="device plugin rollout",
                                   detail=lambda: rollout_progress(state["summary"]))
    summary = state["summary"]
    summary["waited_seconds"] = round(elapsed, 2)
    leaving = set(n["name"] for n in summary["leaving_nodes"])
    summary["target_node_names"] = sorted(n["metadata"]["name"] for n in state["nodes"]
                                          if n["metadata"]["name"] not in leaving)
    if not summary["ready"]:
        try:  # only to explain the failure: an API error here must not hide it
            pods = kube.list_raw("Pod", "v1", namespace=namespace,
                                 label_selector="app.kubernetes.io/instance=%s" % release)
            summary["nodes_missing_pods"] = nodes_missing_pods(
                _plugin_daemonsets(kube, release, namespace), state["nodes"], pods)
        except Exception as exc:  # pylint: disable=broad-except
            summary["nodes_missing_pods_error"] = error_message(exc)
    return summary


def _chart_check(module, helm):
    params = module.params
    meta, err = helm.chart_metadata(params["chart_ref"], params["chart_version"], params.get("chart_repo_url"))
    if meta is None:
        where = " ".join(chart_source(params["chart_ref"], params.get("chart_repo_url"), os.path.exists(params["chart_ref"])))
        module.fail_json(
            msg="chart_ref: %r cannot be read by helm as %r (%s). Fix: set chart_repo_url to a Helm repository "
            "that serves the nvidia-device-plugin chart (default: NVIDIA's), or give chart_ref as a chart "
            "directory, an oci:// reference or '<repo>/nvidia-device-plugin' for a repository added with "
            "'helm repo add'." % (params["chart_ref"], where, err)
        )
    if meta.get("name") != CHART_NAME:
        module.fail_json(
            msg="chart_ref: %r is the chart %r, not %r. Fix: point chart_ref at NVIDIA's device-plugin chart."
            % (params["chart_ref"], meta.get("name"), CHART_NAME)
        )
    if params["chart_version"] and str(meta.get("version")) != params["chart_version"]:
        module.fail_json(
            msg="chart_version: the chart at %r is version %s, not %s. Fix: use the %s chart or set chart_version."
            % (params["chart_ref"], meta.get("version"), params["chart_version"], params["chart_version"])
        )
    return meta


class PluginChange(object):
    """What prepare_device_plugin found and computed, for apply_device_plugin to write."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def prepare_device_plugin(module, kube=None):
    """Everything the device plugin's run checks and reads before its first write: names, the
    sharing plan, the image and values, helm, the connection, the current release and (state
    present) the chart and the Helm values to install. Fails naming field, value and fix.
    ``kube``: an open kube.KubeAccess to reuse (gpu_sharing shares one with its NodePool part)."""
    params = module.params
    release, namespace = params["release_name"], params["namespace"]
    cm_name = params["config_map_name"]
    check_names(module, labels={"namespace": namespace}, subdomains={"config_map_name": cm_name})
    check_names(module, labels={"release_name": release}, max_label=53)  # Helm's own limit

    plan = plan_from_params(module) if params["state"] == "present" else None
    if params["state"] == "present":
        problems = plugin_option_errors(params["image_tag"], params["values"], plan=plan, gfd=params["gfd"])
        if problems:
            module.fail_json(msg="; ".join(str(e) for e in problems), error=problems[0].to_dict())
    helm_binary = _helm_binary(module)  # before connecting: a missing helm must not leave half a change
    kube = kube or connect(module)
    helm = Helm(module, kube, helm_binary)
    existing, current_values = helm.release_and_values(release, namespace)
    change = PluginChange(kube=kube, helm=helm, release=release, namespace=namespace, cm_name=cm_name,
                          plan=plan, existing=existing, current_values=current_values)
    if params["state"] == "absent":
        return change

    chart = _chart_check(module, helm)  # before any write
    change.values = chart_values(plan, config_map_name=cm_name, image_tag=params["image_tag"], gfd=params["gfd"],
                                 extra_values=params["values"])
    change.previous_cm = kube.get("ConfigMap", "v1", cm_name, namespace) if params["manage_config_map"] else None
    change.release_current = (
        bool(existing)
        and existing.get("status") == "deployed"
        and existing.get("chart") == "%s-%s" % (chart["name"], chart["version"])
        and current_values == change.values
    )
    return change


def apply_device_plugin(module, change):
    """Write what prepare_device_plugin computed: the ConfigMap, the Helm release, then wait for
    the rollout (restoring the previous state when it does not become ready)."""
    params = module.params
    kube, helm, release, namespace, cm_name = change.kube, change.helm, change.release, change.namespace, change.cm_name
    result = {"changed": False, "release_name": release, "namespace": namespace}

    if params["state"] == "absent":
        if change.existing:
            result["changed"] = True
            if not module.check_mode:
                helm.uninstall(release, namespace, params["wait_timeout"])
        if params["manage_config_map"]:
            stub = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm_name, "namespace": namespace}}
            cm = kube.ensure(stub, state="absent")
            result["changed"] = result["changed"] or cm["changed"]
        return result

    values = change.values
    result["plan"] = change.plan.to_dict(derived=True)
    result["values"] = values
    result["config_hash"] = values["podAnnotations"]["checksum/config"]

    if params["manage_config_map"]:
        try:
            cm_result, dummy = _apply_config_map(module, kube, change.plan, cm_name, namespace, True)
        except Exception as exc:
            module.fail_json(msg="Writing ConfigMap %s/%s failed: %s" % (namespace, cm_name, error_message(exc)))
        result["config_map"] = {"changed": cm_result["changed"], "method": cm_result.get("method")}
        result["changed"] = cm_result["changed"]
    if module._diff:
        result["diff"] = {"before": {"values": change.current_values or {}}, "after": {"values": values}}

    after = change.existing
    if not change.release_current:
        result["changed"] = True
        if not module.check_mode:
            helm.upgrade_install(release, namespace, params["chart_ref"], params["chart_version"], values,
                                 params["wait_timeout"], params.get("chart_repo_url"))
            after = helm.release(release, namespace)
    result["release_revision"] = None
    if not module.check_mode:
        result["release_revision"] = int(after["revision"]) if after else None

    if params["wait"] and not module.check_mode:
        rollout = wait_for_rollout(kube, release, namespace, params["wait_timeout"])
        result["rollout"] = rollout
        if not rollout["ready"]:
            restored = (_restore(module, kube, helm, change.existing, change.previous_cm, release, namespace)
                        if result["changed"] else [])
            result["restored"] = restored
            module.fail_json(
                msg="The device plugin did not become ready on every GPU node within %ss: %s. %s"
                % (params["wait_timeout"], _rollout_reason(rollout),
                   "Restored: %s." % ", ".join(restored) if restored else "Nothing was restored."),
                **result
            )
    return result


def ensure_device_plugin(module):
    """device_plugin: NVIDIA's chart installed with the sharing configs, rolled out and ready."""
    return apply_device_plugin(module, prepare_device_plugin(module))


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


def _restore(module, kube, helm, previous_release, previous_cm, release, namespace):
    """Put back the previous ConfigMap content and Helm revision after a failed rollout."""
    restored = []
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
        kube.ensure(definition)
        restored.append("ConfigMap %s/%s" % (namespace, definition["metadata"]["name"]))
    if previous_release:
        rc, out, err = helm.rollback(release, namespace, previous_release["revision"])
        if rc == 0:
            restored.append("Helm release %s revision %s" % (release, previous_release["revision"]))
        else:
            module.warn("helm rollback of %s failed: %s" % (release, err.strip()))
    return restored
