# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``gpu_slicing.eks.replicas_for_fraction`` and ``gpu_slicing.eks.shared_gpu_pod_spec``.

Thin wrappers over ``module_utils/core/sharing.py``; documentation is in the ``.yml`` file next to
this one for each filter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import (
    replicas_for_fraction as _replicas_for_fraction,
    resolve_profile,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.pod_spec import convert_pod_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput


def replicas_for_fraction(fraction):
    """floor(1/fraction): slices per GPU so that each slice is at least ``fraction`` of a GPU."""
    try:
        return _replicas_for_fraction(fraction)
    except InvalidInput as exc:
        raise AnsibleFilterError("replicas_for_fraction: %s" % exc)


def shared_gpu_pod_spec(pod, profile, profile_name=None):
    """A seed-style pod (``limits: {gpu: "0.5"}``, ``gpuDevicePolicy: Shared``) made valid for a profile."""
    try:
        prof = resolve_profile(profile, profile_name)
        return convert_pod_spec(pod, prof)
    except InvalidInput as exc:
        raise AnsibleFilterError("shared_gpu_pod_spec: %s" % exc)


class FilterModule(object):
    """GPU slicing filters."""

    def filters(self):
        return {
            "replicas_for_fraction": replicas_for_fraction,
            "shared_gpu_pod_spec": shared_gpu_pod_spec,
        }
