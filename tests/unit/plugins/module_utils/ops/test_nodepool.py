"""The NodePool operation's order of checks and writes (ops/nodepool.py), run through
runner.run_module with an in-memory stand-in for KubeAccess."""

import copy

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import InvalidInput
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import nodepool as ka
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import (
    AnsibleFailJson,
    FakeModule,
)
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import run as run_module

RENDER_BASE = {"name": "gpu-ts4", "discovery_tag_value": "demo", "role": "KarpenterNodeRole-demo",
               "instance_types": ["g4dn.xlarge", "g4dn.12xlarge"]}

DEFAULTS = {
    "state": "present", "name": "pool", "profiles": [{"name": "ts-4", "replicas": 4}],
    "default_profile": None, "instance_types": ["g4dn.xlarge"], "discovery_tag_value": "c", "role": "r",
    "manage_node_class": True, "node_class_name": None, "karpenter_namespace": "kube-system",
    "karpenter_feature_gates": None, "allow_without_node_overlay": False,
}


def pool_module(**params):
    """karpenter_gpu_nodepool's params as the module would have them (the ones read here)."""
    return FakeModule(dict(DEFAULTS, **params))


class FakeKube(object):
    def __init__(self, served=("NodePool", "EC2NodeClass", "NodeOverlay"), deployments=(), rejects=()):
        self.served = set(served)
        self.objects = {}
        self.deployments = list(deployments)
        self.writes = []
        self.rejects = set(rejects)  # kinds the "API server" refuses (as CEL would)
        self.dry_runs = []

    def server_minor_version(self):
        return "1.36"

    def dry_run_apply(self, definition):
        self.dry_runs.append(definition["kind"])
        if definition["kind"] in self.rejects:
            raise ValueError("%s rejected by a CEL rule" % definition["kind"])

    def resource(self, kind, api_version):
        return kind if kind in self.served else None

    def serves_kind(self, group, kind):
        return kind in self.served

    def get(self, kind, api_version, name, namespace=None):
        return copy.deepcopy(self.objects.get((kind, name)))

    def list(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        if kind == "Deployment":
            return self.deployments
        wanted = dict(part.split("=", 1) for part in (label_selector or "").split(",") if part)
        return [copy.deepcopy(o) for (k, dummy), o in sorted(self.objects.items())
                if k == kind and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())]

    def ensure(self, definition, state="present", wait=False, wait_timeout=120):
        key = (definition["kind"], definition["metadata"]["name"])
        self.writes.append((state, key))
        if state == "absent":
            existed = self.objects.pop(key, None)
            return {"changed": existed is not None, "result": existed or {}}
        changed = self.objects.get(key) != definition
        self.objects[key] = copy.deepcopy(definition)
        return {"changed": changed, "result": definition}


def run(module, kube, monkeypatch):
    return run_module(monkeypatch, module, ka.ensure_nodepool, ka.NodePoolOptions.from_params, kube)


def test_gate_unknown_fails_before_any_write(monkeypatch):
    kube = FakeKube()
    with pytest.raises(AnsibleFailJson) as info:
        run(pool_module(), kube, monkeypatch)
    assert "settings.featureGates.nodeOverlay=true" in str(info.value)
    assert "no Karpenter Deployment in namespace kube-system" in str(info.value)
    assert kube.writes == []
    assert info.value.result["node_overlay_gate"] is None
    assert info.value.result["gate_source"] == "no Karpenter Deployment in namespace kube-system"


def test_overlay_crd_missing_fails_before_any_write(monkeypatch):
    kube = FakeKube(served=("NodePool", "EC2NodeClass"))
    with pytest.raises(AnsibleFailJson) as info:
        run(pool_module(karpenter_feature_gates="NodeOverlay=true"), kube, monkeypatch)
    assert "does not serve NodeOverlay" in str(info.value)
    assert kube.writes == []


def test_gate_from_deployment_and_order_of_writes(monkeypatch):
    dep = {"metadata": {"name": "karpenter", "labels": {"app.kubernetes.io/name": "karpenter"}},
           "spec": {"template": {"spec": {"containers": [
               {"env": [{"name": "FEATURE_GATES", "value": "NodeOverlay=true"}]}]}}}}
    kube = FakeKube(deployments=[dep])
    result = run(pool_module(), kube, monkeypatch)
    assert result["changed"] and result["node_overlay_gate"] is True
    assert [w[1][0] for w in kube.writes] == ["EC2NodeClass", "NodeOverlay", "NodePool"]
    again = run(pool_module(), kube, monkeypatch)
    assert not again["changed"]


def test_opt_out_warns_and_prunes_overlays(monkeypatch):
    kube = FakeKube()
    run(pool_module(karpenter_feature_gates="NodeOverlay=true"), kube, monkeypatch)
    assert ("NodeOverlay", "pool-g4dn-xlarge") in kube.objects
    module = pool_module(karpenter_feature_gates="NodeOverlay=false", allow_without_node_overlay=True)
    result = run(module, kube, monkeypatch)
    assert result["node_overlays"] == [] and "over-provision" in module.warnings[0]
    assert ("NodeOverlay", "pool-g4dn-xlarge") not in kube.objects


def test_bad_input_no_api_call(monkeypatch):
    kube = FakeKube()
    with pytest.raises(AnsibleFailJson) as info:
        run(pool_module(ami_alias="al2@latest", karpenter_feature_gates="NodeOverlay=true"), kube, monkeypatch)
    assert str(info.value).startswith("ami_alias: ")
    assert kube.writes == []
    # one result shape for bad input: msg, error_kind and the structured error
    assert info.value.result["error_kind"] == "invalid"
    assert info.value.result["error"]["field"] == "ami_alias"


def test_absent_removes_only_owned(monkeypatch):
    kube = FakeKube()
    run(pool_module(karpenter_feature_gates="NodeOverlay=true"), kube, monkeypatch)
    kube.objects[("NodeOverlay", "someone-else")] = {"kind": "NodeOverlay", "metadata": {"name": "someone-else"}}
    kube.objects[("NodePool", "other")] = {"kind": "NodePool", "metadata": {"name": "other"}}
    result = run(pool_module(state="absent"), kube, monkeypatch)
    assert result["changed"]
    assert sorted(kube.objects) == [("NodeOverlay", "someone-else"), ("NodePool", "other")]
    module = pool_module(state="absent", name="other")
    result = run(module, kube, monkeypatch)
    assert not result["changed"] and "left in place" in module.warnings[0]


def test_api_rejection_in_dry_run_writes_nothing(monkeypatch):
    """A NodePool the API server refuses must not leave the node class and overlays written."""
    dep = {"metadata": {"name": "karpenter", "labels": {"app.kubernetes.io/name": "karpenter"}},
           "spec": {"template": {"spec": {"containers": [
               {"env": [{"name": "FEATURE_GATES", "value": "NodeOverlay=true"}]}]}}}}
    kube = FakeKube(deployments=[dep], rejects={"NodePool"})
    with pytest.raises(AnsibleFailJson) as info:
        run(pool_module(), kube, monkeypatch)
    assert "rejects NodePool pool" in str(info.value) and "Nothing was written" in str(info.value)
    assert kube.writes == []
    assert kube.dry_runs == ["EC2NodeClass", "NodeOverlay", "NodePool"]


class StaleDiscoveryKube(FakeKube):
    """Discovery cached while Karpenter's CRDs were installed; they have been deleted since, so
    the server answers 404 for their paths until the cache is refreshed."""

    def __init__(self, **kw):
        super(StaleDiscoveryKube, self).__init__(**kw)
        self.cached = set(self.served)
        self.served = set()
        self.refreshed = 0

    def resource(self, kind, api_version):
        return kind if kind in self.cached else None

    def serves_kind(self, group, kind):
        return kind in self.cached

    def forget_discovery(self):
        self.refreshed += 1
        self.cached = set(self.served)

    def dry_run_apply(self, definition):
        self.dry_runs.append(definition["kind"])
        if definition["kind"] not in self.served:
            err = ValueError("404 page not found")
            err.status = 404
            raise err


def test_stale_discovery_after_crds_removed_says_karpenter_is_missing(monkeypatch):
    """kubernetes.core's discovery cache never expires: after the CRDs are deleted it still lists
    NodePool. The 404 of the dry run makes the check refresh it and name the real cause."""
    kube = StaleDiscoveryKube(deployments=[], served=("NodePool", "EC2NodeClass", "NodeOverlay"))
    with pytest.raises(AnsibleFailJson) as info:
        run(pool_module(karpenter_feature_gates="NodeOverlay=true"), kube, monkeypatch)
    assert "Karpenter v1 is not installed" in str(info.value), str(info.value)
    assert kube.refreshed == 1 and kube.writes == []


def test_node_class_kind_not_served_fails_before_any_write(monkeypatch):
    kube = FakeKube()
    module = pool_module(manage_node_class=False,
                         node_class_ref={"group": "example.com", "kind": "NoSuchNodeClass", "name": "x"},
                         karpenter_feature_gates="NodeOverlay=true")
    with pytest.raises(AnsibleFailJson) as info:
        run(module, kube, monkeypatch)
    msg = str(info.value)
    assert "NoSuchNodeClass" in msg and "CRD" in msg and "node_class_ref" in msg
    assert kube.writes == [] and kube.dry_runs == []


# --------------------------------------------------------------------------- pinned AMI alias (issue 13, item 10)
GATES = {"karpenter_feature_gates": "NodeOverlay=true"}


def test_pinned_alias_with_image_is_reported(monkeypatch):
    from botocore.stub import Stubber
    import boto3

    client = boto3.client("ssm", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(client)
    path = "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/x86_64/1.46.0/image_id"
    stub.add_response("get_parameter", {"Parameter": {"Name": path, "Value": "ami-0bottlerocket0001"}}, {"Name": path})

    class Session(object):
        region_name = "eu-west-1"

        def client(self, service, region_name=None):
            return client

    monkeypatch.setattr(ka, "session_from_params", lambda params: Session())
    kube = FakeKube()
    with stub:
        result = run(pool_module(ami_alias="bottlerocket@v1.46.0", region="eu-west-1", **GATES), kube, monkeypatch)
    assert result["ami_check"] == {"alias": "bottlerocket@v1.46.0", "ssm_parameter": path,
                                   "image_id": "ami-0bottlerocket0001", "checked": True}


def test_without_aws_the_image_is_not_checked_and_said_so(monkeypatch):
    kube = FakeKube()
    result = run(pool_module(ami_alias="al2023@v20240625", **GATES), kube, monkeypatch)
    assert result["ami_check"]["checked"] is False
    assert "no AWS connection" in result["ami_check"]["reason"]


def test_unreachable_aws_warns_and_goes_on(monkeypatch):
    def unreachable(params):
        raise ka.AwsError("Cannot reach the AWS endpoint", kind="unreachable")

    monkeypatch.setattr(ka, "session_from_params", unreachable)
    module = pool_module(ami_alias="al2023@v20240625", region="eu-west-1", **GATES)
    result = run(module, FakeKube(), monkeypatch)
    assert result["ami_check"]["checked"] is False
    assert any("ami_alias al2023@v20240625 was not checked" in w for w in module.warnings)


def test_ec2nodeclass_readiness_not_reported_yet(monkeypatch):
    """On a cluster without Karpenter's AWS controller nobody sets the conditions: said so."""
    result = run(pool_module(**GATES), FakeKube(), monkeypatch)
    status = result["ec2nodeclass_status"]
    assert status["ready"] is None and status["conditions"] == []
    assert status["reported"].startswith("not reported yet")


def test_ec2nodeclass_not_ready_is_reported_with_a_warning(monkeypatch):
    class ControllerKube(FakeKube):
        def get(self, kind, api_version, name, namespace=None):
            obj = super(ControllerKube, self).get(kind, api_version, name, namespace)
            if kind == "EC2NodeClass" and obj is not None:
                obj["status"] = {"conditions": [
                    {"type": "AMIsReady", "status": "False", "reason": "AMINotFound",
                     "message": "failed to discover any AMIs for alias (alias=al2023@v20240625)"},
                    {"type": "Ready", "status": "False", "reason": "UnhealthyDependents", "message": "AMIsReady=False"},
                ]}
            return obj

    module = pool_module(**GATES)
    result = run(module, ControllerKube(), monkeypatch)
    status = result["ec2nodeclass_status"]
    assert status["ready"] is False and status["reported"] == "by the controller"
    assert [c["type"] for c in status["conditions"]] == ["AMIsReady", "Ready"]
    assert any("AMIsReady=False" in w and "failed to discover any AMIs" in w for w in module.warnings)


# --------------------------------------------------------------------------- feature gates


def test_parse_feature_gates():
    assert ka.parse_feature_gates("SpotToSpotConsolidation=false,NodeOverlay=true") == {
        "SpotToSpotConsolidation": False, "NodeOverlay": True}
    assert ka.parse_feature_gates("") == {}
    assert ka.parse_feature_gates({"NodeOverlay": "true"}) == {"NodeOverlay": True}


def _deployment(env=None, args=None):
    return {"metadata": {"name": "karpenter"}, "spec": {"template": {"spec": {"containers": [
        {"name": "controller", "env": env or [], "args": args or []}]}}}}


def test_gates_from_deployment_env_and_args():
    dep = _deployment(env=[{"name": "FEATURE_GATES", "value": "NodeRepair=false,NodeOverlay=true"}])
    assert ka.gates_from_deployment(dep)["NodeOverlay"] is True
    dep = _deployment(args=["--feature-gates=NodeOverlay=false"])
    assert ka.gates_from_deployment(dep)["NodeOverlay"] is False
    dep = _deployment(args=["--feature-gates", "NodeOverlay=true"])
    assert ka.gates_from_deployment(dep)["NodeOverlay"] is True
    assert ka.gates_from_deployment(_deployment()) is None


def test_discovery_tag_value_defaults_to_eks_cluster_name():
    """By Karpenter's convention the discovery tag is the cluster's name: the EKS connection's one."""
    params = dict(RENDER_BASE, profiles=[{"name": "ts-4", "replicas": 4}], discovery_tag_value=None,
                  eks_cluster_name="prod-gpu")
    spec = ka.render_from_params(params)["ec2nodeclass"]["spec"]
    assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "prod-gpu"}}]
    spec = ka.render_from_params(dict(params, discovery_tag_value="shared-vpc"))["ec2nodeclass"]["spec"]
    assert spec["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "shared-vpc"}}]
    with pytest.raises(InvalidInput) as err:
        ka.render_from_params(dict(params, eks_cluster_name=None))
    assert "discovery_tag_value" in str(err.value) and "eks_cluster_name" in str(err.value)
