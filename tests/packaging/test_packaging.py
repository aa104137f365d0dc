"""What a release ships: the collection tarball, its metadata, and the execution environment.

Run with the real tools: ``ansible-galaxy collection build`` and ``install``, ``ansible-builder
create`` and ``introspect`` (ansible-builder from PyPI, requirements-dev.txt). No cluster and no
container runtime are needed; the image build itself (podman/docker) cannot run here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
VERSION = GALAXY["version"]

# Only inside the repository: the test suite and its local cluster, Molecule, benchmarks,
# developer scripts and the repository's EE build files.
NOT_SHIPPED = ("tests/", "molecule/", "benchmarks/", "scripts/", ".ci/", ".venv/", ".build/", ".git/",
               "requirements-dev.txt", "execution-environment.yml")
# What users run or read.
SHIPPED = ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "requirements.txt", "bindep.txt",
           "meta/runtime.yml", "meta/execution-environment.yml", "changelogs/changelog.yaml",
           "playbooks/enable.yml", "playbooks/verify.yml", "playbooks/vars/gpu_slicing.yml",
           "awx/job_templates.yml", "rbac/installer.yml", "rbac/verifier.yml",
           "plugins/plugin_utils/progress_action.py", "plugins/module_utils/progress.py")


def run(*cmd, cwd=REPO, env=None):
    full_env = dict(os.environ, PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    full_env.update(env or {})
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, "%s failed (%s):\n%s\n%s" % (" ".join(map(str, cmd)), proc.returncode,
                                                              proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("tarball")
    run("ansible-galaxy", "collection", "build", "--force", "--output-path", out, REPO)
    built = list(out.glob("gpu_slicing-eks-*.tar.gz"))
    assert [p.name for p in built] == ["gpu_slicing-eks-%s.tar.gz" % VERSION]
    return built[0]


def members(path):
    with tarfile.open(path) as tar:
        return set(m.name for m in tar.getmembers())


def manifest(path):
    with tarfile.open(path) as tar:
        return json.load(tar.extractfile("MANIFEST.json"))


def test_tarball_ships_what_users_run_and_no_repository_only_folders(tarball):
    names = members(tarball)
    shipped = [n for n in NOT_SHIPPED for m in names if m == n.rstrip("/") or m.startswith(n)]
    assert not shipped, "repository-only paths in the tarball: %s" % sorted(set(shipped))
    missing = [n for n in SHIPPED if n not in names]
    assert not missing, "missing from the tarball: %s" % missing
    for kind in ("modules", "action"):
        for source in (REPO / "plugins" / kind).glob("*.py"):
            assert "plugins/%s/%s" % (kind, source.name) in names
    for role in (REPO / "roles").iterdir():
        assert "roles/%s/tasks/main.yml" % role.name in names
        assert "roles/%s/meta/argument_specs.yml" % role.name in names
    # Everything a shipped playbook or AWX file points at by a relative path is shipped too.
    for playbook in [n for n in names if n.startswith("playbooks/") and n.endswith(".yml")]:
        for ref in re.findall(r"(?:vars_files:\s*\n\s*-\s*|import_playbook:\s*)(\S+\.yml)",
                              (REPO / playbook).read_text()):
            assert os.path.normpath(os.path.join(os.path.dirname(playbook), ref)) in names, (playbook, ref)


def test_tarball_metadata_is_real(tarball):
    info = manifest(tarball)["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("gpu_slicing", "eks", VERSION)
    assert info["dependencies"] == {"kubernetes.core": ">=6.0.0,<7.0.0"}
    text = json.dumps(info).lower()
    for placeholder in ("example.invalid", ".invalid", "example.com", "todo", "placeholder", "changeme"):
        assert placeholder not in text, "placeholder %r in the collection metadata: %s" % (placeholder, info)
    for key in ("repository", "documentation", "homepage", "issues"):
        assert info.get(key) in (None, "") or info[key].startswith("https://"), (key, info[key])


def test_tarball_installs(tarball, tmp_path):
    run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", tmp_path, tarball)
    installed = tmp_path / "ansible_collections" / "gpu_slicing" / "eks"
    assert (installed / "playbooks" / "enable.yml").is_file()
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["version"] == VERSION


def _docs():
    """(where, version_added) for every module, filter and role entry point, and their options."""
    found = []

    def walk(where, doc):
        if "version_added" in doc:
            found.append((where, str(doc["version_added"])))
        else:
            found.append((where, None))
        for name, option in (doc.get("options") or {}).items():
            if isinstance(option, dict) and "version_added" in option:
                found.append(("%s option %s" % (where, name), str(option["version_added"])))

    for path in sorted((REPO / "plugins" / "modules").glob("*.py")):
        source = path.read_text()
        match = re.search(r'DOCUMENTATION = r?"""(.*?)"""', source, re.S) or \
            re.search(r"DOCUMENTATION = r?'''(.*?)'''", source, re.S)
        assert match, path
        walk("module " + path.stem, yaml.safe_load(match.group(1)))
    for path in sorted((REPO / "plugins" / "filter").glob("*.yml")):
        walk("filter " + path.stem, yaml.safe_load(path.read_text())["DOCUMENTATION"])
    for path in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        walk("role " + path.parts[-3], yaml.safe_load(path.read_text())["argument_specs"]["main"])
    return found


def test_version_added_is_the_first_release():
    # Nothing is released yet: everything ships in the first release, galaxy.yml's version.
    wrong = [(where, added) for where, added in _docs() if added != VERSION]
    assert not wrong, "version_added must be %s (the release they ship in): %s" % (VERSION, wrong)


def test_changelog_fragments_are_plain_and_announce_no_new_plugins():
    for path in sorted((REPO / "changelogs" / "fragments").glob("*.y*ml")):
        text = path.read_text()
        # Ansible doc markup (C(...), I(...), O(...)) is not RST: the changelog would show it literally.
        assert not re.search(r"\b[BCIMOUVEP]\(", text), "%s: Ansible doc markup in a fragment" % path.name
        # New modules, plugins and roles are announced from version_added, not by fragments.
        assert not re.search(r"\bnew (module|role|filter|plugin)s?\b", text, re.I), \
            "%s: a fragment announces a new module/role/filter" % path.name


def _requirement_names(lines):
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_execution_environment_context(tmp_path):
    context = tmp_path / "context"
    run(REPO / "scripts" / "ee-context.sh", context)
    build = context / "_build"
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()

    # The base image has a tag, and can be replaced by the site's own.
    base = re.search(r'^ARG EE_BASE_IMAGE="([^"]+)"', containerfile, re.M).group(1)
    assert re.match(r"^[^:@]+:[^:]+$", base), base

    # This collection: the tarball ansible-galaxy just built, installed from the context by path.
    requirements = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    ours = [r for r in requirements if r.get("type") == "file"]
    assert len(ours) == 1 and ours[0]["name"].startswith("/build/"), requirements
    assert "COPY _build /build" in containerfile
    shipped = build / ours[0]["name"][len("/build/"):]
    assert shipped.is_file(), "the galaxy requirement points at %s, not in the context" % ours[0]["name"]
    assert manifest(shipped)["collection_info"]["version"] == VERSION
    assert not [m for m in members(shipped) if m.startswith("tests/")]
    core = [r for r in requirements if r["name"] == "kubernetes.core"]
    assert core and core[0]["version"] == GALAXY["dependencies"]["kubernetes.core"]

    # The Python requirements: in the context, and what ansible-builder's introspection of the
    # installed collections (ours from the context's tarball, plus kubernetes.core) reports.
    context_python = _requirement_names((build / "requirements.txt").read_text().splitlines())
    assert context_python == _requirement_names((REPO / "requirements.txt").read_text().splitlines())
    collections = tmp_path / "collections"
    run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", collections, shipped)
    import ansible_collections.kubernetes.core as kubernetes_core  # the copy in the `ansible` package
    shutil.copytree(Path(kubernetes_core.__path__[0]), collections / "ansible_collections" / "kubernetes" / "core")
    report = yaml.safe_load(run("ansible-builder", "introspect", "--sanitize", collections).split("\n", 1)[1])
    ours_python = _requirement_names(line for line in report["python"] if "gpu_slicing.eks" in line)
    # ansible-builder leaves out what ansible-core itself brings (PyYAML).
    assert ours_python == context_python - {"pyyaml"}, report
    assert any("kubernetes.core" in line for line in report["python"]), report
    assert not [line for line in report["system"] if line.startswith("helm")], report

    # helm, pinned: v3.22.0's release tarball, checked against its published sha256 before use.
    helm = re.search(r"^RUN curl .*helm-v3\.22\.0-linux-amd64\.tar\.gz.*$", containerfile, re.M)
    assert helm, containerfile
    assert "1e4ab49e429626cf6c6958d914248b78c9730803c2751b87627e171dc800e7bb  /tmp/helm.tar.gz\" | sha256sum -c -" \
        in helm.group(0)
    assert helm.group(0).index("sha256sum -c") < helm.group(0).index("tar -xzf")
