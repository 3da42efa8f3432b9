"""`generate` takes the report's model options through the same settings layer: --family, --step,
--tokenizer, --chat, --device, and MODEL/DEVICE from .env."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.cli import run_cli
from tests.support.nanochat import make_nanochat
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model

GEN = ("--max-new-tokens", "3", "--snapshot-every", "0", "--temperature", "0", "--quiet")


@pytest.fixture(scope="module")
def nanochat_run(tmp_path_factory):
    """A nanochat folder with two steps (weights differ) and its tokenizer moved elsewhere."""
    base = tmp_path_factory.mktemp("nc")
    folder = make_nanochat(base, architecture="current", steps=(10, 20), sequence_len=64)
    tokenizer = base.parent / f"{base.name}-tok"
    shutil.move(str(base / "tokenizer"), str(tokenizer))
    return folder, tokenizer


def generation(out):
    return json.loads((out / "generation.json").read_text(encoding="utf-8"))


def test_generate_reads_step_tokenizer_and_family(tmp_path, nanochat_run):
    folder, tokenizer = nanochat_run
    records = {}
    for step in (10, 20):
        out = tmp_path / f"s{step}"
        code, _, stderr = run_cli("generate", "--checkpoint", folder, "--family", "nanochat", "--step", step,
                                  "--tokenizer", tokenizer, "--prompt", "hello there", "--out", out, *GEN)
        assert code == 0, stderr
        records[step] = generation(out)
        assert records[step]["model"]["step"] == step
    # the two steps' weights differ: so do their first next-token distributions
    assert records[10]["model"]["checkpoint_sha256"] != records[20]["model"]["checkpoint_sha256"]
    assert records[10]["steps"][0]["candidates_before"] != records[20]["steps"][0]["candidates_before"]


def test_generate_without_the_tokenizer_flag_names_what_is_missing(tmp_path, nanochat_run):
    folder, _ = nanochat_run
    code, _, stderr = run_cli("generate", "--checkpoint", folder, "--prompt", "hi", "--out", tmp_path / "g", *GEN)
    assert code == 2 and stderr.startswith("error: ") and "tokenizer" in stderr and stderr.count("\n") == 1


def test_generate_chat_prompt_is_the_models_chat_turn(tmp_path, nanochat_run):
    folder, tokenizer = nanochat_run
    out = tmp_path / "chat"
    code, _, stderr = run_cli("generate", "--checkpoint", folder, "--tokenizer", tokenizer, "--chat", "what is 2+2?",
                              "--out", out, *GEN)
    assert code == 0, stderr
    loaded = load_model(folder, None, tokenizer=tokenizer)
    expected = prepare_probe(loaded, "what is 2+2?", chat=True).ids
    assert generation(out)["prompt_ids"] == expected
    assert json.loads((out / "prompt" / "trace.json").read_text(encoding="utf-8"))["chat"] is True


def test_generate_refuses_two_prompts(tmp_path, nanochat_run):
    folder, tokenizer = nanochat_run
    code, _, stderr = run_cli("generate", "--checkpoint", folder, "--tokenizer", tokenizer, "--chat", "a",
                              "--prompt", "b", "--out", tmp_path / "g", *GEN)
    assert code == 2 and "--prompt and --chat" in stderr


def test_generate_takes_model_and_device_from_the_env_file(tmp_path):
    from tests.support.nanogpt import make_checkpoint

    ckpt, meta = make_checkpoint(tmp_path / "m", n_layer=1, n_head=2, n_embd=16, block_size=32)
    env = tmp_path / "settings.env"
    env.write_text(f"MODEL={ckpt}\nNANOGPT_META_PATH={meta}\nDEVICE=cpu\n", encoding="utf-8")
    out = tmp_path / "g"
    code, _, stderr = run_cli("generate", "--env-file", env, "--prompt", "abc", "--out", out, *GEN)
    assert code == 0, stderr
    import hashlib

    assert generation(out)["model"]["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
