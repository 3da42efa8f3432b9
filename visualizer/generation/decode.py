"""Generate a continuation step by step with a key/value cache, recording what each step computed.

Family-blind: the model is only reached through `adapter.start_cache`, `adapter.step` and
`adapter.logits_from_residual`. Step s reads the context (prompt + tokens 0..s-1, cropped to the
last n_ctx as nanoGPT's `generate` crops), and records for the token it chooses: id, probability,
entropy, the candidates before and after every sampling control, the attention row of the context's
last position (the query whose output chose the token) in every layer and head, and the logit lens
of that position after every layer.

Cost per step is one cached forward of one position (O(T)). Once the context is full, every step
crops it to the last n_ctx tokens, which shifts every position (learned absolute positions), so the
cache is rebuilt by a prefill of the cropped window: exactly nanoGPT's behaviour, at the cost of a
full forward per step from then on. Steps where that happened are recorded (`slides`). The same
contiguous crop applies to every family, rotary ones included (their cache cannot pass n_ctx either:
nanochat's rotary tables, Llama's max_position_embeddings); a prompt that began with BOS
(nanochat's `<|bos|>`, Llama's `<s>`) loses it with the crop, as nanoGPT's crop would drop it: the
window is kept contiguous so every step's context stays `sequence[context_start:][:T]`.

What this module does not do: write files or pages (generate_cli.py, generation_site.py).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

import visualizer.generation.sampling as sampling
from visualizer.capture import capture, verify
from visualizer.model.base import LoadedModel, StepOutput
from visualizer.model.tokenizer import Tokenizer


@dataclass
class Step:
    """One generated token and what the model computed when it chose it (CPU tensors)."""

    index: int
    token: int
    context_start: int  # first position of the sequence in the context this step read
    context_length: int  # T: keys the attention row covers (sequence[context_start : context_start + T])
    slid: bool  # True when this step's context was cropped and the cache rebuilt (a prefill)
    logits: torch.Tensor  # [vocab] float32: the model's logits at the context's last position
    choice: sampling.Choice
    attention: torch.Tensor  # [n_layer, n_head, T] float32: the last position's attention row
    lens_logits: torch.Tensor  # [n_layer, vocab] float32: logit lens of the last position after each block


@dataclass
class Generation:
    prompt_ids: list[int]
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = "max_new_tokens"  # or "stop_string", "no_allowed_token"
    stop_string: str | None = None
    checks: dict[str, dict] = field(default_factory=dict)  # name -> {max_abs_error, tolerance, passed, checked}

    @property
    def ids(self) -> list[int]:
        return [s.token for s in self.steps]

    @property
    def slides(self) -> list[int]:
        return [s.index for s in self.steps if s.slid]


def _bound(worst: dict, name: str, result: dict) -> None:
    """Keep the worst (relative to its tolerance) of one identity's checks (verify.check results)."""
    entry = worst.setdefault(name, {"max_abs_error": 0.0, "tolerance": result["tolerance"], "passed": True, "checked": 0})
    entry["checked"] += 1
    error = result["max_abs_error"]
    if not math.isfinite(error) or error / result["tolerance"] > entry["max_abs_error"] / entry["tolerance"]:
        entry["max_abs_error"], entry["tolerance"] = error, result["tolerance"]
    entry["passed"] = entry["passed"] and result["passed"]


def check_step(loaded: LoadedModel, out: StepOutput, worst: dict) -> None:
    """pattern @ v == z for the step's last position in every layer (the derived row is the kernel's)."""
    kv_index = loaded.adapter.kv_head_index(loaded.dims).to(out.z.device)
    for layer, values in enumerate(out.values):
        z = verify.attention_output(out.pattern[layer, :, -1:, :], values, kv_index)  # [1, nh, d_head]
        _bound(worst, f"{verify.PATTERN_V_Z} (every step)", verify.check(z, out.z[layer, -1:]))


def check_against_full_forward(loaded: LoadedModel, context: list[int], step: Step, worst: dict) -> None:
    """The cached step equals `capture` over the same context: logits and attention rows."""
    cache = capture(loaded, context)
    _bound(worst, "cached logits == full forward (last step)", verify.check(step.logits, cache["logits"][-1]))
    rows = torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][:, -1] for l in range(loaded.dims.n_layer)])  # [L, nh, T]
    _bound(worst, "cached attention rows == full forward (last step)", verify.check(step.attention, rows))


SMALL_STEP_MACS = 32_000_000  # below this many multiply-adds per token, steps run on one CPU thread


@contextlib.contextmanager
def step_threads(loaded: LoadedModel):
    """One intra-op thread for the steps of a small model on CPU (and for the per-step record's
    softmaxes over the vocabulary), restored afterwards.

    A one-token step is a chain of tiny matrix products; splitting each over threads costs more in
    synchronisation than it saves, and on a busy machine a descheduled worker stalls every op
    (measured here with 2 threads on 2 shared cores: 225-430 ms/step, against 14-18 ms on one)."""
    d = loaded.dims
    macs = d.n_layer * (4 * d.d_model * d.d_model + 2 * d.d_model * d.d_mlp) + d.d_model * d.vocab_size
    before = torch.get_num_threads()
    if loaded.device.type == "cpu" and macs < SMALL_STEP_MACS and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate(
    loaded: LoadedModel,
    prompt_ids: list[int],
    max_new_tokens: int,
    settings: sampling.Settings,
    on_step: Callable[[Step], None] | None = None,
    verify_last: bool = True,
) -> Generation:
    """Generate up to `max_new_tokens` tokens after `prompt_ids` (at most n_ctx of them)."""
    with step_threads(loaded):
        gen = _decode(loaded, prompt_ids, max_new_tokens, settings, on_step)
        if verify_last and gen.steps:
            last = gen.steps[-1]
            sequence = gen.prompt_ids + gen.ids
            context = sequence[last.context_start : last.context_start + last.context_length]
            check_against_full_forward(loaded, context, last, gen.checks)
    gen.checks = dict(sorted(gen.checks.items()))
    return gen


def _decode(
    loaded: LoadedModel,
    prompt_ids: list[int],
    max_new_tokens: int,
    settings: sampling.Settings,
    on_step: Callable[[Step], None] | None,
) -> Generation:
    adapter, n_ctx = loaded.adapter, loaded.dims.n_ctx
    assert 0 < len(prompt_ids) <= n_ctx, f"prompt of {len(prompt_ids)} tokens for a context of {n_ctx}"
    tokenizer = loaded.tokenizer
    generator = sampling.make_generator(settings.seed)
    gen = Generation(prompt_ids=list(prompt_ids))
    sequence = list(prompt_ids)
    cache = adapter.start_cache(loaded)
    out = adapter.step(loaded, cache, torch.tensor(sequence, dtype=torch.long))  # prefill
    context_start, slid = 0, False
    for index in range(max_new_tokens):
        logits = out.logits[-1].to("cpu", torch.float32)  # [vocab]
        check_step(loaded, out, gen.checks)
        choice = sampling.choose(logits, sequence, settings, generator)
        if not choice.allowed:
            gen.stop_reason = "no_allowed_token"
            break
        lens = adapter.logits_from_residual(loaded, out.resid_post[:, -1])  # [n_layer, vocab]
        if out.resid_final is None:
            _bound(gen.checks, "logit lens at the last layer == logits", verify.check(lens[-1], logits))
        else:  # the final residual is not the last block's output (backout): check the head on it instead
            head = adapter.logits_from_residual(loaded, out.resid_final[-1:])[0]  # [vocab]
            _bound(gen.checks, "final norm and head on the final residual == logits", verify.check(head, logits))
        step = Step(
            index=index,
            token=choice.token,
            context_start=context_start,
            context_length=cache.length,
            slid=slid,
            logits=logits,
            choice=choice,
            attention=out.pattern[:, :, -1].to("cpu", torch.float32),  # [L, nh, T]
            lens_logits=lens.to("cpu", torch.float32),
        )
        gen.steps.append(step)
        if on_step is not None:
            on_step(step)
        sequence.append(choice.token)
        if settings.stop:
            continuation = continuation_text(tokenizer, gen.prompt_ids, gen.ids)
            hit = sampling.find_stop(continuation, settings.stop)
            if hit is not None:
                gen.stop_reason, gen.stop_string = "stop_string", hit
                break
        if index + 1 == max_new_tokens:
            break
        if cache.length < n_ctx:
            slid = False
            out = adapter.step(loaded, cache, torch.tensor([choice.token], dtype=torch.long))
        else:  # crop to the last n_ctx tokens as nanoGPT does: positions shift, so prefill again
            slid = True
            context_start = len(sequence) - n_ctx
            cache = adapter.start_cache(loaded)
            out = adapter.step(loaded, cache, torch.tensor(sequence[context_start:], dtype=torch.long))
    return gen


def continuation_text(tokenizer: Tokenizer, prompt_ids: list[int], generated: list[int]) -> str:
    """The generated text as it continues the prompt (a word vocabulary's separator included)."""
    if not generated:
        return ""
    head = tokenizer.decode(list(prompt_ids))
    full = tokenizer.decode(list(prompt_ids) + list(generated))
    return full[len(head) :] if full.startswith(head) else tokenizer.decode(list(generated))


def rank_of(probs: torch.Tensor, token: int) -> int:
    """1-based rank of `token` in `probs` (ties counted in its favour)."""
    return int((probs > probs[token]).sum()) + 1
