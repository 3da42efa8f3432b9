"""Which input tokens drove one prediction: the logit of a target token at a target position,
explained three ways, each a number per input position.

- Integrated gradients (Sundararajan et al. 2017) over the token embeddings: the tensor named by
  the adapter's `embedding_hook` (nanoGPT: `hook_embed`, the wte output; nanochat:
  `ln_embed.hook_normalized`, because its embedding norm is scale-invariant). Position embeddings
  are held fixed, and so is anything else a family reads from the token ids (nanochat's value
  embeddings keep the probe's values). Baseline: from the adapter; zeros by default (nanoGPT: the
  model then sees position embeddings only), <|bos|>'s normalised embedding at every position for
  nanochat (no position embeddings: a zero stream would make its first RMSNorm jump). The path is
  the straight line baseline -> input; the integral uses Gauss-Legendre quadrature with
  `steps` nodes on [0, 1] (Captum's default method), all nodes run as one batch (chunked only
  when they exceed MAX_ROWS token rows). Completeness is reported: the sum of the attributions
  against logit(input) - logit(baseline).
- Gradient x input: the same logit's gradient at the input, times the input, summed over d_model.
- Attention rollout (Abnar & Zuidema 2020): per layer the head-averaged pattern plus the identity,
  rows renormalised, multiplied from the first layer to the last; the target position's row. It
  does not depend on the target token, and its row sums to 1.

The model is causal, so only positions up to the target matter: the input is cut there (exact),
and later positions get no value.

What this module does not do: know a family (the adapter's `forward_from_embeddings` runs the
model), write files or HTML (templates/attribution.html shows the result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visualizer.analysis.distributions import log_probs
from visualizer.capture import Cache
from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel
from visualizer.model.tokenizer import readable

DEFAULT_STEPS = 64
MAX_ROWS = 4096  # token rows per batched forward (steps x positions); more are split into chunks
FLOP_BUDGET = 3e12  # default-steps runs estimated above this skip integrated gradients (say so)


@dataclass(frozen=True)
class AttributionOptions:
    target: str | None = None  # token text (exactly one token) or id; None: the top next token
    position: int = -1  # negative counts from the end
    steps: int | None = None  # None: DEFAULT_STEPS within FLOP_BUDGET; 0: no integrated gradients


def options_from_args(args) -> AttributionOptions:
    steps = getattr(args, "ig_steps", None)
    if steps is not None and steps < 0:
        raise VisualizerError(f"--ig-steps {steps}: must be 0 (off) or more")
    return AttributionOptions(target=getattr(args, "target", None), position=getattr(args, "target_position", -1),
                              steps=steps)


def target_position(positions: int, options: AttributionOptions) -> int:
    position = options.position + positions if options.position < 0 else options.position
    if not 0 <= position < positions:
        raise VisualizerError(f"--target-position {options.position}: the probe has {positions} positions "
                              f"(0..{positions - 1}, or -1..-{positions})")
    return position


def target_token(loaded: LoadedModel, options: AttributionOptions) -> tuple[int | None, str]:
    """(token id, how it was chosen); id None means the top next token at the target position.
    Text that is exactly one token wins over reading it as an id ('7' in a character vocabulary)."""
    text = options.target
    if text is None:
        return None, "the top next token"
    try:
        ids = loaded.tokenizer.encode(text).ids
    except VisualizerError:
        ids = []
    if len(ids) == 1:
        return int(ids[0]), f"--target {text!r}"
    if text.isdigit() and int(text) < loaded.dims.vocab_size:
        return int(text), f"--target id {text}"
    raise VisualizerError(f"--target {text!r}: not a single token of the vocabulary (it encodes to {len(ids)} tokens) "
                          f"and not a token id below {loaded.dims.vocab_size}")


def check_options(loaded: LoadedModel, lengths: list[int], options: AttributionOptions | None) -> None:
    """Fail before any report is written when the target cannot be found in every probe."""
    options = options or AttributionOptions()
    for positions in lengths:
        target_position(positions, options)
    target_token(loaded, options)


def resolve_target(loaded: LoadedModel, logits: torch.Tensor, options: AttributionOptions) -> tuple[int, int, str]:
    """(position, token id, how it was chosen) from logits [pos, vocab] and the options."""
    position = target_position(logits.shape[0], options)
    token_id, chosen = target_token(loaded, options)
    return position, int(logits[position].argmax()) if token_id is None else token_id, chosen


def legendre_nodes(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1)."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return torch.tensor((x + 1) / 2, dtype=torch.float32), torch.tensor(w / 2, dtype=torch.float64)


def path_gradients(loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor, baseline: torch.Tensor,
                   alphas: torch.Tensor, position: int, token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target logit and its gradient at baseline + alpha * (emb - baseline) for every alpha,
    batched. ids [T], emb and baseline [T, d_model], alphas [S] -> (logit [S] float64,
    gradient [S, T, d_model] float64)."""
    T = emb.shape[0]
    chunk = max(1, MAX_ROWS // T)
    values, grads = [], []
    start_point = baseline.to(loaded.device, torch.float32)
    direction = emb.to(loaded.device, torch.float32) - start_point  # [T, d_model]
    for start in range(0, alphas.numel(), chunk):
        a = alphas[start:start + chunk].to(loaded.device)
        x = (start_point[None] + a[:, None, None] * direction[None]).requires_grad_(True)  # [S, T, d_model]
        with torch.enable_grad():
            logits = loaded.adapter.forward_from_embeddings(loaded, ids, x, [position])  # [S, 1, vocab]
            out = logits[:, 0, token_id]  # [S]
            (grad,) = torch.autograd.grad(out.sum(), x)
        values.append(out.detach().double().cpu())
        grads.append(grad.detach().double().cpu())
    return torch.cat(values), torch.cat(grads)


def estimated_flops(loaded: LoadedModel, positions: int, steps: int) -> float:
    """Forward + input-gradient backward, about 6 flops per parameter per token row."""
    return 6.0 * float(loaded.card.get("n_params") or 0) * positions * (steps + 2)


def gradients_and_ig(loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor, baseline: torch.Tensor,
                     position: int, token_id: int, steps: int) -> dict:
    """Gradient x input and (steps > 0) integrated gradients from one batch: the quadrature nodes
    plus the baseline (alpha 0) and the input (alpha 1). emb, baseline [T, d_model], T = position + 1.
    grad_x_input and ig are [T] (summed over d_model)."""
    if not steps:  # gradient x input alone: the input row only
        values, grads = path_gradients(loaded, ids, emb, baseline, torch.tensor([1.0]), position, token_id)
        return {"logit": float(values[-1]), "grad_x_input": (grads[-1] * emb.double()).sum(-1)}
    nodes, weights = legendre_nodes(steps)
    alphas = torch.cat([nodes, torch.tensor([0.0, 1.0])])
    values, grads = path_gradients(loaded, ids, emb, baseline, alphas, position, token_id)
    at_input, at_baseline = float(values[-1]), float(values[-2])
    direction = emb.double() - baseline.double()
    ig = (torch.einsum("s,std->td", weights, grads[:steps]) * direction).sum(-1)  # [T]
    total, delta = float(ig.sum()), at_input - at_baseline
    return {"logit": at_input, "grad_x_input": (grads[-1] * emb.double()).sum(-1), "ig": ig, "baseline_logit": at_baseline,
            "ig_sum": total, "completeness_error": abs(total - delta),
            "relative_error": abs(total - delta) / abs(delta) if delta else None}


def attention_rollout(patterns: list[torch.Tensor]) -> torch.Tensor:
    """patterns: one [head, query, key] per layer, first to last -> rollout [query, key], rows sum to 1."""
    T = patterns[0].shape[-1]
    eye = torch.eye(T, dtype=torch.float64)
    rollout = eye
    for pattern in patterns:
        a = pattern.double().mean(0) + eye  # [T, T]
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    return rollout


def _values(vector: torch.Tensor, T: int) -> list:
    """[p+1] values -> a list of length T, None after the target position."""
    values = [float(v) for v in vector.tolist()]
    return values + [None] * (T - len(values))


def attribute(loaded: LoadedModel, cache: Cache, ids: list[int], options: AttributionOptions | None = None) -> dict:
    """attribution.json for one run: the target and one value per input position per method."""
    options = options or AttributionOptions()
    tensors = cache.tensors
    logits = tensors["logits"]  # [T, vocab]
    T = logits.shape[0]
    position, token_id, chosen = resolve_target(loaded, logits, options)
    logp = log_probs(logits[position])  # [vocab]: as every next-token table computes it
    text = loaded.tokenizer.token_str(token_id)
    steps = DEFAULT_STEPS if options.steps is None else options.steps
    notes = []
    if options.steps is None and estimated_flops(loaded, position + 1, steps) > FLOP_BUDGET:
        notes.append(f"integrated gradients skipped: about {estimated_flops(loaded, position + 1, steps) / 1e12:.1f} "
                     f"TFLOP for {steps} steps over {position + 1} positions; pass --ig-steps N to run it")
        steps = 0
    hook = loaded.adapter.embedding_hook
    emb = tensors[hook][: position + 1]  # [p+1, d_model]: where the path ends
    prefix = torch.tensor(ids[: position + 1], dtype=torch.long)  # [p+1]
    baseline, baseline_note = loaded.adapter.attribution_baseline(loaded, prefix)  # [p+1, d_model]
    grads = gradients_and_ig(loaded, prefix, emb, baseline, position, token_id, steps)
    methods = []
    if steps:
        methods.append({
            "name": "integrated_gradients",
            "title": "Integrated gradients",
            "values": _values(grads["ig"], T),
            "input": hook,
            "baseline": baseline_note,
            "steps": steps,
            "quadrature": "Gauss-Legendre",
            "sum": grads["ig_sum"],
            "baseline_logit": grads["baseline_logit"],
            "logit_difference": grads["logit"] - grads["baseline_logit"],
            "completeness_error": grads["completeness_error"],
            "relative_error": grads["relative_error"],
        })
    methods.append({
        "name": "gradient_x_input",
        "title": "Gradient × input",
        "input": hook,
        "values": _values(grads["grad_x_input"], T),
        "sum": float(grads["grad_x_input"].sum()),
    })
    patterns = [tensors[f"blocks.{layer}.attn.hook_pattern"] for layer in range(loaded.dims.n_layer)]
    rollout = attention_rollout([p[:, : position + 1, : position + 1] for p in patterns])[position]  # [p+1]
    methods.append({
        "name": "attention_rollout",
        "title": "Attention rollout",
        "values": _values(rollout, T),
        "sum": float(rollout.sum()),
        "note": "head-averaged attention plus identity, rows renormalised, multiplied through the layers; "
                "independent of the target token",
    })
    return {
        "format": 1,
        "target": {"position": position, "id": token_id, "token": text, "readable": readable(text),
                   "logit": float(logits[position, token_id]), "prob": float(logp[token_id].double().exp()), "chosen": chosen,
                   "logit_recomputed": grads["logit"]},
        "positions": T,
        "input_ids": list(ids[:T]),
        "methods": methods,
        "notes": notes,
    }
