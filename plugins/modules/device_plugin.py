#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: device_plugin
short_description: Install NVIDIA's device plugin with GPU time-slicing or MPS and wait for it
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Installs, upgrades or removes NVIDIA's C(nvidia-device-plugin) Helm chart (v0.20.0) configured
    from GPU sharing profiles, and waits until its DaemonSets are ready on every GPU node.
  - The sharing configs live in an external ConfigMap (one named config per profile), written first
    from the same validated profiles (I(manage_config_map)).
  - The image is pinned by digest; GPU Feature Discovery is enabled; pods tolerate the
    C(nvidia.com/gpu:NoSchedule) taint and land on nodes labelled C(nvidia.com/gpu.present=true),
    which EKS GPU nodes carry without Node Feature Discovery.
  - The plugin does not reload an edited ConfigMap, so the pods carry the hash of the config content
    and roll whenever it changes.
  - When the new rollout does not become ready in time, the previous ConfigMap content and Helm
    revision are restored and the task fails, saying which DaemonSet and nodes were not ready.
  - Nothing is written before the profiles, the connection and the chart are validated.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
  - gpu_slicing.eks.sharing_parts.device_plugin
requirements:
  - helm >= 3.10 (helm v3.22.0 tested)
  - kubernetes >= 24.2.0
  - PyYAML
attributes:
  check_mode:
    description: Runs as a server-side dry run; reports what would change.
    support: full
  diff_mode:
    description: Returns the before and after state.
    support: full
"""

EXAMPLES = r"""
- name: Install the device plugin with four time-slices per GPU
  gpu_slicing.eks.device_plugin:
    profiles:
      - name: ts-4
        replicas: 4

- name: Two profiles; nodes labelled nvidia.com/device-plugin.config=mps-2 use MPS
  gpu_slicing.eks.device_plugin:
    chart_ref: /opt/charts/nvidia-device-plugin
    profiles:
      - name: ts-4
        replicas: 4
      - name: mps-2
        strategy: mps
        replicas: 2
    default_profile: ts-4
    wait_timeout: 600

- name: Remove the device plugin and its sharing ConfigMap
  gpu_slicing.eks.device_plugin:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the ConfigMap or the release changed (or would, in check mode).
  returned: always
  type: bool
release_name:
  description: Helm release name.
  returned: always
  type: str
namespace:
  description: Namespace of the Helm release.
  returned: always
  type: str
release_revision:
  description: Helm revision after the run (null in check mode).
  returned: when state is present
  type: int
plan:
  description: The validated sharing plan.
  returned: when state is present
  type: dict
values:
  description: The Helm values the release is installed with.
  returned: when state is present
  type: dict
config_hash:
  description: sha256 of the sharing configs; the plugin pods carry it as C(checksum/config).
  returned: when state is present
  type: str
config_map:
  description: What happened to the ConfigMap.
  returned: when manage_config_map is true and state is present
  type: dict
rollout:
  description: Readiness of the plugin and GFD DaemonSets against the GPU nodes.
  returned: when wait is true and not in check mode
  type: dict
  sample:
    ready: true
    target_nodes: 1
    target_node_names: [ip-10-0-1-23.ec2.internal]
    waited_seconds: 4.2
    daemonsets:
      - name: nvdp-nvidia-device-plugin
        desired: 1
        updated: 1
        ready: 1
        available: 1
        rolled_out: true
restored:
  description: What was restored after a failed rollout.
  returned: on rollout failure
  type: list
  elements: str
diff:
  description: Helm values before and after, with --diff.
  returned: when diff mode is on
  type: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API or helm call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /api/v1/namespaces/x/configmaps/y (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    device_plugin_arg_spec,
    sharing_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    connection_arg_spec,
    new_module,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.device_plugin import (
    DevicePluginOptions,
    ensure_device_plugin,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(sharing_arg_spec(required=False))
    argument_spec.update(device_plugin_arg_spec())
    module = new_module(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("profiles",))],
    )
    run_module(module, ensure_device_plugin, DevicePluginOptions.from_params)


if __name__ == "__main__":
    main()
