# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection to an EKS cluster from AWS credentials alone (no kubeconfig, no aws CLI)."""

    # Mirrors plugins/module_utils/aws/options.py eks_connection_argument_spec().
    DOCUMENTATION = r"""
options:
  eks_cluster_name:
    description:
      - Name of the EKS cluster to reach. When set, the collection describes the cluster with
        boto3 (C(eks:DescribeCluster)), takes its endpoint and certificate authority, and mints
        a bearer token by presigning STS C(GetCallerIdentity); no kubeconfig, AWS CLI or exec
        plugin is needed.
      - Tokens are valid for 15 minutes; the collection re-mints them before that during long waits.
      - When neither this nor kubernetes.core's I(host)/I(kubeconfig)/I(context) is given, modules
        that talk to Kubernetes fail and say what to set; they never fall back to the in-cluster
        service account.
      - If not set, the environment variable E(EKS_CLUSTER_NAME) is used.
    type: str
  region:
    description:
      - AWS region of the cluster (and of the EC2 API calls).
      - If not set, E(AWS_REGION), E(AWS_DEFAULT_REGION) or E(EC2_REGION) is used.
      - Named and aliased as in amazon.aws.
    type: str
    aliases: [aws_region, ec2_region]
  endpoint_url:
    description:
      - URL to send every AWS API call to instead of AWS's endpoints (for example a test double).
      - If not set, E(AWS_URL) is used.
    type: str
    aliases: [aws_endpoint_url]
  aws_role_arn:
    description:
      - ARN of an IAM role to assume (C(sts:AssumeRole), session name C(gpu-slicing-eks)) before
        talking to EKS. The token then carries the role's identity, which must be mapped in the
        cluster (EKS access entry or C(aws-auth)).
      - The role's credentials are renewed (another C(sts:AssumeRole)) before they expire, so
        runs longer than the role's session duration keep working.
    type: str
  aws_profile:
    description:
      - Named profile from the AWS shared config files. Ignored when I(access_key) is given.
      - If not set, E(AWS_PROFILE) or E(AWS_DEFAULT_PROFILE) is used.
      - amazon.aws calls this option C(profile); here C(profile) names a sharing profile, so this
        option keeps amazon.aws's alias as its name.
    type: str
  access_key:
    description:
      - AWS access key ID.
      - If not set, E(AWS_ACCESS_KEY_ID), E(AWS_ACCESS_KEY) or E(EC2_ACCESS_KEY) is used (AWX's AWS credential sets the first).
      - Without keys, profile or environment, boto3's default chain (instance or pod role) applies.
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - AWS secret access key. Never returned or logged.
      - If not set, E(AWS_SECRET_ACCESS_KEY), E(AWS_SECRET_KEY) or E(EC2_SECRET_KEY) is used.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - AWS session token for temporary credentials. Never returned or logged.
      - If not set, E(AWS_SESSION_TOKEN), E(AWS_SECURITY_TOKEN) (as AWX sets it) or E(EC2_SECURITY_TOKEN) is used.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token]
requirements:
  - boto3 >= 1.35
  - botocore >= 1.35
notes:
  - The IAM identity needs C(eks:DescribeCluster) on the cluster; C(sts:GetCallerIdentity) needs
    no permission. Kubernetes permissions come from the identity's EKS access entry.
  - Secrets (I(secret_key), I(session_token), tokens) are marked C(no_log).
"""
