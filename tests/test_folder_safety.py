"""Lose nothing: every way of naming a folder the tool did not write leaves it as it was; kills at
every step of a write are recovered by the next run; concurrent writers leave one whole report.

Each case checks the exit code, the one `error:` line naming the flag or file, and a checksum
listing of the parent folder before and after (only what the tool was asked to write may change).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.support.cli import FAST, run_cli
from tests.support.faults import checksums, one_error_line, run_tool, start_tool
from visualizer.artefacts import layout



@pytest.fixture
def model_args(tiny_checkpoint):
    ckpt, meta = tiny_checkpoint
    return ("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose")


def user_folder(path):
    """A folder of the user's own: a thesis, a trace.json look-alike, a hidden file, a subfolder."""
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("\\section{mine}\n")
    (path / "trace.json").write_text("{}")
    (path / ".hidden").write_text("x")
    (path / "sub").mkdir()
    (path / "sub" / "notes.md").write_text("notes")
    return path


def refused(result_or_code, stderr=None, needle=""):
    code, err = (result_or_code.returncode, result_or_code.stderr) if stderr is None else (result_or_code, stderr)
    assert code == 2, err
    line = one_error_line(err)
    assert needle in line, line
    return line


def test_a_trace_json_look_alike_does_not_make_a_folder_ours(tmp_path, model_args):
    folder = user_folder(tmp_path / "d")
    before = checksums(tmp_path)
    code, _, stderr = run_cli(*model_args, "--out", folder, *FAST)
    refused(code, stderr, "--out")
    assert checksums(tmp_path) == before


@pytest.mark.parametrize("spelling", ["{tmp}/new/../d", "{tmp}/d/", "{tmp}/d/.", "{tmp}/./d", "{tmp}//d"])
def test_every_spelling_of_a_foreign_folder_is_refused(tmp_path, model_args, spelling):
    folder = user_folder(tmp_path / "d")
    before = checksums(tmp_path)
    code, _, stderr = run_cli(*model_args, "--out", spelling.format(tmp=tmp_path), *FAST)
    refused(code, stderr, "--out")
    assert checksums(tmp_path) == before and not (tmp_path / "new").exists()
    assert folder.is_dir()


def test_a_symlink_to_a_foreign_folder_and_a_dangling_symlink_are_refused(tmp_path, model_args):
    user_folder(tmp_path / "d")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = checksums(tmp_path)
    for name in ("link", "dangling"):
        code, _, stderr = run_cli(*model_args, "--out", tmp_path / name, *FAST)
        refused(code, stderr, "symbolic link")
    assert checksums(tmp_path) == before and not (tmp_path / "nowhere").exists()


def test_the_current_folder_and_its_parents_are_refused(tmp_path, model_args, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    before = checksums(tmp_path)
    for out in (".", "..", str(work)):
        code, _, stderr = run_cli(*model_args, "--out", out, *FAST)
        refused(code, stderr, "current folder")
    assert checksums(tmp_path) == before


def test_several_probes_never_overwrite_a_users_site_files(tmp_path, model_args):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my site</h1>")
    (site / ".nojekyll").write_text("mine")
    (site / "assets").mkdir()
    (site / "assets" / "style.css").write_text("body{}")
    before = checksums(tmp_path)
    code, _, stderr = run_cli(*model_args, "--probe", "a bud", "--out", site, *FAST)
    refused(code, stderr, "index.html")
    assert checksums(tmp_path) == before


def test_a_site_of_ours_is_updated_and_keeps_the_users_other_files(tmp_path, model_args):
    site = tmp_path / "site"
    site.mkdir()
    (site / "README.md").write_text("mine")
    assert run_cli(*model_args, "--probe", "a bud", "--out", site, *FAST)[0] == 0
    listing = json.loads((site / layout.SITE_OWNER_FILE).read_text())["files"]
    assert "index.html" in listing and "README.md" not in listing
    assert run_cli(*model_args, "--probe", "a bud", "--out", site, *FAST)[0] == 0  # again: ours now
    assert (site / "README.md").read_text() == "mine"


def test_a_report_of_ours_with_a_file_added_by_the_user_is_not_replaced(tmp_path, model_args):
    out = tmp_path / "r"
    assert run_cli(*model_args, "--out", out, *FAST)[0] == 0
    (out / "my-notes.txt").write_text("notes")
    before = checksums(tmp_path)
    code, _, stderr = run_cli(*model_args, "--out", out, *FAST)
    refused(code, stderr, "my-notes.txt")
    assert checksums(tmp_path) == before


def test_outputs_inside_or_around_the_store_are_refused(tmp_path, model_args):
    store = tmp_path / "x" / "traces"
    code, _, stderr = run_cli(*model_args, "--store", store, "--out", tmp_path / "r", "--quiet", "--ig-steps", "0")
    assert code == 0, stderr
    trace_id = next(p.name for p in store.iterdir() if not p.name.startswith("."))
    before = checksums(tmp_path)
    for out in (store / trace_id, store / "new", tmp_path / "x", store):
        code, _, stderr = run_cli(*model_args, "--store", store, "--out", out, "--quiet", "--ig-steps", "0")
        refused(code, stderr, "trace store")
    code, _, stderr = run_cli("render", trace_id, "--store", store, "--out", store / trace_id)
    refused(code, stderr, "the trace itself")
    code, _, stderr = run_cli("render", trace_id, "--store", store, "--out", store / "other")
    refused(code, stderr, "trace store")
    code, _, stderr = run_cli("compare", trace_id, trace_id, "--store", store, "--out", store / "cmp")
    refused(code, stderr, "trace store")
    assert checksums(tmp_path) == before


def test_a_report_inside_a_report_is_refused_on_the_second_run(tmp_path, model_args):
    """--store X/traces --out X: refused at once (the store would land inside the report)."""
    code, _, stderr = run_cli(*model_args, "--store", tmp_path / "x" / "traces", "--out", tmp_path / "x", "--quiet")
    refused(code, stderr, "trace store")
    assert not (tmp_path / "x").exists()


def test_generate_and_compare_never_replace_a_report(tmp_path, model_args, tiny_checkpoint):
    out = tmp_path / "r"
    assert run_cli(*model_args, "--out", out, *FAST)[0] == 0
    before = checksums(tmp_path)
    ckpt, meta = tiny_checkpoint
    code, _, stderr = run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--prompt", "a", "--out", out,
                              "--max-new-tokens", "2", "--quiet")
    refused(code, stderr, "holds a visualizer report, not a generation")
    assert checksums(tmp_path) == before


KILL_STEPS = ("before-swap", "between-renames", "after-swap")


@pytest.mark.parametrize("step,first_run", [(step, False) for step in KILL_STEPS] + [("before-swap", True)])
def test_a_run_killed_at_any_step_is_recovered_by_the_next(tmp_path, tiny_checkpoint, step, first_run):
    """Only the killed run is a separate process; the runs before and after it run in this one."""
    ckpt, meta = tiny_checkpoint
    args = ("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", tmp_path / "r", *FAST)
    (tmp_path / "mine.txt").write_text("mine")
    if not first_run:
        assert run_cli(*args)[0] == 0
    earlier = checksums(tmp_path / "r") if not first_run else None
    killed = run_tool(*args, env={"VISUALIZER_KILL_AT": step})
    assert killed.returncode == -9, killed.stderr
    if earlier is not None and step == "before-swap":
        assert checksums(tmp_path / "r") == earlier  # the earlier report is still whole
    code, _, stderr = run_cli(*args)
    assert code == 0, stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["mine.txt", "r"], left  # nothing of the killed run is left beside it
    assert (tmp_path / "mine.txt").read_text() == "mine"
    record = json.loads((tmp_path / "r" / layout.OWNER_FILE).read_text())
    assert sorted(record["files"]) == sorted(p for p in checksums(tmp_path / "r") if p != layout.OWNER_FILE)


def test_two_concurrent_writers_to_one_out_leave_one_whole_report(tmp_path, tiny_checkpoint):
    ckpt, meta = tiny_checkpoint
    args = ("--checkpoint", ckpt, "--meta", meta, "--out", tmp_path / "r", *FAST)
    runs = [start_tool(*args, "--probe", probe) for probe in ("a rose", "a bud")]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    assert all(code == 0 for code, _ in results), results
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["probe"] in ("a rose", "a bud")
    record = json.loads((tmp_path / "r" / layout.OWNER_FILE).read_text())
    assert sorted(record["files"]) == sorted(p for p in checksums(tmp_path / "r") if p != layout.OWNER_FILE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_folder_named_like_a_script_url_is_a_plain_link_in_the_site_index(tmp_path, model_args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "javascript:alert(document.domain)"
    assert run_cli(*model_args, "--out", f"visualizations/{name}", *FAST)[0] == 0
    assert run_cli(*model_args, "--probe", "a bud", *FAST)[0] == 0  # a default run writes the site index
    index = (tmp_path / "visualizations" / "index.html").read_text()
    assert 'href="javascript:' not in index
    assert 'href="javascript%3Aalert%28document.domain%29/index.html"' in index


def test_a_damaged_report_does_not_break_the_site_index(tmp_path, model_args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "visualizations" / "broken"
    bad.mkdir(parents=True)
    (bad / "trace.json").write_text('{"token_ids": 7, "model": []}')
    (tmp_path / "visualizations" / "other").mkdir()
    (tmp_path / "visualizations" / "other" / "trace.json").write_text("[1, 2]")
    code, _, stderr = run_cli(*model_args, *FAST)
    assert code == 0, stderr
    assert "other" in stderr and "skipped" in stderr
    assert (tmp_path / "visualizations" / "index.html").is_file()


def test_the_owner_file_lists_exactly_the_files_written(tmp_path, model_args):
    out = tmp_path / "r"
    assert run_cli(*model_args, "--out", out, *FAST)[0] == 0
    record = json.loads((out / layout.OWNER_FILE).read_text())
    assert record["tool"] == "visualizer" and record["kind"] == "report"
    on_disk = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert sorted(record["files"] + [layout.OWNER_FILE]) == on_disk


def test_concurrent_runs_into_one_store_keep_both_traces(tmp_path, tiny_checkpoint):
    ckpt, meta = tiny_checkpoint
    store = tmp_path / "traces"
    runs = [start_tool("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", tmp_path / f"r{i}",
                       "--store", store, "--quiet", "--ig-steps", "0") for i in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    assert all(code == 0 for code, _ in results), results
    ids = sorted(p.name for p in store.iterdir())
    assert len(ids) == 2 and ids[1] == ids[0] + "-2", ids
    code, stdout, stderr = run_cli("traces", "list", "--store", store)
    assert code == 0 and "2 of 2 traces" in stdout and "damaged" not in stdout + stderr


def test_a_run_killed_while_storing_leaves_no_half_trace(tmp_path, tiny_checkpoint):
    ckpt, meta = tiny_checkpoint
    store = tmp_path / "traces"
    args = ("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--store", store, "--quiet", "--ig-steps", "0")
    killed = run_tool(*args, "--out", tmp_path / "r1", env={"VISUALIZER_KILL_AT": "store-before-rename"})
    assert killed.returncode == -9
    code, stdout, _ = run_cli("traces", "list", "--store", store)
    assert code == 0 and "0 of 0 traces" in stdout  # the staged trace is invisible
    assert run_cli(*args, "--out", tmp_path / "r2")[0] == 0
    assert [p.name.startswith(".") for p in store.iterdir()] == [False]  # the dead run's staging is gone


def corrupt(folder, name, content):
    """Replace a stored trace's file and fix the manifest's record of it, so only the content is bad."""
    import hashlib

    (folder / name).write_bytes(content)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


MALFORMED = [
    ("trace.json", b"not json", "trace.json"),
    ("trace.json", b"[1, 2]", "trace.json"),
    ("trace.json", b'{"dims": {"n_layer": 1000000000, "n_head": 2}, "token_ids": [], "tokens_readable": []}', "n_layer"),
    ("trace.json", b'{"dims": {"n_layer": "2", "n_head": 2}}', "n_layer"),
    ("trace.json", b"\xff\xfe", "UTF-8"),
    ("activations.safetensors", b"", "safetensors"),
    ("activations.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "safetensors"),
    ("report_data.json", b"{", "report_data.json"),
    ("report_data.json", b'"text"', "report_data.json"),
]


@pytest.mark.parametrize("name,content,needle", MALFORMED)
def test_render_and_compare_of_a_malformed_trace_are_one_error_line(tmp_path, tiny_checkpoint, name, content, needle):
    ckpt, meta = tiny_checkpoint
    store = tmp_path / "traces"
    assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", tmp_path / "r", "--store", store,
                   "--quiet", "--ig-steps", "0")[0] == 0
    trace = next(store.iterdir())
    corrupt(trace, name, content)
    before = checksums(tmp_path)
    code, _, stderr = run_cli("render", trace.name, "--store", store, "--out", tmp_path / "again")
    refused(code, stderr, needle)
    if name != "report_data.json":  # compare reads report_data.json only when present and valid
        code, _, stderr = run_cli("compare", trace.name, trace.name, "--store", store, "--out", tmp_path / "cmp")
        refused(code, stderr, needle)
    assert checksums(tmp_path) == before
