# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify operation: typed options in, the report out (module gpu_slicing_verify).

``VerifyOptions.from_params`` checks every option before anything is read or written and
raises ``InvalidInput``; ``verify(options, context)`` selects the nodes, runs the
``Verifier`` (``ops/verifier.py``), writes the report files and returns the result. A failed
verification, a run stopped by an error or SIGTERM, and an unwritable report raise
``GpuSlicingError`` carrying the keys the module returns with the failure (the report,
timings, what cleanup did).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import sharing_spec_from_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import GpuSlicingError, InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import GPU_PRESENT_LABEL, NODEPOOL_LABEL, PROFILE_LABEL
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.verification_report import (
    report_json,
    report_junit,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.access import error_message
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.verifier import (
    Verifier,
    remove_leftover_namespaces,
)

DEFAULT_IMAGE = "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04"
# Seconds options: 0 is a value (a zero timeout fails at once, a zero settle time judges at once).
SECONDS_OPTIONS = ("node_wait_timeout", "wait_timeout", "multi_slice_wait_timeout", "unschedulable_grace", "log_wait_timeout",
                   "cleanup_wait_timeout", "karpenter_wait_timeout", "karpenter_settle")


class VerifyOptions(object):
    """The verify operation's options. ``DEFAULTS`` are the module's argument-spec defaults;
    an option given as None takes its default. ``plan`` is the validated sharing plan and
    ``profile`` the SharingProfile under test (the module's ``profile`` option names it)."""

    DEFAULTS = {
        "node_names": None, "nodepool_name": None,
        "device_plugin_namespace": "nvidia-device-plugin", "image": DEFAULT_IMAGE, "command": None,
        "hold_seconds": 3600, "pod_resources": None, "tolerations": None,
        "node_wait_timeout": 60, "wait_timeout": 300, "multi_slice_wait_timeout": 30, "unschedulable_grace": 10, "log_wait_timeout": 60,
        "cleanup_wait_timeout": 0, "cleanup_only": False,
        "karpenter_nodepool_name": None, "karpenter_instance_type": None, "karpenter_pods": None,
        "karpenter_wait_timeout": 600, "karpenter_settle": 10, "karpenter_cleanup_nodes": True,
        "admission_policy_name": None, "report_json": None, "report_junit": None,
    }

    def __init__(self, plan=None, profile=None, **values):
        self.plan = plan
        self.profile = profile  # the SharingProfile under test (None with cleanup_only)
        for key, default in self.DEFAULTS.items():
            value = values.pop(key, None)
            setattr(self, key, default if value is None else value)
        if values:
            raise TypeError("unknown verify options: %s" % ", ".join(sorted(values)))

    @classmethod
    def from_params(cls, params):
        """Options from module params, every value checked before anything touches the cluster.
        With ``cleanup_only`` nothing else is needed or checked (no profiles either)."""
        options = cls(**dict((key, params.get(key)) for key in cls.DEFAULTS))
        if options.cleanup_only:
            return options
        if not params.get("profiles"):
            raise InvalidInput("profiles", None, "pass the same profiles as to device_plugin, e.g. "
                               "[{name: ts-4, replicas: 4}]", why="the profile to verify must be given")
        options.plan = build_plan(sharing_spec_from_params(params))
        options.profile = options.plan.profile(params.get("profile"))
        if options.karpenter_pods is not None and options.karpenter_pods < 1:
            raise InvalidInput("karpenter_pods", options.karpenter_pods, "leave it unset (GPUs x replicas + 1) "
                               "or give a count such as 5", why="at least one pod is needed")
        if options.hold_seconds < 1:
            raise InvalidInput("hold_seconds", options.hold_seconds, "give seconds, e.g. 3600 (the pods are deleted "
                               "when the run ends)", why="each test pod must hold its slice while the others start")
        for key in SECONDS_OPTIONS:
            if getattr(options, key) < 0:
                raise InvalidInput(key, getattr(options, key), "give seconds, e.g. 300", why="must be 0 or more")
        return options


def select_nodes(kube, profile_name=None, node_names=None, nodepool=None, is_default=False):
    """Nodes to verify, by node names, NodePool label or profile label (in that order).

    A node without the profile label runs the plugin's default config, so when the profile
    under test is the default one, unlabelled GPU nodes are selected too.

    Returns (nodes, how, missing_names).
    """
    if node_names:
        nodes, missing = [], []
        for name in node_names:
            node = kube.get("Node", "v1", name)
            if node is None:
                missing.append(name)
            else:
                nodes.append(node)
        return nodes, "node names", missing
    if nodepool:
        selector = "%s=%s" % (NODEPOOL_LABEL, nodepool)
    else:
        selector = "%s=%s" % (PROFILE_LABEL, profile_name)
    nodes = kube.list_raw("Node", "v1", label_selector=selector)
    how = "label %s" % selector
    if is_default and not nodepool:
        unlabelled = "%s=true,!%s" % (GPU_PRESENT_LABEL, PROFILE_LABEL)
        nodes += kube.list_raw("Node", "v1", label_selector=unlabelled)
        how += " or (default profile) %s" % unlabelled
    return sorted(nodes, key=lambda n: n["metadata"]["name"]), how, []


def write_reports(report, json_path=None, junit_path=None):
    """Write the requested report files; returns the paths written."""
    written = {}
    for path, text in ((json_path, report_json), (junit_path, report_junit)):
        if not path:
            continue
        path = os.path.abspath(os.path.expanduser(path))
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text(report))
        os.replace(tmp, path)
        written[text.__name__] = path
    return written


def cleanup_only(context):
    """Remove the namespaces earlier runs left; nothing is verified."""
    try:
        removed, terminating = remove_leftover_namespaces(context.kube, check_mode=context.check_mode)
    except Exception as exc:  # pylint: disable=broad-except
        raise GpuSlicingError("Removing the namespaces of earlier verification runs failed: %s" % error_message(exc),
                              kind="kube_api")
    cleanup = {"leftover_namespaces_removed": removed, "leftover_namespaces_terminating": terminating}
    return dict(changed=bool(removed), passed=True, run={"cleanup": cleanup},
                msg="Removed %d namespace(s) of earlier verification runs; %d already terminating"
                % (len(removed), len(terminating)))


def verify(options, context):
    """Run the verification (or, with ``cleanup_only``, only remove what earlier runs left)."""
    if options.cleanup_only:
        return cleanup_only(context)
    if "@sha256:" not in options.image:
        context.warn("image %s is not pinned by digest; pin it (image@sha256:...) for reproducible runs" % options.image)
    kube = context.kube
    try:
        nodes, how, missing = select_nodes(kube, options.profile.name, options.node_names, options.nodepool_name,
                                           is_default=options.profile.name == options.plan.default_profile)
    except Exception as exc:  # pylint: disable=broad-except
        raise GpuSlicingError("Cannot read nodes from the Kubernetes API: %s" % error_message(exc), kind="kube_api")
    if missing:
        raise GpuSlicingError("node_names: %s not found in the cluster. Fix: give existing node names "
                              "(kubectl get nodes)" % ", ".join(missing), kind="not_found")
    if not nodes and not options.karpenter_nodepool_name:
        raise GpuSlicingError("No node matches %s. Fix: label the nodes, or pass node_names or nodepool_name" % how,
                              kind="not_found")

    run = Verifier(kube, options, check_mode=context.check_mode)
    try:
        report = run.run(nodes)
    except Exception as exc:  # pylint: disable=broad-except
        raise GpuSlicingError(
            "Verification stopped: %s (the run's pods were removed: %s; deletion of its namespace %s requested: %s)"
            % (error_message(exc), run.cleanup.get("pods_removed"), run.namespace,
               run.cleanup.get("namespace_deletion_requested")),
            kind="stopped", timings=run.timings, run={"cleanup": run.cleanup})
    report["run"]["selected_by"] = how
    try:
        reports = write_reports(report, options.report_json, options.report_junit)
    except (IOError, OSError) as exc:
        raise GpuSlicingError("Writing the report failed: %s" % exc, kind="io", **report)
    result = dict(report, changed=False, reports=reports)
    if not report["passed"]:
        raise GpuSlicingError(report["summary"], kind="verification_failed", **result)
    return dict(result, msg=report["summary"])
