# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EKS connection options (doc fragment ``gpu_slicing.eks.eks_connection``) as an argument spec.

Kept apart from ``eks.py`` so that every module can declare the options without importing
boto3: only a module run that names an EKS cluster pays for that import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback


def eks_connection_argument_spec():
    """The argument spec of the ``gpu_slicing.eks.eks_connection`` doc fragment."""
    return dict(
        eks_cluster_name=dict(type="str", fallback=(env_fallback, ["EKS_CLUSTER_NAME"])),
        aws_region=dict(type="str", fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
        aws_role_arn=dict(type="str"),
        aws_profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE"])),
        aws_access_key=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])),
        aws_secret_key=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
        aws_session_token=dict(type="str", no_log=True,
                               fallback=(env_fallback, ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"])),
    )


#: The shared options as a constant (kube.py merges it beside kubernetes.core's auth options).
EKS_CONNECTION_ARG_SPEC = eks_connection_argument_spec()
