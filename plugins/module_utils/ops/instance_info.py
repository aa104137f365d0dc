# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu_slicing.eks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_instance_info's operation: GPU facts per EC2 instance type (shipped table or EC2)."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.ec2 import resolve_instance_facts
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import connection_params
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.session import HAS_BOTO3, boto3_missing
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.instance_types import PRICE_NOTE, PRICES_AS_OF


@dataclass(frozen=True)
class InstanceInfoOptions:
    aws: dict
    instance_types: list = None
    instance_source: str = "auto"

    @classmethod
    def from_params(cls, params):
        return cls(aws=connection_params(params), instance_types=params.get("instance_types"),
                   instance_source=params.get("instance_source") or "auto")


def instance_info(options, context):
    """``{instance_types: {name: facts}, instance_source, prices_as_of, price_note}``."""
    if options.instance_source == "aws" and not HAS_BOTO3:
        raise boto3_missing()
    facts, used, warnings = resolve_instance_facts(options.aws, options.instance_types, options.instance_source)
    for warning in warnings:
        context.warn(warning)
    for name, fact in facts.items():
        if not fact.get("gpu_count"):
            context.warn("%s has no GPU" % name)
    return dict(changed=False, instance_types=facts, instance_source=used, prices_as_of=PRICES_AS_OF,
                price_note=PRICE_NOTE)
