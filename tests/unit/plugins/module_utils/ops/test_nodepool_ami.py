# -*- coding: utf-8 -*-
"""A pinned AMI alias (issue 13, item 10): its version format and the SSM parameter Karpenter reads.

Karpenter's AWS provider (v1.14.1, pkg/providers/amifamily) does not check the version: it
puts it into an SSM parameter path and, when no parameter exists, leaves the EC2NodeClass not
ready (AMIsReady false, "failed to discover any AMIs for alias"). The paths below are the ones
its al2023.go and bottlerocket.go build for the NVIDIA x86_64 variant.
"""

from __future__ import annotations

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws import session as aws_session
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter as k
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core import karpenter_ami
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.sharing import build_plan

from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import AnsibleFailJson
# the NodePool operation's stand-ins
from .test_nodepool import FakeKube, pool_module, run
# AWS from moto with nothing from the machine (test_eks's fixtures)
from aws.aws_fakes import aws, clean_aws_env  # noqa: F401 pylint: disable=unused-import

PLAN = build_plan([{"name": "ts-4", "replicas": 4}])
BASE = {"name": "gpu-ts4", "discovery_tag_value": "demo", "role": "KarpenterNodeRole-demo",
        "instance_types": ["g4dn.xlarge"]}


def render(alias):
    return k.render(PLAN, dict(BASE, ami_alias=alias))


@pytest.mark.parametrize("alias", ["al2023@latest", "al2023@v20240625", "bottlerocket@latest",
                                   "bottlerocket@1.10.0", "bottlerocket@v1.46.0"])
def test_versions_in_the_provider_format_are_accepted(alias):
    assert render(alias)["ec2nodeclass"]["spec"]["amiSelectorTerms"] == [{"alias": alias}]


@pytest.mark.parametrize("alias, fix", [
    ("al2023@20240625", "al2023@v20240625"),
    ("al2023@v2024062", "al2023@v20240625"),
    ("al2023@v1.46.0", "al2023@v20240625"),
    ("al2023@Latest", "al2023@latest"),
    ("al2023@v20240625/../x", "al2023@v20240625"),
    ("bottlerocket@1.46", "bottlerocket@1.46.0"),
    ("bottlerocket@v20240625", "bottlerocket@1.46.0"),
    ("bottlerocket@1.46.0-nvidia", "bottlerocket@1.46.0"),
    ("bottlerocket@ 1.46.0", "bottlerocket@1.46.0"),
])
def test_versions_karpenter_could_never_resolve_are_refused(alias, fix):
    with pytest.raises(InvalidInput) as info:
        render(alias)
    err = info.value
    assert err.field == "ami_alias" and err.value == alias
    assert fix in err.fix, str(err)
    assert "SSM" in str(err)


@pytest.mark.parametrize("family, version, k8s, path", [
    ("al2023", "v20240625", "1.36",
     "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/nvidia/"
     "amazon-eks-node-al2023-x86_64-nvidia-1.36-v20240625/image_id"),
    ("al2023", "latest", "1.36", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/nvidia/recommended/image_id"),
    ("bottlerocket", "1.46.0", "1.36", "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/x86_64/1.46.0/image_id"),
    # the provider trims the v that Bottlerocket's GitHub releases carry
    ("bottlerocket", "v1.46.0", "1.35", "/aws/service/bottlerocket/aws-k8s-1.35-nvidia/x86_64/1.46.0/image_id"),
    ("bottlerocket", "latest", "1.36", "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/x86_64/latest/image_id"),
])
def test_ssm_parameter_is_the_one_the_provider_reads(family, version, k8s, path):
    assert karpenter_ami.ami_ssm_parameter(family, version, k8s) == path


class OneClientSession:
    region_name = "eu-west-1"

    def __init__(self, client):
        self._client = client

    def client(self, service, region_name=None):
        return self._client


def test_missing_parameter_is_none(aws):
    """moto's SSM answers ParameterNotFound for a public parameter AWS does not publish."""
    path = karpenter_ami.ami_ssm_parameter("al2023", "v20990101", "1.36")
    assert aws_ec2.ssm_parameter_value(aws_session.make_session(region="eu-west-1"), path) is None


def test_published_parameter_value(aws):
    # moto ships no EKS AMI parameters (and refuses to create /aws/ ones): AWS's answer by Stubber
    from botocore.stub import Stubber

    path = karpenter_ami.ami_ssm_parameter("bottlerocket", "v1.46.0", "1.36")
    client = aws_session.make_session(region="eu-west-1").client("ssm")
    stub = Stubber(client)
    stub.add_response("get_parameter", {"Parameter": {"Name": path, "Type": "String", "Value": "ami-0123456789abcdef0",
                                                      "Version": 1}}, {"Name": path})
    with stub:
        assert aws_ec2.ssm_parameter_value(OneClientSession(client), path) == "ami-0123456789abcdef0"


def test_ssm_errors_say_what_to_fix(aws):
    from botocore.stub import Stubber

    client = aws_session.make_session(region="eu-west-1").client("ssm")
    stub = Stubber(client)
    stub.add_client_error("get_parameter", service_error_code="AccessDeniedException",
                          service_message="not authorized to perform: ssm:GetParameter", http_status_code=400)

    with stub, pytest.raises(aws_session.AwsError) as err:
        aws_ec2.ssm_parameter_value(OneClientSession(client), "/aws/service/x")
    assert err.value.kind == "access_denied" and "ssm:GetParameter" in str(err.value)


def test_pinned_alias_without_image_fails_before_any_write(monkeypatch, aws):
    """AWS (moto's SSM) has no parameter for the pinned version: Karpenter would leave the
    EC2NodeClass not ready, so nothing is written."""
    kube = FakeKube()
    module = pool_module(ami_alias="al2023@v20990101", region="eu-west-1", karpenter_feature_gates="NodeOverlay=true")
    with pytest.raises(AnsibleFailJson) as info:
        run(module, kube, monkeypatch)
    msg = str(info.value)
    assert msg.startswith("ami_alias: 'al2023@v20990101'")
    assert ("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/nvidia/"
            "amazon-eks-node-al2023-x86_64-nvidia-1.36-v20990101/image_id") in msg
    assert "eu-west-1" in msg and "Nothing was written" in msg and "Fix: " in msg
    assert kube.writes == []
    assert info.value.result["error"]["field"] == "ami_alias"
    assert info.value.result["error"]["value"] == "al2023@v20990101"
