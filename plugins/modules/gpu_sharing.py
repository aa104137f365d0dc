#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_sharing
short_description: NVIDIA's device plugin and the Karpenter GPU NodePool from one set of sharing profiles, checked before any write
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Does in one run what M(gpu_slicing.eks.device_plugin) and M(gpu_slicing.eks.karpenter_gpu_nodepool) do,
    from the same I(profiles), with the same code and results; each part takes that module's options
    (I(device_plugin), I(nodepool)).
  - Every check of both parts is done before the first write of either, so an input or a cluster state
    the NodePool would be refused for (an unknown instance type, the NodeOverlay gate off, a NodePool of
    the same name that another tool owns, an object the API server's dry run rejects) fails the task
    with the device plugin untouched. Two tasks would have changed the plugin first.
  - With C(state=present) the device plugin is written and waited for, then the NodePool; with
    C(state=absent) the NodePool goes first, so Karpenter launches no more nodes for a removed plugin.
  - This is the module of the collection's main job, C(playbooks/enable.yml) (role C(gpu_slicing.eks.gpu_sharing)).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
  - gpu_slicing.eks.sharing_parts.nested
options:
  state:
    description:
      - C(present) installs the device plugin and writes the NodePool; C(absent) removes the NodePool's
        objects, then the device plugin's release and ConfigMap.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - helm >= 3.10 (helm v3.22.0 tested)
  - kubernetes >= 24.2.0
  - PyYAML
attributes:
  check_mode:
    description: Runs as a server-side dry run of both parts; reports what would change and writes nothing.
    support: full
  diff_mode:
    description: Returns the Helm values and every Karpenter object that changes, before and after.
    support: full
notes:
  - I(profiles) is required with C(state=present).
seealso:
  - module: gpu_slicing.eks.device_plugin
  - module: gpu_slicing.eks.karpenter_gpu_nodepool
"""

EXAMPLES = r"""
- name: Four time-slices per GPU, and a NodePool for T4 and A10G nodes that knows about them
  gpu_slicing.eks.gpu_sharing:
    profiles:
      - name: ts-4
        replicas: 4
    device_plugin: {}  # NVIDIA's chart from NVIDIA's Helm repository
    nodepool:
      name: gpu-shared
      discovery_tag_value: prod
      instance_types: [g4dn.xlarge, g5.12xlarge]
      role: KarpenterNodeRole-prod

- name: The device plugin only (no NodePool)
  gpu_slicing.eks.gpu_sharing:
    profiles:
      - name: mps-2
        strategy: mps
        replicas: 2
    device_plugin:
      chart_ref: /opt/charts/nvidia-device-plugin
      wait_timeout: 600

- name: Remove the NodePool and its objects, then the device plugin
  gpu_slicing.eks.gpu_sharing:
    state: absent
    device_plugin: {}
    nodepool:
      name: gpu-shared
"""

RETURN = r"""
changed:
  description: Whether either part changed (or would, in check mode).
  returned: always
  type: bool
device_plugin:
  description: The device plugin part's result, as M(gpu_slicing.eks.device_plugin) returns it (without C(diff)).
  returned: always
  type: dict
  sample:
    changed: false
    release_name: nvdp
    namespace: nvidia-device-plugin
    release_revision: 1
    config_hash: 9c0f1e...
    rollout: {ready: true, target_nodes: 2}
nodepool:
  description:
    - The NodePool part's result, as M(gpu_slicing.eks.karpenter_gpu_nodepool) returns it (without C(diff)).
    - Null when I(nodepool) is not set.
  returned: always
  type: dict
  sample:
    changed: false
    objects:
      - {kind: NodeOverlay, name: gpu-shared-g4dn-xlarge, method: apply, changed: false}
      - {kind: NodePool, name: gpu-shared, method: apply, changed: false}
    summary: {profile: ts-4, replicas: 4, instance_types: [{name: g4dn.xlarge, gpus: 1, slices: 4}]}
diff:
  description: The Helm values when they change, then before and after of each changed Karpenter object.
  returned: when diff mode is on
  type: list
  elements: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API or helm call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /api/v1/namespaces/x/configmaps/y (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import gpu_sharing_arg_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    connection_arg_spec,
    new_module,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.gpu_sharing import (
    GpuSharingOptions,
    ensure_gpu_sharing,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(gpu_sharing_arg_spec())
    module = new_module(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("profiles",))],
    )
    run_module(module, ensure_gpu_sharing, GpuSharingOptions.from_params)


if __name__ == "__main__":
    main()
