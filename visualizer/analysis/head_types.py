"""Head types: what the standard attention-head detectors say each head does, with each head's
score and the rule behind it, from captured attention patterns (torch, no model code).

Every score is one rule: the mean, over the query positions that have a target, of the attention
mass the head puts on that query's target keys (TransformerLens's `detect_head` takes the mass on a
detection pattern; here it is averaged per row, so a row with a target weighs as much as any other).
The targets of query q:
- previous-token: key q-1 (queries 1..T-1);
- first/BOS: key 0 (queries 1..T-1; the BOS token when the probe starts with one);
- self: key q (queries 1..T-1: query 0 has only itself to read);
- offset k: key q-k (queries k..T-1), for k = 2..MAX_OFFSET; each head's best k is kept;
- duplicate-token: every earlier key holding the same token as q;
- induction: every key j+1 with j < q holding the same token as q (the token that followed an
  earlier occurrence of token[q]).
`chance` is what attention spread evenly over each query's visible keys would score (the same
rows, targets / visible keys): short sequences score high by chance, and it says how much.

Each score is computed on two sequences: the probe, and a repeated random-token sequence the run
makes (REPEAT_TOKENS distinct random tokens in two segments, each followed by itself again: a a b b,
after BOS when the tokenizer has one, as TransformerLens's detectors prepend it; at most
2 x REPEAT_TOKENS + 1 = 129 tokens, whatever the probe's length) and captures through the same capture path as the
probe (hooks, pattern derivation, verification). A head gets a type when its score is at least
MIN_SCORE and at least LIFT x chance; previous-token, first/BOS, self and offset are judged on the
probe, duplicate-token and induction on the repeated sequence (every token of a repeat has exactly
one earlier occurrence, and the token after that is the one to predict). A head can have
several types, or none.

What this module does not do: run the model (capture/ does, for the repeated sequence), write
files (artefacts/) or lay out the table (templates/report.html).
"""

from __future__ import annotations

import math
import weakref

import torch

from visualizer.capture import Cache, capture
from visualizer.model.base import LoadedModel

FORMAT = 1
MIN_SCORE = 0.25  # a type needs at least this mean mass on its targets ...
LIFT = 4.0  # ... and at least this many times what even attention would put there
MAX_OFFSET = 32  # fixed offsets tried: 2..MAX_OFFSET (1 is previous-token, 0 self)
REPEAT_TOKENS = 64  # distinct random tokens in the repeated sequence, each seen twice (fewer when the context is short)
REPEAT_SEED = 0  # the random tokens are the same for every run of a model
KINDS = ("previous", "first", "self", "offset", "duplicate", "induction")
TYPE_NAMES = {"previous": "previous-token", "first": "first/BOS", "self": "self", "offset": "offset",
              "duplicate": "duplicate-token", "induction": "induction"}
JUDGED_ON = {"previous": "probe", "first": "probe", "self": "probe", "offset": "probe",
             "duplicate": "repeated", "induction": "repeated"}


# --- targets and scores on one sequence ------------------------------------------------------------


def token_targets(ids: list[int]) -> dict[str, torch.Tensor]:
    """The content-based targets of a sequence: 'duplicate' and 'induction', each [q, k] bool."""
    tokens = torch.tensor(ids, dtype=torch.long)  # [T]
    T = len(ids)
    earlier = torch.tril(tokens[:, None] == tokens[None, :], diagonal=-1)  # [q, j]: j < q, same token
    after = torch.zeros(T, T, dtype=torch.bool)  # [q, k]: k = j + 1 for such j (so k <= q)
    after[:, 1:] = earlier[:, :-1]
    return {"duplicate": earlier, "induction": after}


def mask_score(pattern: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> tuple[list[float | None], float | None]:
    """pattern [H, T, T], target and visible [T, T] bool -> (per head the mean target mass over the
    queries with a target, chance); Nones when no query has a target."""
    rows = target.any(-1)  # [T]: queries with at least one target
    H = pattern.shape[0]
    if not bool(rows.any()):
        return [None] * H, None
    mass = (pattern[:, rows].float() * target[rows]).sum(-1)  # [H, rows]
    chance = (target.sum(-1).double() / visible.sum(-1).clamp_min(1).double())[rows].mean()
    return [float(v) for v in mass.double().mean(-1)], float(chance)


def diagonal_score(pattern: torch.Tensor, offset: int, first_query: int, visible: torch.Tensor
                   ) -> tuple[list[float | None], float | None]:
    """The target key q - offset of every query q >= first_query: mask_score for a diagonal target,
    read off the diagonal (no [T, T] mask built)."""
    T = pattern.shape[-1]
    start = max(first_query, offset)
    if start >= T:
        return [None] * pattern.shape[0], None
    mass = pattern.diagonal(-offset, dim1=1, dim2=2)[:, start - offset:]  # [H, T - start]
    shown = visible.diagonal(-offset)[start - offset:].double()  # [T - start]: is the target visible at all
    chance = (shown / visible.sum(-1)[start:].clamp_min(1).double()).mean()
    return [float(v) for v in mass.double().mean(-1)], float(chance)


def first_score(pattern: torch.Tensor, visible: torch.Tensor) -> tuple[list[float | None], float | None]:
    """Key 0 from queries 1..T-1."""
    T = pattern.shape[-1]
    if T < 2:
        return [None] * pattern.shape[0], None
    chance = (visible[1:, 0].double() / visible[1:].sum(-1).clamp_min(1).double()).mean()
    return [float(v) for v in pattern[:, 1:, 0].double().mean(-1)], float(chance)


def layer_scores(pattern: torch.Tensor, targets: dict[str, torch.Tensor], visible: torch.Tensor) -> dict:
    """One layer's pattern [H, T, T] -> kind -> {'score': [H], 'chance': [H]} (offset adds 'k': [H])."""
    H, T = pattern.shape[0], pattern.shape[-1]
    out = {}
    for kind, (scores, chance) in (("previous", diagonal_score(pattern, 1, 1, visible)),
                                   ("first", first_score(pattern, visible)),
                                   ("self", diagonal_score(pattern, 0, 1, visible))):
        out[kind] = {"score": scores, "chance": [chance] * H}
    best = {"score": [None] * H, "chance": [None] * H, "k": [None] * H}
    for k in range(2, min(MAX_OFFSET, T - 1) + 1):
        scores, chance = diagonal_score(pattern, k, k, visible)
        for h, s in enumerate(scores):
            if s is not None and not math.isnan(s) and (best["score"][h] is None or s > best["score"][h]):
                best["score"][h], best["chance"][h], best["k"][h] = s, chance, k
    out["offset"] = best
    for kind in ("duplicate", "induction"):
        scores, chance = mask_score(pattern, targets[kind], visible)
        out[kind] = {"score": scores, "chance": [chance] * H}
    return out


def sequence_scores(patterns: list[torch.Tensor], ids: list[int], masks: list[torch.Tensor] | None = None) -> dict:
    """Every layer's patterns [H, T, T] on one sequence -> kind -> {'score': [L][H], 'chance': [L][H]}
    (offset adds 'k'). masks: per layer the [T, T] bool of keys a query may see (default causal)."""
    T = len(ids)
    targets = token_targets(ids)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    per_layer = [layer_scores(p, targets, causal if masks is None else masks[l].cpu()) for l, p in enumerate(patterns)]
    return {kind: {field: [layer[kind][field] for layer in per_layer] for field in per_layer[0][kind]}
            for kind in KINDS} if per_layer else {}


# --- the repeated random-token sequence ------------------------------------------------------------


def usable_tokens(loaded: LoadedModel, wanted: int, generator: torch.Generator) -> list[int]:
    """Up to `wanted` distinct ids, in a seeded random order, that a probe could hold: each encodes
    back to itself alone (BOS, special tokens and byte fragments do not)."""
    tokenizer = loaded.tokenizer
    size = min(loaded.dims.vocab_size, tokenizer.vocab_size or loaded.dims.vocab_size)
    skip = set(tokenizer.special_ids) | ({tokenizer.bos_id} if tokenizer.bos_id is not None else set())
    chosen: list[int] = []
    for token_id in torch.randperm(size, generator=generator).tolist():
        if len(chosen) == wanted:
            break
        if token_id in skip:
            continue
        try:
            encoded = tokenizer.encode(tokenizer.token_str(token_id)).ids
        except Exception:  # a token the tokenizer cannot encode back is not one a probe holds  # noqa: BLE001
            continue
        if tokenizer.bos_id is not None and encoded[:1] == [tokenizer.bos_id]:
            encoded = encoded[1:]  # a tokenizer that prepends BOS to every text
        if encoded == [token_id]:
            chosen.append(token_id)
    return chosen


def repeated_sequence(loaded: LoadedModel) -> tuple[list[int], list[int], bool]:
    """(ids, segment lengths, with_bos): [BOS] + a + a + b + b, where a and b are distinct random
    tokens (seeded), |a| about twice |b|, REPEAT_TOKENS in all (fewer when the context or the
    vocabulary is short). Two lengths, so that a head attending a fixed distance back cannot pass
    for an induction head (each repeat has its own distance)."""
    bos = loaded.tokenizer.bos_id
    room = (loaded.dims.n_ctx - (bos is not None)) // 2
    tokens = usable_tokens(loaded, min(REPEAT_TOKENS, room), torch.Generator().manual_seed(REPEAT_SEED))
    first = (2 * len(tokens) + 2) // 3
    segments = [s for s in (tokens[:first], tokens[first:]) if s]
    ids = ([bos] if bos is not None else []) + [t for s in segments for t in s + s]
    return ids, [len(s) for s in segments], bos is not None


def layer_masks(loaded: LoadedModel, T: int) -> list[torch.Tensor]:
    return [loaded.adapter.attention_mask(layer, T, torch.device("cpu")) for layer in range(loaded.dims.n_layer)]


def patterns_of(cache: Cache, n_layer: int) -> list[torch.Tensor]:
    return [cache.tensors[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layer)]


# --- types ------------------------------------------------------------------------------------------


def passes(score: float | None, chance: float | None) -> bool:
    return (score is not None and chance is not None and not math.isnan(score)
            and score >= MIN_SCORE and score >= LIFT * chance)


def head_list(scored: dict[str, dict], n_layer: int, n_head: int) -> list[dict]:
    """Per head its types (strongest first): [{'layer', 'head', 'types': [{'kind', 'name', 'score', 'on'}]}]."""
    heads = []
    for layer in range(n_layer):
        for head in range(n_head):
            types = []
            for kind in KINDS:
                table = scored.get(JUDGED_ON[kind]) or {}
                if kind not in table:
                    continue
                score, chance = table[kind]["score"][layer][head], table[kind]["chance"][layer][head]
                if passes(score, chance):
                    name = TYPE_NAMES[kind] + (f" {table[kind]['k'][layer][head]}" if kind == "offset" else "")
                    types.append({"kind": kind, "name": name, "score": score, "on": JUDGED_ON[kind]})
            types.sort(key=lambda t: -t["score"])
            heads.append({"layer": layer, "head": head, "types": types})
    return heads


_REPEATED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its repeated-sequence record


def repeated_record(loaded: LoadedModel) -> dict:
    """The repeated random sequence, its capture's verification and its scores: once per loaded
    model (the sequence depends on the model alone; a run of several probes captures it once)."""
    if loaded.model in _REPEATED:
        return _REPEATED[loaded.model]
    ids, segments, with_bos = repeated_sequence(loaded)
    record = {"sequence": {"ids": ids, "segments": segments, "bos": with_bos, "seed": REPEAT_SEED, "length": len(ids),
                           "verification": None},
              "scores": None, "notes": []}
    if sum(segments) >= 2:
        cache = capture(loaded, ids)
        record["scores"] = sequence_scores(patterns_of(cache, loaded.dims.n_layer), ids, layer_masks(loaded, len(ids)))
        record["sequence"]["verification"] = {"passed": cache.passed, "failed": cache.failures()}
    else:
        record["notes"].append(f"no repeated random sequence: the context ({loaded.dims.n_ctx} tokens) or the vocabulary "
                               "leaves room for fewer than 2 tokens; duplicate-token and induction are judged on nothing")
    _REPEATED[loaded.model] = record
    return record


def detect(loaded: LoadedModel, cache: Cache, ids: list[int]) -> dict:
    """report_data.json's `head_types`: scores on the probe (its capture) and on the repeated random
    sequence (captured through `capture`, verified as any capture), the types, and the rule's constants."""
    n_layer, n_head = loaded.dims.n_layer, loaded.dims.n_head
    probe = sequence_scores(patterns_of(cache, n_layer), ids, layer_masks(loaded, len(ids)))
    repeated = repeated_record(loaded)
    return {
        "format": FORMAT,
        "min_score": MIN_SCORE, "lift": LIFT, "max_offset": MAX_OFFSET,
        "repeated_sequence": repeated["sequence"],
        "probe": probe,
        "repeated": repeated["scores"],
        "heads": head_list({"probe": probe, "repeated": repeated["scores"]}, n_layer, n_head),
        "notes": list(repeated["notes"]),
    }
