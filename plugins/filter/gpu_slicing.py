# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``gpu_slicing.eks.replicas_for_fraction``, ``gpu_slicing.eks.shared_gpu_pod_spec`` and
``gpu_slicing.eks.nodepool_input_problems``.

Thin wrappers over ``module_utils/sharing.py``; documentation is in the ``.yml`` file next to
this one for each filter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    nodepool_arg_spec,
    sharing_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.karpenter import render_from_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.sharing import (
    SharingError,
    convert_pod_spec,
    replicas_for_fraction as _replicas_for_fraction,
    resolve_profile,
)


def replicas_for_fraction(fraction):
    """floor(1/fraction): slices per GPU so that each slice is at least ``fraction`` of a GPU."""
    try:
        return _replicas_for_fraction(fraction)
    except SharingError as exc:
        raise AnsibleFilterError("replicas_for_fraction: %s" % exc)


def shared_gpu_pod_spec(pod, profile, profile_name=None):
    """A seed-style pod (``limits: {gpu: "0.5"}``, ``gpuDevicePolicy: Shared``) made valid for a profile."""
    try:
        prof = resolve_profile(profile, profile_name)
        return convert_pod_spec(pod, prof)
    except SharingError as exc:
        raise AnsibleFilterError("shared_gpu_pod_spec: %s" % exc)


def nodepool_input_problems(options, profiles, default_profile=None):
    """What karpenter_gpu_nodepool would refuse in these options before it asks the API server:
    its argument spec (types, choices), then the NodePool rendering (instance types, limits,
    names...). A list of messages, empty when the module would go on to the cluster checks.

    The module's own code path, run on the controller: a playbook can check the NodePool's
    inputs before it writes anything else (playbooks/enable.yml, before the device plugin)."""
    if not isinstance(options, dict):
        raise AnsibleFilterError("nodepool_input_problems: the input must be a dict of karpenter_gpu_nodepool "
                                 "options, not %s" % type(options).__name__)
    spec = nodepool_arg_spec()
    spec.update(sharing_arg_spec(required=True))
    params = {key: value for key, value in options.items() if value is not None}
    params["profiles"] = profiles
    if default_profile:
        params["default_profile"] = default_profile
    checked = ArgumentSpecValidator(spec).validate(params)
    errors = checked.errors.errors  # AnsibleValidationErrorMultiple is truthy even when empty
    if errors:
        # Ansible words an unknown option as "<names>. Supported parameters include: ..."
        return ["karpenter_gpu_nodepool: %s%s" % ("unsupported option " if isinstance(err, UnsupportedError) else "",
                                                  err.msg) for err in errors]
    try:
        render_from_params(checked.validated_parameters)
    except SharingError as exc:
        return [str(exc)]
    return []


class FilterModule(object):
    """GPU slicing filters."""

    def filters(self):
        return {
            "replicas_for_fraction": replicas_for_fraction,
            "shared_gpu_pod_spec": shared_gpu_pod_spec,
            "nodepool_input_problems": nodepool_input_problems,
        }
