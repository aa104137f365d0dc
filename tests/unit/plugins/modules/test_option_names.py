"""One name for one thing across the collection's modules and roles.

Reads every module's documentation as ansible-doc renders it (doc fragments merged; sanity's
validate-modules keeps it equal to the argument specs) and checks that:
- no module uses a name retired before the first release (the renames of changelog fragment
  option_names.yml), and each retired thing exists under its new name;
- an option name means the same kind of value in every module that has it;
- "how long to wait" is called ``wait_timeout`` (or ``<what>_wait_timeout``) everywhere;
- the AWS options carry amazon.aws's names and aliases;
- every module that talks to Kubernetes documents the ``api_retries`` it may return;
- role variables are named after the options they feed.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules")) if name.endswith(".py"))

# old name -> (module, new name): the renames made before 0.1.0.
RENAMED = {
    "release_namespace": ("device_plugin", "namespace"),
    "plugin_namespace": ("gpu_slicing_verify", "device_plugin_namespace"),
    "timeout": ("gpu_slicing_verify", "wait_timeout"),
    "multi_slice_wait": ("gpu_slicing_verify", "multi_slice_wait_timeout"),
    "log_wait": ("gpu_slicing_verify", "log_wait_timeout"),
    "cleanup_timeout": ("gpu_slicing_verify", "cleanup_wait_timeout"),
    "karpenter_timeout": ("gpu_slicing_verify", "karpenter_wait_timeout"),
    "nodes": ("gpu_slicing_verify", "node_names"),
    "karpenter_nodepool": ("gpu_slicing_verify", "karpenter_nodepool_name"),
    "cluster_name": ("karpenter_gpu_nodepool", "discovery_tag_value"),
    "gpu_count": ("karpenter_gpu_nodepool", "gpu_counts"),
    "label_selector": ("gpu_slicing_info", "label_selectors"),
    "source": ("gpu_instance_info", "instance_source"),
    "aws_region": ("gpu_instance_info", "region"),
    "aws_access_key": ("gpu_instance_info", "access_key"),
    "aws_secret_key": ("gpu_instance_info", "secret_key"),
    "aws_session_token": ("gpu_instance_info", "session_token"),
}

# amazon.aws's canonical names, aliases (doc fragments common.py and region.py) and environment
# variables. amazon.aws's "profile" is aws_profile here: profile names a sharing profile.
AWS_OPTIONS = {
    "region": ["aws_region", "ec2_region"],
    "access_key": ["aws_access_key_id", "aws_access_key", "ec2_access_key"],
    "secret_key": ["aws_secret_access_key", "aws_secret_key", "ec2_secret_key"],
    "session_token": ["aws_session_token", "security_token", "aws_security_token"],
    "endpoint_url": ["aws_endpoint_url"],
}


@pytest.fixture(scope="module")
def docs():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1")
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "-j"] + ["gpu_slicing.eks.%s" % m for m in MODULES],
                          env=env, capture_output=True, text=True, timeout=300, check=True)
    return {name.split(".")[-1]: value for name, value in json.loads(proc.stdout).items()}


def walk(options, path=()):
    """(path, name, spec) of every option and sub-option."""
    for name, spec in sorted((options or {}).items()):
        yield path, name, spec
        yield from walk(spec.get("suboptions"), path + (name,))


def all_options(docs):
    for module, doc in sorted(docs.items()):
        for path, name, spec in walk(doc["doc"]["options"]):
            yield module, path, name, spec


def test_no_retired_name(docs):
    used = [(module, path, name) for module, path, name, dummy in all_options(docs) if name in RENAMED]
    assert used == []
    for old, (module, new) in RENAMED.items():
        assert new in docs[module]["doc"]["options"], (old, module, new)


def test_one_meaning_per_name(docs):
    """The same name has the same type (and element type) wherever it appears. A sharing profile's
    sub-options are typed raw on purpose (the sharing core validates them), so raw matches any type."""
    kinds = {}
    for module, path, name, spec in all_options(docs):
        if spec.get("type") == "raw":
            continue
        kinds.setdefault(name, {}).setdefault((spec.get("type", "str"), spec.get("elements")), []).append(
            "/".join((module,) + path))
    mixed = {name: seen for name, seen in kinds.items() if len(seen) > 1}
    assert mixed == {}


def test_nodepool_is_the_parts_options_and_nodepool_name_a_name(docs):
    for module, path, name, spec in all_options(docs):
        if name == "nodepool":
            assert spec["type"] == "dict", (module, path)
        if name.endswith("nodepool_name"):
            assert spec.get("type", "str") == "str", (module, path, name)


def test_waits_are_wait_timeouts(docs):
    for module, path, name, spec in all_options(docs):
        if re.search(r"(^|_)(timeout|wait)$", name) and name != "wait":
            assert name.endswith("wait_timeout"), (module, path, name)


def test_aws_options_are_amazon_aws_names(docs):
    for module, doc in docs.items():
        options = doc["doc"]["options"]
        if "eks_cluster_name" not in options:
            continue
        for name, aliases in AWS_OPTIONS.items():
            assert options[name].get("aliases") == aliases, (module, name)
        assert "profile" not in options or options["profile"]["type"] == "str"
        assert options["aws_profile"].get("aliases") is None


def test_aws_aliases_and_environment_reach_the_module(monkeypatch):
    """amazon.aws's aliases and environment variables fill the canonical options."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.gpu_slicing.eks.plugins.module_utils.aws.options import eks_connection_argument_spec

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "token-from-awx")
    monkeypatch.setenv("AWS_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_DEFAULT_PROFILE", "ops")
    result = ArgumentSpecValidator(eks_connection_argument_spec()).validate(
        {"ec2_region": "eu-west-1", "aws_access_key_id": "AKIDALIAS", "aws_secret_access_key": "s"})
    assert [str(error) for error in result.errors] == []
    params = result.validated_parameters
    assert (params["region"], params["access_key"], params["secret_key"]) == ("eu-west-1", "AKIDALIAS", "s")
    assert (params["session_token"], params["endpoint_url"], params["aws_profile"]) == (
        "token-from-awx", "http://127.0.0.1:5000", "ops")


def test_modules_talking_to_kubernetes_document_api_retries(docs):
    for module in MODULES:
        with open(os.path.join(REPO, "plugins", "modules", module + ".py")) as handle:
            source = handle.read()
        if "new_module(" in source:
            assert "api_retries" in (docs[module].get("return") or {}), module


# Role variables whose names do not follow their option's, with the reason.
ROLE_VARIABLE_EXCEPTIONS = {
    "device_plugin_helm_binary": "binary_path",  # which binary: the role says helm
    "karpenter_gpu_feature_gates": "karpenter_feature_gates",  # karpenter_gpu_karpenter_... stutters
    "karpenter_gpu_nodepool_name": "name",  # the role's name alone would not say which object
    "verify_profiles": "profiles",
}
ROLE_PREFIX = {"device_plugin": "device_plugin_", "karpenter_gpu": "karpenter_gpu_", "verify": "verify_",
               "gpu_sharing": None}


@pytest.mark.parametrize("role", sorted(ROLE_PREFIX))
def test_role_variables_follow_option_names(role):
    tasks = []
    for name in sorted(os.listdir(os.path.join(REPO, "roles", role, "tasks"))):
        with open(os.path.join(REPO, "roles", role, "tasks", name)) as handle:
            tasks.extend(yaml.safe_load(handle))
    pairs = []
    for task in tasks:
        for key, args in task.items():
            if key.startswith("gpu_slicing.eks."):
                pairs.extend(_option_variables(args))
                for value in (task.get("vars") or {}).values():
                    pairs.extend(_option_variables(value))
    assert pairs, role
    wrong = []
    for option, variable in pairs:
        prefix = variable.split("_")[0]
        expected = [p + option for p in ("device_plugin_", "karpenter_gpu_", "verify_", "gpu_sharing_admission_",
                                         "gpu_sharing_")
                    if variable.startswith(p)]
        # variable == option: the option already carries the role-level name (device_plugin_namespace).
        if ROLE_VARIABLE_EXCEPTIONS.get(variable) == option or variable in expected or variable == option or not prefix:
            continue
        wrong.append((option, variable))
    assert wrong == []


def _option_variables(args):
    """(option, role variable) for every option set from a single role variable."""
    if not isinstance(args, dict):
        return []
    found = []
    for option, value in args.items():
        if isinstance(value, dict):
            found.extend(_option_variables(value))
        elif isinstance(value, str):
            match = re.match(r"^\{\{\s*([a-z_]+)\b", value)
            if match and match.group(1) not in ("gpu_sharing_nodepool_options",):
                found.append((option, match.group(1)))
    return found
