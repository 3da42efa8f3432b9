"""The package's shape, checked: no import cycles; only model/ names an architecture; only site/
writes HTML; the report folder's file names are written down once (artefacts/layout.py); the
command line builds without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO_ROOT

PACKAGE = REPO_ROOT / "visualizer"
ARCHITECTURES = re.compile(r"nano-?gpt|nanochat|llama|gpt-?2|qwen|mistral|smear|backout|layer ?norm|rms ?norm", re.I)
HTML = re.compile(r"<!doctype|<html|<body|<table|<div|<details|<script", re.I)
DATA_FILES = re.compile(r"^(trace|report_data|analysis|attribution|generation|compare)\.json$|^activations\.safetensors$")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """visualizer modules imported anywhere in the file (functions' lazy imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m in known}


def code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module but its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(n)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_import_cycles():
    known = modules()
    graph = {name: imported(path, known) - {name} for name, path in known.items()}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_only_model_names_an_architecture():
    """Outside model/, no code names a family or an architecture's parts; the command line's help
    texts may say which flag applies to which family, and config.py reads the NANOGPT_META_PATH key."""
    offenders = []
    for name, path in modules().items():
        if name.startswith(("visualizer.model", "visualizer.cli")):
            continue
        for line, text in code_strings(path):
            if ARCHITECTURES.search(text) and not (name == "visualizer.config" and text == "NANOGPT_META_PATH"):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {text[:60]!r}")
    assert not offenders, offenders


def test_only_site_writes_html():
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line}" for name, path in modules().items()
                 if not name.startswith("visualizer.site") for line, text in code_strings(path) if HTML.search(text)]
    assert not offenders, offenders


def test_the_report_folders_file_names_are_written_once():
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line}: {text}" for name, path in modules().items()
                 if name != "visualizer.artefacts.layout" for line, text in code_strings(path) if DATA_FILES.match(text)]
    assert not offenders, offenders


def test_the_command_line_builds_without_torch():
    """`traces list` and `--help` must start fast: building the parser imports no torch."""
    code = "import sys, visualizer.cli as c; c.build_parser(); print(any(m == 'torch' for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_every_stage_folder_exists_with_its_job_written_down():
    for folder in ("cli", "model", "capture", "analysis", "generation", "artefacts", "figures", "site", "store"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py" or path.stat().st_size:
            assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{path} says not what it does"
