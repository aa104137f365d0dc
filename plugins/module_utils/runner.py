# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where a module run becomes ``exit_json`` or ``fail_json``.

A module's ``main()`` is its argument spec, ``new_module(...)`` and
``run_module(module, operation, options)``:

* ``options(params)`` builds the operation's typed options from the module's params and
  raises ``InvalidInput`` for anything wrong, before any write;
* ``operation(options, context)`` does the work with the ``RunContext`` (check and diff mode,
  progress, warnings, the Kubernetes connection made on first use) and returns the result;
  it raises ``GpuSlicingError`` (or lets a Kubernetes/AWS error out) and never calls
  ``fail_json``.
"""

from __future__ import annotations

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import (
    GpuSlicingError,
)


class RunContext(object):
    """What an operation may use besides its options: check and diff mode, warnings, the
    Kubernetes connection (made on first use, one per run) and the commands it runs (helm)."""

    def __init__(self, module, kube=None):
        self._module = module
        # kubernetes.core's AnsibleK8SModule forwards only some calls to the AnsibleModule it
        # wraps (kept as _module); commands run on that one.
        self._commands = getattr(module, "_module", module)
        self.check_mode = bool(module.check_mode)
        self.diff = bool(getattr(module, "_diff", False))
        self._kube = kube

    @property
    def kube(self):
        """The KubeAccess of this run, connected on first use (one connection per run)."""
        if self._kube is None:
            from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import connect

            self._kube = connect(self._module)
        return self._kube

    def helm_connection(self):
        """helm's connection settings for this run's cluster, in kubernetes.core.helm's option
        names (kubeconfig, context, host, api_key, ca_cert, validate_certs)."""
        from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.helm import helm_environment

        return helm_environment(self._module, self.kube)

    def run_command(self, command, environ_update=None):
        """``(rc, stdout, stderr)`` of a command, run as Ansible runs commands."""
        return self._commands.run_command(command, environ_update=environ_update)

    def add_cleanup_file(self, path):
        """A file removed when the module exits (helm's temporary kubeconfig)."""
        self._commands.add_cleanup_file(path)

    def warn(self, text):
        self._module.warn(text)

    def finish(self, result):
        """Keys every result carries: ``api_retries`` when a request was retried."""
        stats = getattr(self._kube, "retry_stats", None) if self._kube is not None else None
        if stats is not None and stats.count and "api_retries" not in result:
            result["api_retries"] = stats.to_dict()
        return result


def run_module(module, operation, options):
    """Run ``operation(options(module.params), context)`` and exit the module with its result,
    or fail it with ``msg`` and ``error_kind`` (plus ``error`` for bad input)."""
    context = RunContext(module)
    try:
        result = operation(options(module.params), context)
    except GpuSlicingError as exc:
        module.fail_json(**context.finish(exc.to_result()))
    else:
        module.exit_json(**context.finish(result))
