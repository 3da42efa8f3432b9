"""Trace store: every run kept, listed, shown, summarised, removed, re-rendered without the model;
damaged traces named in one line while the rest keep working; deterministic files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import visualizer.cli as cli
import visualizer.store.traces as store
from visualizer.errors import VisualizerError

from tests.support.store import PROBE, checkpoint, only_trace, run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """One checkpoint, one run stored with tags and a category."""
    base = tmp_path_factory.mktemp("stored")
    ckpt = checkpoint(base / "model")
    assert run(ckpt, base / "report", base / "traces", "--tag", "early", "--tag", "probe-a", "--category", "run1") == 0
    return {"base": base, "ckpt": ckpt, "report": base / "report", "root": base / "traces",
            "trace": only_trace(base / "traces")}


@pytest.fixture
def store_copy(stored, tmp_path):
    """A private copy of the stored trace's store, free to damage."""
    root = tmp_path / "traces"
    shutil.copytree(stored["root"], root)
    return root, root / stored["trace"].name


def main(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse usage errors exit from inside, as in the real CLI
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_round_trip_files_and_manifest(stored):
    folder, report = stored["trace"], stored["report"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert store.ID_PATTERN.fullmatch(manifest["id"]) and manifest["id"] == folder.name
    for name in ("trace.json", "activations.safetensors", "report_data.json", "analysis.json", "attribution.json"):
        assert (folder / name).read_bytes() == (report / name).read_bytes(), name
        assert manifest["files"][name]["bytes"] == (folder / name).stat().st_size
    assert manifest["probe"] == PROBE and len(manifest["tokens"]) == len(manifest["token_ids"]) == len(PROBE)
    assert manifest["tags"] == ["early", "probe-a"] and manifest["category"] == "run1"
    assert manifest["model"]["path"] == str(stored["ckpt"].resolve())
    assert manifest["model"]["checkpoint_sha256"] == store.file_record(stored["ckpt"])["sha256"]
    assert manifest["kept"] == {"all_groups": True, "dtype": "float32", "groups": sorted(store.GROUPS),
                                "tensors": len(load_file(str(folder / "activations.safetensors")))}
    trace = json.loads((folder / "trace.json").read_text())
    assert manifest["summary"]["next_token"] == trace["next_tokens"][0]["token"]
    assert manifest["summary"]["probe_loss_nats"] > 0
    assert manifest["created"].endswith("Z") and "created" not in trace  # the clock lives in the manifest only


def test_list_show_summary(stored, capsys):
    root, tid = str(stored["root"]), stored["trace"].name
    code, out, err = main(["traces", "list", "--store", root], capsys)
    assert code == 0 and tid in out and "1 of 1 traces" in out and not err
    code, out, _ = main(["traces", "list", "--store", root, "--tag", "early", "--json"], capsys)
    assert [m["id"] for m in json.loads(out)] == [tid]
    assert "0 of 1" in main(["traces", "list", "--store", root, "--tag", "late"], capsys)[1]
    assert "1 of 1" in main(["traces", "list", "--store", root, "--tag", "run1"], capsys)[1]  # category counts
    assert "1 of 1" in main(["traces", "list", "--store", root, "--model", "model"], capsys)[1]
    assert "0 of 1" in main(["traces", "list", "--store", root, "--model", "other"], capsys)[1]
    code, out, _ = main(["traces", "show", tid[:4], "--store", root], capsys)
    assert code == 0 and f"id            {tid}" in out and "early, probe-a" in out and "activations.safetensors" in out
    code, out, _ = main(["traces", "summary", "--store", root, "--json"], capsys)
    summary = json.loads(out)
    assert summary["traces"] == 1 and summary["tags"] == {"early": 1, "probe-a": 1} and summary["categories"] == {"run1": 1}
    assert summary["models"][0]["traces"] == 1 and summary["models"][0]["mean_probe_loss_nats"] > 0


def test_store_root_from_env_file(stored, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TRACE_STORE", raising=False)
    env = tmp_path / "x.env"
    env.write_text(f"TRACE_STORE={stored['root']}\n")
    code, out, _ = main(["traces", "list", "--env-file", str(env)], capsys)
    assert code == 0 and stored["trace"].name in out
    monkeypatch.setenv("TRACE_STORE", str(tmp_path / "empty"))
    code, out, _ = main(["traces", "list"], capsys)
    assert code == 0 and "0 of 0 traces" in out


def test_rm(store_copy, capsys):
    root, folder = store_copy
    code, out, _ = main(["traces", "rm", folder.name, "--store", str(root)], capsys)
    assert code == 0 and out.strip() == f"removed {folder.name}" and not folder.exists()
    assert not [p for p in root.iterdir()]  # no temporary folder left behind
    code, _, err = main(["traces", "rm", folder.name, "--store", str(root)], capsys)
    assert_one_error(code, err, folder.name, "not in the store")


def test_rm_refuses_folders_outside_the_store(stored, tmp_path, capsys):
    code, _, err = main(["traces", "rm", str(stored["report"]), "--store", str(tmp_path)], capsys)
    assert_one_error(code, err, "not a trace of the store")
    assert (stored["report"] / "trace.json").is_file()


def damage_truncate(folder):
    path = folder / "activations.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    return "activations.safetensors"


def damage_manifest_json(folder):
    path = folder / "manifest.json"
    path.write_text(path.read_text()[:-40])
    return "manifest.json"


def damage_manifest_field(folder):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["token_ids"] = "not a list"
    path.write_text(json.dumps(manifest))
    return "token_ids"


def damage_missing(folder):
    (folder / "trace.json").unlink()
    return "trace.json"


def damage_edited_trace(folder):
    path = folder / "trace.json"
    path.write_text(path.read_text().replace("verification", "verificatiom", 1))
    return "trace.json"


@pytest.mark.parametrize("damage", [damage_truncate, damage_manifest_json, damage_manifest_field, damage_missing,
                                    damage_edited_trace])
def test_damaged_trace_is_named_and_the_rest_still_work(damage, stored, store_copy, tmp_path, capsys):
    root, folder = store_copy
    good = root / "0123456789"
    shutil.copytree(folder, good)
    manifest = json.loads((good / "manifest.json").read_text())
    manifest["id"] = good.name
    (good / "manifest.json").write_text(json.dumps(manifest))
    needle = damage(folder)
    for argv in (["traces", "show", folder.name], ["render", folder.name, "--out", str(tmp_path / "out")],
                 ["compare", folder.name, good.name, "--out", str(tmp_path / "cmp")]):
        code, _, err = main([*argv, "--store", str(root)], capsys)
        assert_one_error(code, err, f"trace {folder.name}", needle)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cmp").exists()
    code, out, err = main(["traces", "list", "--store", str(root)], capsys)
    assert code == 0 and good.name in out
    manifest_damaged = needle in ("manifest.json", "token_ids")
    assert (folder.name in err) == manifest_damaged  # list reads manifests only
    code, out, _ = main(["traces", "summary", "--store", str(root)], capsys)
    assert code == 0 and ("1 damaged" in out) == manifest_damaged
    assert main(["render", good.name, "--out", str(tmp_path / "good"), "--store", str(root)], capsys)[0] == 0
    assert main(["traces", "rm", folder.name, "--store", str(root)], capsys)[0] == 0  # damaged ones can go


def test_render_rebuilds_the_report_without_the_model(stored, tmp_path, monkeypatch, capsys):
    import visualizer.model.nanogpt.adapter as nanogpt
    import visualizer.model.nanogpt.model as model

    def refuse(*args, **kwargs):
        raise AssertionError("render must not load or run the model")

    monkeypatch.setattr(nanogpt, "load", refuse)
    monkeypatch.setattr(model.GPT, "forward", refuse)
    monkeypatch.setattr(model.GPT, "forward_from_embeddings", refuse)
    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    out = tmp_path / "rendered"
    code, stdout, err = main(["render", stored["trace"].name, "--out", str(out), "--store", str(stored["root"])], capsys)
    assert code == 0, err
    assert (out / "index.html").read_bytes() == (stored["report"] / "index.html").read_bytes()
    for name in ("trace.json", "activations.safetensors", "analysis.json", "attribution.json", "report_data.json"):
        assert (out / name).is_file()
    assert (out / "assets" / "style.css").is_file()
    html = (out / "index.html").read_text()
    assert 'id="attribution"' in html and 'id="analysis"' in html


def test_float16_and_kept_groups(stored, tmp_path):
    root = tmp_path / "traces"
    options = store.StoreOptions(root=root, dtype="float16", keep=("attn", "logits"))
    manifest = store.save(stored["report"], stored["ckpt"], options, created="2000-01-01T00:00:00Z")
    folder = root / manifest["id"]
    tensors = load_file(str(folder / "activations.safetensors"))
    full = load_file(str(stored["report"] / "activations.safetensors"))
    expected = sorted(n for n in full if store.tensor_group(n) in ("attn", "logits"))
    assert sorted(tensors) == expected and "logits" in tensors and "blocks.1.attn.hook_pattern" in tensors
    assert "blocks.0.hook_resid_post" not in tensors and "blocks.0.attn.hook_q" not in tensors
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert torch.allclose(tensors["logits"].float(), full["logits"], atol=1e-2, rtol=1e-3)
    assert manifest["kept"] == {"all_groups": False, "dtype": "float16", "groups": ["attn", "logits"], "tensors": len(expected)}
    assert manifest["id"] != stored["trace"].name  # kept groups and dtype are part of the id
    assert store.open_trace(root, manifest["id"]).manifest == manifest  # sizes and hashes check out
    again = store.save(stored["report"], stored["ckpt"], options)
    assert again["id"] == manifest["id"] + "-2"


def test_kept_groups_cover_every_capture_name(stored):
    names = load_file(str(stored["report"] / "activations.safetensors"))
    groups = {store.tensor_group(n) for n in names}
    assert "other" not in groups and groups == set(store.GROUPS) - {"other"}


def test_partial_trace_renders_and_analyses_what_it_has(stored, tmp_path, capsys):
    root = tmp_path / "traces"
    manifest = store.save(stored["report"], stored["ckpt"], store.StoreOptions(root=root, keep=("attn", "logits")))
    folder = root / manifest["id"]
    (folder / "analysis.json").unlink()  # render recomputes it from what is there
    del manifest["files"]["analysis.json"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = main(["render", manifest["id"], "--out", str(tmp_path / "out"), "--store", str(root)], capsys)
    assert code == 0, err
    analysis = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert analysis["residual"] is None and analysis["mlp"] is None
    assert analysis["attention"]["heads"] and analysis["logits"]["mean_loss_nats"] > 0
    assert any("residual: not available" in note for note in analysis["notes"])


def test_trace_without_attention_cannot_be_rendered_but_compares(stored, tmp_path, capsys):
    root = tmp_path / "traces"
    manifest = store.save(stored["report"], stored["ckpt"], store.StoreOptions(root=root, keep=("logits",)))
    code, _, err = main(["render", manifest["id"], "--out", str(tmp_path / "out"), "--store", str(root)], capsys)
    assert_one_error(code, err, f"trace {manifest['id']}", "--keep logits", "cannot be rendered")
    assert not (tmp_path / "out").exists()
    code, out, err = main(["compare", manifest["id"], str(stored["trace"]), "--out", str(tmp_path / "cmp"),
                           "--store", str(root)], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["next_token"]["mean_kl_bits"] == 0.0 and result["attention_jsd"] is None


def test_list_ignores_writes_in_progress(stored, tmp_path, capsys):
    root = tmp_path / "traces"
    shutil.copytree(stored["root"], root)
    (root / ".tmp-half").mkdir()
    (root / ".tmp-half" / "trace.json").write_text("{")
    code, out, err = main(["traces", "list", "--store", str(root)], capsys)
    assert code == 0 and "1 of 1" in out and not err


def test_two_runs_give_identical_files(tmp_path):
    """Separate processes (safetensors' metadata order is per process): identical trace.json and
    activations bytes; manifests differ only in the created time."""
    ckpt = checkpoint(tmp_path / "model")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for i in (1, 2):
        subprocess.run([sys.executable, "-m", "visualizer", "--checkpoint", str(ckpt), "--probe", PROBE, "--out",
                        str(tmp_path / f"r{i}"), "--store", str(tmp_path / f"s{i}"), "--quiet", "--ig-steps", "8"],
                       check=True, cwd=tmp_path, env=env)
    a, b = only_trace(tmp_path / "s1"), only_trace(tmp_path / "s2")
    assert a.name == b.name
    for name in ("trace.json", "activations.safetensors", "report_data.json", "analysis.json", "attribution.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (tmp_path / "r1" / "index.html").read_bytes() == (tmp_path / "r2" / "index.html").read_bytes()
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    ma.pop("created"), mb.pop("created")
    assert ma["model"]["path"] == mb["model"]["path"] and ma == mb


def test_no_store_and_bad_store_options(stored, tmp_path, capsys):
    out = tmp_path / "r"
    code = cli.main(["--checkpoint", str(stored["ckpt"]), "--probe", "hi there", "--out", str(out), "--quiet",
                     "--no-store", "--store", str(tmp_path / "s"), "--ig-steps", "0"])
    assert code == 0 and not (tmp_path / "s").exists()
    attribution = json.loads((out / "attribution.json").read_text())
    assert [m["name"] for m in attribution["methods"]] == ["gradient_x_input", "attention_rollout"]
    code, _, err = main(["--checkpoint", str(stored["ckpt"]), "--probe", "hi", "--out", str(tmp_path / "x"),
                         "--store", str(tmp_path / "s"), "--keep", "attn,bogus"], capsys)
    assert_one_error(code, err, "--keep 'bogus'", "unknown tensor group")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = main(["--checkpoint", str(stored["ckpt"]), "--probe", "hi", "--out", str(tmp_path / "y"),
                         "--store", str(blocker / "sub")], capsys)
    assert_one_error(code, err, "--store", str(blocker / "sub"))
    assert not (tmp_path / "y").exists()  # checked before any report is written


def test_cli_errors_are_one_line(stored, tmp_path, capsys):
    root = str(stored["root"])
    for argv, needles in (
        (["traces", "show", "abcdef0123", "--store", root], ("abcdef0123", "not in the store")),
        (["traces", "show", "no-such", "--store", root], ("no-such",)),
        (["traces", "frobnicate"], ("invalid choice",)),
        (["traces"], ("required",)),
        (["render", stored["trace"].name], ("--out",)),
        (["compare", stored["trace"].name, "--out", str(tmp_path / "c")], ("B",)),
        (["render", stored["trace"].name, "--out", str(stored["trace"]), "--store", root], ("the trace itself",)),
    ):
        code, _, err = main(argv, capsys)
        assert_one_error(code, err, *needles)


def test_resolve_rejects_ambiguous_prefixes(tmp_path):
    for name in ("abc0000001", "abc0000002"):
        (tmp_path / name).mkdir()
    with pytest.raises(VisualizerError, match="ambiguous"):
        store.resolve(tmp_path, "abc")
    assert store.resolve(tmp_path, "abc0000002") == tmp_path / "abc0000002"


HOSTILE = ["<unk>", " ", "\n", "<script>", "</script>", "<b>", "&amp;", '"', "'", "a", "b", "😀", "x=\"1\""]


def test_hostile_tokens_are_escaped_in_every_new_section(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "model", vocab=HOSTILE, block_size=32)
    probe = '<script>a</script> <b>&amp;"\'😀 x="1"'
    root = tmp_path / "traces"
    assert run(ckpt, tmp_path / "a", root, "--ig-steps", "4", probe=probe) == 0
    assert run(ckpt, tmp_path / "b", root, "--ig-steps", "4", "--tag", "two", probe=probe + " a") == 0
    ids = [m["id"] for m in store.scan(root).manifests]
    assert cli.main(["compare", *ids, "--out", str(tmp_path / "cmp"), "--store", str(root)]) == 0
    for page in (tmp_path / "a" / "index.html", tmp_path / "cmp" / "index.html"):
        html = page.read_text()
        assert "<script>a" not in html and "<b>" not in html and 'x="1"' not in html, page
        assert "&lt;script&gt;" in html and "😀" in html
    config = (tmp_path / "cmp" / "index.html").read_text().split('id="hv-config">')[1].split("</script>")[0]
    assert "<" not in config and json.loads(config)["tokens_a"][0] == "<script>"
    code, out, _ = main(["traces", "list", "--store", str(root)], capsys)
    assert code == 0 and "<script>a</script>" in out  # the terminal shows the text as it is
