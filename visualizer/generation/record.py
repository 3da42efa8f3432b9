"""A `Generation` -> the JSON-ready record written as `generation.json` (deterministic bytes via
`trace.dumps`: sorted keys, no clock, no paths).

Attention rows are stored exactly: float32 little-endian, base64, with their shape
[n_layer, n_head, T] (T = the step's context length; key j is sequence position context_start + j).
Everything else is plain JSON numbers.

What this module does not do: run the model (generate.py) or lay out the page (generation_site.py).
"""

from __future__ import annotations

import base64

import numpy as np
import torch

from visualizer.model.base import LoadedModel
from visualizer.generation.decode import Generation, Step, continuation_text, entropy_bits, rank_of, step_threads, top_candidates
from visualizer.generation.sampling import Settings, final_distribution
from visualizer.model.tokenizer import readable
from visualizer.artefacts.trace import model_header
from visualizer.model.probe import Probe

GENERATION_FORMAT = 1
ATTENTION_ENCODING = "base64 of float32 little-endian, C order, shape [n_layer, n_head, T]"


def encode_float32(t: torch.Tensor) -> str:
    return base64.b64encode(np.ascontiguousarray(t.numpy(), dtype="<f4").tobytes()).decode("ascii")


def decode_attention(entry: dict) -> np.ndarray:
    """The inverse of the record's attention encoding: [n_layer, n_head, T] float32."""
    raw = base64.b64decode(entry["data"])
    return np.frombuffer(raw, dtype="<f4").reshape(entry["shape"])


def step_record(loaded: LoadedModel, step: Step, prompt_len: int, settings: Settings, k: int, lens_k: int) -> dict:
    tok = loaded.tokenizer
    logits = step.logits.double()  # [vocab]
    probs = torch.softmax(logits, dim=-1)
    final = final_distribution(step.choice, settings)
    token = tok.token_str(step.token)
    lens_probs = torch.softmax(step.lens_logits.double(), dim=-1)  # [n_layer, vocab]
    return {
        "step": step.index,
        "position": prompt_len + step.index,  # index in prompt + generated
        "id": step.token,
        "token": token,
        "readable": readable(token),
        "prob": float(probs[step.token]),  # under the model's own distribution
        "logit": float(logits[step.token]),
        "rank": rank_of(probs, step.token),
        "entropy_bits": entropy_bits(probs),
        "sampled_prob": float(final[step.token]),  # under the distribution it was drawn from
        "sampled_entropy_bits": entropy_bits(final),
        "candidates_before": top_candidates(probs, logits, tok, k),
        "candidates_after": top_candidates(final, step.choice.final_logits, tok, k),
        "controls": [
            {"control": name, "candidates": top_candidates(torch.softmax(x, dim=-1), x, tok, k)}
            for name, x in step.choice.stages
        ],
        "context_start": step.context_start,
        "context_length": step.context_length,
        "slid": step.slid,
        "logit_lens": [
            {
                "layer": layer,
                "top": top_candidates(lens_probs[layer], step.lens_logits[layer].double(), tok, lens_k),
                "chosen_prob": float(lens_probs[layer, step.token]),
                "chosen_rank": rank_of(lens_probs[layer], step.token),
            }
            for layer in range(lens_probs.shape[0])
        ],
        "attention": {"shape": list(step.attention.shape), "data": encode_float32(step.attention)},
    }


def build_record(
    loaded: LoadedModel,
    probe: Probe,
    gen: Generation,
    settings: Settings,
    max_new_tokens: int,
    candidates: int,
    lens_top: int = 5,
) -> dict:
    tok = loaded.tokenizer
    P = len(gen.prompt_ids)
    prompt_tokens = [tok.token_str(i) for i in gen.prompt_ids]
    continuation = continuation_text(tok, gen.prompt_ids, gen.ids)
    with step_threads(loaded):
        steps = [step_record(loaded, s, P, settings, candidates, lens_top) for s in gen.steps]
    return {
        **model_header(loaded, GENERATION_FORMAT),
        "prompt": probe.text,
        "prompt_ids": list(gen.prompt_ids),
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_readable": [readable(t) for t in prompt_tokens],
        "dropped_tokens": len(probe.dropped_ids),
        "warnings": list(probe.warnings),
        "settings": {**settings.as_json(), "max_new_tokens": max_new_tokens, "candidates": candidates, "lens_top": lens_top},
        "generated_ids": gen.ids,
        "continuation": continuation,
        "output": probe.text + continuation,
        "stop": {"reason": gen.stop_reason, "string": gen.stop_string, "steps": len(gen.steps)},
        "slides": gen.slides,
        "attention_encoding": ATTENTION_ENCODING,
        "attention_query": "the context's last position: the query whose output chose the step's token",
        "verification": gen.checks,
        "verification_passed": all(c["passed"] for c in gen.checks.values()),
        "steps": steps,
    }
