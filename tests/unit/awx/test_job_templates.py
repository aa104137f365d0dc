# -*- coding: utf-8 -*-
"""awx/job_templates.yml against awx.awx's own modules (the `ansible` package ships awx.awx).

Each awx.awx task may only use options that module's argument spec has (read from the module's
source), every template names a playbook that exists, and the surveys, rendered the way
ansible-playbook renders the vars, are well-formed AWX survey specs that ask for what the
NodePool needs (or take it from the connection).
"""

from __future__ import annotations

import ast
import os

import pytest
import yaml

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
AWX_PLAYBOOK = os.path.join(REPO_ROOT, "awx", "job_templates.yml")
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def awx_module_options(name):
    awx = pytest.importorskip("ansible_collections.awx.awx")
    path = os.path.join(list(awx.__path__)[0], "plugins", "modules", name + ".py")
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "argument_spec" for t in node.targets)
                and isinstance(node.value, ast.Call)):
            return {kw.arg for kw in node.value.keywords}
    raise AssertionError("no argument_spec in %s" % path)


def trusted(value):
    """Strings marked as templates, as ansible-playbook marks the strings of a playbook."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def play():
    return trusted(yaml.safe_load(open(AWX_PLAYBOOK))[0])


def awx_tasks():
    for task in play()["tasks"]:
        for key, args in task.items():
            if key.startswith("awx.awx."):
                yield key.split(".")[-1], args


def test_every_awx_task_uses_only_the_module_options():
    seen = set()
    for module, args in awx_tasks():
        unknown = set(args) - awx_module_options(module)
        assert not unknown, "%s: options awx.awx does not have: %s" % (module, sorted(unknown))
        seen.add(module)
    assert "job_template" in seen


def rendered_vars(extra):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    variables = dict(play()["vars"], **extra)
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar, variables


def job_templates():
    return {args["name"]: args for module, args in awx_tasks() if module == "job_template"}


def test_templates_for_enable_verify_and_disable_name_existing_playbooks():
    templates = job_templates()
    playbooks = sorted(t["playbook"] for t in templates.values())
    assert playbooks == ["playbooks/disable.yml", "playbooks/enable.yml", "playbooks/verify.yml"]
    for path in playbooks:
        assert os.path.isfile(os.path.join(REPO_ROOT, path)), path


@pytest.mark.parametrize("cluster", ["", "prod-gpu"])
def test_surveys_are_valid_and_ask_what_the_nodepool_needs(cluster):
    templar, variables = rendered_vars({"awx_eks_cluster_name": cluster, "awx_scm_url": "x", "awx_ee_image": "y"})
    surveys = {}
    for name, args in job_templates().items():
        if args.get("survey_enabled"):
            spec = templar.template(args["survey_spec"])
            assert set(spec) >= {"name", "description", "spec"}, name
            for q in spec["spec"]:
                assert q["type"] in SURVEY_TYPES and q["variable"] and q["question_name"], q
                assert isinstance(q["required"], bool), q
                if q["type"] == "multiplechoice":
                    assert q["default"] in q["choices"], q
            surveys[name] = {q["variable"]: q for q in spec["spec"]}
        extra = templar.template(args["extra_vars"])
        assert isinstance(extra, dict), extra
        if cluster:
            assert extra["gpu_slicing_connection"]["eks_cluster_name"] == cluster
    enable, verify = surveys["GPU slicing - enable"], surveys["GPU slicing - verify"]
    # The EC2NodeClass needs a node role and the cluster name for its discovery tags.
    assert {"gpu_slicing_instance_types", "gpu_slicing_node_role", "gpu_slicing_cluster_name"} <= set(enable)
    assert enable["gpu_slicing_cluster_name"]["default"] == cluster
    # The verify template chooses the profile it checks.
    assert {"gpu_slicing_profile_name", "gpu_slicing_replicas", "gpu_slicing_strategy"} <= set(verify)
    # The admission policies: asked by both (verify then checks them), off unless the user opts in.
    for survey in (enable, verify):
        question = survey["gpu_slicing_admission"]
        assert question["type"] == "multiplechoice" and question["default"] == "no", question
