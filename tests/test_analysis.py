"""Analysis on hand-built tensors whose answers are known, and on a real capture."""

from __future__ import annotations

import math

import pytest
import torch

import visualizer.analysis.summary as analysis
from visualizer.analysis.distributions import entropy_bits, log_probs, token_table


def causal(rows: torch.Tensor) -> torch.Tensor:
    """[H, T, T] nonnegative weights -> a causal pattern (future keys 0, rows sum to 1)."""
    T = rows.shape[-1]
    rows = rows * torch.ones(T, T).tril()
    return rows / rows.sum(-1, keepdim=True)


def previous_token_pattern(T: int, mass: float = 0.9) -> torch.Tensor:
    P = torch.zeros(T, T)
    P[0, 0] = 1.0
    for q in range(1, T):
        P[q, q - 1] = mass
        P[q, : q + 1] += (1 - mass) / (q + 1)
    return P


def test_labels_on_constructed_patterns():
    T = 12
    uniform = causal(torch.ones(1, T, T))[0]
    first = torch.zeros(T, T)
    first[:, 0] = 1.0
    pattern = torch.stack([previous_token_pattern(T), first, torch.eye(T), uniform])  # [4, T, T]
    heads = analysis.head_stats(pattern)
    assert [h["label"]["label"] if h["label"] else None for h in heads] == ["previous-token", "first-token", "self", None]
    prev = heads[0]
    expected_prev = sum(0.9 + 0.1 / (q + 1) for q in range(1, T)) / (T - 1)
    assert prev["prev_mass"] == pytest.approx(expected_prev)
    assert prev["label"] == {"label": "previous-token", "figure": "prev_mass", "value": pytest.approx(expected_prev),
                             "threshold": analysis.LABEL_THRESHOLD, "argmax_fraction": 1.0}
    assert prev["mean_distance"] == pytest.approx(sum(0.9 + 0.1 * q / 2 for q in range(1, T)) / (T - 1))
    assert heads[1]["first_mass"] == 1.0 and heads[1]["mean_distance"] == pytest.approx(sum(range(1, T)) / (T - 1))
    assert heads[2]["self_mass"] == 1.0 and heads[2]["entropy_bits"] == 0.0 and heads[2]["top1_mass"] == 1.0
    ent = sum(math.log2(q + 1) for q in range(1, T)) / (T - 1)
    assert heads[3]["entropy_bits"] == pytest.approx(ent) and heads[3]["entropy_fraction"] == pytest.approx(1.0)
    assert heads[3]["top3_mass"] == pytest.approx(sum(min(3, q + 1) / (q + 1) for q in range(1, T)) / (T - 1))


def test_weak_or_tiny_patterns_get_no_label():
    assert analysis.head_stats(previous_token_pattern(12, mass=0.3)[None])[0]["label"] is None
    assert analysis.head_stats(previous_token_pattern(2)[None])[0]["label"] is None  # previous == first
    assert analysis.head_stats(torch.ones(1, 1, 1))[0] == {"head": 0, "label": None}


def test_stream_stats_known_values():
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, 1.0, 9.0]])
    s = analysis.stream_stats(x)
    flat = x.flatten().double()
    c = flat - flat.mean()
    assert s["mean"] == pytest.approx(float(flat.mean())) and s["max"] == 9.0 and s["max_abs"] == 9.0
    assert s["kurtosis"] == pytest.approx(float((c ** 4).mean() / (c ** 2).mean() ** 2))
    assert s["top_dim"] == 3 and s["top_dim_mean_abs"] == pytest.approx(5.0)
    gaussian = analysis.stream_stats(torch.randn(400, 100, generator=torch.Generator().manual_seed(0)))
    assert gaussian["kurtosis"] == pytest.approx(3.0, abs=0.1)


def test_never_firing_and_largest_neurons():
    post = torch.tensor([[0.5, -0.1, 0.0, 2.0], [0.2, -0.2, 0.0, -0.1], [0.9, -0.05, 0.0, 0.1]])
    m = analysis.mlp_layer(post)
    assert m["never_fire"] == 2 and m["never_fire_ids"] == [1, 2] and m["never_fire_fraction"] == 0.5
    assert [[n["neuron"] for n in row] for row in m["largest"]] == [[3, 0, 2], [0, 2, 3], [0, 3, 2]]
    assert m["firing_fraction"] == pytest.approx(5 / 12)


def test_logits_section_and_loss():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    s = analysis.logits_section(logits, [0, 2], lambda i: "abc"[i])
    assert s["loss_nats"] == [pytest.approx(-math.log(0.1))] and s["mean_loss_nats"] == pytest.approx(-math.log(0.1))
    assert s["top"][0][0]["token"] == "a" and s["top"][0][0]["prob"] == pytest.approx(0.7)
    assert s["top"][1][0]["token"] == "c"
    H = -(0.7 * math.log2(0.7) + 0.2 * math.log2(0.2) + 0.1 * math.log2(0.1))
    assert s["entropy_bits"][0] == pytest.approx(H)


def test_logits_section_reads_the_report_datas_final_table_when_deep_enough():
    torch.manual_seed(0)
    logits = torch.randn(6, 40)
    logits[2, :8] = 1.5  # ties across the cut: the tie rule decides
    token_str = lambda i: f"t{i}"  # noqa: E731
    alone = analysis.logits_section(logits, [1, 2, 3, 4, 5, 6], token_str)
    logp = log_probs(logits)
    for k in (analysis.TOP_TOKENS, 10):
        final = {"topk": token_table(logp, logits, token_str, k), "entropy_bits": entropy_bits(logp).tolist()}
        assert analysis.logits_section(logits, [1, 2, 3, 4, 5, 6], token_str, final) == alone
    shallow = {"topk": token_table(logp, logits, token_str, 2), "entropy_bits": [0.0] * 6}
    assert analysis.logits_section(logits, [1, 2, 3, 4, 5, 6], token_str, shallow) == alone  # not used


def record(i):
    return {"id": i, "readable": f"t{i}"}


def test_lens_convergence():
    final = [[record(5)], [record(6)], [record(7)]]
    lens = [
        {"layer": 0, "hook": "blocks.0.hook_resid_post", "topk": [[record(5)], [record(1)], [record(7)]], "kl_to_final": [1.0, 2.0, 3.0]},
        {"layer": 1, "hook": "blocks.1.hook_resid_post", "topk": [[record(2)], [record(6)], [record(7)]], "kl_to_final": [0.5, 0.0, 0.1]},
        {"layer": 2, "hook": "blocks.2.hook_resid_post", "topk": [[record(5)], [record(6)], [record(7)]], "kl_to_final": [0.0, 0.0, 0.0]},
    ]
    s = analysis.lens_section({"final": {"topk": final}, "logit_lens": lens})
    assert [l["top1_agreement"] for l in s["layers"]] == [pytest.approx(2 / 3), pytest.approx(2 / 3), 1.0]
    assert s["layers"][0]["mean_kl_bits"] == 2.0 and s["layers"][1]["last_kl_bits"] == 0.1
    assert s["converged_at"] == [2, 1, 0]
    assert analysis.lens_section(None) is None


def test_analyze_a_real_capture(tmp_path):
    from visualizer.capture import capture
    from visualizer.model.registry import load_model
    from visualizer.analysis.report_data import build_report_data
    from visualizer.model.probe import Probe
    from visualizer.pipeline import trace_record

    from tests.support.nanogpt import make_checkpoint

    ckpt, meta = make_checkpoint(tmp_path, n_layer=2, n_head=2, n_embd=32, block_size=32)
    loaded = load_model(ckpt, meta)
    ids = loaded.tokenizer.encode("hello there").ids
    cache = capture(loaded, ids)
    trace = trace_record(loaded, Probe("hello there", ids), cache)
    result = analysis.analyze(cache.tensors, trace, build_report_data(loaded, cache, ids), loaded.tokenizer.token_str)
    assert len(result["attention"]["heads"]) == 4 and len(result["residual"]) == 3 and len(result["mlp"]) == 2
    assert result["logits"]["top"][-1][0]["id"] == int(cache["logits"][-1].argmax())
    assert result["logit_lens"]["layers"][-1]["top1_agreement"] == 1.0  # the last layer's lens is the output
    assert result["notes"] == []
    partial = analysis.analyze({"logits": cache["logits"]}, trace)
    assert partial["attention"] is None and partial["logits"]["top"][0][0]["token"].startswith("#")
    assert len(partial["notes"]) == 4



@pytest.mark.parametrize("chunk", [7, 1 << 22])
def test_tensor_stats_over_finite_entries_in_every_chunk(chunk, monkeypatch):
    """Chunked statistics equal a float64 reference over the finite entries, whatever the chunking;
    a chunk of -inf only (masked scores) or holding NaN counts its finite entries alone."""
    import visualizer.analysis.stats as stats

    monkeypatch.setattr(stats, "CHUNK", chunk)
    x = torch.randn(5, 9, generator=torch.Generator().manual_seed(1)) * 3 + 0.5
    x[0, :] = float("-inf")  # one whole chunk of -inf at chunk 7
    x[2, 3], x[4, 8] = float("nan"), float("inf")
    s = stats.tensor_stats(x)
    finite = x[torch.isfinite(x)].double()
    assert s["shape"] == [5, 9] and s["numel"] == 45 and s["finite"] == finite.numel() == 34
    assert s["mean"] == pytest.approx(float(finite.mean()), rel=1e-12)
    assert s["rms"] == pytest.approx(float(finite.square().mean().sqrt()), rel=1e-6)
    assert s["std"] == pytest.approx(float(finite.std(unbiased=False)), rel=1e-6)
    assert (s["min"], s["max"]) == (float(finite.min()), float(finite.max()))
    empty = stats.tensor_stats(torch.full((3,), float("-inf")))
    assert empty == {"shape": [3], "numel": 3, "finite": 0}
    assert stats.tensor_stats(torch.zeros(0, 4)) == {"shape": [0, 4], "numel": 0, "finite": 0}
    assert stats.tensor_stats(torch.arange(6).reshape(2, 3).T)["mean"] == 2.5  # int and non-contiguous input
