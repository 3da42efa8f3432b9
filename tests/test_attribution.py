"""Integrated gradients, gradient x input and attention rollout on a tiny real model."""

from __future__ import annotations

import pytest
import torch

import visualizer.analysis.attribution as attribution
from visualizer.analysis.attribution import AttributionOptions
from visualizer.capture import capture
from visualizer.errors import VisualizerError
from visualizer.model.registry import load_model

from tests.support.nanogpt import make_checkpoint

PROBE = "the king, my lord"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ckpt, meta = make_checkpoint(tmp_path_factory.mktemp("attr"), n_layer=2, n_head=2, n_embd=32, block_size=32,
                                 bias=True, seed=3)
    loaded = load_model(ckpt, meta)
    ids = loaded.tokenizer.encode(PROBE).ids
    return loaded, ids, capture(loaded, ids)


def test_forward_from_embeddings_reproduces_the_logits(run):
    loaded, ids, cache = run
    with torch.no_grad():
        idx = torch.tensor(ids)
        full = loaded.adapter.forward_from_embeddings(loaded, idx, cache["hook_embed"][None])[0]
        picked = loaded.adapter.forward_from_embeddings(loaded, idx, cache["hook_embed"][None], [3, len(ids) - 1])[0]
    assert torch.allclose(full, cache["logits"], atol=1e-5)
    assert torch.allclose(picked, cache["logits"][[3, len(ids) - 1]], atol=1e-5)


def test_integrated_gradients_completeness(run):
    loaded, ids, cache = run
    result = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=32))
    ig = next(m for m in result["methods"] if m["name"] == "integrated_gradients")
    target = result["target"]
    assert target["position"] == len(ids) - 1 and target["id"] == int(cache["logits"][-1].argmax())
    assert target["logit_recomputed"] == pytest.approx(target["logit"], abs=1e-5)
    assert abs(ig["logit_difference"]) > 1e-3  # the check below is not trivially met
    assert ig["completeness_error"] < 1e-4 * max(1.0, abs(ig["logit_difference"]))
    assert sum(ig["values"]) == pytest.approx(ig["sum"]) == pytest.approx(ig["logit_difference"], abs=1e-4)
    with torch.no_grad():
        zero = loaded.adapter.forward_from_embeddings(loaded, torch.tensor(ids), torch.zeros_like(cache["hook_embed"])[None])[0]
    assert ig["baseline_logit"] == pytest.approx(float(zero[-1, target["id"]]), abs=1e-5)


def test_gradient_x_input_matches_autograd(run):
    loaded, ids, cache = run
    position = 5
    result = attribution.attribute(loaded, cache, ids, AttributionOptions(target="7", position=position, steps=0))
    assert result["target"]["position"] == position
    emb = cache["hook_embed"].clone().requires_grad_(True)
    logit = loaded.adapter.forward_from_embeddings(loaded, torch.tensor(ids), emb[None])[0, position, result["target"]["id"]]
    (grad,) = torch.autograd.grad(logit, emb)
    expected = (grad * emb).sum(-1).detach()[: position + 1]
    gxi = next(m for m in result["methods"] if m["name"] == "gradient_x_input")
    assert gxi["values"][: position + 1] == pytest.approx(expected.tolist(), abs=1e-5)
    assert gxi["values"][position + 1:] == [None] * (len(ids) - position - 1)  # causal: later tokens cannot matter
    assert [m["name"] for m in result["methods"]] == ["gradient_x_input", "attention_rollout"]


def test_rollout_rows_sum_to_one_and_match_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    T = 5
    patterns = [torch.softmax(torch.randn(3, T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")), -1)
                for _ in range(3)]
    rollout = attribution.attention_rollout(patterns)
    assert torch.allclose(rollout.sum(-1), torch.ones(T, dtype=torch.float64))
    expected = torch.eye(T, dtype=torch.float64)
    for p in patterns:
        a = 0.5 * p.double().mean(0) + 0.5 * torch.eye(T, dtype=torch.float64)  # rows already sum to 1
        expected = a @ expected
    assert torch.allclose(rollout, expected)
    assert torch.all(rollout.triu(1) == 0)  # causal stays causal


def test_rollout_in_the_report_sums_to_one(run):
    loaded, ids, cache = run
    result = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=0, position=4))
    rollout = next(m for m in result["methods"] if m["name"] == "attention_rollout")
    assert sum(v for v in rollout["values"] if v is not None) == pytest.approx(1.0)


def test_target_choice(run):
    loaded, ids, cache = run
    tok = loaded.tokenizer
    assert attribution.resolve_target(loaded, cache["logits"], AttributionOptions(target="k"))[1] == tok.encode("k").ids[0]
    assert attribution.resolve_target(loaded, cache["logits"], AttributionOptions(target="12", position=-2))[:2] == (len(ids) - 2, 12)
    for options, needle in ((AttributionOptions(target="kin"), "--target 'kin'"),
                            (AttributionOptions(target="999"), "not a token id below"),
                            (AttributionOptions(position=len(ids)), "--target-position"),
                            (AttributionOptions(position=-len(ids) - 1), "--target-position")):
        with pytest.raises(VisualizerError, match=needle):
            attribution.resolve_target(loaded, cache["logits"], options)


def test_default_steps_respect_the_budget(run, monkeypatch):
    loaded, ids, cache = run
    monkeypatch.setattr(attribution, "FLOP_BUDGET", 1.0)
    skipped = attribution.attribute(loaded, cache, ids)
    assert "integrated gradients skipped" in skipped["notes"][0]
    assert "integrated_gradients" not in [m["name"] for m in skipped["methods"]]
    forced = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=4))
    assert forced["methods"][0]["name"] == "integrated_gradients" and not forced["notes"]


def test_chunked_batches_give_the_same_answer(run, monkeypatch):
    loaded, ids, cache = run
    whole = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=16))
    monkeypatch.setattr(attribution, "MAX_ROWS", len(ids) * 3)  # 3 interpolation steps per forward
    chunked = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=16))
    assert chunked["methods"][0]["values"] == pytest.approx(whole["methods"][0]["values"], abs=1e-6)


@pytest.mark.parametrize("architecture", ["current", "original"])
def test_nanochat_attribution(tmp_path, architecture):
    """Through nanochat's tree (rotary, windows, value embeddings held at the probe's, softcap)."""
    from tests.support.nanochat import make_nanochat

    loaded = load_model(make_nanochat(tmp_path / "nc", architecture=architecture), None)
    ids = loaded.adapter.encode_probe(loaded, "the other one, then").ids
    cache = capture(loaded, ids)
    with torch.no_grad():
        emb = cache[loaded.adapter.embedding_hook]
        full = loaded.adapter.forward_from_embeddings(loaded, torch.tensor(ids), emb[None])[0]
    assert torch.allclose(full, cache["logits"], atol=1e-4)
    result = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=48))
    ig = result["methods"][0]
    assert abs(ig["logit_difference"]) > 1e-3
    assert ig["completeness_error"] < 1e-3 * max(1.0, abs(ig["logit_difference"]))
    rollout = result["methods"][-1]
    assert sum(v for v in rollout["values"] if v is not None) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_hugging_face_attribution(tmp_path, kind):
    """transformers' trees through inputs_embeds: GPT-2 from zeros, Llama (rotary, RMSNorm first)
    from the BOS embedding."""
    pytest.importorskip("transformers")
    import visualizer.model.hf.adapter as hf

    from tests.support.hf import make_gpt2_folder, make_llama_folder

    folder = (make_gpt2_folder if kind == "gpt2" else make_llama_folder)(tmp_path / kind)
    loaded = hf.load(folder, torch.device("cpu"))
    ids = loaded.adapter.encode_probe(loaded, "the quick brown fox, then").ids
    cache = capture(loaded, ids)
    with torch.no_grad():
        last = loaded.adapter.forward_from_embeddings(loaded, torch.tensor(ids), cache["hook_embed"][None], [len(ids) - 1])
    assert torch.allclose(last[0, 0], cache["logits"][-1], atol=1e-4)
    result = attribution.attribute(loaded, cache, ids, AttributionOptions(steps=48))
    ig = result["methods"][0]
    assert ("BOS" in ig["baseline"]) == (kind == "llama")
    assert abs(ig["logit_difference"]) > 1e-3
    assert ig["completeness_error"] < 1e-3 * max(1.0, abs(ig["logit_difference"]))
