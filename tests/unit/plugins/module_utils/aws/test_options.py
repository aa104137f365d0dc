# -*- coding: utf-8 -*-
"""Unit tests for plugins/module_utils/aws/options.py: the EKS connection options."""

from __future__ import annotations

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import options as aws_options


def test_argument_spec_matches_doc_fragment():
    import yaml
    from ansible_collections.gpu_slicing.eks.plugins.doc_fragments.eks_connection import ModuleDocFragment

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = aws_options.eks_connection_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"]
        assert documented[name].get("aliases", []) == option.get("aliases", [])
    for secret in ("access_key", "secret_key", "session_token"):
        assert spec[secret]["no_log"] is True
    # amazon.aws's environment variables, AWX's AWS_SECURITY_TOKEN included.
    assert spec["session_token"]["fallback"][1] == ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "EC2_SECURITY_TOKEN"]
    assert spec["region"]["fallback"][1] == ["AWS_REGION", "AWS_DEFAULT_REGION", "EC2_REGION"]
    assert aws_options.EKS_CONNECTION_ARG_SPEC == spec
