"""The files that set up a machine agree with each other and with the code.

requirements*.txt and Pipfile list the same packages with torch pinned to 2.13.0; env.template
documents every key config.py reads; the README's first two commands name files that exist and
match what .ci/run runs; the workflows parse and only the Pages deploy job may write to Pages.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from visualizer.config import ENV_KEYS

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def requirement_names(path: Path) -> dict[str, str]:
    """name (normalised) -> version specifier, following `-r` includes."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found.update(requirement_names(path.parent / line[3:].strip()))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", line)
        assert match, f"{path.name}: cannot read requirement line {line!r}"
        found[normalise(match.group(1))] = match.group(2).replace(" ", "")
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pipfile() -> dict:
    return tomllib.loads((REPO_ROOT / "Pipfile").read_text(encoding="utf-8"))


def test_torch_is_pinned_exactly_everywhere():
    assert requirement_names(REPO_ROOT / "requirements.txt")["torch"] == "==2.13.0"
    assert pipfile()["packages"]["torch"] == "==2.13.0"


def test_runtime_requirements_cover_what_the_project_needs():
    runtime = requirement_names(REPO_ROOT / "requirements.txt")
    for name in ("torch", "jinja2", "matplotlib", "wordcloud", "python-dotenv", "numpy", "safetensors", "tiktoken",
                 "transformers"):
        assert name in runtime, f"requirements.txt lacks {name}"
    dev = requirement_names(REPO_ROOT / "requirements-dev.txt")
    assert set(runtime) <= set(dev), "requirements-dev.txt must include requirements.txt"
    assert {"pytest", "playwright"} <= set(dev)


def test_pipfile_lists_the_same_packages_as_requirements():
    p = pipfile()
    runtime = requirement_names(REPO_ROOT / "requirements.txt")
    dev = requirement_names(REPO_ROOT / "requirements-dev.txt")
    assert {normalise(k): v for k, v in p["packages"].items()} == runtime
    dev_only = {k: v for k, v in dev.items() if k not in runtime}
    assert {normalise(k): v for k, v in p["dev-packages"].items()} == dev_only
    assert p["requires"]["python_version"] == "3.11"


def test_transformers_is_bounded_and_the_installed_one_is_in_range():
    """The Hugging Face family is tested on one transformers range: declared with an upper bound in
    both files, and the installed version (the one the tests run on) inside it."""
    pytest.importorskip("transformers")
    import transformers
    from packaging.specifiers import SpecifierSet

    declared = requirement_names(REPO_ROOT / "requirements.txt")["transformers"]
    assert pipfile()["packages"]["transformers"] == declared
    specifiers = SpecifierSet(declared)
    assert any(s.operator == "<" for s in specifiers) and any(s.operator == ">=" for s in specifiers), declared
    assert transformers.__version__ in specifiers, (transformers.__version__, declared)


def test_env_template_documents_every_key_config_reads():
    lines = (REPO_ROOT / "env.template").read_text(encoding="utf-8").splitlines()
    keys = {line.split("=", 1)[0]: i for i, line in enumerate(lines) if re.match(r"[A-Z][A-Z0-9_]*=", line)}
    for key in ENV_KEYS:
        assert key in keys, f"env.template lacks {key}="
        assert lines[keys[key] - 1].startswith("#"), f"env.template: {key} has no comment above it"
    comments = "\n".join(line for line in lines if line.startswith("#"))
    for name in ("NANOCHAT_BASE_DIR", "GPT2_BPE_DIR", "HF_HOME"):  # read from the process environment
        assert name in comments, f"env.template does not explain {name}"


def test_env_file_is_git_ignored():
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored


def readme_first_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README.md has no code block"
    assert text.index("```") < 1500, "the setup commands must come first in README.md"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_the_two_setup_commands():
    demo, tests = readme_first_commands()[:2]
    assert "-r requirements.txt" in demo and demo.endswith("-m visualizer")
    assert "-r requirements-dev.txt" in tests and tests.endswith("-m pytest -q")
    for command in (demo, tests):
        for name in re.findall(r"-r (\S+)", command):
            assert (REPO_ROOT / name).is_file(), f"README names {name}, which does not exist"


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    assert "-r requirements-dev.txt" in ci
    assert re.search(r'"\$VENV/bin/python" -m pytest -q\n', ci)
    assert '"$RC" = 5' in ci, ".ci/run must fail when pytest collects no tests"


def load_workflow(name: str) -> dict:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict) and "jobs" in data
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_tests_workflow_runs_pytest_on_push():
    wf = load_workflow("tests.yml")
    assert "push" in wf["on"] and wf["permissions"] == {"contents": "read"}
    runs = " ".join(step.get("run", "") for job in wf["jobs"].values() for step in job["steps"])
    assert "-r requirements-dev.txt" in runs and "-m pytest -q" in runs


def test_pages_workflow_only_the_deploy_job_can_write_pages():
    wf = load_workflow("pages.yml")
    assert wf["permissions"] == {"contents": "read"}
    assert set(wf["on"]) == {"push", "workflow_dispatch"} and wf["on"]["push"]["branches"] == ["main"]
    jobs = wf["jobs"]
    writers = [name for name, job in jobs.items() if job.get("permissions", {}).get("pages") == "write"]
    assert writers == ["deploy"]
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert jobs["deploy"]["needs"] == "build" and jobs["deploy"]["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in jobs["deploy"]["steps"])
    build = jobs["build"]["steps"]
    runs = [s.get("run", "") for s in build]
    assert any("-m pytest -q" in r for r in runs) and any(r.strip() == "python -m visualizer" for r in runs)
    upload = [s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "visualizations"
