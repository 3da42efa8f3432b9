"""Capture equals what nanoGPT computes, on the real fixture and on models built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.nanogpt import HOSTILE_VOCAB, WORD_VOCAB, make_checkpoint
from tests.support.cli import NANOGPT_FIXTURE, need_fixture
import visualizer.capture.attention as attention_module
from visualizer.capture import capture
from visualizer.model.registry import load_model

REFERENCE_PROBE = "ROMEO:\nWhat light through yonder window breaks?"


def test_fixture_matches_nanogpt_reference_on_every_key():
    fixture = need_fixture(NANOGPT_FIXTURE)
    reference = np.load(fixture / "reference.npz")
    loaded = load_model(fixture / "ckpt.pt", None)
    ids = loaded.tokenizer.encode(REFERENCE_PROBE).ids
    assert ids == reference["token_ids"].tolist()
    cache = capture(loaded, ids)
    keys = [k for k in reference.files if k != "token_ids"]
    assert len(keys) > 50
    worst = {k: float(np.abs(cache[k].numpy() - reference[k]).max()) for k in keys}
    assert max(worst.values()) <= 1e-4, sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    probs = torch.softmax(cache["logits"][-1], -1)
    assert loaded.tokenizer.token_str(int(probs.argmax())) == "\n"
    assert abs(probs.max().item() - 0.942) < 1e-3
    assert cache.passed


def expected_names(n_layer: int) -> set[str]:
    names = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized", "logits"}
    for layer in range(n_layer):
        b = f"blocks.{layer}"
        names |= {f"{b}.{n}" for n in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
                                          "ln1.hook_normalized", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post")}
        names |= {f"{b}.attn.{n}" for n in ("hook_q", "hook_k", "hook_v", "hook_z", "hook_attn_scores", "hook_pattern")}
    return names


@pytest.mark.parametrize(
    "options",
    [
        dict(bias=True),
        dict(compiled=True, with_optimizer=True),
        dict(dtype=torch.bfloat16),
        dict(dtype=torch.float16, n_head=4, n_embd=48, n_layer=3),
        dict(n_layer=1, n_head=1, n_embd=8, block_size=4),
    ],
    ids=["bias", "compiled+optimizer", "bf16", "fp16-3x4x48", "1x1x8"],
)
def test_variants_capture_every_name_with_shapes_and_verify(tmp_path, options):
    ckpt, meta = make_checkpoint(tmp_path, **options)
    loaded = load_model(ckpt, meta)
    ids = list(range(min(loaded.dims.n_ctx, 9)))
    cache = capture(loaded, ids)
    d, T = loaded.dims, len(ids)
    assert set(cache.tensors) == expected_names(d.n_layer)
    assert cache["blocks.0.attn.hook_q"].shape == (T, d.n_head, d.d_head)
    assert cache["blocks.0.attn.hook_pattern"].shape == (d.n_head, T, T)
    assert cache["blocks.0.mlp.hook_pre"].shape == (T, d.d_mlp)
    assert cache["logits"].shape == (T, d.vocab_size)
    assert all(t.dtype == torch.float32 for t in cache.tensors.values())
    assert cache.passed, cache.verification
    # the pattern is causal: nothing above the diagonal, rows sum to one
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.all(pattern.triu(1) == 0)
    assert torch.allclose(pattern.sum(-1), torch.ones(d.n_head, T), atol=1e-5)
    assert torch.isinf(cache["blocks.0.attn.hook_attn_scores"].triu(1)[:, 0, 1:]).all()


def test_hooks_are_removed_and_change_nothing(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, bias=True)
    loaded = load_model(ckpt, meta)
    ids = [1, 2, 3, 4, 5]
    with torch.no_grad():
        before = loaded.model(torch.tensor([ids]))[0]
    capture(loaded, ids)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in loaded.model.modules())
    with torch.no_grad():
        after = loaded.model(torch.tensor([ids]))[0]
    assert torch.equal(before, after)


def test_a_wrong_derivation_fails_verification(tmp_path, monkeypatch):
    ckpt, meta = make_checkpoint(tmp_path)
    loaded = load_model(ckpt, meta)
    real = attention_module.derive_attention

    def broken(loaded, store):  # a plausible bug: forgetting the 1/sqrt(d_head) scale
        real(loaded, store)
        for layer in range(loaded.dims.n_layer):
            b = f"blocks.{layer}.attn"
            q, k = store[f"{b}.hook_q"], store[f"{b}.hook_k"]
            scores = torch.einsum("qhd,khd->hqk", q, k) * 3.0
            mask = torch.ones(q.shape[0], q.shape[0], dtype=torch.bool).tril()
            store[f"{b}.hook_pattern"] = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)

    monkeypatch.setattr(attention_module, "derive_attention", broken)
    cache = capture(loaded, [1, 2, 3, 4, 5, 6])
    assert not cache.passed
    assert cache.failures() == ["pattern @ v == z"]


@pytest.mark.parametrize("vocab", [WORD_VOCAB, HOSTILE_VOCAB], ids=["word", "hostile"])
def test_word_and_hostile_vocabularies_capture(tmp_path, vocab):
    ckpt, meta = make_checkpoint(tmp_path, vocab=vocab, block_size=32)
    loaded = load_model(ckpt, meta)
    assert loaded.tokenizer.kind == "word"
    ids = list(range(len(vocab)))[:32]
    cache = capture(loaded, ids)
    assert cache.passed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_capture_matches_cpu(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, bias=True)
    cpu = capture(load_model(ckpt, meta, "cpu"), [1, 2, 3, 4])
    gpu = capture(load_model(ckpt, meta, "cuda"), [1, 2, 3, 4])
    assert gpu.passed
    for name, t in cpu.tensors.items():
        assert torch.allclose(t, gpu[name], atol=1e-3), name
