"""Generation for nanochat (both architectures) and Hugging Face (GPT-2, Llama, Mistral, Qwen2, Qwen3):
every family's cached `step` against `capture` over the same prefix, across sliding windows and a
crop, greedy generation against repeated full forwards (and, for Hugging Face models, against
transformers' own `generate`, past Mistral's window), and the `generate` command's outputs."""

from __future__ import annotations

import json

import pytest
import torch

from tests.support.hf import (
    make_gpt2_folder, make_llama_folder, make_mistral_folder, make_qwen2_folder, make_qwen3_folder,
)
from tests.support.cli import run_cli
from tests.support.nanochat import VOCAB_SIZE, make_nanochat
import visualizer.generation.sampling as sampling
from visualizer.capture import capture
from visualizer.generation.decode import generate
from visualizer.model.registry import load_model

TOL = 1e-4
SMALL_CTX = 24
FAMILIES = ("nanochat-current", "nanochat-original", "gpt2", "llama", "mistral", "qwen2", "qwen3")
HF = ("gpt2", "llama", "mistral", "qwen2", "qwen3")
MISTRAL_WINDOW = 5  # keys a Mistral query sees: far fewer than the steps below run


def build(kind: str, folder):
    if kind == "nanochat-current":  # 256: layer 0's sliding window is 128 keys, reached below
        return make_nanochat(folder, architecture="current", sequence_len=256, window_pattern="SL")
    if kind == "nanochat-original":
        return make_nanochat(folder, architecture="original", sequence_len=SMALL_CTX, tag="orig")
    if kind == "gpt2":
        return make_gpt2_folder(folder, n_positions=SMALL_CTX)
    if kind == "mistral":
        return make_mistral_folder(folder, n_positions=SMALL_CTX, sliding_window=MISTRAL_WINDOW)
    if kind == "qwen2":  # its second layer slides over 7 keys (layer_types)
        return make_qwen2_folder(folder, n_positions=SMALL_CTX, sliding_window=7, max_window_layers=1)
    if kind == "qwen3":
        return make_qwen3_folder(folder, n_positions=SMALL_CTX)
    return make_llama_folder(folder, n_positions=SMALL_CTX)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("genfam")
    return {kind: build(kind, root / kind) for kind in FAMILIES}


@pytest.fixture(scope="module")
def loaded_models(models):
    return {kind: load_model(folder, None) for kind, folder in models.items()}


def random_ids(loaded, n: int, seed: int = 0) -> list[int]:
    vocab = VOCAB_SIZE if loaded.family == "nanochat" else loaded.tokenizer.vocab_size
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def worst(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def check_new_positions(loaded, out, ids: list[int], new: int) -> None:
    """StepOutput for the last `new` positions of `ids` equals capture over all of `ids`."""
    full = capture(loaded, ids)
    T = len(ids)
    assert full.passed, full.failures()
    assert out.logits.shape == (new, loaded.dims.vocab_size)
    assert out.pattern.shape == (loaded.dims.n_layer, loaded.dims.n_head, new, T)
    assert worst(out.logits, full["logits"][T - new:]) <= TOL
    for layer in range(loaded.dims.n_layer):
        b = f"blocks.{layer}"
        assert worst(out.pattern[layer], full[f"{b}.attn.hook_pattern"][:, T - new:]) <= TOL, layer
        assert worst(out.z[layer], full[f"{b}.attn.hook_z"][T - new:]) <= TOL, layer
        assert worst(out.values[layer], full[f"{b}.attn.hook_v"]) <= TOL, layer
        assert worst(out.resid_post[layer], full[f"{b}.hook_resid_post"][T - new:]) <= TOL, layer
    if out.resid_final is not None:
        assert worst(out.resid_final, full["hook_resid_final"][T - new:]) <= TOL


@pytest.mark.parametrize("kind", FAMILIES)
def test_cached_steps_equal_capture_over_the_same_prefix(loaded_models, kind):
    """A prefill, a multi-token step after it, then one-token steps, each against capture."""
    loaded = loaded_models[kind]
    adapter = loaded.adapter
    n_ctx = loaded.dims.n_ctx
    prefill = 122 if n_ctx > 128 else 6  # nanochat current: the steps below cross layer 0's 128-key window
    total = min(n_ctx, prefill + 12)
    ids = random_ids(loaded, total)
    cache = adapter.start_cache(loaded)
    check_new_positions(loaded, adapter.step(loaded, cache, torch.tensor(ids[:prefill])), ids[:prefill], prefill)
    out = adapter.step(loaded, cache, torch.tensor(ids[prefill:prefill + 4]))  # 4 new positions after a prefix
    assert cache.length == prefill + 4
    check_new_positions(loaded, out, ids[:prefill + 4], 4)
    for t in range(prefill + 4, total):
        out = adapter.step(loaded, cache, torch.tensor([ids[t]]))
        check_new_positions(loaded, out, ids[: t + 1], 1)
    assert cache.length == total
    if kind == "nanochat-current":  # the window really cut: layer 0's last query sees 129 keys of 134
        window = adapter.windows[0]
        assert window == 128 and total - 1 > window
        row = out.pattern[0, :, -1]  # [nh, T]
        assert torch.all(row[:, : total - 1 - window] == 0) and torch.all(row[:, total - 1 - window:] > 0)
        assert torch.all(out.pattern[-1, :, -1] > 0)  # the last layer sees every key
    if kind == "mistral":  # every layer's last query sees its last 5 keys of 18, the cache holds all 18
        assert adapter.windows == [MISTRAL_WINDOW] * loaded.dims.n_layer and total > 3 * MISTRAL_WINDOW
        row = out.pattern[:, :, -1]  # [L, nh, T]
        assert torch.all(row[..., : total - MISTRAL_WINDOW] == 0) and torch.all(row[..., total - MISTRAL_WINDOW:] > 0)
        assert all(v.shape[0] == total for v in out.values)


@pytest.mark.parametrize("kind", ["nanochat-original", *HF])
def test_every_step_equals_capture_over_its_context_across_a_crop(loaded_models, kind):
    loaded = loaded_models[kind]
    prompt = random_ids(loaded, 10, seed=1)
    gen = generate(loaded, prompt, 20, sampling.Settings(temperature=1.0, seed=3))
    assert len(gen.steps) == 20
    # step s reads 10 + s tokens: step 14 reads 24 = n_ctx; from step 15 on the context is cropped
    assert gen.slides == list(range(15, 20))
    sequence = prompt + gen.ids
    for step in gen.steps:
        assert step.context_start == max(0, len(prompt) + step.index - SMALL_CTX)
        context = sequence[step.context_start : step.context_start + step.context_length]
        assert len(context) == min(SMALL_CTX, len(prompt) + step.index)
        full = capture(loaded, context)
        assert worst(step.logits, full["logits"][-1]) <= TOL, step.index
        rows = torch.stack([full[f"blocks.{l}.attn.hook_pattern"][:, -1] for l in range(loaded.dims.n_layer)])
        assert worst(step.attention, rows) <= TOL, step.index
    assert all(check["passed"] for check in gen.checks.values()), gen.checks


@pytest.mark.parametrize("kind", FAMILIES)
def test_greedy_generation_is_argmax_of_repeated_full_forwards(loaded_models, kind):
    loaded = loaded_models[kind]
    n_ctx = loaded.dims.n_ctx
    prompt = random_ids(loaded, 8, seed=2)
    gen = generate(loaded, prompt, 20, sampling.Settings(temperature=0))
    idx = list(prompt)
    for _ in range(20):
        with torch.no_grad():
            logits = loaded.adapter.plain_forward(loaded, torch.tensor(idx[-n_ctx:]))[-1]
        idx.append(int(logits.argmax()))
    assert gen.ids == idx[len(prompt):]
    assert all(check["passed"] for check in gen.checks.values()), gen.checks


@pytest.mark.parametrize("kind", HF)
def test_greedy_generation_equals_transformers_generate(models, loaded_models, kind):
    """Token for token, and the logits of every step, against `model.generate(do_sample=False)` of
    transformers' own model (eager attention, its own cache: for Mistral the sliding one)."""
    from transformers import AutoModelForCausalLM

    loaded = loaded_models[kind]
    prompt = random_ids(loaded, 6, seed=5)
    new = SMALL_CTX - len(prompt)  # up to the context: no crop, which transformers would not do
    gen = generate(loaded, prompt, new, sampling.Settings(temperature=0))
    reference = AutoModelForCausalLM.from_pretrained(models[kind], local_files_only=True, attn_implementation="eager").eval()
    reference.generation_config.eos_token_id = None  # ours runs to max_new_tokens whatever it picks
    with torch.no_grad():
        out = reference.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 max_new_tokens=new, do_sample=False, return_dict_in_generate=True, output_logits=True)
    assert gen.ids == out.sequences[0, len(prompt):].tolist()
    assert len(out.logits) == new and not gen.slides
    for step, logits in zip(gen.steps, out.logits):
        assert worst(step.logits, logits[0]) <= TOL, step.index
    assert all(check["passed"] for check in gen.checks.values()), gen.checks


def test_backout_is_checked_on_the_final_residual(loaded_models):
    """nanochat current subtracts a mid-layer residual before the head: the lens of the last block
    is not the logits, and the generic check reads the final residual instead."""
    loaded = loaded_models["nanochat-current"]
    gen = generate(loaded, random_ids(loaded, 5, seed=4), 3, sampling.Settings(temperature=0))
    assert "logit lens at the last layer == logits" not in gen.checks
    assert gen.checks["final norm and head on the final residual == logits"]["passed"]
    assert worst(gen.steps[-1].lens_logits[-1], gen.steps[-1].logits) > 1e-3


@pytest.mark.parametrize("kind", FAMILIES)
def test_generate_command_writes_the_outputs(tmp_path, models, kind):
    out = tmp_path / "g"
    code, stdout, stderr = run_cli("generate", "--checkpoint", models[kind], "--out", out, "--prompt", "the rose <&> is",
                                   "--max-new-tokens", "20", "--snapshot-every", "10", "--seed", "2")
    assert code == 0, stderr
    assert "verification passed" in stdout
    record = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert record["verification_passed"] and len(record["generated_ids"]) == 20
    assert (out / "output.txt").read_text(encoding="utf-8") == record["output"]
    assert record["output"].endswith(record["continuation"]) and "the rose <&> is" in record["output"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<&>" not in page and 'src="assets/generation.js"' in page
    assert (out / "prompt" / "index.html").is_file()
    if kind != "nanochat-current":
        assert record["slides"], "a 24-token context must crop within 20 new tokens"
