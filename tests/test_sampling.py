"""Sampling controls, each on its own, then together: what each keeps, bans or rescales."""

from __future__ import annotations

import math

import pytest
import torch

import visualizer.generation.sampling as sampling
from visualizer.errors import VisualizerError
from visualizer.generation.sampling import Settings


def logits_of(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_defaults_leave_the_distribution_untouched():
    logits = logits_of(2.0, -1.0, 0.5, 0.0)
    assert sampling.apply_controls(logits, [0, 1, 2], Settings()) == []
    g1, g2 = sampling.make_generator(7), sampling.make_generator(7)
    for _ in range(20):
        choice = sampling.choose(logits, [0, 1], Settings(seed=7), g1)
        assert torch.equal(choice.final_logits, logits)
        # exactly what nanoGPT's sample.py draws: multinomial over softmax(logits)
        assert choice.token == int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g2))


def test_temperature_zero_is_argmax_and_ignores_the_generator():
    logits = logits_of(0.1, 3.0, 2.9, -5.0)
    for seed in range(5):
        choice = sampling.choose(logits, [], Settings(temperature=0, seed=seed), sampling.make_generator(seed))
        assert choice.token == 1
    probs = sampling.final_distribution(choice, Settings(temperature=0))
    assert probs.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_temperature_scales_logits():
    logits = logits_of(1.0, 2.0, -4.0)
    stages = sampling.apply_controls(logits, [], Settings(temperature=0.5))
    assert [name for name, _ in stages] == ["temperature"]
    assert torch.allclose(stages[0][1], logits / 0.5)


def test_repetition_penalty_is_ctrl_style():
    logits = logits_of(2.0, -2.0, 3.0, -1.0)
    out = sampling.repetition_penalty(logits, [0, 1, 0], 2.0)  # tokens 0 and 1 seen
    assert out.tolist() == [1.0, -4.0, 3.0, -1.0]  # positive divided, negative multiplied, unseen untouched
    assert torch.equal(sampling.repetition_penalty(logits, [0, 1], 1.0), logits)
    assert logits.tolist() == [2.0, -2.0, 3.0, -1.0]  # input not modified


def test_no_repeat_ngram_bans_what_would_repeat():
    seq = [1, 2, 3, 1, 2]
    assert sampling.banned_by_ngram(seq, 3) == {3}  # (1, 2) was followed by 3
    assert sampling.banned_by_ngram(seq, 2) == {3}  # (2,) was followed by 3
    assert sampling.banned_by_ngram([5, 6, 5], 2) == {6}
    assert sampling.banned_by_ngram(seq, 1) == {1, 2, 3}
    assert sampling.banned_by_ngram(seq, 0) == set()
    assert sampling.banned_by_ngram([4], 3) == set()
    out = sampling.block_ngrams(logits_of(0.0, 0.0, 0.0, 9.0), [1, 2, 3, 1, 2], 3)
    assert out.tolist() == [0.0, 0.0, 0.0, -math.inf]


def test_no_repeat_ngram_changes_the_greedy_choice():
    logits = logits_of(0.0, 1.0, 5.0)
    choice = sampling.choose(logits, [1, 2, 1], Settings(temperature=0, no_repeat_ngram_size=2), sampling.make_generator(0))
    assert choice.token == 1  # 2 would repeat the bigram (1, 2)
    assert [name for name, _ in choice.stages] == ["no_repeat_ngram"]


def test_every_token_banned_is_reported_not_drawn():
    choice = sampling.choose(logits_of(1.0, 2.0), [0, 1], Settings(no_repeat_ngram_size=1), sampling.make_generator(0))
    assert choice.allowed is False


def test_top_k_keeps_the_k_largest_and_ties():
    out = sampling.keep_top_k(logits_of(1.0, 5.0, 3.0, 3.0, -2.0), 2)
    assert out.tolist() == [-math.inf, 5.0, 3.0, 3.0, -math.inf]  # the tie at the 2nd value stays, as nanoGPT
    assert sampling.keep_top_k(logits_of(1.0, 2.0), 5).tolist() == [1.0, 2.0]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
    logits = probs.log()
    kept = lambda p: torch.isfinite(sampling.keep_top_p(logits, p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.5) == [1]
    assert kept(0.7) == [1, 3]
    assert kept(0.79) == [1, 3]  # 0.5 + 0.3 reaches 0.79
    assert kept(0.81) == [0, 1, 3]
    assert kept(1e-9) == [1]  # the most likely always stays
    assert kept(1.0) == [0, 1, 2, 3]


def test_controls_apply_in_order_and_sampling_stays_inside_the_kept_set():
    logits = torch.linspace(-2, 2, 50, dtype=torch.float64)
    settings = Settings(temperature=0.7, top_k=10, top_p=0.5, repetition_penalty=1.3, no_repeat_ngram_size=2, seed=3)
    seq = [49, 48, 49]
    choice = sampling.choose(logits, seq, settings, sampling.make_generator(3))
    assert [n for n, _ in choice.stages] == ["repetition_penalty", "no_repeat_ngram", "temperature", "top_k", "top_p"]
    final = sampling.final_distribution(choice, settings)
    assert final[48] == 0  # (49,) was followed by 48
    assert int((final > 0).sum()) <= 10
    assert math.isclose(float(final.sum()), 1.0, rel_tol=1e-12)
    for seed in range(30):
        c = sampling.choose(logits, seq, settings, sampling.make_generator(seed))
        assert final[c.token] > 0


def test_seeded_sampling_is_reproducible_and_seed_matters():
    logits = torch.zeros(100, dtype=torch.float64)
    draw = lambda seed: [sampling.choose(logits, [], Settings(seed=seed), g).token  # noqa: E731
                         for g in [sampling.make_generator(seed)] for _ in range(20)]
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_stop_strings():
    assert sampling.find_stop("hello\nworld", ("\n",)) == "\n"
    assert sampling.find_stop("hello", ("x", "ll")) == "ll"
    assert sampling.find_stop("hello", ()) is None


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"temperature": -1.0}, "--temperature"),
        ({"temperature": float("nan")}, "--temperature"),
        ({"top_k": 0}, "--top-k"),
        ({"top_p": 0.0}, "--top-p"),
        ({"top_p": 1.5}, "--top-p"),
        ({"repetition_penalty": 0.0}, "--repetition-penalty"),
        ({"no_repeat_ngram_size": -1}, "--no-repeat-ngram-size"),
        ({"stop": ("",)}, "--stop"),
    ],
)
def test_out_of_range_settings_name_their_flag(kwargs, flag):
    with pytest.raises(VisualizerError, match=flag):
        Settings(**kwargs).check()
