"""runner.run_module: the one place where a run becomes exit_json or fail_json."""

import pytest

from ansible_collections.gpu_slicing.eks.plugins.module_utils.core.errors import (
    GpuSlicingError,
    InvalidInput,
)
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import access
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.connection import new_module
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.retries import RetryStats
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import RunContext
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import (
    AnsibleFailJson,
    FakeModule,
)
from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import run


class Kube(object):
    def __init__(self, retried=0):
        self.retry_stats = RetryStats()
        for dummy in range(retried):
            self.retry_stats.record("PATCH /api/v1/namespaces/x/configmaps/y", "conflict", 0.5)


def test_the_operations_result_is_the_modules(monkeypatch):
    seen = {}

    def operation(options, context):
        seen.update(options=options, check_mode=context.check_mode, diff=context.diff)
        return {"changed": True, "x": 1}

    result = run(monkeypatch, FakeModule({"a": 1}, check_mode=True, diff=True), operation,
                 lambda params: ("typed", params["a"]), Kube())
    assert result == {"changed": True, "x": 1}
    assert seen == {"options": ("typed", 1), "check_mode": True, "diff": True}


def test_bad_options_end_the_run_before_the_operation(monkeypatch):
    def options(params):
        raise InvalidInput("wait_timeout", -1, "give seconds >= 0", why="negative")

    def operation(options, context):
        raise AssertionError("the operation ran")

    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, FakeModule(), operation, options, Kube())
    assert info.value.result == {
        "msg": "wait_timeout: -1 is invalid: negative. Fix: give seconds >= 0", "error_kind": "invalid",
        "error": {"field": "wait_timeout", "value": -1, "why": "negative", "fix": "give seconds >= 0"},
        "failed": True}


def test_a_failure_keeps_its_extra_keys_and_the_retries(monkeypatch):
    def operation(options, context):
        context.kube  # connected: its retries are reported
        raise GpuSlicingError("not ready", kind="not_ready", restored=["ConfigMap a/b"], changed=True)

    with pytest.raises(AnsibleFailJson) as info:
        run(monkeypatch, FakeModule(), operation, dict, Kube(retried=2))
    result = info.value.result
    assert result["msg"] == "not ready" and result["error_kind"] == "not_ready"
    assert result["restored"] == ["ConfigMap a/b"] and result["changed"] is True
    assert result["api_retries"]["count"] == 2


def test_api_retries_only_when_something_was_retried(monkeypatch):
    def operation(options, context):
        context.kube
        return {"changed": False}

    assert run(monkeypatch, FakeModule(), operation, dict, Kube()) == {"changed": False}
    assert run(monkeypatch, FakeModule(), operation, dict, Kube(retried=1))["api_retries"]["count"] == 1


def test_other_errors_are_not_swallowed(monkeypatch):
    """Only the collection's errors become fail_json here; anything else is a bug to see whole."""
    def operation(options, context):
        raise KeyError("profiles")

    with pytest.raises(KeyError):
        run(monkeypatch, FakeModule(), operation, dict, Kube())


def test_one_connection_per_run_made_on_first_use(monkeypatch):
    made = []
    monkeypatch.setattr(access, "connect", lambda module: made.append(module) or Kube())
    module = FakeModule()
    context = RunContext(module)
    assert made == []  # nothing connects until an operation asks
    assert context.kube is context.kube
    assert made == [module]


def test_warnings_go_to_the_module():
    module = FakeModule()
    RunContext(module).warn("careful")
    assert module.warnings == ["careful"]


def test_commands_run_on_the_ansible_module_inside_kubernetes_cores(tmp_path):
    """new_module gives kubernetes.core's AnsibleK8SModule, which forwards neither run_command
    nor add_cleanup_file: helm runs through the AnsibleModule it wraps."""
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args({}):
        module = new_module(argument_spec={}, supports_check_mode=True)
    assert not hasattr(module, "run_command")
    context = RunContext(module)
    assert context.run_command(["echo", "helm"], environ_update={"HELM_NAMESPACE": "x"}) == (0, "helm\n", "")
    leftover = tmp_path / "kubeconfig"
    leftover.write_text("")
    context.add_cleanup_file(str(leftover))
    module._module.do_cleanup_files()
    assert not leftover.exists()
