#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_cost_info
short_description: Nodes and on-demand cost of a GPU workload, with and without GPU slicing
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - For a workload (I(pods) that each use I(fraction) of a GPU, or I(pods) that each request
    I(slices_per_pod) of I(replicas) slices per GPU) and candidate instance types, computes per type
    the nodes needed and the on-demand $/hour with slicing and without it (one pod per whole GPU),
    and the cheapest choice of each.
  - Pods never span nodes; a node fits C(floor(gpus x replicas / slices_per_pod)) pods, as the
    scheduler counts the advertised C(nvidia.com/gpu) per node.
  - Prices come from the shipped, dated table (us-east-1 on-demand Linux), from the Pricing API, or
    from I(prices).
extends_documentation_fragment:
  - gpu_slicing.eks.eks_connection
options:
  pods:
    description: Number of pods (replicas of the workload).
    type: int
    required: true
  fraction:
    description:
      - Share of one GPU each pod needs (0 < fraction <= 1); slices per GPU are C(floor(1/fraction)).
      - Mutually exclusive with I(replicas).
    type: float
  replicas:
    description: Slices per GPU (the device plugin's replicas). Use with I(slices_per_pod).
    type: int
  slices_per_pod:
    description: Slices each pod requests. Default 1.
    type: int
  gpu_memory_per_pod_mib:
    description:
      - GPU memory one pod needs, in MiB. Caps the pods per GPU at C(floor(gpu memory / this)) and
        rules out instance types whose GPU is too small.
    type: int
  instance_types:
    description: Candidate EC2 GPU instance types.
    type: list
    elements: str
    required: true
  instance_source:
    description: Where GPU figures come from; see M(gpu_slicing.eks.gpu_instance_info)'s I(instance_source).
    type: str
    choices: [auto, aws, offline]
    default: offline
  pricing:
    description:
      - C(table) uses the shipped, dated price table (us-east-1).
      - C(api) asks the AWS Pricing API (C(pricing:GetProducts), on-demand Linux, shared tenancy) for
        I(region) and fails on AWS errors; types without an API price keep the table's price.
      - C(auto) uses the API when AWS options are given, else (or when AWS is unreachable) the table.
      - Ignored for types listed in I(prices).
    type: str
    choices: [table, api, auto]
    default: table
  prices:
    description: Your own $/hour per instance type (for example negotiated or Spot prices); wins over I(pricing).
    type: dict
requirements:
  - boto3 >= 1.35 (only when AWS is used)
attributes:
  check_mode:
    description: Can run in check_mode and return the same facts; it never changes anything.
    support: full
  diff_mode:
    description: Returns no diff; there is nothing to change.
    support: none
notes:
  - On-demand prices only; Savings Plans, Reserved Instances and Spot are not modelled.
  - Time-slicing gives no memory or fault isolation; the cost view assumes the pods fit their share.
"""

EXAMPLES = r"""
- name: 17 pods at a quarter GPU each, on 1-GPU or 4-GPU nodes
  gpu_slicing.eks.gpu_cost_info:
    pods: 17
    fraction: 0.25
    instance_types: [g4dn.xlarge, g5.xlarge, g4dn.12xlarge]
  register: cost

- name: Show the saving
  ansible.builtin.debug:
    msg: >-
      {{ cost.cheapest_sliced.nodes }} x {{ cost.cheapest_sliced.instance_type }}
      at {{ cost.cheapest_sliced.cost_per_hour }} $/h instead of
      {{ cost.cheapest_unsliced.cost_per_hour }} $/h ({{ cost.savings_percent }} % less)

- name: Pods taking 2 of 8 slices, 5 GiB each, live prices for eu-west-1
  gpu_slicing.eks.gpu_cost_info:
    pods: 40
    replicas: 8
    slices_per_pod: 2
    gpu_memory_per_pod_mib: 5120
    instance_types: [g6.xlarge, g6e.xlarge]
    region: eu-west-1
    pricing: auto
"""

RETURN = r"""
workload:
  description: The workload as understood (pods, fraction, replicas_per_gpu, slices_per_pod, gpu_memory_per_pod_mib).
  returned: success
  type: dict
candidates:
  description:
    - One line per instance type, cheapest sliced cost first. Keys include instance_type, gpu_count,
      gpu_memory_mib, price_per_hour, replicas_per_gpu, effective_replicas_per_gpu, slice_memory_mib,
      pods_per_node_sliced, pods_per_node_unsliced, nodes_sliced, nodes_unsliced, gpus_sliced,
      gpus_unsliced, cost_per_hour_sliced, cost_per_hour_unsliced, cost_per_month_sliced,
      cost_per_month_unsliced, savings_per_hour, savings_percent, feasible, reason.
  returned: success
  type: list
  elements: dict
cheapest_sliced:
  description: Cheapest choice with slicing (instance_type, nodes, gpus, cost_per_hour, cost_per_month); null when no price.
  returned: success
  type: dict
cheapest_unsliced:
  description: Cheapest choice with one pod per whole GPU, same keys.
  returned: success
  type: dict
savings_per_hour:
  description: Cheapest unsliced minus cheapest sliced, USD per hour.
  returned: success
  type: float
savings_percent:
  description: The saving as a percentage of the cheapest unsliced cost.
  returned: success
  type: float
price_source:
  description: Where the prices came from (table with its date and region, pricing_api, or given).
  returned: success
  type: str
prices_date:
  description: Date of the prices (the table's date, or today for the Pricing API).
  returned: success
  type: str
instance_source:
  description: Where the GPU figures came from, C(aws) or C(offline).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import eks_connection_argument_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.cost_info import CostInfoOptions, cost_info
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def argument_spec():
    spec = eks_connection_argument_spec()
    spec.update(
        pods=dict(type="int", required=True),
        fraction=dict(type="float"),
        replicas=dict(type="int"),
        slices_per_pod=dict(type="int"),
        gpu_memory_per_pod_mib=dict(type="int"),
        instance_types=dict(type="list", elements="str", required=True),
        instance_source=dict(type="str", default="offline", choices=["auto", "aws", "offline"]),
        pricing=dict(type="str", default="table", choices=["table", "api", "auto"]),
        prices=dict(type="dict"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("fraction", "replicas"), ("fraction", "slices_per_pod")],
                           required_one_of=[("fraction", "replicas")])
    run_module(module, cost_info, CostInfoOptions.from_params)


if __name__ == "__main__":
    main()
