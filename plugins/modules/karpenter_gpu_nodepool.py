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
options:
  state:
    description: C(present) writes the objects; C(absent) removes the ones this module created for I(name).
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the NodePool; also the default EC2NodeClass name and the prefix of the overlays.
    type: str
    required: true
  profile:
    description: The sharing profile the nodes use. Defaults to I(default_profile) (or the first profile).
    type: str
  cluster_name:
    description:
      - EKS cluster name. Subnets and security groups default to those tagged C(karpenter.sh/discovery=<cluster_name>).
    type: str
  instance_types:
    description:
      - EC2 instance types the NodePool may launch (requirement C(node.kubernetes.io/instance-type)).
      - Unknown types are refused with close known names, unless their GPU count is in I(gpu_counts).
      - At least one of I(instance_types) and I(instance_families) is required.
    type: list
    elements: str
  instance_families:
    description:
      - Instance families (for example C(g5), C(g6)), requirement C(karpenter.k8s.aws/instance-family).
        Overlays are written for every known instance type of these families that passes the other filters.
    type: list
    elements: str
  gpu_names:
    description: GPU models, requirement C(karpenter.k8s.aws/instance-gpu-name) (for example C(t4), C(a10g), C(l4)).
    type: list
    elements: str
  gpu_manufacturer:
    description: Requirement C(karpenter.k8s.aws/instance-gpu-manufacturer). Set to an empty string to leave it out.
    type: str
    default: nvidia
  gpu_count:
    description: GPUs per instance, requirement C(karpenter.k8s.aws/instance-gpu-count In ...).
    type: list
    elements: raw
  min_gpu_memory:
    description:
      - Least memory per GPU as a quantity (for example C(20Gi)), requirement C(karpenter.k8s.aws/instance-gpu-memory Gte) in MiB.
    type: str
  capacity_types:
    description: C(karpenter.sh/capacity-type) values.
    type: list
    elements: str
    default: [on-demand]
  architectures:
    description: C(kubernetes.io/arch) values.
    type: list
    elements: str
    default: [amd64]
  zones:
    description: C(topology.kubernetes.io/zone) values; all zones when not set.
    type: list
    elements: str
  limit_slices:
    description:
      - Most slices the NodePool may provide, as C(spec.limits.<advertised resource>).
    type: raw
  limit_gpus:
    description:
      - Most physical GPUs. When the profile advertises its slices as C(nvidia.com/gpu) (not renamed),
        the nodes report slices under that name, so the limit is written as I(limit_gpus) x replicas.
    type: raw
  limits:
    description: Other C(spec.limits) entries as Kubernetes quantities, for example C(cpu=1000) and C(memory=4000Gi).
    type: dict
  consolidation_policy:
    description: C(spec.disruption.consolidationPolicy).
    type: str
    choices: [WhenEmpty, WhenEmptyOrUnderutilized]
    default: WhenEmptyOrUnderutilized
  consolidate_after:
    description: C(spec.disruption.consolidateAfter), a duration in s, m or h (for example C(5m)), or C(Never).
    type: str
    default: 5m
  budgets:
    description: C(spec.disruption.budgets), a list of mappings with C(nodes), and optionally C(schedule) with C(duration), and C(reasons).
    type: list
    elements: dict
  expire_after:
    description: C(spec.template.spec.expireAfter), for example C(720h) or C(Never).
    type: str
    default: 720h
  weight:
    description: NodePool weight 1-100 (higher is tried first).
    type: raw
  labels:
    description: Extra node labels for the NodePool template.
    type: dict
  startup_taints:
    description:
      - C(spec.template.spec.startupTaints). Karpenter counts a node as not yet initialized (and keeps
        using the slices it planned for it) until something removes these taints, for example a
        controller that waits for the device plugin to register the slices.
    type: list
    elements: dict
    suboptions:
      key:
        description: Taint key.
        type: str
        required: true
      value:
        description: Taint value.
        type: str
      effect:
        description: Taint effect.
        type: str
        choices: [NoSchedule, PreferNoSchedule, NoExecute]
        default: NoSchedule
  manage_node_class:
    description:
      - Write an EC2NodeClass named I(node_class_name) and point the NodePool at it.
      - Set to C(false) with I(node_class_ref) to use a node class managed elsewhere (for example the
        C(KWOKNodeClass) of Karpenter's KWOK provider in a local simulation).
    type: bool
    default: true
  node_class_name:
    description: Name of the EC2NodeClass. Defaults to I(name).
    type: str
  node_class_ref:
    description: The NodePool's C(nodeClassRef) when I(manage_node_class=false).
    type: dict
    suboptions:
      group:
        description: API group, for example C(karpenter.k8s.aws) or C(karpenter.kwok.sh).
        type: str
        required: true
      kind:
        description: Kind, for example C(EC2NodeClass) or C(KWOKNodeClass).
        type: str
        required: true
      name:
        description: Object name.
        type: str
        required: true
  ami_alias:
    description:
      - C(al2023@<version>) (NVIDIA AL2023 AMI, install the device plugin) or C(bottlerocket@<version>)
        (plugin built in, sharing set in user data). Written alone in its C(amiSelectorTerms) term.
    type: str
    default: al2023@latest
  role:
    description: Node IAM role name (Karpenter creates the instance profile). Exactly one of I(role) and I(instance_profile).
    type: str
  instance_profile:
    description: Existing instance profile name. Exactly one of I(role) and I(instance_profile).
    type: str
  subnet_selector_terms:
    description: C(subnetSelectorTerms); defaults to the discovery tag of I(cluster_name).
    type: list
    elements: dict
  security_group_selector_terms:
    description: C(securityGroupSelectorTerms); defaults to the discovery tag of I(cluster_name).
    type: list
    elements: dict
  root_volume_size:
    description: Size of the root volume (AL2023) or data volume (Bottlerocket) holding images, for example C(100Gi).
    type: str
    default: 100Gi
  root_volume_type:
    description: EBS volume type of that volume.
    type: str
    default: gp3
  root_volume_encrypted:
    description: Encrypt the volumes.
    type: bool
    default: true
  node_class_tags:
    description: C(tags) of the EC2NodeClass (put on the instances and volumes).
    type: dict
  overlay_key:
    description:
      - C(instance-type) writes one overlay per admitted instance type (key C(node.kubernetes.io/instance-type);
        works on EKS and in Karpenter's KWOK simulation).
      - C(gpu-count) writes one per GPU-count tier (key C(karpenter.k8s.aws/instance-gpu-count); EKS only).
    type: str
    choices: [instance-type, gpu-count]
    default: instance-type
  overlay_weight:
    description: NodeOverlay weight 1-10000 (the higher weight wins where overlays overlap).
    type: int
    default: 10
  gpu_counts:
    description: GPUs per instance type where the shipped table does not know it, for example C(g7.xlarge=1).
    type: dict
  karpenter_namespace:
    description: Namespace of the Karpenter Deployment whose feature gates are read.
    type: str
    default: kube-system
  karpenter_feature_gates:
    description:
      - Karpenter's feature gates as you know them (for example C(NodeOverlay=true)), used instead of
        reading the Deployment, for Karpenter not run as a Deployment you can read (for example the KWOK
        provider run as a process, or RBAC without Deployment access). You vouch for it.
    type: str
  allow_without_node_overlay:
    description:
      - When the NodeOverlay gate cannot be shown on (or the CRD is not served), write the NodePool and
        EC2NodeClass without overlays, warning that Karpenter will over-provision, instead of failing.
        Overlays this module wrote before are removed then.
    type: bool
    default: false
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
    cluster_name: my-cluster
    role: KarpenterNodeRole-my-cluster
    profiles:
      - name: ts-4
        replicas: 4
    instance_families: [g4dn]
    gpu_count: [1]
    limit_slices: 64
    consolidate_after: 10m

- name: Bottlerocket (plugin built in, time-slicing set in user data), spot first
  gpu_slicing.eks.karpenter_gpu_nodepool:
    name: gpu-br
    cluster_name: my-cluster
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
over_provisioning_warning:
  description: The warning given when overlays were skipped.
  returned: when overlays were skipped
  type: str
diff:
  description: Before and after per changed object, with --diff.
  returned: when diff mode is on and something changed
  type: list
  elements: dict
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    nodepool_arg_spec,
    sharing_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.karpenter_apply import (
    ensure_nodepool,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import (
    connection_arg_spec,
    new_module,
)


def main():
    argument_spec = connection_arg_spec()
    argument_spec.update(sharing_arg_spec(required=False))
    argument_spec.update(nodepool_arg_spec())
    module = new_module(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ("profiles",))],
    )
    module.exit_json(**ensure_nodepool(module))


if __name__ == "__main__":
    main()
