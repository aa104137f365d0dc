"""Unit tests for the offline GPU instance type table (plugins/module_utils/core/instance_types.py)."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import instance_types as it
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import (
    INSTANCE_TYPES,
    GpuInstanceType,
    by_family,
    known_instance_types,
    lookup,
    describe_facts,
    merge_describe_instance_types,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan


@pytest.mark.parametrize(
    "name, gpu, count, mem_mib",
    [
        ("g4dn.xlarge", "t4", 1, 16384),
        ("g4dn.12xlarge", "t4", 4, 16384),
        ("g4dn.metal", "t4", 8, 16384),
        ("g5.xlarge", "a10g", 1, 24576),
        ("g5.12xlarge", "a10g", 4, 24576),
        ("g5.24xlarge", "a10g", 4, 24576),
        ("g5.48xlarge", "a10g", 8, 24576),
        ("g6.xlarge", "l4", 1, 22888),
        ("g6.48xlarge", "l4", 8, 22888),
        ("g6e.xlarge", "l40s", 1, 45776),
        ("g6e.48xlarge", "l40s", 8, 45776),
        ("p3.2xlarge", "v100", 1, 16384),
        ("p3.8xlarge", "v100", 4, 16384),
        ("p3.16xlarge", "v100", 8, 16384),
        ("p4d.24xlarge", "a100", 8, 40960),
        ("p5.48xlarge", "h100", 8, 81920),
    ],
)
def test_table_rows(name, gpu, count, mem_mib):
    row = lookup(name)
    assert (row.gpu_name, row.gpu_count, row.gpu_memory_mib) == (gpu, count, mem_mib)
    assert row.gpu_manufacturer == "nvidia"
    assert row.name == name


def test_table_is_complete_and_sane():
    families = {t.family for t in INSTANCE_TYPES.values()}
    assert families == {"g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"}
    for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"):
        assert "g4dn." + size in INSTANCE_TYPES
    for fam in ("g5", "g6", "g6e"):
        for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"):
            assert "%s.%s" % (fam, size) in INSTANCE_TYPES
    for row in INSTANCE_TYPES.values():
        assert row.gpu_count in (1, 4, 8)
        assert row.vcpu > 0 and row.memory_mib > 0
        assert row.price_per_hour > 0
        assert row.compute_capability
    # within a family, a bigger size never costs less for the same GPUs
    for fam in ("g4dn", "g5", "g6", "g6e", "p3"):
        rows = by_family(fam)
        for small, big in zip(rows, rows[1:]):
            if small.gpu_count == big.gpu_count:
                assert small.price_per_hour < big.price_per_hour


def test_price_note_states_date_and_region():
    assert it.PRICE_NOTE == "prices as of 2026-11, us-east-1, on-demand"
    assert it.PRICE_NOTE in it.__doc__


def test_lookup_is_case_insensitive():
    assert lookup(" G4DN.XLARGE ").name == "g4dn.xlarge"


@pytest.mark.parametrize("name, suggestion", [("g4dn.xlarg", "g4dn.xlarge"), ("g5.12xl", "g5.12xlarge"),
                                              ("p4.24xlarge", "p4d.24xlarge")])
def test_lookup_suggests_close_names(name, suggestion):
    with pytest.raises(InvalidInput) as info:
        lookup(name)
    assert "did you mean" in str(info.value)
    assert suggestion in str(info.value)
    assert info.value.field == "instance_type"


def test_lookup_unknown_lists_families():
    with pytest.raises(InvalidInput) as info:
        lookup("m5.large")
    assert "g4dn" in info.value.fix and "p5" in info.value.fix


@pytest.mark.parametrize("bad", [None, "", 42])
def test_lookup_rejects_non_names(bad):
    with pytest.raises(InvalidInput):
        lookup(bad)


def test_helpers():
    row = lookup("g4dn.xlarge")
    assert row.gpu_memory == "16384Mi"
    assert row.total_gpu_memory_mib == 16384
    assert lookup("p5.48xlarge").total_gpu_memory_mib == 8 * 81920
    assert row.karpenter_labels() == {
        "karpenter.k8s.aws/instance-gpu-name": "t4",
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-count": "1",
        "karpenter.k8s.aws/instance-gpu-memory": "16384",
    }
    data = row.to_dict()
    assert data["family"] == "g4dn" and data["price_per_hour"] == 0.526
    assert known_instance_types() == sorted(INSTANCE_TYPES)


def test_gpu_memory_feeds_slice_memory_profiles():
    row = lookup("g5.xlarge")
    plan = build_plan({"profiles": [{"name": "a10g-6g", "slice_memory": "6Gi", "gpu_memory": row.gpu_memory}]})
    assert plan.profile().replicas == 4


def describe(name, gpu_name="T4", count=1, mem=16384, vcpu=4, memory=16384):
    return {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": vcpu},
        "MemoryInfo": {"SizeInMiB": memory},
        "GpuInfo": {
            "Gpus": [{"Name": gpu_name, "Manufacturer": "NVIDIA", "Count": count, "MemoryInfo": {"SizeInMiB": mem}}],
            "TotalGpuMemoryInMiB": count * mem,
        },
    }


def test_merge_describe_updates_and_adds_without_mutating():
    response = {
        "InstanceTypes": [
            describe("g4dn.xlarge", mem=15360),
            describe("g7.xlarge", gpu_name="B200", mem=184320, vcpu=8, memory=65536),
            {"InstanceType": "m5.large", "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192}},
        ]
    }
    merged = merge_describe_instance_types(response)
    assert merged["g4dn.xlarge"].gpu_memory_mib == 15360
    assert merged["g4dn.xlarge"].price_per_hour == 0.526  # kept: EC2 does not report prices
    assert merged["g4dn.xlarge"].compute_capability == "7.5"
    assert merged["g7.xlarge"] == GpuInstanceType(
        name="g7.xlarge", gpu_name="b200", gpu_manufacturer="nvidia", gpu_count=1, gpu_memory_mib=184320,
        vcpu=8, memory_mib=65536, price_per_hour=None, compute_capability=None,
    )
    assert "m5.large" not in merged
    assert INSTANCE_TYPES["g4dn.xlarge"].gpu_memory_mib == 16384
    assert lookup("g7.xlarge", merged).gpu_name == "b200"


def test_merge_describe_accepts_pages_and_lists():
    pages = [{"InstanceTypes": [describe("g5.xlarge", "A10G", mem=24576)]},
             {"InstanceTypes": [describe("g6.xlarge", "L4", mem=22888)]}]
    merged = merge_describe_instance_types(pages, table={})
    assert sorted(merged) == ["g5.xlarge", "g6.xlarge"]
    merged = merge_describe_instance_types([describe("p3.8xlarge", "V100", count=4)], table={})
    assert merged["p3.8xlarge"].gpu_count == 4


@pytest.mark.parametrize(
    "response, needle",
    [
        ({"Nope": []}, "InstanceTypes"),
        ("text", "not a mapping or list"),
        ({"InstanceTypes": [{"InstanceType": "g5.xlarge", "GpuInfo": {"Gpus": [{"Name": "A10G"}]}}]}, "Count"),
        ({"InstanceTypes": [{"GpuInfo": {}}]}, "InstanceType"),
        ({"InstanceTypes": [describe("g5.xlarge", count="1")]}, "not a whole number"),
    ],
)
def test_merge_describe_rejects_malformed(response, needle):
    with pytest.raises(InvalidInput) as info:
        merge_describe_instance_types(response)
    assert needle in str(info.value)


# DescribeInstanceTypes read into the modules' facts (the one parser; aws/ec2.py calls it)
def it_entry(name, gpu_name="A10G", count=1, mem=24576, vcpu=4, memory=16384):
    entry = {"InstanceType": name, "VCpuInfo": {"DefaultVCpus": vcpu}, "MemoryInfo": {"SizeInMiB": memory}}
    if count:
        entry["GpuInfo"] = {"Gpus": [{"Name": gpu_name, "Manufacturer": "NVIDIA", "Count": count,
                                      "MemoryInfo": {"SizeInMiB": mem}}], "TotalGpuMemoryInMiB": mem * count}
    return entry


def test_describe_facts_entry():
    facts = describe_facts([it_entry("g5.12xlarge", count=4, vcpu=48, memory=196608)])["g5.12xlarge"]
    assert facts["gpu_count"] == 4
    assert facts["gpu_name"] == "a10g" and facts["gpu_manufacturer"] == "nvidia"
    assert facts["gpu_memory_mib"] == 24576 and facts["total_gpu_memory_mib"] == 98304
    assert facts["gpu_memory"] == "24576Mi"
    assert facts["vcpu"] == 48 and facts["source"] == "aws"
    assert describe_facts([it_entry("m5.large", count=0)])["m5.large"]["gpu_count"] == 0


def test_describe_facts_merges_table_price():
    pages = [{"InstanceTypes": [it_entry("g5.xlarge", mem=22888)]},
             {"InstanceTypes": [it_entry("x9.gpu", gpu_name="H200", count=8, mem=143360)]}]
    facts = describe_facts(pages)
    assert facts["g5.xlarge"]["gpu_memory_mib"] == 22888, "EC2's figure wins over the table"
    assert facts["g5.xlarge"]["price_per_hour"] is not None, "price kept from the shipped table"
    assert facts["x9.gpu"]["gpu_count"] == 8 and facts["x9.gpu"]["price_per_hour"] is None
