#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: device_plugin_config
short_description: Manage the NVIDIA device plugin's GPU sharing ConfigMap
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Validates GPU sharing profiles (time-slicing or MPS) and writes them as one ConfigMap with
    one named NVIDIA device-plugin config per profile, in the plugin's own C(version=v1) config format.
  - Nodes pick a profile with the label C(nvidia.com/device-plugin.config=<profile name>).
  - Everything is validated before anything is written; bad input changes nothing on the cluster.
  - Writes with server-side apply (field manager C(gpu-slicing-eks)); check mode is a server-side dry run.
  - The device plugin does not reload an edited ConfigMap by itself. M(gpu_slicing.eks.device_plugin)
    rolls its pods when the content changes.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
options:
  state:
    description: C(present) writes the ConfigMap; C(absent) removes it (and nothing else).
    type: str
    choices: [present, absent]
    default: present
  config_map_name:
    description: Name of the ConfigMap (M(gpu_slicing.eks.device_plugin)'s I(config_map_name)).
    type: str
    default: nvidia-device-plugin-configs
  namespace:
    description: Namespace of the ConfigMap (the device plugin's namespace).
    type: str
    default: nvidia-device-plugin
  create_namespace:
    description: Create the namespace when it does not exist.
    type: bool
    default: true
requirements:
  - kubernetes >= 24.2.0
  - PyYAML
attributes:
  check_mode:
    description: Runs as a server-side dry run; reports what would change.
    support: full
  diff_mode:
    description: Returns the before and after state.
    support: full
notes:
  - I(profiles) is required with C(state=present).
"""

EXAMPLES = r"""
- name: Four time-slices per GPU on every node, MPS halves on nodes labelled mps-2
  gpu_slicing.eks.device_plugin_config:
    profiles:
      - name: ts-4
        strategy: time-slicing
        replicas: 4
      - name: mps-2
        strategy: mps
        fraction: 0.5
    default_profile: ts-4

- name: Size slices by memory (T4, 16 GiB, 4 GiB per pod -> 4 replicas)
  gpu_slicing.eks.device_plugin_config:
    kubeconfig: ~/.kube/config
    profiles:
      - name: t4-4g
        slice_memory: 4Gi
        gpu_memory: 16Gi

- name: Remove the ConfigMap
  gpu_slicing.eks.device_plugin_config:
    state: absent
"""

RETURN = r"""
changed:
  description: Whether the ConfigMap was (or, in check mode, would be) created, changed or removed.
  returned: always
  type: bool
plan:
  description: The validated sharing plan (replicas resolved, advertised resource per profile).
  returned: when state is present
  type: dict
  sample:
    default_profile: ts-4
    profiles:
      - name: ts-4
        strategy: time-slicing
        replicas: 4
        rename_by_default: false
        fail_requests_greater_than_one: false
        mig_strategy: none
        resource_name: nvidia.com/gpu
        advertised_resource: nvidia.com/gpu
configs:
  description: The rendered plugin config per profile, exactly as stored in the ConfigMap.
  returned: when state is present
  type: dict
config_hash:
  description: sha256 of the ConfigMap data; the device plugin's pods carry it to roll on change.
  returned: when state is present
  type: str
method:
  description: What was done to the ConfigMap (apply or delete).
  returned: always
  type: str
result:
  description: The ConfigMap as the API server returned it (managedFields hidden).
  returned: always
  type: dict
diff:
  description: Before and after, with --diff.
  returned: when diff mode is on and the ConfigMap existed
  type: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API or helm call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /api/v1/namespaces/x/configmaps/y (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    config_map_arg_spec,
    sharing_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    connection_arg_spec,
    new_module,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.device_plugin import (
    ConfigMapOptions,
    ensure_config_map,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(sharing_arg_spec(required=False))
    argument_spec.update(config_map_arg_spec())
    module = new_module(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("profiles",))],
    )
    run_module(module, ensure_config_map, ConfigMapOptions.from_params)


if __name__ == "__main__":
    main()
