# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline table of EC2 GPU instance types (pure: no I/O, no boto3).

Figures per instance type: GPU name as Karpenter labels it (``karpenter.k8s.aws/instance-gpu-name``),
manufacturer, GPUs per instance, memory per GPU in MiB (as EC2 DescribeInstanceTypes reports it in
``GpuInfo.Gpus[].MemoryInfo.SizeInMiB``), vCPUs, memory in MiB, compute capability and price.

PRICES: prices as of 2026-11, us-east-1, on-demand, Linux, USD per hour. They are list prices
written down by hand, not fetched: use them to compare options, not to budget; a live
DescribeInstanceTypes answer (see :func:`merge_describe_instance_types`) overrides every figure but
the price.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import difflib
from dataclasses import dataclass, replace

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.names import (
    INSTANCE_GPU_COUNT_LABEL,
    INSTANCE_GPU_MANUFACTURER_LABEL,
    INSTANCE_GPU_MEMORY_LABEL,
    INSTANCE_GPU_NAME_LABEL,
)

PRICES_AS_OF = "2026-11"
PRICE_REGION = "us-east-1"
PRICE_NOTE = "prices as of 2026-11, us-east-1, on-demand"

GIB = 1024  # MiB per GiB


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 GPU instance type."""

    name: str
    gpu_name: str  # lower case, as karpenter.k8s.aws/instance-gpu-name
    gpu_manufacturer: str  # lower case, as karpenter.k8s.aws/instance-gpu-manufacturer
    gpu_count: int
    gpu_memory_mib: int  # per GPU, as karpenter.k8s.aws/instance-gpu-memory
    vcpu: int
    memory_mib: int
    price_per_hour: float = None  # USD, on-demand, us-east-1 (see PRICE_NOTE); None when unknown
    compute_capability: str = None  # CUDA compute capability, e.g. "7.5" (decides the MPS cap)

    @property
    def family(self):
        return self.name.split(".", 1)[0]

    @property
    def gpu_memory(self):
        """Memory of one GPU as a Kubernetes quantity (``16384Mi``), for a profile's gpu_memory."""
        return "%dMi" % self.gpu_memory_mib

    @property
    def total_gpu_memory_mib(self):
        return self.gpu_count * self.gpu_memory_mib

    def karpenter_labels(self):
        """The ``karpenter.k8s.aws/instance-gpu-*`` labels Karpenter puts on such a node (strings)."""
        return {
            INSTANCE_GPU_NAME_LABEL: self.gpu_name,
            INSTANCE_GPU_MANUFACTURER_LABEL: self.gpu_manufacturer,
            INSTANCE_GPU_COUNT_LABEL: str(self.gpu_count),
            INSTANCE_GPU_MEMORY_LABEL: str(self.gpu_memory_mib),
        }

    def to_dict(self):
        return {
            "name": self.name,
            "family": self.family,
            "gpu_name": self.gpu_name,
            "gpu_manufacturer": self.gpu_manufacturer,
            "gpu_count": self.gpu_count,
            "gpu_memory_mib": self.gpu_memory_mib,
            "vcpu": self.vcpu,
            "memory_mib": self.memory_mib,
            "price_per_hour": self.price_per_hour,
            "compute_capability": self.compute_capability,
        }


# GPU models: (karpenter gpu name, memory per GPU in MiB as EC2 reports it, compute capability)
_T4 = ("t4", 16384, "7.5")
_A10G = ("a10g", 24576, "8.6")
_L4 = ("l4", 22888, "8.9")
_L40S = ("l40s", 45776, "8.9")
_V100 = ("v100", 16384, "7.0")
_A100_40 = ("a100", 40960, "8.0")
_H100 = ("h100", 81920, "9.0")

# name: (gpu model, gpu count, vcpu, memory GiB, on-demand USD/h us-east-1 -- PRICE_NOTE)
_ROWS = {
    "g4dn.xlarge": (_T4, 1, 4, 16, 0.526),
    "g4dn.2xlarge": (_T4, 1, 8, 32, 0.752),
    "g4dn.4xlarge": (_T4, 1, 16, 64, 1.204),
    "g4dn.8xlarge": (_T4, 1, 32, 128, 2.176),
    "g4dn.12xlarge": (_T4, 4, 48, 192, 3.912),
    "g4dn.16xlarge": (_T4, 1, 64, 256, 4.352),
    "g4dn.metal": (_T4, 8, 96, 384, 7.824),
    "g5.xlarge": (_A10G, 1, 4, 16, 1.006),
    "g5.2xlarge": (_A10G, 1, 8, 32, 1.212),
    "g5.4xlarge": (_A10G, 1, 16, 64, 1.624),
    "g5.8xlarge": (_A10G, 1, 32, 128, 2.448),
    "g5.12xlarge": (_A10G, 4, 48, 192, 5.672),
    "g5.16xlarge": (_A10G, 1, 64, 256, 4.096),
    "g5.24xlarge": (_A10G, 4, 96, 384, 8.144),
    "g5.48xlarge": (_A10G, 8, 192, 768, 16.288),
    "g6.xlarge": (_L4, 1, 4, 16, 0.8048),
    "g6.2xlarge": (_L4, 1, 8, 32, 0.9776),
    "g6.4xlarge": (_L4, 1, 16, 64, 1.3232),
    "g6.8xlarge": (_L4, 1, 32, 128, 2.0144),
    "g6.12xlarge": (_L4, 4, 48, 192, 4.6016),
    "g6.16xlarge": (_L4, 1, 64, 256, 3.3968),
    "g6.24xlarge": (_L4, 4, 96, 384, 6.6752),
    "g6.48xlarge": (_L4, 8, 192, 768, 13.3504),
    "g6e.xlarge": (_L40S, 1, 4, 32, 1.861),
    "g6e.2xlarge": (_L40S, 1, 8, 64, 2.24208),
    "g6e.4xlarge": (_L40S, 1, 16, 128, 3.00424),
    "g6e.8xlarge": (_L40S, 1, 32, 256, 4.52856),
    "g6e.12xlarge": (_L40S, 4, 48, 384, 10.49264),
    "g6e.16xlarge": (_L40S, 1, 64, 512, 7.57719),
    "g6e.24xlarge": (_L40S, 4, 96, 768, 15.06559),
    "g6e.48xlarge": (_L40S, 8, 192, 1536, 30.13118),
    "p3.2xlarge": (_V100, 1, 8, 61, 3.06),
    "p3.8xlarge": (_V100, 4, 32, 244, 12.24),
    "p3.16xlarge": (_V100, 8, 64, 488, 24.48),
    "p4d.24xlarge": (_A100_40, 8, 96, 1152, 32.7726),
    "p5.48xlarge": (_H100, 8, 192, 2048, 55.04),
}


def _build_table():
    table = {}
    for name in sorted(_ROWS):
        (gpu_name, gpu_mem, cc), count, vcpu, mem_gib, price = _ROWS[name]
        table[name] = GpuInstanceType(
            name=name,
            gpu_name=gpu_name,
            gpu_manufacturer="nvidia",
            gpu_count=count,
            gpu_memory_mib=gpu_mem,
            vcpu=vcpu,
            memory_mib=mem_gib * GIB,
            price_per_hour=price,
            compute_capability=cc,
        )
    return table


#: name -> GpuInstanceType (read-only by convention; functions return new tables)
INSTANCE_TYPES = _build_table()


def known_instance_types(table=None):
    """Sorted names in the table."""
    return sorted(INSTANCE_TYPES if table is None else table)


def lookup(name, table=None):
    """The GpuInstanceType called ``name``; InvalidInput with close names when unknown."""
    table = INSTANCE_TYPES if table is None else table
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("instance_type", name, "give an EC2 instance type such as g4dn.xlarge",
                           why="not an instance type name")
    key = name.strip().lower()
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.6)
    families = sorted({n.split(".", 1)[0] for n in table})
    fix = "use a known GPU instance type (families: %s), or pass its figures from DescribeInstanceTypes" % (
        ", ".join(families))
    if close:
        fix = "did you mean %s? Otherwise %s" % (" or ".join(close), fix)
    raise InvalidInput("instance_type", name, fix, why="not a known GPU instance type")


def by_family(family, table=None):
    """Instance types of one family (``g4dn``), ordered by GPU count then vCPUs."""
    table = INSTANCE_TYPES if table is None else table
    found = [t for t in table.values() if t.family == family]
    return sorted(found, key=lambda t: (t.gpu_count, t.vcpu, t.name))


def _get(data, path, field, kind=int):
    node = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise InvalidInput(field, data.get("InstanceType") if isinstance(data, dict) else data,
                               "pass the InstanceTypes entries of an EC2 DescribeInstanceTypes answer",
                               why="missing %s" % ".".join(path))
        node = node[key]
    if kind is int and (isinstance(node, bool) or not isinstance(node, int)):
        raise InvalidInput(field + "." + ".".join(path), node, "pass the unmodified EC2 answer",
                           why="not a whole number")
    if kind is str and not isinstance(node, str):
        raise InvalidInput(field + "." + ".".join(path), node, "pass the unmodified EC2 answer",
                           why="not a string")
    return node


def from_describe_entry(entry, field="InstanceTypes[0]", base=None):
    """A GpuInstanceType from one ``InstanceTypes[]`` item of EC2 DescribeInstanceTypes.

    ``base`` (a table row) provides the price and compute capability, which EC2 does not return.
    Returns None for an instance type without GPUs.
    """
    if not isinstance(entry, dict):
        raise InvalidInput(field, entry, "pass the InstanceTypes entries of DescribeInstanceTypes",
                           why="not a mapping")
    name = _get(entry, ("InstanceType",), field, str)
    gpus = (entry.get("GpuInfo") or {}).get("Gpus") or []
    if not gpus:
        return None
    gpu = gpus[0]
    gpath = field + ".GpuInfo.Gpus[0]"
    count = sum(_get(g, ("Count",), gpath) for g in gpus)
    gpu_name = _get(gpu, ("Name",), gpath, str).lower()
    return GpuInstanceType(
        name=name,
        gpu_name=gpu_name,
        gpu_manufacturer=_get(gpu, ("Manufacturer",), gpath, str).lower(),
        gpu_count=count,
        gpu_memory_mib=_get(gpu, ("MemoryInfo", "SizeInMiB"), gpath),
        vcpu=_get(entry, ("VCpuInfo", "DefaultVCpus"), field),
        memory_mib=_get(entry, ("MemoryInfo", "SizeInMiB"), field),
        price_per_hour=base.price_per_hour if base is not None else None,
        compute_capability=base.compute_capability if base is not None else None,
    )


def facts_dict(itype, source):
    """A ``GpuInstanceType`` as the dict the modules return (``source``: ``aws`` or ``offline``)."""
    facts = itype.to_dict()
    facts.update(
        instance_type=itype.name,
        total_gpu_memory_mib=itype.total_gpu_memory_mib,
        gpu_memory=itype.gpu_memory,
        karpenter_labels=itype.karpenter_labels(),
        source=source,
    )
    return facts


def _no_gpu_facts(entry):
    """Facts of an instance type without GPUs (``gpu_count`` 0), as EC2 describes it."""
    name = entry.get("InstanceType")
    return {
        "name": name,
        "instance_type": name,
        "family": name.split(".", 1)[0] if name else None,
        "gpu_count": 0,
        "gpu_name": None,
        "gpu_manufacturer": None,
        "gpu_memory_mib": 0,
        "gpu_memory": None,
        "total_gpu_memory_mib": 0,
        "vcpu": int((entry.get("VCpuInfo") or {}).get("DefaultVCpus", 0)),
        "memory_mib": int((entry.get("MemoryInfo") or {}).get("SizeInMiB", 0)),
        "price_per_hour": None,
        "compute_capability": None,
        "source": "aws",
    }


def describe_facts(response, table=None):
    """``{instance_type: facts}`` for every entry of a DescribeInstanceTypes answer (or pages).

    GPU types come from :func:`merge_describe_instance_types` (EC2's figures, the table's price
    and compute capability) as :func:`facts_dict`; types without GPUs come back with
    ``gpu_count`` 0.
    """
    merged = merge_describe_instance_types(response, table)
    facts = {}
    for entry in _describe_entries(response):
        name = entry.get("InstanceType") if isinstance(entry, dict) else None
        if (entry.get("GpuInfo") or {}).get("Gpus") and name in merged:
            facts[name] = facts_dict(merged[name], "aws")
        else:
            facts[name] = _no_gpu_facts(entry)
    return facts


def _describe_entries(response):
    """The ``InstanceTypes`` entries of one answer, a list of entries or several pages."""
    if isinstance(response, dict):
        entries = response.get("InstanceTypes")
        if entries is None:
            raise InvalidInput("response", sorted(response), "pass the DescribeInstanceTypes answer",
                               why="no InstanceTypes key")
        return entries
    if isinstance(response, (list, tuple)):
        entries = []
        for item in response:
            if isinstance(item, dict) and "InstanceTypes" in item:
                entries.extend(item["InstanceTypes"] or [])
            else:
                entries.append(item)
        return entries
    raise InvalidInput("response", response, "pass the DescribeInstanceTypes answer",
                       why="not a mapping or list")


def merge_describe_instance_types(response, table=None):
    """A new table: ``table`` (default: the built-in one) updated with EC2's figures.

    ``response`` is a DescribeInstanceTypes answer (``{"InstanceTypes": [...]}``), a list of its
    entries, or several pages' answers in a list.  Entries without GPUs are skipped.  Prices and
    compute capabilities are kept from the table (EC2 does not report them).
    """
    merged = dict(INSTANCE_TYPES if table is None else table)
    entries = _describe_entries(response)
    for index, entry in enumerate(entries):
        base = merged.get(entry.get("InstanceType")) if isinstance(entry, dict) else None
        found = from_describe_entry(entry, "InstanceTypes[%d]" % index, base)
        if found is not None:
            merged[found.name] = found if base is None else replace(base, **{
                k: getattr(found, k)
                for k in ("gpu_name", "gpu_manufacturer", "gpu_count", "gpu_memory_mib", "vcpu", "memory_mib")
            })
    return merged
