"""Unit tests for the Karpenter documents (plugins/module_utils/core/karpenter.py): no cluster."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter as k
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

PLAN = build_plan({"profiles": [{"name": "ts-4", "replicas": 4},
                                {"name": "shared-2", "replicas": 2, "rename_by_default": True}]})
BASE = {"name": "gpu-ts4", "discovery_tag_value": "demo", "role": "KarpenterNodeRole-demo",
        "instance_types": ["g4dn.xlarge", "g4dn.12xlarge"]}


def render(**over):
    opts = dict(BASE)
    opts.update(over)
    return k.render(PLAN, opts)


def reqs(doc):
    return {r["key"]: (r["operator"], r["values"]) for r in doc["spec"]["template"]["spec"]["requirements"]}


# --------------------------------------------------------------------------- rendering


def test_nodepool_defaults():
    pool = render()["nodepool"]
    assert pool["apiVersion"] == "karpenter.sh/v1" and pool["kind"] == "NodePool"
    assert pool["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gpu_slicing.eks",
                                          "gpu-slicing.eks/nodepool": "gpu-ts4"}
    spec = pool["spec"]
    assert spec["template"]["metadata"]["labels"] == {"nvidia.com/device-plugin.config": "ts-4",
                                                      "nvidia.com/gpu.present": "true"}
    assert spec["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert spec["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu-ts4"}
    assert spec["template"]["spec"]["expireAfter"] == "720h"
    assert spec["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m"}
    assert "limits" not in spec and "weight" not in spec
    r = reqs(pool)
    assert r["node.kubernetes.io/instance-type"] == ("In", ["g4dn.xlarge", "g4dn.12xlarge"])
    assert r["karpenter.k8s.aws/instance-gpu-manufacturer"] == ("In", ["nvidia"])
    assert r["karpenter.sh/capacity-type"] == ("In", ["on-demand"])
    assert r["kubernetes.io/arch"] == ("In", ["amd64"])
    assert "topology.kubernetes.io/zone" not in r


def test_nodepool_all_requirements_limits_disruption():
    pool = render(instance_types=None, instance_families=["g5", "g6"], gpu_names=["A10G", "l4"], gpu_counts=[1, "4"],
                  min_gpu_memory="20Gi", capacity_types=["spot", "on-demand"], zones=["us-east-1a"],
                  limit_slices=64, limits={"cpu": 1000, "memory": "4000Gi"}, consolidation_policy="WhenEmpty",
                  consolidate_after="10m", budgets=[{"nodes": "20%"}, {"nodes": "0", "schedule": "@daily",
                                                                       "duration": "8h", "reasons": ["Drifted"]}],
                  expire_after="Never", weight=50, labels={"team": "ml"})["nodepool"]
    r = reqs(pool)
    assert r["karpenter.k8s.aws/instance-family"] == ("In", ["g5", "g6"])
    assert r["karpenter.k8s.aws/instance-gpu-name"] == ("In", ["a10g", "l4"])
    assert r["karpenter.k8s.aws/instance-gpu-count"] == ("In", ["1", "4"])
    assert r["karpenter.k8s.aws/instance-gpu-memory"] == ("Gte", ["20480"])
    assert r["karpenter.sh/capacity-type"] == ("In", ["spot", "on-demand"])
    assert r["topology.kubernetes.io/zone"] == ("In", ["us-east-1a"])
    assert "node.kubernetes.io/instance-type" not in r
    spec = pool["spec"]
    assert spec["limits"] == {"cpu": "1000", "memory": "4000Gi", "nvidia.com/gpu": "64"}
    assert spec["disruption"]["budgets"][1] == {"nodes": "0", "schedule": "@daily", "duration": "8h",
                                                "reasons": ["Drifted"]}
    assert spec["weight"] == 50 and spec["template"]["spec"]["expireAfter"] == "Never"
    assert spec["template"]["metadata"]["labels"]["team"] == "ml"


def test_startup_taints():
    pool = render(startup_taints=[{"key": "example.com/plugin-pending", "effect": "NoSchedule", "value": None}])
    assert pool["nodepool"]["spec"]["template"]["spec"]["startupTaints"] == [
        {"key": "example.com/plugin-pending", "effect": "NoSchedule"}]
    assert "startupTaints" not in render()["nodepool"]["spec"]["template"]["spec"]


def test_limit_gpus_counts_slices_when_not_renamed():
    assert render(limit_gpus=10)["nodepool"]["spec"]["limits"] == {"nvidia.com/gpu": "40"}
    assert render(limit_gpus=10, limit_slices=40)["nodepool"]["spec"]["limits"] == {"nvidia.com/gpu": "40"}


def test_limits_renamed_profile_has_both_keys():
    pool = render(profile="shared-2", limit_gpus=10, limit_slices=20)["nodepool"]
    assert pool["spec"]["limits"] == {"nvidia.com/gpu.shared": "20", "nvidia.com/gpu": "10"}


def test_overlays_per_instance_type():
    docs = render()
    overlays = docs["overlays"]
    assert [o["metadata"]["name"] for o in overlays] == ["gpu-ts4-g4dn-xlarge", "gpu-ts4-g4dn-12xlarge"]
    first = overlays[0]
    assert first["apiVersion"] == "karpenter.sh/v1alpha1" and first["kind"] == "NodeOverlay"
    assert first["spec"]["requirements"] == [
        {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu-ts4"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g4dn.xlarge"]},
    ]
    assert first["spec"]["capacity"] == {"nvidia.com/gpu": "4"}
    assert overlays[1]["spec"]["capacity"] == {"nvidia.com/gpu": "16"}
    assert first["spec"]["weight"] == 10
    assert first["metadata"]["labels"]["gpu-slicing.eks/nodepool"] == "gpu-ts4"
    assert docs["summary"]["instance_types"] == [{"name": "g4dn.xlarge", "gpus": 1, "slices": 4},
                                                 {"name": "g4dn.12xlarge", "gpus": 4, "slices": 16}]


def test_overlays_per_gpu_count_tier_and_renamed_resource():
    overlays = render(profile="shared-2", instance_types=None, instance_families=["g5"], overlay_key="gpu-count",
                      overlay_weight=500)["overlays"]
    assert [o["metadata"]["name"] for o in overlays] == ["gpu-ts4-1gpu", "gpu-ts4-4gpu", "gpu-ts4-8gpu"]
    assert [o["spec"]["capacity"] for o in overlays] == [{"nvidia.com/gpu.shared": "2"},
                                                         {"nvidia.com/gpu.shared": "8"},
                                                         {"nvidia.com/gpu.shared": "16"}]
    assert overlays[1]["spec"]["requirements"][1] == {"key": "karpenter.k8s.aws/instance-gpu-count",
                                                      "operator": "In", "values": ["4"]}
    assert overlays[0]["spec"]["weight"] == 500


def test_gpu_counts_override_admits_unknown_type():
    docs = render(instance_types=["g7.xlarge"], gpus_per_instance_type={"g7.xlarge": 2})
    assert docs["overlays"][0]["spec"]["capacity"] == {"nvidia.com/gpu": "8"}


def test_no_overlays_for_unshared_profile():
    plan = build_plan({"profiles": [{"name": "whole", "strategy": "none"}]})
    assert k.render(plan, dict(BASE))["overlays"] == []


def test_ec2nodeclass_al2023():
    nc = render()["ec2nodeclass"]
    assert nc["apiVersion"] == "karpenter.k8s.aws/v1" and nc["kind"] == "EC2NodeClass"
    spec = nc["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert spec["role"] == "KarpenterNodeRole-demo" and "instanceProfile" not in spec
    assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert spec["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "demo"}}]
    assert spec["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {
        "volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}}]
    assert "userData" not in spec


def test_ec2nodeclass_bottlerocket_user_data_from_profile():
    nc = render(ami_alias="bottlerocket@latest", role=None, instance_profile="KarpenterNodeProfile",
                root_volume_size="200Gi", subnet_selector_terms=[{"id": "subnet-0abc"}])["ec2nodeclass"]
    spec = nc["spec"]
    assert spec["instanceProfile"] == "KarpenterNodeProfile" and "role" not in spec
    assert 'device-sharing-strategy = "time-slicing"' in spec["userData"]
    assert "replicas = 4" in spec["userData"]
    assert spec["subnetSelectorTerms"] == [{"id": "subnet-0abc"}]
    assert [m["deviceName"] for m in spec["blockDeviceMappings"]] == ["/dev/xvda", "/dev/xvdb"]
    assert spec["blockDeviceMappings"][1]["ebs"]["volumeSize"] == "200Gi"


def test_unmanaged_node_class_ref():
    docs = render(manage_node_class=False, role=None,
                  node_class_ref={"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"})
    assert docs["ec2nodeclass"] is None
    assert docs["nodepool"]["spec"]["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def test_rendering_is_deterministic():
    assert render() == render()


def test_bottlerocket_nodes_carry_the_os_device_plugin_label_and_al2023_nodes_do_not():
    """Bottlerocket's NVIDIA variant runs its own device plugin: its NodePool marks the nodes so
    that the chart's DaemonSets keep off them."""
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import OS_DEVICE_PLUGIN_LABEL

    bottlerocket = render(ami_alias="bottlerocket@latest")["nodepool"]["spec"]["template"]["metadata"]["labels"]
    al2023 = render()["nodepool"]["spec"]["template"]["metadata"]["labels"]
    assert bottlerocket[OS_DEVICE_PLUGIN_LABEL] == "bottlerocket"
    assert OS_DEVICE_PLUGIN_LABEL not in al2023
