"""distributions.py: entropy, KL and JS in bits against torch.distributions and closed forms; the one
top-k tie rule (probability descending, then token id ascending); and the one table and entropy
every artefact of a report shows."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from tests.support.cli import run_cli
from tests.support.nanogpt import make_checkpoint
from visualizer.analysis.distributions import entropy_bits, js_bits, kl_bits, log_probs, token_table, top_k

LN2 = math.log(2)


def random_logits(*shape: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def test_entropy_matches_torch_distributions_in_bits():
    logits = random_logits(6, 50)
    expected = Categorical(logits=logits).entropy() / LN2  # nats -> bits
    assert torch.allclose(entropy_bits(log_probs(logits)), expected, rtol=0, atol=1e-12)


def test_entropy_closed_forms_and_zero_probabilities():
    assert entropy_bits(torch.full((8,), 1 / 8, dtype=torch.float64).log()).item() == pytest.approx(3.0, abs=1e-12)  # uniform: log2 n
    p = 0.2
    binary = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    two = torch.tensor([p, 1 - p, 0.0, 0.0], dtype=torch.float64)  # zeros: log 0 = -inf, 0 log 0 = 0
    assert entropy_bits(two.log()).item() == pytest.approx(binary, abs=1e-12)
    assert entropy_bits(two.log(), two).item() == pytest.approx(binary, abs=1e-12)  # given probabilities
    one_hot = torch.tensor([float("-inf"), 0.0, float("-inf")])
    assert entropy_bits(one_hot).item() == 0.0
    assert entropy_bits(log_probs(random_logits(3, 4, 10))).shape == (3, 4)  # over the last axis only


def test_kl_matches_torch_distributions_and_is_zero_on_itself():
    a, b = random_logits(5, 40, seed=1), random_logits(5, 40, seed=2)
    expected = kl_divergence(Categorical(logits=a), Categorical(logits=b)) / LN2
    got = kl_bits(log_probs(a), log_probs(b))
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert (got > 0).all()
    assert torch.equal(kl_bits(log_probs(a), log_probs(a)), torch.zeros(5, dtype=torch.float64))


def test_kl_closed_form_with_a_zero_in_p():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert kl_bits(p.log(), q.log()).item() == pytest.approx(1.0, abs=1e-12)  # sum 0.5 log2(2) * 2
    assert kl_bits(q.log(), p.log()).item() == math.inf  # q puts mass where p has none


def test_js_closed_forms_and_against_the_mixture_kl():
    p = torch.tensor([1.0, 0.0, 0.0, 0.0])
    q = torch.tensor([0.0, 0.5, 0.5, 0.0])
    assert js_bits(p, q).item() == pytest.approx(1.0, abs=1e-12)  # disjoint supports: exactly 1 bit
    assert js_bits(p, p).item() == 0.0
    a, b = log_probs(random_logits(4, 30, seed=3)).exp(), log_probs(random_logits(4, 30, seed=4)).exp()
    m = (a + b) / 2
    mixture = (kl_bits(a.log(), m.log()) + kl_bits(b.log(), m.log())) / 2
    assert torch.allclose(js_bits(a, b), mixture, rtol=0, atol=1e-12)
    assert torch.equal(js_bits(a, b), js_bits(b, a))
    assert ((js_bits(a, b) > 0) & (js_bits(a, b) < 1)).all()


def test_top_k_orders_ties_by_index_and_keeps_the_lowest_indices_at_the_cut():
    values = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]])
    assert top_k(values, 2)[1].tolist() == [[1, 2]]  # three 3.0s: the cut keeps ids 1 and 2
    assert top_k(values, 4)[1].tolist() == [[1, 2, 4, 3]]
    assert top_k(values, 4)[0].tolist() == [[3.0, 3.0, 3.0, 2.0]]
    assert top_k(values, 99)[1].tolist() == [[1, 2, 4, 3, 0, 5]]  # k above n: all of them
    flat = torch.zeros(3, 5000)  # torch.topk returns arbitrary ids for ties like these
    flat[1, 4321] = 1.0
    assert top_k(flat, 4)[1].tolist() == [[0, 1, 2, 3], [4321, 0, 1, 2], [0, 1, 2, 3]]
    assert top_k(torch.zeros(2, 3, 7), 2)[1].shape == (2, 3, 2)  # leading dims kept


def test_top_k_without_ties_is_torch_topk():
    values = random_logits(4, 1000, seed=5).float()
    got_values, got_ids = top_k(values, 10)
    want_values, want_ids = values.topk(10)
    assert torch.equal(got_ids, want_ids) and torch.equal(got_values, want_values)


def test_token_table_rows_probabilities_and_impossible_tokens():
    logits = torch.tensor([[2.0, 1.0, 2.0, float("-inf"), 0.5]], dtype=torch.float64)
    logp = log_probs(logits)
    table = token_table(logp, logits, lambda i: "abcde"[i], 10)
    assert [r["id"] for r in table[0]] == [0, 2, 1, 4]  # tie 0/2 by id; the banned token is no candidate
    assert [r["token"] for r in table[0]] == ["a", "c", "b", "e"]
    assert table[0][0]["prob"] == math.exp(logp[0, 0].item()) and table[0][0]["logit"] == 2.0
    assert token_table(logp, logits, None, 1)[0][0]["token"] == "#0"


def test_report_trace_and_analysis_show_one_entropy_and_one_table(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, block_size=32)
    out = tmp_path / "r"
    assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a rose is a rose", "--out", out,
                   "--no-store", "--quiet")[0] == 0
    data = json.loads((out / "report_data.json").read_text())
    analysis = json.loads((out / "analysis.json").read_text())
    trace = json.loads((out / "trace.json").read_text())
    final = data["final"]
    assert analysis["logits"]["entropy_bits"] == final["entropy_bits"]  # these two once disagreed
    k = len(analysis["logits"]["top"][0])
    assert analysis["logits"]["top"] == [row[:k] for row in final["topk"]]
    assert trace["next_tokens"] == final["topk"][-1]
    target = json.loads((out / "attribution.json").read_text())["target"]
    assert target["prob"] == next(r["prob"] for r in final["topk"][target["position"]] if r["id"] == target["id"])
    for row in final["topk"]:
        probs = [r["prob"] for r in row]
        assert probs == sorted(probs, reverse=True)
