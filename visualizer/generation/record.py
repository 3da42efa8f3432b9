"""A `Generation` -> the JSON-ready record written as `generation.json` (deterministic bytes via
`trace.dumps`: sorted keys, no clock, no paths).

Attention rows are stored exactly: float32 little-endian, base64, with their shape
[n_layer, n_head, T] (T = the step's context length; key j is sequence position context_start + j).
Everything else is plain JSON numbers.

What this module does not do: run the model (generate.py) or lay out the page (generation_site.py).
"""

from __future__ import annotations

import torch

from visualizer.model.base import LoadedModel
from visualizer.artefacts.attention_codec import FLOAT32_ENCODING, encode_float32
from visualizer.analysis.distributions import entropy_bits, log_probs, token_table
from visualizer.generation.decode import Generation, Step, continuation_text, rank_of, step_threads
from visualizer.generation.sampling import Settings, final_log_probs
from visualizer.model.tokenizer import readable
from visualizer.artefacts.trace import model_header
from visualizer.model.probe import Probe

GENERATION_FORMAT = 1


def top_tokens(logp: torch.Tensor, logits: torch.Tensor, tok, k: int) -> list[dict]:
    """[vocab] -> the k most likely tokens of one distribution (distributions.token_table)."""
    return token_table(logp[None], logits[None], tok.token_str, k)[0]


def step_record(loaded: LoadedModel, step: Step, prompt_len: int, settings: Settings, k: int, lens_k: int) -> dict:
    tok = loaded.tokenizer
    logits = step.logits.double()  # [vocab]
    logp = log_probs(logits)  # [vocab] float64
    probs = logp.exp()
    final_logp = final_log_probs(step.choice, settings)  # [vocab]: what the token was drawn from
    token = tok.token_str(step.token)
    lens_logits = step.lens_logits.double()  # [n_layer, vocab]
    lens_logp = log_probs(lens_logits)
    lens_probs = lens_logp.exp()
    lens_top = token_table(lens_logp, lens_logits, tok.token_str, lens_k)
    return {
        "step": step.index,
        "position": prompt_len + step.index,  # index in prompt + generated
        "id": step.token,
        "token": token,
        "readable": readable(token),
        "prob": float(probs[step.token]),  # under the model's own distribution
        "logit": float(logits[step.token]),
        "rank": rank_of(probs, step.token),
        "entropy_bits": float(entropy_bits(logp)),
        "sampled_prob": float(final_logp[step.token].exp()),  # under the distribution it was drawn from
        "sampled_entropy_bits": float(entropy_bits(final_logp)),
        "candidates_before": top_tokens(logp, logits, tok, k),
        "candidates_after": top_tokens(final_logp, step.choice.final_logits, tok, k),
        "controls": [
            {"control": name, "candidates": top_tokens(log_probs(x), x, tok, k)}
            for name, x in step.choice.stages
        ],
        "context_start": step.context_start,
        "context_length": step.context_length,
        "slid": step.slid,
        "logit_lens": [
            {
                "layer": layer,
                "top": lens_top[layer],
                "chosen_prob": float(lens_probs[layer, step.token]),
                "chosen_rank": rank_of(lens_probs[layer], step.token),
            }
            for layer in range(lens_probs.shape[0])
        ],
        "attention": encode_float32(step.attention),
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
        "attention_encoding": FLOAT32_ENCODING,
        "attention_query": "the context's last position: the query whose output chose the step's token",
        "verification": gen.checks,
        "verification_passed": all(c["passed"] for c in gen.checks.values()),
        "steps": steps,
    }
