# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The sharing profiles: the one setting that drives the plugin, Karpenter and the checks."""

    DOCUMENTATION = r"""
options:
  profiles:
    description:
      - Named GPU sharing profiles. Each becomes one named NVIDIA device-plugin config; a node
        uses the profile named by its label C(nvidia.com/device-plugin.config), or I(default_profile).
      - Replicas come from exactly one of I(replicas), I(fraction) or I(slice_memory) with I(gpu_memory).
      - Values are validated by the collection before anything is written; an error names the field
        (for example C(profiles[1].replicas)), the value and the fix.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Profile name; used as the config name and as the node label value (at most 63 characters).
          - Names YAML reads as something else than text (C(4), C(true), C(yes), C(on), C(off), C(y), C(null),
            C(1e3), C(0x1F), a date) are refused, because NVIDIA's chart writes the default profile unquoted into
            the DaemonSet.
        type: str
        required: true
      strategy:
        description: How a GPU is shared. C(none) advertises whole GPUs.
        type: str
        choices: [time-slicing, mps, none]
        default: time-slicing
      replicas:
        description: Slices per physical GPU (2 or more for a shared strategy; at most 48 for MPS).
        type: raw
      fraction:
        description:
          - Share of one GPU each pod needs, 0 < fraction < 1 (for example C(0.25) or C("1/4")).
          - Replicas are C(floor(1 / fraction)) so every pod gets at least that share; an error when that gives fewer than 2.
        type: raw
      slice_memory:
        description: GPU memory per slice as a Kubernetes quantity (for example C(4Gi)); needs I(gpu_memory).
        type: str
      gpu_memory:
        description: Memory of one physical GPU (for example C(16Gi) for a T4). Replicas are C(floor(gpu_memory / slice_memory)).
        type: str
      rename_by_default:
        description: Advertise the slices as C(<resource>.shared) instead of C(<resource>). Default C(false).
        type: raw
      fail_requests_greater_than_one:
        description:
          - Make kubelet reject pods asking for more than one slice of a shared GPU.
          - Defaults to C(false) for time-slicing and C(true) for MPS.
        type: raw
      mig_strategy:
        description: The plugin's MIG strategy. MPS needs C(none) (NVIDIA's plugin refuses MPS on MIG devices).
        type: str
        choices: [none, single, mixed]
        default: none
      resource_name:
        description:
          - Extended resource to share; C(nvidia.com/) is added when no prefix is given.
          - Only names NVIDIA's plugin gives to devices are accepted, C(nvidia.com/gpu), and with I(mig_strategy=mixed)
            the MIG profile resources such as C(nvidia.com/mig-1g.5gb). The plugin skips sharing entries under any
            other name. For C(nvidia.com/gpu.shared) use I(rename_by_default).
        type: str
        default: nvidia.com/gpu
  default_profile:
    description: Profile used by nodes without the C(nvidia.com/device-plugin.config) label. Defaults to the first profile.
    type: str
"""
