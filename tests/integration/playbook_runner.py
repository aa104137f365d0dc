"""Run one collection module (or a playbook) the way users do: through ansible-playbook.

Modules of a collection cannot be run as plain scripts, so tests drive them through a
generated one-task playbook with the ``json`` stdout callback and read the task result.
The collection is found through ``.build/collections`` (a symlink to this checkout).
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS_PATH = os.path.join(REPO_ROOT, ".build", "collections")
VENV_BIN = os.path.dirname(sys.executable)


class TaskResult(dict):
    """The module's result dict, plus ``failed`` / ``changed`` shortcuts and the raw output."""

    @property
    def failed(self):
        return bool(self.get("failed"))

    @property
    def changed(self):
        return bool(self.get("changed"))


def ansible_env(kubeconfig=None, extra=None):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH,
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = kubeconfig
        env["KUBECONFIG"] = kubeconfig
    if extra:
        env.update(extra)
    return env


def run_playbook(playbook_path, kubeconfig=None, extra_vars=None, check=False, diff=False, env=None, timeout=900):
    """Run a playbook; returns (returncode, parsed json callback output)."""
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", playbook_path]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, env=ansible_env(kubeconfig, env), capture_output=True, text=True, timeout=timeout,
                          check=False)
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    output["_stderr"] = proc.stderr
    return proc.returncode, output


def task_results(output):
    """All task results of a json-callback output, in order: [(task name, result dict)]."""
    results = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            for host_result in task.get("hosts", {}).values():
                results.append((task["task"]["name"], host_result))
    return results


def run_module(module, args, kubeconfig=None, check=False, diff=False, env=None, timeout=900):
    """Run ``gpu_slicing.eks.<module>`` (or any FQCN) once and return its TaskResult."""
    fqcn = module if "." in module else "gpu_slicing.eks." + module
    play = [{
        "name": "run %s" % fqcn,
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": fqcn, fqcn: args, "ignore_errors": True}],
    }]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(play, handle)
        path = handle.name
    try:
        dummy, output = run_playbook(path, kubeconfig=kubeconfig, check=check, diff=diff, env=env, timeout=timeout)
    finally:
        os.unlink(path)
    results = task_results(output)
    assert results, "no task result in ansible output: %s" % output.get("_stderr")
    return TaskResult(results[-1][1])
