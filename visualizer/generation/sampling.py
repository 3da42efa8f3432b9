"""Sampling controls: turn one step's logits into the distribution a token is drawn from, and draw it.

Each control is a pure function of the logits [vocab] (float64, CPU) and the sequence so far. The
order is the one Hugging Face's `generate` uses: repetition penalty and the n-gram block act on the
model's logits, then temperature, then top-k, then top-p. Defaults leave the model's distribution
untouched (temperature 1, no top-k, no top-p, penalty 1, no n-gram block); temperature 0 is greedy
decoding (argmax of the logits after the penalty and the n-gram block).

`choose` also returns the distribution after every active control, so a page can show what each
one did. What this module does not do: run the model (generate.py) or name tokens (the tokenizer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from visualizer.analysis.distributions import log_probs
from visualizer.errors import VisualizerError

DEFAULT_SEED = 1337  # nanoGPT's sample.py seed: unseeded runs are reproducible too


@dataclass(frozen=True)
class Settings:
    temperature: float = 1.0  # 0: greedy argmax
    top_k: int | None = None  # keep the k most likely tokens (ties at the k-th logit kept, as nanoGPT)
    top_p: float | None = None  # keep the smallest set of most likely tokens whose mass reaches p
    repetition_penalty: float = 1.0  # CTRL: logit / p if positive, logit * p if negative, for seen tokens
    no_repeat_ngram_size: int = 0  # forbid a token that would repeat an n-gram of the sequence
    stop: tuple[str, ...] = ()  # generation ends once the continuation contains one of these
    seed: int = DEFAULT_SEED

    def check(self) -> "Settings":
        """Raise a VisualizerError naming the flag for a value outside its range."""
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise VisualizerError(f"--temperature {self.temperature}: must be 0 (greedy) or a positive number")
        if self.top_k is not None and self.top_k < 1:
            raise VisualizerError(f"--top-k {self.top_k}: must be at least 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise VisualizerError(f"--top-p {self.top_p}: must be in (0, 1]")
        if not math.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise VisualizerError(f"--repetition-penalty {self.repetition_penalty}: must be a positive number")
        if self.no_repeat_ngram_size < 0:
            raise VisualizerError(f"--no-repeat-ngram-size {self.no_repeat_ngram_size}: must be 0 (off) or more")
        for s in self.stop:
            if s == "":
                raise VisualizerError("--stop: a stop string may not be empty")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def as_json(self) -> dict:
        out = asdict(self)
        out["stop"] = list(self.stop)
        return out


def repetition_penalty(logits: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """CTRL's penalty on every token id in `seen`: positive logits divided, negative multiplied."""
    if penalty == 1.0 or not seen:
        return logits
    ids = torch.tensor(sorted(set(seen)), dtype=torch.long)
    ids = ids[ids < logits.shape[-1]]
    out = logits.clone()
    picked = out[ids]
    out[ids] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return out


def banned_by_ngram(sequence: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already in `sequence` (n=1: every token seen)."""
    if n <= 0 or len(sequence) < n - 1:
        return set()
    if n == 1:
        return set(sequence)
    prefix = tuple(sequence[len(sequence) - (n - 1) :])
    banned = set()
    for i in range(len(sequence) - n + 1):
        if tuple(sequence[i : i + n - 1]) == prefix:
            banned.add(sequence[i + n - 1])
    return banned


def block_ngrams(logits: torch.Tensor, sequence: list[int], n: int) -> torch.Tensor:
    banned = [i for i in banned_by_ngram(sequence, n) if i < logits.shape[-1]]
    if not banned:
        return logits
    out = logits.clone()
    out[torch.tensor(sorted(banned), dtype=torch.long)] = float("-inf")
    return out


def scale_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature in (0, 1.0) else logits / temperature


def keep_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus: keep the most likely tokens until their mass reaches p (the most likely is always kept)."""
    if p is None or p >= 1.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    order = torch.argsort(probs, descending=True, stable=True)
    sorted_probs = probs[order]
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of strictly likelier tokens
    drop_sorted = mass_before >= p
    drop_sorted[0] = False
    drop = torch.zeros_like(drop_sorted)
    drop[order] = drop_sorted
    return logits.masked_fill(drop, float("-inf"))


@dataclass
class Choice:
    token: int
    final_logits: torch.Tensor  # [vocab] float64: what the token was drawn from (before temperature 0's argmax)
    stages: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (control, logits after it), active ones
    allowed: bool = True  # False when every token was banned (nothing could be chosen)


def apply_controls(logits: torch.Tensor, sequence: list[int], settings: Settings) -> list[tuple[str, torch.Tensor]]:
    """The logits after each active control, in order (empty list: the model's logits are used as is)."""
    stages = []
    x = logits
    for name, active, fn in (
        ("repetition_penalty", settings.repetition_penalty != 1.0, lambda t: repetition_penalty(t, sequence, settings.repetition_penalty)),
        ("no_repeat_ngram", settings.no_repeat_ngram_size > 0, lambda t: block_ngrams(t, sequence, settings.no_repeat_ngram_size)),
        ("temperature", settings.temperature not in (0, 1.0), lambda t: scale_temperature(t, settings.temperature)),
        ("top_k", settings.top_k is not None and not settings.greedy, lambda t: keep_top_k(t, settings.top_k)),
        ("top_p", settings.top_p is not None and not settings.greedy, lambda t: keep_top_p(t, settings.top_p)),
    ):
        if active:
            x = fn(x)
            stages.append((name, x))
    return stages


def choose(logits: torch.Tensor, sequence: list[int], settings: Settings, generator: torch.Generator) -> Choice:
    """Pick the next token from `logits` [vocab] given the sequence so far (prompt + generated)."""
    logits = logits.detach().to("cpu", torch.float64)
    stages = apply_controls(logits, sequence, settings)
    final = stages[-1][1] if stages else logits
    if not torch.isfinite(final).any():
        return Choice(token=-1, final_logits=final, stages=stages, allowed=False)
    if settings.greedy:
        token = int(torch.argmax(final))
    else:
        probs = torch.softmax(final, dim=-1)
        token = int(torch.multinomial(probs, 1, generator=generator))
    return Choice(token=token, final_logits=final, stages=stages)


def final_log_probs(choice: Choice, settings: Settings) -> torch.Tensor:
    """[vocab] float64 log-probabilities of the distribution the token was drawn from (greedy: all
    mass on the argmax, log 0 = -inf elsewhere), as distributions.log_probs computes every other."""
    if settings.greedy:
        logp = torch.full_like(choice.final_logits, float("-inf"))
        if choice.allowed:
            logp[choice.token] = 0.0
        return logp
    return log_probs(choice.final_logits)


def final_distribution(choice: Choice, settings: Settings) -> torch.Tensor:
    """[vocab] float64 probabilities the token was drawn from: exp of `final_log_probs`."""
    return final_log_probs(choice, settings).exp()


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def find_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """The first stop string (in the order given) that `text` contains, or None."""
    return next((s for s in stops if s in text), None)
