"""Choose in the page (analysis/choices.py): every position's top candidates' breakdown (the last
position's against report_data's breakdown, every raw logit against the model's logits), their
gradient x input (against attribution.py's own computation for one target), the FLOP budget, the
--target candidate, the rollout rows, and the page's data file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visualizer.analysis.choices as choices
import visualizer.artefacts.attention_codec as codec
from tests.support.nanogpt import make_checkpoint
from tests.support.site import CHAR_VOCAB
from visualizer.analysis.attribution import AttributionOptions, attention_rollout, attribute
from visualizer.analysis.report_data import build_report_data
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model
from visualizer.model.tokenizer import readable
from visualizer.site.report import choices_data

PROBE = "ROMEO: but soft, what light through yonder window breaks?"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ckpt, meta = make_checkpoint(tmp_path_factory.mktemp("choices") / "m", vocab=CHAR_VOCAB, n_layer=2, n_head=3,
                                 n_embd=24, block_size=64, bias=True)
    loaded = load_model(ckpt, meta)
    probe = prepare_probe(loaded, PROBE)
    cache = capture(loaded, probe.ids)
    return loaded, probe, cache


def parts_of(record: dict) -> np.ndarray:
    return codec.unb64(record["breakdown"]["data"], "<f2").astype(np.float64).reshape(-1, record["breakdown"]["columns"])


def test_the_breakdown_at_every_position_is_exact_and_the_last_is_the_reports(run):
    loaded, probe, cache = run
    data = build_report_data(loaded, cache, probe.ids)
    record = data["choices"]
    T = len(probe.ids)
    assert record["breakdown"]["max_error"] < 1e-4  # the parts add up to the raw logit (float64, before float16)
    parts = parts_of(record)
    logits = cache.tensors["logits"]
    row = 0
    for position, ids in enumerate(record["ids"]):
        assert ids == torch.argsort(-logits[position], stable=True)[:choices.CANDIDATES].tolist()
        assert record["breakdown"]["raw"][position] == pytest.approx(logits[position, ids].tolist(), abs=1e-4)  # no cap here
        row += len(ids)
    assert row == len(parts) == T * choices.CANDIDATES
    last = parts[-choices.CANDIDATES:]  # [C, n_components + 1]
    for k, cand in enumerate(data["dla"]["candidates"]):
        reference = [c["value"] for c in cand["by_component"]] + [cand["constant"]]
        assert record["components"] == [c["name"] for c in cand["by_component"]]
        assert last[k] == pytest.approx(reference, rel=2e-3, abs=2e-3)  # float16


def test_gradient_x_input_is_attributions_own_for_any_target(run):
    loaded, probe, cache = run
    position = 20
    target = int(torch.argsort(-cache.tensors["logits"][position], stable=True)[2])  # the third candidate there
    record = choices.choices(loaded, cache, probe.ids)
    at = record["attribution"]
    assert at["positions"] == list(range(len(probe.ids)))  # a small model: every position within the budget
    codes = codec.unb64(at["codes"], "i1")
    offset = sum(len(record["ids"][p]) * (p + 1) for p in at["positions"] if p < position)
    k = record["ids"][position].index(target)
    scale = at["scales"][at["positions"].index(position)][k]
    mine = codes[offset + k * (position + 1): offset + (k + 1) * (position + 1)] * scale / 127
    reference = attribute(loaded, cache, probe.ids, AttributionOptions(target=str(target), position=position, steps=0))
    theirs = next(m for m in reference["methods"] if m["name"] == "gradient_x_input")["values"][:position + 1]
    assert np.abs(mine - np.array(theirs)).max() <= scale / 254 + 1e-6


def test_the_budget_takes_positions_from_the_end_and_the_batches_stay_bounded(run, monkeypatch):
    loaded, probe, cache = run
    rows, _ = choices.candidates(cache.tensors["logits"], None)
    T = len(rows)
    per_row = 6.0 * loaded.card["n_params"]
    monkeypatch.setattr(choices, "FLOP_BUDGET", per_row * choices.CANDIDATES * (T + (T - 1) + (T - 2)))
    positions, cost = choices.planned_positions(loaded, rows)
    assert positions == [T - 3, T - 2, T - 1] and cost <= choices.FLOP_BUDGET
    monkeypatch.setattr(choices, "FLOP_BUDGET", per_row)  # not even the last position
    assert choices.planned_positions(loaded, rows) == ([], 0.0)
    monkeypatch.setattr(choices, "MAX_ROWS", 200)
    groups = choices.batches(rows, list(range(T)))
    assert sorted(p for g in groups for p in g) == list(range(T))
    for group in groups:
        assert group == list(range(group[0], group[-1] + 1))  # neighbours
        assert len(group) == 1 or sum(len(rows[p]) for p in group) * (group[-1] + 1) <= 200


def test_the_target_is_added_where_it_is_no_candidate_and_rollout_is_stored(run):
    loaded, probe, cache = run
    position = 10
    target = int(torch.argsort(-cache.tensors["logits"][position], stable=True)[9])  # tenth: no candidate
    record = choices.choices(loaded, cache, probe.ids, (position, target, "--target"))
    assert record["ids"][position][-1] == target and len(record["ids"][position]) == choices.CANDIDATES + 1
    assert record["target"]["added"] and record["target"]["position"] == position
    patterns = [cache.tensors[f"blocks.{l}.attn.hook_pattern"] for l in range(loaded.dims.n_layer)]
    rollout = attention_rollout(patterns).numpy()
    assert np.abs(codec.decode_pattern(record["rollout"], len(probe.ids))[0] - rollout).max() <= 1 / 510 + 1e-6
    data = choices_data({"choices": record, "final": build_report_data(loaded, cache, probe.ids)["final"]})
    assert data["vocab"][str(target)] == readable(loaded.tokenizer.token_str(target))
    assert set(data["vocab"]) == {str(i) for row in record["ids"] for i in row}
    same = choices.choices(loaded, cache, probe.ids, (position, record["ids"][position][0], "--target"))
    assert not same["target"]["added"] and len(same["ids"][position]) == choices.CANDIDATES
