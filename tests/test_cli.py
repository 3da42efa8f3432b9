"""The command line: outputs, settings precedence, the error contract, determinism, escaping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.nanogpt import HOSTILE_VOCAB, make_checkpoint
from tests.support.cli import REPO_ROOT, run_cli
import visualizer.capture.attention as attention_module


@pytest.fixture
def model(tmp_path):
    return make_checkpoint(tmp_path / "out-tiny", vocab=list("\n !',.:;?abcdefghijklmnopqrstuvwxyzRO"), block_size=24)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_into_exactly_out(tmp_path, model):
    ckpt, meta = model
    out = tmp_path / "report"
    code, stdout, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "OR: o, rare!", "--out", out)
    assert code == 0, stderr
    names = set(files_of(out))
    assert {"index.html", "trace.json", "activations.safetensors", "report_data.json"} <= names
    trace = json.loads((out / "trace.json").read_text())
    assert trace["probe"] == "OR: o, rare!"
    assert "".join(trace["tokens"]) == "OR: o, rare!"
    assert trace["dropped_tokens"] == 0 and trace["verification_passed"] is True
    assert trace["model"]["iter_num"] == 100 and trace["model"]["n_params"] > 0
    assert set(trace["verification"]) >= {"pattern @ v == z", "resid_mid == resid_pre + attn_out",
                                          "resid_post == resid_mid + mlp_out", "hooked logits == plain forward logits"}
    tensors = load_file(str(out / "activations.safetensors"))
    assert "blocks.1.hook_resid_mid" in tensors and "blocks.0.attn.hook_pattern" in tensors
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert tensors["logits"].shape == (len(trace["token_ids"]), trace["dims"]["vocab_size"])
    assert f"report: {out / 'index.html'}" in stdout
    assert not list(tmp_path.glob(".report.*")), "temporary folders left behind"


def test_two_runs_give_identical_bytes(tmp_path, model):
    ckpt, meta = model
    for name in ("a", "b"):
        assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", tmp_path / name)[0] == 0
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")


def test_figures_none_writes_the_same_data_and_page_views_without_pngs(tmp_path, model):
    ckpt, meta = model
    args = ("--checkpoint", ckpt, "--meta", meta, "--probe", "OR: o", "--no-store", "--ig-steps", "0")
    assert run_cli(*args, "--out", tmp_path / "all")[0] == 0
    code, _, stderr = run_cli(*args, "--out", tmp_path / "none", "--figures", "none")
    assert code == 0, stderr
    drawn, bare = files_of(tmp_path / "all"), files_of(tmp_path / "none")
    assert any(name.startswith("figures/") for name in drawn)
    assert not any(name.startswith("figures/") for name in bare)
    page = bare["index.html"].decode()
    assert "--figures none" in page and "<img" not in page and "figures/" not in page
    # everything but the pictures is the same: the data files, the views' data, the assets
    same = {n for n in drawn if not n.startswith("figures/") and n not in ("index.html", ".visualizer-folder.json")}
    assert same and all(bare[n] == drawn[n] for n in same), sorted(n for n in same if bare[n] != drawn[n])


def test_long_probe_keeps_the_last_block_size_tokens(tmp_path, model):
    ckpt, meta = model
    probe = "abcdefghij" * 3  # 30 characters, block_size 24
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", probe, "--out", tmp_path / "r")
    assert code == 0
    assert "warning: the probe has 30 tokens, more than the model's context of 24" in stderr
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["dropped_tokens"] == 6 and len(trace["token_ids"]) == 24
    assert "".join(trace["tokens"]) == probe[6:]
    assert "dropped the first 6" in (tmp_path / "r" / "index.html").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "{tmp}/nope.pt"], "nope.pt: checkpoint not found"),
        (["--probe", ""], "the probe is empty"),
        (["--probe", "abc#"], "character '#' (U+0023) at position 3 is not in the vocabulary"),
        (["--out", "{tmp}/file.txt/report"], "cannot write there"),
        (["--out", "{tmp}/busy"], "folder is not empty and holds no earlier report"),
        (["--meta", "{tmp}/missing-meta.pkl"], "missing-meta.pkl: meta.pkl not found"),
        (["--device", "tpu"], "--device 'tpu'"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, model, args, message):
    ckpt, meta = model
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "precious.txt").write_text("keep me")
    base = {"--checkpoint": str(ckpt), "--meta": str(meta), "--probe": "a rose", "--out": str(tmp_path / "r")}
    argv = []
    given = dict(zip(args[::2], args[1::2])) if len(args) % 2 == 0 else {}
    for flag, value in {**base, **given}.items():
        argv += [flag, value.replace("{tmp}", str(tmp_path))]
    if len(args) % 2:
        argv += args
    code, stdout, stderr = run_cli(*argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
    assert (tmp_path / "busy" / "precious.txt").read_text() == "keep me"


def test_a_failed_run_keeps_the_earlier_report(tmp_path, model):
    ckpt, meta = model
    out = tmp_path / "r"
    assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", out)[0] == 0
    before = files_of(out)
    assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a ros#", "--out", out)[0] == 2
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-tiny", "r"]


def test_verification_failure_is_loud_on_terminal_and_page(tmp_path, model, monkeypatch):
    ckpt, meta = model
    real = attention_module.derive_attention

    def wrong_scale(loaded, store):
        real(loaded, store)
        for layer in range(loaded.dims.n_layer):
            store[f"blocks.{layer}.attn.hook_pattern"] = torch.softmax(
                store[f"blocks.{layer}.attn.hook_attn_scores"] * 2, -1)

    monkeypatch.setattr(attention_module, "derive_attention", wrong_scale)
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose", "--out", tmp_path / "r")
    assert code == 3
    assert "VERIFICATION FAILED: pattern @ v == z" in stderr
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Verification failed" in page
    assert json.loads((tmp_path / "r" / "trace.json").read_text())["verification"]["pattern @ v == z"]["passed"] is False


def test_flags_win_over_environment_and_dotenv(tmp_path, model, monkeypatch):
    ckpt, meta = model
    monkeypatch.chdir(tmp_path)
    for key in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT", "DEVICE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".env").write_text(f"MODEL={ckpt}\nNANOGPT_META_PATH={meta}\nPROBE_SENTENCE=a rose\nOUT=from-dotenv\n")
    assert run_cli()[0] == 0
    assert json.loads((tmp_path / "from-dotenv" / "trace.json").read_text())["probe"] == "a rose"
    monkeypatch.setenv("PROBE_SENTENCE", "o rare")
    assert run_cli("--out", "from-flag")[0] == 0
    assert json.loads((tmp_path / "from-flag" / "trace.json").read_text())["probe"] == "o rare"
    assert run_cli("--out", "from-flag2", "--probe", "so sweet")[0] == 0
    assert json.loads((tmp_path / "from-flag2" / "trace.json").read_text())["probe"] == "so sweet"


def test_default_location_and_site_index(tmp_path, model, monkeypatch):
    ckpt, meta = model
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_cli("--checkpoint", ckpt, "--probe", "a rose", "--probe", "o rare")
    assert code == 0
    reports = sorted(Path("visualizations/out-tiny").glob("*/index.html"))
    assert [p.parent.name.split("-")[0] for p in reports] == ["a", "o"]
    index = Path("visualizations/index.html").read_text()
    for report in reports:
        assert f'href="out-tiny/{report.parent.name}/index.html"' in index
    assert "file://" not in index and 'href="/' not in index


def test_hostile_vocabulary_is_escaped_in_the_page(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path / "m", vocab=HOSTILE_VOCAB, block_size=32)
    probe = '<script>alert(1)</script>" onmouseover="x&amp;😀'
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", probe, "--out", tmp_path / "r")
    assert code == 0, stderr
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '" onmouseover="x' not in page


def test_help_names_every_option_and_version():
    code, stdout, _ = run_cli("--help")
    assert code == 0
    for option in ("--checkpoint", "--meta", "--probe", "--out", "--device", "--quiet", "--debug", "--version", "--env-file"):
        assert option in stdout
    code, stdout, _ = run_cli("--version")
    assert code == 0 and stdout.startswith("visualizer ")


def test_module_entry_point_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "visualizer", "--checkpoint", str(tmp_path / "x.pt")],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'x.pt'}: checkpoint not found"]
    result = subprocess.run([sys.executable, "-m", "visualizer", "--checkpoint", str(tmp_path / "x.pt"), "--debug"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "Traceback" in result.stderr and result.returncode == 2


def test_no_flags_and_no_dotenv_reports_the_embedded_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT", "DEVICE"):
        monkeypatch.delenv(key, raising=False)
    code, stdout, stderr = run_cli("--quiet")
    assert code == 0, stderr
    (report,) = Path("visualizations/shakespeare-char").glob("*/trace.json")
    trace = json.loads(report.read_text())
    assert trace["probe"].startswith("ROMEO:\n") and trace["verification_passed"]
    assert trace["model"]["best_val_loss"] < 1.6  # the committed demo learned something
    from safetensors.torch import load_file

    logits = load_file(str(report.parent / "activations.safetensors"))["logits"]
    assert trace["next_tokens"][0]["id"] == int(logits[-1].argmax())  # the report's top token is the model's
    assert stdout == ""
