"""The device-plugin operations (ops/device_plugin.py) run through runner.run_module: options
checked before the cluster is contacted, the order of writes, the rollout wait and the restore
after a rollout that does not become ready.

The Kubernetes API is an in-memory stand-in for KubeAccess and helm a recorder with Helm's
methods (the real helm runs in tests/integration/test_device_plugin.py; the helm command line
and its token in test_helm.py)."""

import copy
import os
import stat

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils import progress
from ansible_collections.gpu_slicing.eks.plugins.module_utils.args import (
    config_map_arg_spec,
    device_plugin_arg_spec,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.device_plugin import CHART_NAME, CHART_VERSION
from ansible_collections.gpu_slicing.eks.plugins.module_utils.ops import device_plugin as dp
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import (
    AnsibleFailJson,
    FakeModule,
)
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import run as run_module

NS, CM, RELEASE = "nvidia-device-plugin", "nvidia-device-plugin-configs", "nvdp"


class FakeKube(object):
    """What the operation uses of KubeAccess, over a dict of objects; ``calls`` in order."""

    def __init__(self, objects=(), daemonsets=(), fail_writes=False):
        self.objects = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        self.daemonsets = list(daemonsets)
        self.fail_writes = fail_writes
        self.calls = []

    def get(self, kind, api_version, name, namespace=None):
        return copy.deepcopy(self.objects.get((kind, name)))

    def ensure(self, definition, state="present", wait=False, wait_timeout=120):
        key = (definition["kind"], definition["metadata"]["name"])
        self.calls.append(("ensure", state, key))
        if self.fail_writes:
            raise RuntimeError("the server is currently unable to handle the request")
        if state == "absent":
            return {"changed": self.objects.pop(key, None) is not None, "result": {}}
        changed = self.objects.get(key, {}).get("data") != definition.get("data")
        self.objects[key] = copy.deepcopy(definition)
        return {"changed": changed, "method": "apply", "result": definition}

    def list(self, kind, api_version, namespace=None, label_selector=None, field_selector=None):
        self.calls.append(("list", kind))
        return copy.deepcopy(self.daemonsets) if kind == "DaemonSet" else []

    def list_raw(self, kind, api_version, namespace=None, label_selector=None, **kw):
        if kind == "Secret":
            raise RuntimeError("secrets are not readable here: ask helm")
        return []  # no GPU node, no pod


class RecordingHelm(object):
    """Helm's methods the operation calls; ``log`` is shared by the instances of one test."""

    log = None
    existing = None  # (summary, values) helm reports for the release

    def __init__(self, context, binary, namespace):
        self.binary, self.namespace = binary, namespace

    def chart_metadata(self, chart_ref, version=None, repo_url=None):
        return {"name": CHART_NAME, "version": CHART_VERSION}, None

    def release_and_values(self, name, namespace):
        self.log.append(("read", name))
        return self.existing or (None, None)

    def release(self, name, namespace):
        return {"name": name, "revision": "2", "status": "deployed"}

    def upgrade_install(self, name, namespace, chart_ref, version, values, timeout, repo_url=None):
        self.log.append(("upgrade", name))
        return 0, "", ""

    def rollback(self, name, namespace, revision):
        self.log.append(("rollback", revision))
        return 0, "", ""

    def uninstall(self, name, namespace, timeout):
        self.log.append(("uninstall", name))
        return 0, "", ""


@pytest.fixture
def helm(monkeypatch, tmp_path):
    monkeypatch.setattr(RecordingHelm, "log", [])
    monkeypatch.setattr(RecordingHelm, "existing", None)
    monkeypatch.setattr(dp, "Helm", RecordingHelm)
    binary = tmp_path / "helm"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return RecordingHelm, str(binary)


def defaults(spec):
    return {name: option.get("default") for name, option in spec.items()}


def plugin_module(binary, check_mode=False, **params):
    values = dict(defaults(device_plugin_arg_spec()), profiles=[{"name": "ts-4", "replicas": 4}],
                  default_profile=None, binary_path=binary, chart_ref="/charts/nvidia-device-plugin")
    values.update(params)
    return FakeModule(values, check_mode=check_mode, diff=True)


def rolled_out_daemonset():
    return {"metadata": {"name": "nvdp-nvidia-device-plugin", "generation": 1,
                         "labels": {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": RELEASE}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 0}}


def namespace():
    return {"kind": "Namespace", "metadata": {"name": NS}}


def run(monkeypatch, module, kube):
    return run_module(monkeypatch, module, dp.ensure_device_plugin, dp.DevicePluginOptions.from_params, kube)


class Untouchable(object):
    """A connection that must not be used: bad input is refused before the cluster is contacted."""

    def __getattr__(self, name):
        raise AssertionError("the cluster was contacted (%s)" % name)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("params, field, text", [
    ({"namespace": "GPU_Plugins"}, None, "namespace: 'GPU_Plugins' is invalid: not a lowercase RFC 1123 label"),
    ({"release_name": "n" * 54}, None, "not a lowercase RFC 1123 label of at most 53 characters"),
    ({"config_map_name": "Configs"}, None, "config_map_name: 'Configs' is invalid: not a lowercase RFC 1123 subdomain"),
    ({"image_tag": "v0.19.3"}, "image_tag", "not pinned by an @sha256: digest"),
    ({"values": ["a"]}, "values", "must be a dict of Helm values"),
    ({"gfd": False, "profiles": [{"name": "mps-2", "strategy": "mps", "replicas": 2}]}, "gfd", "keep GFD on"),
    ({"profiles": [{"name": "ts", "replicas": 0}]}, "profiles[0].replicas", "Fix: "),
])
def test_bad_input_fails_before_the_cluster_is_contacted(monkeypatch, helm, params, field, text):
    dummy, binary = helm
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, plugin_module(binary, **params), Untouchable())
    result = info.value.result
    assert text in result["msg"] and "Fix: " in result["msg"]
    assert result["error_kind"] == "invalid"
    if field is not None:
        assert result["error"]["field"] == field
    assert RecordingHelm.log == []


def test_binary_path_that_is_no_program_is_named(monkeypatch, helm, tmp_path):
    not_a_program = tmp_path / "helm.txt"
    not_a_program.write_text("")
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, plugin_module(str(not_a_program)), Untouchable())
    assert str(info.value) == ("binary_path: %r is invalid: no executable helm there. Fix: install helm >= 3.10 "
                               "or point binary_path at it (or leave it unset to use helm from PATH)" % str(not_a_program))
    assert info.value.result["error"] == {"field": "binary_path", "value": str(not_a_program),
                                          "why": "no executable helm there",
                                          "fix": "install helm >= 3.10 or point binary_path at it (or leave it unset "
                                                 "to use helm from PATH)"}


def test_helm_missing_from_path_is_named(monkeypatch, helm, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(os, "defpath", str(tmp_path / "empty"))
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, plugin_module(None), Untouchable())
    assert str(info.value).startswith("binary_path: None is invalid: helm is not on PATH. Fix: install helm >= 3.10")


def test_options_carry_the_checked_plan_and_the_helm_found(helm):
    dummy, binary = helm
    options = dp.DevicePluginOptions.from_params(plugin_module(binary).params)
    assert options.helm_binary == binary and options.plan.profiles[0].name == "ts-4"
    absent = dp.DevicePluginOptions.from_params(plugin_module(binary, state="absent", profiles=None).params)
    assert absent.plan is None


# --------------------------------------------------------------------------- the operation


def test_present_writes_the_config_map_then_the_release_then_waits(monkeypatch, helm):
    recorder, binary = helm
    kube = FakeKube(objects=[namespace()], daemonsets=[rolled_out_daemonset()])
    result = run(monkeypatch, plugin_module(binary), kube)
    assert result["changed"] is True and result["release_revision"] == 2
    assert result["config_map"] == {"changed": True, "method": "apply"}
    assert result["rollout"]["ready"] is True and result["rollout"]["target_node_names"] == []
    assert [c for c in kube.calls if c[0] == "ensure"] == [("ensure", "present", ("ConfigMap", CM))]
    assert recorder.log == [("read", RELEASE), ("upgrade", RELEASE)]
    assert result["diff"] == {"before": {"values": {}}, "after": {"values": result["values"]}}
    assert result["config_hash"] == result["values"]["podAnnotations"]["checksum/config"]


def test_a_current_release_is_not_upgraded(monkeypatch, helm):
    recorder, binary = helm
    kube = FakeKube(objects=[namespace()], daemonsets=[rolled_out_daemonset()])
    first = run(monkeypatch, plugin_module(binary), kube)
    recorder.existing = ({"name": RELEASE, "revision": "2", "status": "deployed",
                          "chart": "%s-%s" % (CHART_NAME, CHART_VERSION)}, first["values"])
    again = run(monkeypatch, plugin_module(binary), kube)
    assert again["changed"] is False
    assert [c for c in recorder.log if c[0] == "upgrade"] == [("upgrade", RELEASE)]  # the first run's only


def test_check_mode_installs_nothing_and_waits_for_nothing(monkeypatch, helm):
    recorder, binary = helm
    kube = FakeKube(objects=[namespace()])
    result = run(monkeypatch, plugin_module(binary, check_mode=True), kube)
    assert result["changed"] is True and result["release_revision"] is None and "rollout" not in result
    assert ("upgrade", RELEASE) not in recorder.log and ("list", "DaemonSet") not in kube.calls


def test_a_rollout_that_is_not_ready_restores_the_config_map_and_the_release(monkeypatch, helm):
    recorder, binary = helm
    previous = {"kind": "ConfigMap", "metadata": {"name": CM, "namespace": NS, "labels": {"a": "b"}},
                "data": {"ts-4": "old"}}
    recorder.existing = ({"name": RELEASE, "revision": "1", "status": "deployed", "chart": "nvidia-device-plugin-0.17.0"},
                         {})
    kube = FakeKube(objects=[namespace(), previous])  # no DaemonSet ever appears
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, plugin_module(binary, wait_timeout=0), kube)
    result = info.value.result
    assert result["error_kind"] == "not_ready"
    assert result["msg"].startswith("The device plugin did not become ready on every GPU node within 0s: ")
    assert "no device-plugin DaemonSet found" in result["msg"]
    assert result["restored"] == ["ConfigMap %s/%s" % (NS, CM), "Helm release %s revision 1" % RELEASE]
    assert result["msg"].endswith("Restored: ConfigMap %s/%s, Helm release %s revision 1." % (NS, CM, RELEASE))
    assert recorder.log[-1] == ("rollback", "1")
    assert kube.objects[("ConfigMap", CM)]["data"] == {"ts-4": "old"}
    assert result["rollout"]["ready"] is False and result["changed"] is True


def test_absent_uninstalls_the_release_and_removes_the_config_map(monkeypatch, helm):
    recorder, binary = helm
    recorder.existing = ({"name": RELEASE, "revision": "3", "status": "deployed"}, {})
    kube = FakeKube(objects=[namespace(), {"kind": "ConfigMap", "metadata": {"name": CM}, "data": {}}])
    result = run(monkeypatch, plugin_module(binary, state="absent", profiles=None), kube)
    assert result == {"changed": True, "release_name": RELEASE, "namespace": NS}
    assert recorder.log == [("read", RELEASE), ("uninstall", RELEASE)]
    assert ("ConfigMap", CM) not in kube.objects


def test_a_failed_config_map_write_says_which(monkeypatch, helm):
    dummy, binary = helm
    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, plugin_module(binary), FakeKube(objects=[namespace()], fail_writes=True))
    assert str(info.value) == ("Writing ConfigMap %s/%s failed: the server is currently unable to handle the request"
                               % (NS, CM))
    assert info.value.result["error_kind"] == "api"


# --------------------------------------------------------------------------- the rollout wait


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_rollout_wait_polls_until_the_deadline_with_progress_lines(monkeypatch, tmp_path):
    """Through kube/waiter.poll_until: a read per second, a progress line per interval."""
    lines = tmp_path / "progress"
    monkeypatch.setenv("GPU_SLICING_PROGRESS_FILE", str(lines))
    monkeypatch.setenv("GPU_SLICING_PROGRESS_INTERVAL", "0.000001")  # a line for every read
    monkeypatch.setattr(progress, "_last_line_at", {})
    kube = FakeKube()
    clock = Clock()
    summary = dp.wait_for_rollout(kube, RELEASE, NS, timeout=3, clock=clock, sleep=clock.sleep)
    assert summary["ready"] is False and summary["waited_seconds"] == 3
    assert kube.calls.count(("list", "DaemonSet")) == 4 + 1  # reads at 0, 1, 2, 3 s, then the explanation
    text = lines.read_text().splitlines()
    assert text[0] == "%s: 0s of 3s, no DaemonSet of the release yet; 0 GPU node(s) to cover" % dp.ROLLOUT
    assert [line.split(",")[0] for line in text] == ["%s: %ds of 3s" % (dp.ROLLOUT, n) for n in range(4)]


def test_rollout_wait_ends_at_the_first_ready_read():
    clock = Clock()
    kube = FakeKube(daemonsets=[rolled_out_daemonset()])
    summary = dp.wait_for_rollout(kube, RELEASE, NS, timeout=300, clock=clock, sleep=clock.sleep)
    assert summary["ready"] is True and summary["waited_seconds"] == 0 and clock.now == 0
    assert "nodes_missing_pods" not in summary


def test_rolled_out_is_the_summarys_verdict():
    assert dp.rolled_out(([], {"ready": True})) is True
    assert dp.rolled_out(([], {"ready": False})) is False


# --------------------------------------------------------------------------- device_plugin_config


def config_module(**params):
    values = dict(defaults(config_map_arg_spec()), profiles=[{"name": "ts-4", "replicas": 4}], default_profile=None)
    values.update(params)
    return FakeModule(values)


def test_config_map_present_and_absent(monkeypatch):
    kube = FakeKube(objects=[namespace()])
    result = run_module(monkeypatch, config_module(), dp.ensure_config_map, dp.ConfigMapOptions.from_params, kube)
    assert result["changed"] is True and set(result["configs"]) == {"ts-4"}
    assert result["plan"]["profiles"][0]["name"] == "ts-4" and len(result["config_hash"]) == 64
    gone = run_module(monkeypatch, config_module(state="absent", profiles=None), dp.ensure_config_map,
                      dp.ConfigMapOptions.from_params, kube)
    assert gone == {"changed": True, "method": "delete", "result": {}}


def test_config_map_bad_name_fails_before_the_cluster_is_contacted(monkeypatch):
    with pytest.raises(AnsibleFailJson) as info:
        run_module(monkeypatch, config_module(config_map_name="Bad_Name"), dp.ensure_config_map,
                   dp.ConfigMapOptions.from_params, Untouchable())
    assert "config_map_name: 'Bad_Name' is invalid" in str(info.value)
