# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""helm for the device-plugin operation: kubernetes.core's AnsibleHelmModule with this run's
connection, read-only commands retried, a fresh EKS token for every command."""

from __future__ import annotations

import json
import os
import shlex
import tempfile

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import (
    chart_source,
    helm_release_selector,
    latest_helm_release,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.helm import (
    helm_token,
    helm_with_retries,
)


class _HelmHost(object):
    """What kubernetes.core's AnsibleHelmModule uses of its module: helm's settings as params
    (the connection, the binary, the namespace) and the run's run_command and add_cleanup_file."""

    def __init__(self, params, context):
        self.params = params
        self.run_command = context.run_command
        self.add_cleanup_file = context.add_cleanup_file


class Helm(object):
    """helm run through kubernetes.core's AnsibleHelmModule with our resolved connection.

    The helm CLI (and kubernetes.core's helm module_utils) is only set up when a helm command
    runs: a run with nothing to change reads the release from its Secret and the chart from its
    directory, and so needs neither."""

    def __init__(self, context, binary, namespace):
        self.context = context
        self.kube = context.kube
        self.binary = binary
        self.namespace = namespace
        self._helm_module = None

    @property
    def _helm(self):
        if self._helm_module is None:
            from ansible_collections.kubernetes.core.plugins.module_utils.helm import (
                AnsibleHelmModule,
            )

            params = self.context.helm_connection()
            params["binary_path"] = self.binary
            params["release_namespace"] = self.namespace  # kubernetes.core.helm's name
            self._helm_module = AnsibleHelmModule(module=_HelmHost(params, self.context))
        return self._helm_module

    def run(self, args, fails_on_error=True):
        def once(argv):
            command = " ".join(_quote(a) for a in [self.binary] + list(argv))
            environ = dict(self._helm.env_update, **helm_token(self.kube))
            return self._helm.run_command(command, environ_update=environ)

        # Read-only helm commands are repeated on transient API failures (kube.helm_with_retries).
        rc, out, err = helm_with_retries(once, list(args), stats=getattr(self.kube, "retry_stats", None))
        if fails_on_error and rc != 0:
            raise GpuSlicingError(
                "Failure when executing Helm command. Exited {0}.\nstdout: {1}\nstderr: {2}".format(rc, out, err),
                kind="helm", stdout=out, stderr=err, command=" ".join(_quote(a) for a in [self.binary] + list(args)))
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
    return shlex.quote(str(arg))
