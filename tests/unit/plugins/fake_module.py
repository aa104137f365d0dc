"""The one stand-in for an Ansible module in unit tests.

``FakeModule`` has what operations and ``runner.run_module`` use of a module (params, check
and diff mode, warn, exit_json, fail_json); exit_json and fail_json raise, so a test sees the
result of a run the way Ansible would. Import it as
``from ansible_collections.gpu_slicing.eks.tests.unit.plugins.fake_module import ...``.
"""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import access
from ansible_collections.gpu_slicing.eks.plugins.module_utils.runner import run_module


class AnsibleExitJson(Exception):
    """exit_json was called; ``result`` holds its keys."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class AnsibleFailJson(Exception):
    """fail_json was called; ``result`` holds its keys, ``str()`` is its msg."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule(object):
    def __init__(self, params=None, check_mode=False, diff=False):
        self.params = dict(params or {})
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def exit_json(self, **result):
        raise AnsibleExitJson(result)

    def fail_json(self, msg=None, **result):
        result["msg"] = msg
        result["failed"] = True
        raise AnsibleFailJson(result)


def run(monkeypatch, module, operation, options, kube):
    """``run_module(module, operation, options)`` connected to ``kube`` (an in-memory stand-in
    for KubeAccess): returns exit_json's result, raises AnsibleFailJson."""
    monkeypatch.setattr(access, "connect", lambda dummy: kube)
    try:
        run_module(module, operation, options)
    except AnsibleExitJson as done:
        return done.result
    raise AssertionError("run_module returned without exit_json or fail_json")
