"""Unit tests for plugins/module_utils/core/karpenter_options.py: every bad option names field, value and fix."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter as k
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

from .test_karpenter import BASE, render


BAD = [
    ({"ami_alias": "al2@latest"}, "ami_alias", "bottlerocket@latest"),
    ({"ami_alias": "ubuntu"}, "ami_alias", "al2023@latest"),
    ({"instance_profile": "prof"}, "instance_profile", "not both"),
    ({"role": None}, "role", "instance_profile"),
    ({"limit_slices": "lots"}, "limit_slices", "whole number"),
    ({"limit_gpus": -2}, "limit_gpus", "1 or more"),
    ({"limits": {"cpu": "many"}}, "limits.cpu", "quantity"),
    ({"limits": {"memory": "10 GB"}}, "limits.memory", "quantity"),
    ({"limit_slices": 10, "limit_gpus": 10}, "limit_gpus", "only one"),
    ({"instance_types": ["g4dn.xlarg"]}, "instance_types[0]", "g4dn.xlarge"),
    ({"instance_types": ["m5.large"]}, "instance_types[0]", "gpus_per_instance_type"),
    ({"instance_types": None, "instance_families": ["g4"]}, "instance_families[0]", "g4dn"),
    ({"instance_types": None}, "instance_types", "instance_families"),
    # a type outside the given families is refused, not silently dropped
    ({"instance_types": ["g5.xlarge", "g6e.xlarge"], "instance_families": ["g4dn", "g5", "g6"]},
     "instance_types[1]", "add g6e to instance_families"),
    ({"instance_types": []}, "instance_types", "at least one"),
    ({"instance_types": ["g4dn.xlarge"], "gpu_counts": [8]}, "instance_types", "widen"),
    ({"capacity_types": ["spott"]}, "capacity_types[0]", "spot"),
    ({"weight": 0}, "weight", "1 to 100"),
    ({"weight": 101}, "weight", "1 to 100"),
    ({"overlay_weight": 20000}, "overlay_weight", "1 to 10000"),
    ({"consolidate_after": "5 minutes"}, "consolidate_after", "duration"),
    ({"consolidate_after": "1.5h"}, "consolidate_after", "duration"),
    ({"expire_after": "30d"}, "expire_after", "720h"),
    ({"consolidation_policy": "Sometimes"}, "consolidation_policy", "WhenEmpty"),
    ({"budgets": [{"nodes": "110%"}]}, "budgets[0].nodes", "percentage"),
    ({"budgets": [{"nodes": "1", "schedule": "@daily"}]}, "budgets[0]", "together"),
    ({"root_volume_size": "100GB"}, "root_volume_size", "100Gi"),
    ({"discovery_tag_value": None}, "subnet_selector_terms", "discovery_tag_value"),
    ({"profile": "nope"}, "profile", "ts-4"),
    ({"name": "GPU_Pool"}, "name", "lower-case"),
    ({"overlay_key": "zone"}, "overlay_key", "gpu-count"),
    ({"node_class_ref": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}},
     "node_class_ref", "manage_node_class: false"),
    ({"zones": ["us east"]}, "zones[0]", "letters"),
    ({"min_gpu_memory": "lots"}, "min_gpu_memory", "4Gi"),
    ({"startup_taints": [{"key": "bad key!"}]}, "startup_taints[0].key", "label-style"),
]


@pytest.mark.parametrize("over,field,fix", BAD, ids=[b[1] + ":" + repr(list(b[0].values())[0])[:20] for b in BAD])
def test_validation_errors_name_field_value_and_fix(over, field, fix):
    with pytest.raises(InvalidInput) as info:
        render(**over)
    err = info.value
    assert err.field == field, str(err)
    assert fix in err.fix, str(err)
    assert str(err).startswith("%s: " % field) and "Fix: " in str(err)
    assert err.to_dict()["field"] == field


def test_bottlerocket_refuses_mig_resource_names():
    plan = build_plan({"profiles": [{"name": "ts", "replicas": 4, "mig_strategy": "mixed",
                                     "resource_name": "mig-1g.5gb"}]})
    with pytest.raises(Exception) as info:
        k.render(plan, dict(BASE, ami_alias="bottlerocket@latest"))
    assert "mig_strategy" in str(info.value)
