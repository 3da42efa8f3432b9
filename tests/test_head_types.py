"""Head types (analysis/head_types.py): every score against a plain loop over the rule it states,
heads built to be of each type, the repeated random-token sequence (bounded, distinct tokens that
round-trip, BOS first where the tokenizer has one, captured and verified), an induction head that a
2-layer model trained here has (and a random-weights model has not), and the demo's previous-token
heads."""

from __future__ import annotations

import math

import pytest
import torch

import visualizer.analysis.head_types as ht
from tests.support.nanogpt import make_checkpoint
from tests.support.site import CHAR_VOCAB
from visualizer.analysis.summary import head_stats
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import demo_paths, load_model
from visualizer.sweep.tasks import induction_scores

SHAKESPEARE = ("ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"
               "Arise, fair sun, and kill the envious moon,\nWho is already sick and pale with grief,\n")


def random_patterns(H: int, T: int, seed: int = 0) -> torch.Tensor:
    """[H, T, T] causal rows drawn from a Dirichlet (each row sums to 1 over keys 0..q)."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(H, T, T, generator=g).pow(4) * torch.ones(T, T).tril()
    return raw / raw.sum(-1, keepdim=True)


def loop_score(pattern: torch.Tensor, targets) -> tuple[list[float | None], float | None]:
    """The stated rule as a plain loop: targets(q) -> the target keys of query q (maybe none)."""
    H, T = pattern.shape[0], pattern.shape[-1]
    rows = [(q, targets(q)) for q in range(T)]
    rows = [(q, keys) for q, keys in rows if keys]
    if not rows:
        return [None] * H, None
    scores = [sum(sum(float(pattern[h, q, k]) for k in keys) for q, keys in rows) / len(rows) for h in range(H)]
    chance = sum(len(keys) / (q + 1) for q, keys in rows) / len(rows)
    return scores, chance


def test_every_score_is_the_rule_it_states():
    ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]
    T = len(ids)
    pattern = random_patterns(3, T)
    got = ht.sequence_scores([pattern], ids)
    rules = {
        "previous": lambda q: [q - 1] if q >= 1 else [],
        "first": lambda q: [0] if q >= 1 else [],
        "self": lambda q: [q] if q >= 1 else [],
        "duplicate": lambda q: [j for j in range(q) if ids[j] == ids[q]],
        "induction": lambda q: [j + 1 for j in range(q) if ids[j] == ids[q]],
    }
    for kind, rule in rules.items():
        scores, chance = loop_score(pattern, rule)
        assert got[kind]["score"][0] == pytest.approx(scores, abs=1e-6), kind
        assert got[kind]["chance"][0] == pytest.approx([chance] * 3, abs=1e-9), kind
    for h in range(3):  # offset: the best k of 2..MAX_OFFSET, by the same rule
        by_k = {k: loop_score(pattern, lambda q, k=k: [q - k] if q >= k else []) for k in range(2, T)}
        best = max(by_k, key=lambda k: (by_k[k][0][h], -k))
        assert got["offset"]["k"][0][h] == best
        assert got["offset"]["score"][0][h] == pytest.approx(by_k[best][0][h], abs=1e-6)
        assert got["offset"]["chance"][0][h] == pytest.approx(by_k[best][1], abs=1e-9)


def test_scores_agree_with_the_analysis_and_the_sweep():
    ids = [5, 2, 7, 5, 2, 7, 1, 5, 2, 9, 9, 5]
    pattern = random_patterns(4, len(ids), seed=3)
    got = ht.sequence_scores([pattern], ids)
    stats = head_stats(pattern)  # analysis.json's previous / first / self masses
    for kind, key in (("previous", "prev_mass"), ("first", "first_mass"), ("self", "self_mass")):
        assert got[kind]["score"][0] == pytest.approx([s[key] for s in stats], abs=1e-6)
    assert induction_scores(pattern, ids) == got["induction"]["score"][0]  # the sweep's curve is this score


def built_heads(ids: list[int]) -> torch.Tensor:
    """One head per type, each putting all of every row's mass on its targets (spread evenly), and
    one spreading every row evenly (no type)."""
    T = len(ids)
    targets = ht.token_targets(ids)
    rules = [lambda q: [q - 1], lambda q: [0], lambda q: [q], lambda q: [q - 3] if q >= 3 else [q],
             lambda q: [j for j in range(q) if targets["duplicate"][q, j]] or [q],
             lambda q: [k for k in range(q + 1) if targets["induction"][q, k]] or [q],
             lambda q: list(range(q + 1))]
    pattern = torch.zeros(len(rules), T, T)
    for h, rule in enumerate(rules):
        pattern[h, 0, 0] = 1
        for q in range(1, T):
            keys = rule(q)
            pattern[h, q, keys] = 1 / len(keys)
    return pattern


def test_heads_built_to_be_each_type_get_that_type_and_even_attention_gets_none():
    r = list(range(10, 40))
    ids = r + r  # 60 tokens: every second-half token has one earlier occurrence
    scored = ht.sequence_scores([built_heads(ids)], ids)
    heads = ht.head_list({"probe": scored, "repeated": scored}, 1, 7)
    names = [[t["name"] for t in h["types"]] for h in heads]
    assert names[0] == ["previous-token"] and names[1] == ["first/BOS"] and names[2] == ["self"]
    assert names[3] == ["offset 3"]
    assert "duplicate-token" in names[4] and "induction" in names[5]
    assert names[6] == []  # even attention: every score is its chance
    assert scored["induction"]["score"][0][5] == pytest.approx(1.0)
    # a short sequence: even attention puts half of query 1's mass on the previous token, by chance
    short = ht.sequence_scores([torch.tensor([[[1.0, 0], [0.5, 0.5]]])], [1, 2])
    assert short["previous"]["score"][0][0] == 0.5 and short["previous"]["chance"][0][0] == 0.5
    assert not ht.passes(0.5, 0.5) and ht.passes(0.5, 0.1) and not ht.passes(0.2, 0.01)
    assert not ht.passes(math.nan, 0.01) and not ht.passes(None, None)


def test_a_sequence_without_repeats_scores_nothing_for_duplicates():
    scored = ht.sequence_scores([random_patterns(2, 6)], [1, 2, 3, 4, 5, 6])
    assert scored["duplicate"]["score"][0] == [None, None] and scored["induction"]["chance"][0] == [None, None]
    assert ht.head_list({"probe": scored, "repeated": scored}, 1, 2)[0]["types"] == []


# --- the repeated random-token sequence ----------------------------------------------------------------


def test_the_repeated_sequence_is_bounded_distinct_round_trips_and_starts_with_bos_where_probes_do(tmp_path):
    from tests.support.hf import make_gpt2_folder
    from tests.support.nanochat import make_nanochat

    ckpt, meta = make_checkpoint(tmp_path / "char", vocab=CHAR_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=512)
    nanochat = make_nanochat(tmp_path / "nanochat", sequence_len=64)
    gpt2 = make_gpt2_folder(tmp_path / "gpt2", n_positions=1024)
    for loaded in (load_model(ckpt, meta), load_model(nanochat, None), load_model(gpt2, None)):
        ids, segments, with_bos = ht.repeated_sequence(loaded)
        bos = loaded.tokenizer.bos_id
        assert with_bos == (bos is not None) and (ids[0] == bos if with_bos else True)
        body = ids[1:] if with_bos else ids
        a, b = segments
        assert body == body[:a] * 2 + body[2 * a:2 * a + b] * 2 and a > b >= 1
        tokens = body[:a] + body[2 * a:2 * a + b]
        assert len(set(tokens)) == len(tokens)  # distinct: each repeat's token has exactly one earlier occurrence
        assert len(ids) <= min(2 * ht.REPEAT_TOKENS + 1, loaded.dims.n_ctx)  # bounded, whatever the probe's length
        for token in tokens:  # tokens a probe can hold: each encodes back to itself
            encoded = loaded.tokenizer.encode(loaded.tokenizer.token_str(token)).ids
            assert encoded[-1:] == [token] and token not in loaded.tokenizer.special_ids and token != bos
        assert ht.repeated_sequence(loaded) == (ids, segments, with_bos)  # seeded: the same every run
    assert len(ht.repeated_sequence(load_model(gpt2, None))[0]) == 129  # the cost at any probe length: one such capture


def test_detect_records_the_repeated_capture_and_its_verification(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path / "m", vocab=CHAR_VOCAB, n_layer=2, n_head=2, n_embd=16, block_size=64)
    loaded = load_model(ckpt, meta)
    probe = prepare_probe(loaded, "to be or not to be")
    record = ht.detect(loaded, capture(loaded, probe.ids), probe.ids)
    seq = record["repeated_sequence"]
    assert seq["verification"] == {"passed": True, "failed": []} and seq["length"] == len(seq["ids"]) == 64
    again = ht.sequence_scores([capture(loaded, seq["ids"])[f"blocks.{l}.attn.hook_pattern"] for l in range(2)], seq["ids"])
    assert again == record["repeated"]  # the scores are those of that sequence's own capture
    assert [(h["layer"], h["head"]) for h in record["heads"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert record["min_score"] == ht.MIN_SCORE and record["lift"] == ht.LIFT


# --- models that have, or have not, the heads -----------------------------------------------------------


@pytest.fixture(scope="module")
def induction_model(tmp_path_factory):
    from tests.support.induction import train_induction_model

    return load_model(*train_induction_model(tmp_path_factory.mktemp("induction")))


def types_of(record: dict) -> dict[tuple[int, int], list[str]]:
    return {(h["layer"], h["head"]): [t["kind"] for t in h["types"]] for h in record["heads"]}


def test_the_detector_finds_the_induction_heads_a_trained_model_has(induction_model):
    loaded = induction_model
    probe = prepare_probe(loaded, "abcdefghijkabcdefghijk")
    record = ht.detect(loaded, capture(loaded, probe.ids), probe.ids)
    types = types_of(record)
    induction = [head for head, kinds in types.items() if "induction" in kinds]
    assert induction and all(layer == 1 for layer, _ in induction)  # learned in layer 1 (it needs layer 0's output)
    assert types[(0, 0)] == ["previous"]  # the hand-set head it composes with
    # induction, not a fixed distance: the sequence's two repeats have their own distances, and the head follows each
    seq = record["repeated_sequence"]
    ids, (a, b) = seq["ids"], seq["segments"]
    pattern = capture(loaded, ids)["blocks.1.attn.hook_pattern"]  # [H, T, T]
    for layer, head in induction:
        on_a = [float(pattern[head, q, q - a + 1]) for q in range(a, 2 * a)]
        on_b = [float(pattern[head, q, q - b + 1]) for q in range(2 * a + b, 2 * a + 2 * b)]
        assert sum(on_a) / a > 0.5 and sum(on_b) / b > 0.5
        assert record["repeated"]["induction"]["score"][1][head] > record["repeated"]["offset"]["score"][1][head]


def test_a_random_weights_model_has_no_induction_or_duplicate_head(tmp_path):
    from tests.support.induction import VOCAB

    ckpt, meta = make_checkpoint(tmp_path / "r", vocab=VOCAB, n_layer=2, n_head=2, n_embd=96, block_size=32)
    loaded = load_model(ckpt, meta)
    probe = prepare_probe(loaded, "abcdefghijkabcdefghijk")
    record = ht.detect(loaded, capture(loaded, probe.ids), probe.ids)
    assert all(kinds == [] for kinds in types_of(record).values())
    assert max(max(row) for row in record["repeated"]["induction"]["score"]) < 0.2


def test_the_demo_models_previous_token_heads_are_found():
    loaded = load_model(*demo_paths(None, None))
    probe = prepare_probe(loaded, SHAKESPEARE[:128])
    cache = capture(loaded, probe.ids)
    record = ht.detect(loaded, cache, probe.ids)
    found = {head for head, kinds in types_of(record).items() if "previous" in kinds}
    assert found
    T = len(probe.ids)
    for layer in range(loaded.dims.n_layer):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        for head in range(loaded.dims.n_head):
            mass = sum(float(pattern[head, q, q - 1]) for q in range(1, T)) / (T - 1)  # the rule, by hand
            chance = sum(1 / (q + 1) for q in range(1, T)) / (T - 1)
            assert ((layer, head) in found) == (mass >= ht.MIN_SCORE and mass >= ht.LIFT * chance)
    # the head whose single largest key is most often the previous token is among them
    share = {(l, h): float((cache[f"blocks.{l}.attn.hook_pattern"][h, 1:].argmax(-1) == torch.arange(T - 1)).double().mean())
             for l in range(loaded.dims.n_layer) for h in range(loaded.dims.n_head)}
    assert max(share, key=share.get) in found
