# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the two parts of GPU sharing. device_plugin and
    karpenter_gpu_nodepool document them at the top level (DEVICE_PLUGIN, NODEPOOL), gpu_sharing
    as the suboptions of its device_plugin and nodepool options, without state (NESTED: the same
    entries, indented; tests/unit/plugins/doc_fragments/test_sharing_parts.py keeps the copies equal).
    The argument specs have one source: module_utils/args.py."""

    DEVICE_PLUGIN = r"""
options:
  state:
    description: C(present) installs or upgrades; C(absent) uninstalls the release and removes the ConfigMap.
    type: str
    choices: [present, absent]
    default: present
  release_name:
    description: Helm release name.
    type: str
    default: nvdp
  namespace:
    description: Namespace of the release, the DaemonSets and the ConfigMap (kubernetes.core.helm's I(release_namespace)).
    type: str
    default: nvidia-device-plugin
  chart_ref:
    description:
      - NVIDIA's chart. A chart name (the default) is fetched from I(chart_repo_url), so no C(helm repo add) is
        needed beforehand.
      - A local chart directory, an C(oci://) reference, or C(<repo>/nvidia-device-plugin) for a repository added
        with C(helm repo add) is used as it is, and I(chart_repo_url) is then ignored.
      - Not needed with C(state=absent).
    type: str
    default: nvidia-device-plugin
  chart_repo_url:
    description:
      - Helm chart repository that serves I(chart_ref) when I(chart_ref) is a chart name (helm's C(--repo)).
      - The default is NVIDIA's published repository; point it at a mirror that serves the same chart when the
        execution node cannot reach it.
    type: str
    default: https://nvidia.github.io/k8s-device-plugin
  chart_version:
    description: Chart version that must be installed; the chart found at I(chart_ref) is checked against it.
    type: str
    default: 0.20.0
  config_map_name:
    description: Name of the ConfigMap holding the sharing configs.
    type: str
    default: nvidia-device-plugin-configs
  manage_config_map:
    description: Write (and on C(absent) remove) the ConfigMap from I(profiles) before installing the chart.
    type: bool
    default: true
  image_tag:
    description: Image tag with digest (C(<tag>@sha256:<digest>)) for the plugin; the repository is the chart's default. A tag without digest is refused.
    type: str
    default: v0.20.0@sha256:a61ba9fd8efb82f3a79f877f7580e02c1e8e7593f62473644bc9c79e315c3312
  gfd:
    description:
      - Enable GPU Feature Discovery (and the Node Feature Discovery it needs).
      - Required with an MPS profile (C(false) is refused then, also when set through I(values) as C(gfd.enabled)).
        Only GFD labels nodes C(nvidia.com/mps.capable=true), where the chart runs the MPS control daemon.
    type: bool
    default: true
  values:
    description:
      - Extra Helm values merged over the ones this module computes, as a dict.
      - C(config) cannot be set here; the plugin's config comes from I(profiles).
    type: raw
    default: {}
  wait:
    description: Wait until the plugin and GFD DaemonSets are ready on every GPU node.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the rollout before restoring the previous state and failing.
    type: int
    default: 300
  binary_path:
    description: Path of the helm binary; found on C(PATH) when not set.
    type: path
"""

    NODEPOOL = r"""
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
  discovery_tag_value:
    description:
      - Value of the C(karpenter.sh/discovery) tag on the subnets and security groups the EC2NodeClass selects by
        default (C(karpenter.sh/discovery=<discovery_tag_value>)); by Karpenter's convention the EKS cluster's name.
      - Defaults to I(eks_cluster_name) when that is given.
    type: str
  instance_types:
    description:
      - EC2 instance types the NodePool may launch (requirement C(node.kubernetes.io/instance-type)).
      - Unknown types are refused with close known names, unless their GPU count is in I(gpus_per_instance_type).
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
  gpu_counts:
    description: The GPU counts per instance the NodePool admits, requirement C(karpenter.k8s.aws/instance-gpu-count In ...).
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
      - A pinned version must have the form AWS publishes (C(al2023@v20240625), C(bottlerocket@1.46.0)).
        With AWS options given, the SSM parameter Karpenter's AWS provider reads for it
        (NVIDIA variant, x86_64, the cluster's Kubernetes version) must exist, or nothing is written.
      - An MPS profile on Bottlerocket needs release 1.54.0 or newer (its settings model knows C(mps) from then
        on). A pinned older C(bottlerocket@v<version>) is refused; C(bottlerocket@latest) resolves to a newer one.
      - With C(bottlerocket@...) the NodePool labels its nodes C(gpu-slicing.eks/os-device-plugin=bottlerocket)
        (also when I(manage_node_class=false), so set I(ami_alias) to your node class's OS), and the device plugin's
        chart keeps off such nodes, whose OS runs its own plugin.
    type: str
    default: al2023@latest
  role:
    description: Node IAM role name (Karpenter creates the instance profile). Exactly one of I(role) and I(instance_profile).
    type: str
  instance_profile:
    description: Existing instance profile name. Exactly one of I(role) and I(instance_profile).
    type: str
  subnet_selector_terms:
    description: C(subnetSelectorTerms); defaults to the discovery tag of I(discovery_tag_value).
    type: list
    elements: dict
  security_group_selector_terms:
    description: C(securityGroupSelectorTerms); defaults to the discovery tag of I(discovery_tag_value).
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
  gpus_per_instance_type:
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
"""

    NESTED = r"""
options:
  device_plugin:
    description:
      - The options of M(gpu_slicing.eks.device_plugin) except I(state), for NVIDIA's device plugin and its sharing ConfigMap.
    type: dict
    required: true
    suboptions:
      release_name:
        description: Helm release name.
        type: str
        default: nvdp
      namespace:
        description: Namespace of the release, the DaemonSets and the ConfigMap (kubernetes.core.helm's I(release_namespace)).
        type: str
        default: nvidia-device-plugin
      chart_ref:
        description:
          - NVIDIA's chart. A chart name (the default) is fetched from I(chart_repo_url), so no C(helm repo add) is
            needed beforehand.
          - A local chart directory, an C(oci://) reference, or C(<repo>/nvidia-device-plugin) for a repository added
            with C(helm repo add) is used as it is, and I(chart_repo_url) is then ignored.
          - Not needed with C(state=absent).
        type: str
        default: nvidia-device-plugin
      chart_repo_url:
        description:
          - Helm chart repository that serves I(chart_ref) when I(chart_ref) is a chart name (helm's C(--repo)).
          - The default is NVIDIA's published repository; point it at a mirror that serves the same chart when the
            execution node cannot reach it.
        type: str
        default: https://nvidia.github.io/k8s-device-plugin
      chart_version:
        description: Chart version that must be installed; the chart found at I(chart_ref) is checked against it.
        type: str
        default: 0.20.0
      config_map_name:
        description: Name of the ConfigMap holding the sharing configs.
        type: str
        default: nvidia-device-plugin-configs
      manage_config_map:
        description: Write (and on C(absent) remove) the ConfigMap from I(profiles) before installing the chart.
        type: bool
        default: true
      image_tag:
        description: Image tag with digest (C(<tag>@sha256:<digest>)) for the plugin; the repository is the chart's default. A tag without digest is refused.
        type: str
        default: v0.20.0@sha256:a61ba9fd8efb82f3a79f877f7580e02c1e8e7593f62473644bc9c79e315c3312
      gfd:
        description:
          - Enable GPU Feature Discovery (and the Node Feature Discovery it needs).
          - Required with an MPS profile (C(false) is refused then, also when set through I(values) as C(gfd.enabled)).
            Only GFD labels nodes C(nvidia.com/mps.capable=true), where the chart runs the MPS control daemon.
        type: bool
        default: true
      values:
        description:
          - Extra Helm values merged over the ones this module computes, as a dict.
          - C(config) cannot be set here; the plugin's config comes from I(profiles).
        type: raw
        default: {}
      wait:
        description: Wait until the plugin and GFD DaemonSets are ready on every GPU node.
        type: bool
        default: true
      wait_timeout:
        description: Seconds to wait for the rollout before restoring the previous state and failing.
        type: int
        default: 300
      binary_path:
        description: Path of the helm binary; found on C(PATH) when not set.
        type: path
  nodepool:
    description:
      - The options of M(gpu_slicing.eks.karpenter_gpu_nodepool) except I(state), for the Karpenter GPU NodePool, its EC2NodeClass and NodeOverlays.
      - When not set, no NodePool is managed (and none is removed).
    type: dict
    required: false
    suboptions:
      name:
        description: Name of the NodePool; also the default EC2NodeClass name and the prefix of the overlays.
        type: str
        required: true
      profile:
        description: The sharing profile the nodes use. Defaults to I(default_profile) (or the first profile).
        type: str
      discovery_tag_value:
        description:
          - Value of the C(karpenter.sh/discovery) tag on the subnets and security groups the EC2NodeClass selects by
            default (C(karpenter.sh/discovery=<discovery_tag_value>)); by Karpenter's convention the EKS cluster's name.
          - Defaults to I(eks_cluster_name) when that is given.
        type: str
      instance_types:
        description:
          - EC2 instance types the NodePool may launch (requirement C(node.kubernetes.io/instance-type)).
          - Unknown types are refused with close known names, unless their GPU count is in I(gpus_per_instance_type).
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
      gpu_counts:
        description: The GPU counts per instance the NodePool admits, requirement C(karpenter.k8s.aws/instance-gpu-count In ...).
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
          - A pinned version must have the form AWS publishes (C(al2023@v20240625), C(bottlerocket@1.46.0)).
            With AWS options given, the SSM parameter Karpenter's AWS provider reads for it
            (NVIDIA variant, x86_64, the cluster's Kubernetes version) must exist, or nothing is written.
          - An MPS profile on Bottlerocket needs release 1.54.0 or newer (its settings model knows C(mps) from then
            on). A pinned older C(bottlerocket@v<version>) is refused; C(bottlerocket@latest) resolves to a newer one.
          - With C(bottlerocket@...) the NodePool labels its nodes C(gpu-slicing.eks/os-device-plugin=bottlerocket)
            (also when I(manage_node_class=false), so set I(ami_alias) to your node class's OS), and the device plugin's
            chart keeps off such nodes, whose OS runs its own plugin.
        type: str
        default: al2023@latest
      role:
        description: Node IAM role name (Karpenter creates the instance profile). Exactly one of I(role) and I(instance_profile).
        type: str
      instance_profile:
        description: Existing instance profile name. Exactly one of I(role) and I(instance_profile).
        type: str
      subnet_selector_terms:
        description: C(subnetSelectorTerms); defaults to the discovery tag of I(discovery_tag_value).
        type: list
        elements: dict
      security_group_selector_terms:
        description: C(securityGroupSelectorTerms); defaults to the discovery tag of I(discovery_tag_value).
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
      gpus_per_instance_type:
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
"""
