#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: karpenter_gpu_nodepool
short_description: Karpenter NodePool, EC2NodeClass and NodeOverlays for shared (sliced) GPUs
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Manages, from the same sharing profiles as the device plugin, a Karpenter C(NodePool)
    (C(karpenter.sh/v1)) for GPU instances, its C(EC2NodeClass) (C(karpenter.k8s.aws/v1)) and one
    C(NodeOverlay) (C(karpenter.sh/v1alpha1)) per admitted instance type or GPU-count tier.
  - Karpenter takes C(nvidia.com/gpu) from the instance type (physical GPUs), so without overlays it
    launches up to I(replicas) times the nodes that pending one-slice pods need. Each overlay sets the
    capacity Karpenter simulates to GPUs x replicas of the profile, and is scoped to this NodePool
    (requirement C(karpenter.sh/nodepool In [<name>])) so other NodePools are not affected.
  - The NodePool carries the taint C(nvidia.com/gpu:NoSchedule) and the template labels
    C(nvidia.com/device-plugin.config=<profile>) and C(nvidia.com/gpu.present=true), so the device
    plugin (see M(gpu_slicing.eks.device_plugin)) lands on the new nodes and picks the profile.
  - With I(ami_alias=bottlerocket@latest) the NVIDIA plugin is built into the OS and the sharing
    settings are written as Bottlerocket user-data TOML from the profile; those nodes need no
    device-plugin DaemonSet. With C(al2023@latest) the NVIDIA AMI brings the driver only; install
    the device plugin.
  - Before anything is written, every option is validated (errors name the field, the value and the
    fix), the API must serve the kinds to write, and the Karpenter C(NodeOverlay) feature gate must be
    shown on (read from the Karpenter Deployment's C(FEATURE_GATES) env or C(--feature-gates) arg in
    I(karpenter_namespace), or stated with I(karpenter_feature_gates)).
  - Objects are labelled C(app.kubernetes.io/managed-by=gpu_slicing.eks) and
    C(gpu-slicing.eks/nodepool=<name>); C(state=absent) removes exactly those, and overlays this
    NodePool no longer needs are pruned on C(state=present).
  - Writes with server-side apply (field manager C(gpu-slicing-eks)); check mode is a server-side dry run.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - gpu_slicing.eks.sharing_profiles
  - gpu_slicing.eks.eks_connection
  - gpu_slicing.eks.sharing_parts.nodepool
requirements:
  - kubernetes >= 24.2.0
attributes:
  check_mode:
    description: Runs as a server-side dry run; reports what would change and writes nothing.
    support: full
  diff_mode:
    description: Returns before and after for every object that changes.
    support: full
notes:
  - I(profiles) is required with C(state=present).
  - Karpenter must be v1.7 or later with the C(NodeOverlay) feature gate (Helm value
    C(settings.featureGates.nodeOverlay=true)). EKS Auto Mode does not support NodeOverlay.
  - Overlays only change Karpenter's simulation; a node's real capacity still comes from the device plugin.
seealso:
  - module: gpu_slicing.eks.device_plugin
  - module: gpu_slicing.eks.device_plugin_config
"""

EXAMPLES = r"""
- name: T4 nodes cut in four, Karpenter told about the slices
  gpu_slicing.eks.karpenter_gpu_nodepool:
    name: gpu-ts4
    discovery_tag_value: my-cluster
    role: KarpenterNodeRole-my-cluster
    profiles:
      - name: ts-4
        replicas: 4
    instance_families: [g4dn]
    gpu_counts: [1]
    limit_slices: 64
    consolidate_after: 10m

- name: Bottlerocket (plugin built in, time-slicing set in user data), spot first
  gpu_slicing.eks.karpenter_gpu_nodepool:
    name: gpu-br
    discovery_tag_value: my-cluster
    role: KarpenterNodeRole-my-cluster
    ami_alias: bottlerocket@latest
    profiles:
      - name: ts-2
        fraction: 0.5
    instance_types: [g5.xlarge, g5.2xlarge]
    capacity_types: [spot, on-demand]
    root_volume_size: 200Gi

- name: Local simulation with Karpenter's KWOK provider (run as a process, gate stated)
  gpu_slicing.eks.karpenter_gpu_nodepool:
    name: gpu-sim
    profiles:
      - name: ts-4
        replicas: 4
    instance_types: [g4dn.xlarge]
    manage_node_class: false
    node_class_ref:
      group: karpenter.kwok.sh
      kind: KWOKNodeClass
      name: default
    karpenter_feature_gates: NodeOverlay=true

- name: Remove the NodePool, its EC2NodeClass and overlays
  gpu_slicing.eks.karpenter_gpu_nodepool:
    name: gpu-ts4
    state: absent
"""

RETURN = r"""
changed:
  description: Whether any object was (or, in check mode, would be) created, changed or removed.
  returned: always
  type: bool
objects:
  description: What was done to each object.
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: EC2NodeClass, name: gpu-ts4, method: apply, changed: true}
    - {kind: NodeOverlay, name: gpu-ts4-g4dn-xlarge, method: apply, changed: true}
    - {kind: NodePool, name: gpu-ts4, method: apply, changed: true}
nodepool:
  description: The NodePool as written.
  returned: when state is present
  type: dict
ec2nodeclass:
  description: The EC2NodeClass as written, or null when I(manage_node_class=false).
  returned: when state is present
  type: dict
node_overlays:
  description: The NodeOverlays as written (empty when skipped with I(allow_without_node_overlay)).
  returned: when state is present
  type: list
  elements: dict
summary:
  description: Profile, replicas, advertised resource, and GPUs and slices per admitted instance type.
  returned: when state is present
  type: dict
  sample:
    profile: ts-4
    replicas: 4
    advertised_resource: nvidia.com/gpu
    instance_types: [{name: g4dn.xlarge, gpus: 1, slices: 4}]
    overlay_key: instance-type
    ami_family: al2023
node_overlay_gate:
  description: Whether the NodeOverlay feature gate was shown on (null when unknown or not needed).
  returned: when state is present
  type: bool
gate_source:
  description: Where the gate state was read.
  returned: when state is present
  type: str
ami_check:
  description:
    - Whether AWS publishes an image for I(ami_alias) (SSM C(GetParameter) of the parameter Karpenter's
      AWS provider reads). C(checked) is false, with C(reason), when no AWS connection was given or AWS
      could not be asked.
  returned: when state is present and I(manage_node_class=true)
  type: dict
  sample: {alias: al2023@v20240625, checked: true, image_id: ami-0123456789abcdef0,
           ssm_parameter: /aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/nvidia/amazon-eks-node-al2023-x86_64-nvidia-1.36-v20240625/image_id}
ec2nodeclass_status:
  description:
    - The EC2NodeClass's readiness right after applying, from its C(status.conditions)
      (C(Ready), C(AMIsReady), ...). C(ready) is null and C(reported) says C(not reported yet) until
      Karpenter's AWS controller has reconciled it; C(ready=false) also gives a warning.
  returned: when state is present and I(manage_node_class=true)
  type: dict
  sample: {ready: null, conditions: [], reported: "not reported yet: ..."}
over_provisioning_warning:
  description: The warning given when overlays were skipped.
  returned: when overlays were skipped
  type: str
diff:
  description: Before and after per changed object, with --diff.
  returned: when diff mode is on and something changed
  type: list
  elements: dict
api_retries:
  description: Transient failures retried (409 on apply, 429, 5xx, lost connections) - count, reasons, last ten operations, seconds slept.
  returned: when a Kubernetes API or helm call was retried
  type: dict
  sample: {count: 2, by_reason: {conflict: 2}, operations: ["PATCH /api/v1/namespaces/x/configmaps/y (conflict)"], slept_seconds: 1.3}
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    nodepool_arg_spec,
    sharing_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import (
    connection_arg_spec,
    new_module,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.nodepool import (
    NodePoolOptions,
    ensure_nodepool,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(sharing_arg_spec(required=False))
    argument_spec.update(nodepool_arg_spec())
    module = new_module(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("profiles",))],
    )
    run_module(module, ensure_nodepool, NodePoolOptions.from_params)


if __name__ == "__main__":
    main()
