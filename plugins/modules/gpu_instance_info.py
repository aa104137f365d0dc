#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_instance_info
short_description: GPU facts (model, count, memory) per EC2 instance type
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Returns, per EC2 instance type, the GPU model, GPUs per instance, memory per GPU, vCPUs and memory,
    the C(karpenter.k8s.aws/instance-gpu-*) labels Karpenter sets, and the shipped on-demand price.
  - Figures come from C(ec2:DescribeInstanceTypes) when AWS is asked for or reachable, else from the
    collection's shipped offline table (see I(instance_source)).
  - I(gpu_memory) of each result is a Kubernetes quantity, ready for a sharing profile's
    I(gpu_memory) with I(slice_memory) sizing.
extends_documentation_fragment:
  - gpu_slicing.eks.eks_connection
options:
  instance_types:
    description:
      - EC2 instance types to describe, for example C(g5.xlarge). Default is every type in the shipped table.
    type: list
    elements: str
  instance_source:
    description:
      - C(aws) calls C(ec2:DescribeInstanceTypes) in I(region) (paginated) and fails on AWS errors.
      - C(offline) reads only the shipped table (no network).
      - C(auto) uses AWS when I(region) or AWS credentials/profile/role/cluster options are given,
        and falls back to the table with a warning when credentials are missing, the endpoint is
        unreachable or access is denied.
    type: str
    choices: [auto, aws, offline]
    default: auto
requirements:
  - boto3 >= 1.35 (only for I(instance_source=aws) or I(instance_source=auto) with AWS options)
attributes:
  check_mode:
    description: Can run in check_mode and return the same facts; it never changes anything.
    support: full
  diff_mode:
    description: Returns no diff; there is nothing to change.
    support: none
notes:
  - EC2 does not report prices or CUDA compute capability; those always come from the shipped table
    (I(prices_as_of) says from when).
  - The IAM identity needs C(ec2:DescribeInstanceTypes) for I(instance_source=aws).
"""

EXAMPLES = r"""
- name: GPU facts from the shipped table (no AWS)
  gpu_slicing.eks.gpu_instance_info:
    instance_types: [g4dn.xlarge, g5.xlarge]
    instance_source: offline
  register: gpus

- name: Size 4 GiB slices on a g5.xlarge
  ansible.builtin.debug:
    msg: "{{ gpus.instance_types['g5.xlarge'].gpu_memory }}"

- name: Live figures from EC2 with the AWX AWS credential
  gpu_slicing.eks.gpu_instance_info:
    instance_types: [g6.xlarge, g6e.xlarge]
    region: eu-west-1
    instance_source: aws
"""

RETURN = r"""
instance_types:
  description: Facts per instance type name.
  returned: success
  type: dict
  sample:
    g5.xlarge:
      name: g5.xlarge
      instance_type: g5.xlarge
      family: g5
      gpu_name: a10g
      gpu_manufacturer: nvidia
      gpu_count: 1
      gpu_memory_mib: 24576
      gpu_memory: 24576Mi
      total_gpu_memory_mib: 24576
      vcpu: 4
      memory_mib: 16384
      price_per_hour: 1.006
      compute_capability: "8.6"
      karpenter_labels:
        karpenter.k8s.aws/instance-gpu-name: a10g
        karpenter.k8s.aws/instance-gpu-manufacturer: nvidia
        karpenter.k8s.aws/instance-gpu-count: "1"
        karpenter.k8s.aws/instance-gpu-memory: "24576"
      source: aws
instance_source:
  description: Where the figures came from, C(aws) or C(offline).
  returned: success
  type: str
prices_as_of:
  description: Date of the shipped price table.
  returned: success
  type: str
  sample: "2026-11"
price_note:
  description: What the shipped prices are (date, region, on-demand).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import eks_connection_argument_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.instance_info import InstanceInfoOptions, instance_info
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def argument_spec():
    spec = eks_connection_argument_spec()
    spec.update(
        instance_types=dict(type="list", elements="str"),
        instance_source=dict(type="str", default="auto", choices=["auto", "aws", "offline"]),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, instance_info, InstanceInfoOptions.from_params)


if __name__ == "__main__":
    main()
