"""The patch command's folder as a whole, and its other inputs:

- `render PATCH_FOLDER --out DIR` redraws the "what if" page and both runs' reports from the files
  alone, byte for byte, with the checkpoint gone and model loading made to fail;
- `patch --clean-trace ID --corrupt-trace ID`: two stored traces of one model give the same record
  as the texts they were made from; traces of two models, or a trace with another --checkpoint, are
  refused in one line;
- with no corrupt probe, the ablation alone;
- the page's maps and ablation table link to the layer and head views of the runs' reports, and
  the report opens the head a link names.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import visualizer.model.registry as registry
import visualizer.pipeline as pipeline
from tests.support.browser import chromium
from tests.support.cli import run_cli
from tests.support.store import checkpoint, run
from visualizer.analysis.interventions.record import PatchOptions, planned_runs
from visualizer.model.registry import load_model


def read(folder: Path) -> dict:
    return json.loads((folder / "patching.json").read_text(encoding="utf-8"))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder (dot-files too) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_id(out: str) -> str:
    """The trace id a report run printed ('trace: ID in ROOT')."""
    return next(line.split()[1] for line in out.splitlines() if line.startswith("trace: "))


TOKENS = ("--answer", "#0", "--wrong", "#1")  # a random model's top tokens may coincide: name two


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small random model; a patch run from two texts; both probes stored as traces."""
    root = tmp_path_factory.mktemp("patch-inputs")
    ckpt = checkpoint(root / "model", seed=3)
    clean, corrupt = "abcd efg", "abxd efg"
    code, _, stderr = run_cli("patch", "--checkpoint", ckpt, "--clean", clean, "--corrupt", corrupt,
                              "--knockout", "1.1:-1:2", *TOKENS, "--out", root / "patch", "--quiet")
    assert code == 0, stderr
    ids = {}
    for run_name, text in (("clean", clean), ("corrupt", corrupt)):
        code, out, stderr = run_cli("--checkpoint", ckpt, "--probe", text, "--out", root / f"report-{run_name}",
                                    "--store", root / "store")
        assert code == 0, stderr
        ids[run_name] = stored_id(out)
    return {"root": root, "ckpt": ckpt, "clean": clean, "corrupt": corrupt, "patch": root / "patch",
            "store": root / "store", "ids": ids}


# --- render ------------------------------------------------------------------------------------------


def test_render_redraws_a_patch_folder_byte_for_byte_without_the_model(tmp_path, monkeypatch):
    ckpt = checkpoint(tmp_path / "model")
    out = tmp_path / "patch"
    code, _, stderr = run_cli("patch", "--checkpoint", ckpt, "--clean", "abcd ef", "--corrupt", "abxd ef", "--answer", "#0",
                              "--wrong", "#1", "--knockout", "1.1:-1:2", "--out", out, "--quiet")
    assert code == 0, stderr
    assert {"index.html", "patching.json", "clean/index.html", "clean/trace.json", "corrupt/index.html",
            "corrupt/activations.safetensors"} <= set(tree(out))
    owner = json.loads((out / ".visualizer-folder.json").read_text(encoding="utf-8"))
    assert "clean/index.html" in owner["files"] and "corrupt/trace.json" in owner["files"]
    # no model from here on: the checkpoint is gone and loading one fails loudly
    shutil.rmtree(tmp_path / "model")

    def no_model(*args, **kwargs):
        raise AssertionError("render loaded a model")
    for target, name in ((registry, "load_model"), (registry, "_load"), (pipeline, "load_model"), (pipeline, "open_model")):
        monkeypatch.setattr(target, name, no_model)
    monkeypatch.setattr("torch.load", no_model)
    code, stdout, stderr = run_cli("render", out, "--out", tmp_path / "again", "--store", tmp_path / "store")
    assert code == 0, stderr
    assert f"report: {tmp_path / 'again' / 'index.html'}" in stdout
    original, again = tree(out), tree(tmp_path / "again")
    assert sorted(again) == sorted(original)
    assert [name for name in original if original[name] != again[name]] == []
    # rendered again from the re-render: still the same bytes
    assert run_cli("render", tmp_path / "again", "--out", tmp_path / "third")[0] == 0
    assert tree(tmp_path / "third") == original
    # refusals: the folder itself, a foreign folder, a damaged record (one line each)
    for args, message in (((out, "--out", out), "that is the patch folder itself"),
                          ((out, "--out", tmp_path / "again" / "clean"), "holds a visualizer report, not a patch")):
        code, _, stderr = run_cli("render", *args)
        assert code == 2 and message in stderr and stderr.count("\n") == 1, stderr
    (tmp_path / "again" / "patching.json").write_text("{", encoding="utf-8")
    code, _, stderr = run_cli("render", tmp_path / "again", "--out", tmp_path / "fourth")
    assert code == 2 and "patching.json: not a readable patching record" in stderr, stderr
    # a patch folder without the runs' reports (written before they existed): the page, without links
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(out / "patching.json", bare / "patching.json")
    assert run_cli("render", bare, "--out", tmp_path / "bare-page")[0] == 0
    page = (tmp_path / "bare-page" / "index.html").read_text(encoding="utf-8")
    assert "clean/index.html" not in page and "head_out_by_pos" in page


# --- two stored traces --------------------------------------------------------------------------------


def test_patch_from_two_stored_traces_equals_the_run_from_their_texts(pair, tmp_path):
    ids, store = pair["ids"], pair["store"]
    out = tmp_path / "from-traces"
    # no --checkpoint: the model is the one the traces' manifest names; ids given by unique prefix
    code, stdout, stderr = run_cli("patch", "--clean-trace", ids["clean"][:6], "--corrupt-trace", ids["corrupt"],
                                   "--store", store, "--knockout", "1.1:-1:2", *TOKENS, "--out", out)
    assert code == 0, stderr
    assert f"model of trace {ids['clean']}: {Path(pair['ckpt']).resolve()}" in stdout
    ours, theirs = read(out), read(pair["patch"])
    assert (ours["clean"]["trace"], ours["corrupt"]["trace"]) == (ids["clean"], ids["corrupt"])
    assert theirs["clean"]["trace"] is None
    for key in ("sweeps", "ablation", "metric", "verification"):
        assert ours[key] == theirs[key], key
    assert ours["clean"]["ids"] == theirs["clean"]["ids"] and ours["clean"]["text"] == pair["clean"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert f"from stored trace <code>{ids['clean']}</code>" in page and f"<code>{ids['corrupt']}</code>" in page
    # a trace and a text mixed
    code, _, stderr = run_cli("patch", "--clean-trace", ids["clean"], "--corrupt", pair["corrupt"], "--store", store,
                              *TOKENS, "--out", tmp_path / "mixed", "--quiet")
    assert code == 0, stderr
    mixed = read(tmp_path / "mixed")
    assert mixed["sweeps"] == theirs["sweeps"] and mixed["corrupt"]["trace"] is None


def test_traces_of_different_models_or_lengths_are_refused(pair, tmp_path):
    store = tmp_path / "store"
    other = checkpoint(tmp_path / "other", seed=1)
    assert run(checkpoint(tmp_path / "first", seed=0), tmp_path / "r0", store, probe="abcd") == 0
    first = next(p.name for p in store.iterdir())
    assert run(other, tmp_path / "r1", store, probe="abce") == 0
    second = next(p.name for p in store.iterdir() if p.name != first)
    assert run(other, tmp_path / "r2", store, probe="abcdefg") == 0
    longer = next(p.name for p in store.iterdir() if p.name not in (first, second))
    cases = [
        (("--clean-trace", first, "--corrupt-trace", second), f"--clean-trace {first} and --corrupt-trace {second} are "
                                                              "traces of different models"),
        (("--clean-trace", first, "--corrupt", "abce", "--checkpoint", other),
         f"--clean-trace {first}: the trace was made with weights of sha256"),
        (("--clean-trace", second, "--corrupt-trace", longer),
         f"--clean-trace {second} has 4 tokens and --corrupt-trace {longer} has 7"),
        (("--clean-trace", "0000000000"), "trace 0000000000: not in the store"),
        (("--clean-trace", first, "--clean", "abcd"), "argument --clean: not allowed with argument --clean-trace"),
        (("--corrupt", "abcd",), "the following arguments are required: --clean"),
        (("--clean", "abcd", "--wrong", "#1", "--checkpoint", other),
         "--wrong #1: the wrong token is scored against a corrupt run"),
        (("--clean-trace", tmp_path / "r0"), "a report folder, not a stored trace"),
    ]
    for flags, message in cases:
        code, _, stderr = run_cli("patch", "--store", store, "--out", tmp_path / "o", "--quiet", *flags)
        assert code == 2 and message in stderr and stderr.count("\n") == 1, (flags, stderr)
    assert not (tmp_path / "o").exists()


# --- ablation alone -----------------------------------------------------------------------------------


def test_with_no_corrupt_probe_only_the_ablation_runs(pair, tmp_path):
    for flags, name in ((("--checkpoint", pair["ckpt"], "--clean", pair["clean"]), "text"),
                        (("--clean-trace", pair["ids"]["clean"], "--store", pair["store"]), "trace")):
        out = tmp_path / name
        code, stdout, stderr = run_cli("patch", *flags, "--knockout", "1.1:-1:2", "--answer", "#0", "--out", out)
        assert code == 0, stderr
        assert "ablation only (no corrupt probe)" in stdout
        record, full = read(out), read(pair["patch"])
        assert record["corrupt"] is None and record["sweeps"] == {} and record["verification_passed"]
        assert record["metric"]["answer"] == full["metric"]["answer"] and record["metric"]["wrong"] is None
        assert record["ablation"] == full["ablation"]  # the same probe, answer and ablation: the same numbers
        loaded = load_model(pair["ckpt"], None)
        assert record["runs"] == planned_runs(loaded, len(record["clean"]["ids"]), PatchOptions(), 1, sweeps=False)
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["assets", "clean"]
        page = (out / "index.html").read_text(encoding="utf-8")
        assert "what if: ablation" in page and "Patching by layer" not in page and "Heads and MLPs" in page


# --- links into the runs' reports ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def test_maps_link_to_the_layer_and_head_views_of_the_runs_reports(pair, browser):
    folder = pair["patch"]
    page = (folder / "index.html").read_text(encoding="utf-8")
    record = read(folder)
    n_layer, n_head = record["dims"]["n_layer"], record["dims"]["n_head"]
    for layer in range(n_layer):
        assert f'href="clean/index.html#layer-{layer}"' in page
        for head in range(n_head):
            assert f'href="clean/index.html#layer-{layer}-head-{head}"' in page
    assert 'href="clean/index.html">its report</a>' in page and 'href="corrupt/index.html">its report</a>' in page
    # following the link of the head that matters most opens its layer with that head selected
    heads = record["sweeps"]["head_out"]["values"]
    layer, head = max(((l, h) for l in range(n_layer) for h in range(n_head)), key=lambda lh: heads[lh[0]][lh[1]])
    tab = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto((folder / "index.html").resolve().as_uri())
    tab.locator(f'table.heat a[href="clean/index.html#layer-{layer}-head-{head}"]').first.click()
    tab.wait_for_function(f"document.querySelector('#layer-{layer}').getAttribute('data-state') === 'ready'", timeout=30_000)
    pressed = tab.evaluate(f"Array.from(document.querySelectorAll('#layer-{layer} .head-btn'))"
                           ".map(b => b.getAttribute('aria-pressed'))")
    assert pressed == ["true" if h == head else "false" for h in range(n_head)]
    assert f"Pattern of head {head}:" in tab.locator(f"#layer-{layer} .heatmap-title").text_content()
    assert errors == []
    tab.close()
    assert os.path.isfile(folder / "corrupt" / "index.html")
