"""One attention derivation (capture/attention.py `derive`) serves capture and every family's cached
generation step: replacing it changes both, and both verifications catch the change."""

from __future__ import annotations

import pytest
import torch

from tests.support.hf import make_gpt2_folder, make_llama_folder
from tests.support.nanochat import VOCAB_SIZE, make_nanochat
from tests.support.nanogpt import make_checkpoint
import visualizer.capture.attention as attention
import visualizer.generation.sampling as sampling
from visualizer.capture import capture
from visualizer.generation.decode import generate
from visualizer.model.registry import load_model

FAMILIES = ("nanogpt", "nanochat-current", "nanochat-original", "gpt2", "llama")


def build(kind: str, folder):
    if kind == "nanogpt":
        return make_checkpoint(folder, block_size=32)
    if kind.startswith("nanochat"):
        return make_nanochat(folder, architecture=kind.split("-")[1], sequence_len=32), None
    return (make_gpt2_folder if kind == "gpt2" else make_llama_folder)(folder, n_positions=32), None


@pytest.mark.parametrize("kind", FAMILIES)
def test_replacing_the_derivation_changes_capture_and_generation(tmp_path, monkeypatch, kind):
    loaded = load_model(*build(kind, tmp_path / kind))
    vocab = VOCAB_SIZE if loaded.family == "nanochat" else loaded.tokenizer.vocab_size
    ids = torch.randint(0, vocab, (7,), generator=torch.Generator().manual_seed(0)).tolist()
    greedy = sampling.Settings(temperature=0)  # same tokens either way: the logits never read the derived pattern
    captured, generated = capture(loaded, ids), generate(loaded, ids, 3, greedy, verify_last=False)
    assert captured.passed and all(c["passed"] for c in generated.checks.values())

    real, calls = attention.derive, []

    def doubled_scale(q, k, scale, mask, start=0):  # a plausible bug: the wrong scale
        calls.append((start, q.shape[0]))
        return real(q, k, scale * 2, mask, start)

    monkeypatch.setattr(attention, "derive", doubled_scale)
    wrong_capture, wrong_generation = capture(loaded, ids), generate(loaded, ids, 3, greedy, verify_last=False)
    n_layer = loaded.dims.n_layer
    assert calls.count((0, len(ids))) == 2 * n_layer  # capture, and the generation's prefill
    assert [c for c in calls if c[0] > 0] == [(len(ids), 1)] * n_layer + [(len(ids) + 1, 1)] * n_layer  # cached steps

    name = "blocks.0.attn.hook_pattern"
    assert not torch.allclose(wrong_capture[name], captured[name], atol=1e-3)
    assert "pattern @ v == z" in wrong_capture.failures()
    assert wrong_generation.ids == generated.ids
    for wrong, right in zip(wrong_generation.steps, generated.steps):
        assert not torch.allclose(wrong.attention, right.attention, atol=1e-3)
    assert wrong_generation.checks["pattern @ v == z (every step)"]["passed"] is False
