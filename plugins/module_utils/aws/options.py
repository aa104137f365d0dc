# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EKS connection options (doc fragment ``gpu_slicing.eks.eks_connection``) as an argument spec.

Kept apart from ``session.py`` so that every module can declare the options without importing
boto3: only a module run that names an EKS cluster pays for that import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback


def eks_connection_argument_spec():
    """The argument spec of the ``gpu_slicing.eks.eks_connection`` doc fragment."""
    return dict(
        eks_cluster_name=dict(type="str", fallback=(env_fallback, ["EKS_CLUSTER_NAME"])),
        # amazon.aws's names, aliases and environment variables (doc fragments common/region),
        # so module_defaults and credentials written for amazon.aws modules work here unchanged.
        region=dict(type="str", aliases=["aws_region", "ec2_region"],
                    fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"])),
        endpoint_url=dict(type="str", aliases=["aws_endpoint_url"], fallback=(env_fallback, ["AWS_URL"])),
        aws_role_arn=dict(type="str"),
        # amazon.aws's canonical name is profile; here that names a sharing profile, so the
        # AWS profile keeps amazon.aws's alias as its name.
        aws_profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])),
        access_key=dict(type="str", no_log=True, aliases=["aws_access_key_id", "aws_access_key", "ec2_access_key"],
                        fallback=(env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "EC2_ACCESS_KEY"])),
        secret_key=dict(type="str", no_log=True,
                        aliases=["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"],
                        fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "EC2_SECRET_KEY"])),
        session_token=dict(type="str", no_log=True,
                           aliases=["aws_session_token", "security_token", "aws_security_token"],
                           fallback=(env_fallback, ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "EC2_SECURITY_TOKEN"])),
    )


#: The shared options as a constant (kube/connection.py merges it beside kubernetes.core's auth options).
EKS_CONNECTION_ARG_SPEC = eks_connection_argument_spec()


def connection_params(params):
    """The EKS connection options out of a module's params (what ``aws/`` reads)."""
    return {name: params.get(name) for name in EKS_CONNECTION_ARG_SPEC}
