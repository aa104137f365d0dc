#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: eks_connection_info
short_description: Connection facts for an EKS cluster (endpoint, CA, bearer token) from AWS credentials
version_added: 0.1.0
author:
  - gpu_slicing.eks maintainers (@gpu-slicing-eks)
description:
  - Describes an EKS cluster with boto3 and mints a Kubernetes bearer token the way
    C(aws eks get-token) does (a presigned STS C(GetCallerIdentity) URL with the cluster name
    signed in as header C(x-k8s-aws-id)). No kubeconfig, AWS CLI or exec plugin is needed.
  - The result feeds C(module_defaults) of kubernetes.core modules (I(host), I(api_key), I(ca_cert)).
  - The token is valid for about 15 minutes (the result's I(expiration) says 14 to leave a margin).
    Modules of this collection given I(eks_cluster_name) re-mint tokens themselves; for
    kubernetes.core modules run this module again before the expiration during long plays.
  - When the token is returned the task's displayed result is censored as with C(no_log), by the
    module's action plugin; the registered variable still holds the values.
extends_documentation_fragment:
  - gpu_slicing.eks.eks_connection
options:
  ca_cert_path:
    description:
      - Write the cluster's CA certificate (PEM, mode 0600) to this path and return it as I(ca_cert),
        for kubernetes.core's I(ca_cert) option. Without it I(ca_cert) is not returned
        (I(certificate_authority_data) always is).
      - The task is C(changed) when the file is created or its content differs. In check mode
        nothing is written; I(ca_cert_state) says C(would write) and C(--diff) shows the PEM.
    type: path
  include_token:
    description: Return the bearer token as I(api_key). Set to C(false) to only discover the cluster.
    type: bool
    default: true
requirements:
  - boto3 >= 1.35
attributes:
  check_mode:
    description: Can run in check_mode and return the same facts; it writes no CA file then.
    support: full
  diff_mode:
    description: Shows the CA file's content before and after when I(ca_cert_path) is given.
    support: full
notes:
  - I(eks_cluster_name) (or E(EKS_CLUSTER_NAME)) is required.
  - The IAM identity needs C(eks:DescribeCluster); its Kubernetes permissions come from its EKS access entry.
seealso:
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Connect to the cluster with the AWS credential AWX injects (AWS_ACCESS_KEY_ID ...)
  gpu_slicing.eks.eks_connection_info:
    eks_cluster_name: gpu-demo
    region: eu-west-1
    ca_cert_path: "{{ playbook_dir }}/.eks-ca.crt"
  register: eks
  no_log: true

- name: Use it for kubernetes.core modules
  module_defaults:
    group/kubernetes.core.k8s:
      host: "{{ eks.host }}"
      api_key: "{{ eks.api_key }}"
      ca_cert: "{{ eks.ca_cert }}"
  block:
    - name: Read GPU nodes
      kubernetes.core.k8s_info:
        kind: Node
        label_selectors: [nvidia.com/gpu.present=true]

- name: Through an assumed role
  gpu_slicing.eks.eks_connection_info:
    eks_cluster_name: gpu-demo
    region: us-east-1
    aws_role_arn: arn:aws:iam::123456789012:role/gpu-slicing-deployer
    include_token: false
  register: cluster
"""

RETURN = r"""
cluster:
  description: What C(eks:DescribeCluster) says about the cluster.
  returned: success
  type: dict
  contains:
    name: {description: Cluster name., type: str, returned: success, sample: gpu-demo}
    arn: {description: Cluster ARN., type: str, returned: success}
    region: {description: AWS region., type: str, returned: success, sample: eu-west-1}
    endpoint: {description: API server URL., type: str, returned: success}
    certificate_authority_data: {description: Base64 PEM of the cluster CA., type: str, returned: success}
    status: {description: Cluster status (always C(ACTIVE) on success)., type: str, returned: success}
    version: {description: Kubernetes version., type: str, returned: success, sample: "1.36"}
    platform_version: {description: EKS platform version., type: str, returned: success}
host:
  description: The API server URL (kubernetes.core I(host)).
  returned: success
  type: str
  sample: https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com
certificate_authority_data:
  description: Base64-encoded PEM of the cluster CA.
  returned: success
  type: str
ca_cert:
  description: Path of the CA file (kubernetes.core I(ca_cert)); in check mode the file it would write.
  returned: when I(ca_cert_path) is given
  type: str
ca_cert_state:
  description: What happened to the CA file, C(written), C(unchanged) or, in check mode, C(would write).
  returned: when I(ca_cert_path) is given
  type: str
  sample: written
api_key:
  description:
    - Bearer token (C(k8s-aws-v1.) followed by a base64url presigned STS URL), for kubernetes.core I(api_key).
    - Sensitive. The displayed task result is censored when it is present.
  returned: when I(include_token=true)
  type: str
expiration:
  description: When to stop using the token (UTC, ISO 8601; 14 minutes after signing).
  returned: when I(include_token=true)
  type: str
  sample: "2026-11-24T10:14:00Z"
validate_certs:
  description: Always C(true); the CA above is to be verified.
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import eks_connection_argument_spec
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops.connection_info import ConnectionInfoOptions, connection_info
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


def argument_spec():
    spec = eks_connection_argument_spec()
    spec.update(
        ca_cert_path=dict(type="path"),
        include_token=dict(type="bool", default=True),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, connection_info, ConnectionInfoOptions.from_params)


if __name__ == "__main__":
    main()
