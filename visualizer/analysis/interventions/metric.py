"""The patching metric: the logit difference answer - wrong at the last position, normalised so
that 1 is the clean run and 0 the corrupt run; and how --answer / --wrong name a token.

What this module does not do: run the model (engine.py) or choose what to patch (sweeps.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel
from visualizer.model.probe import guarded_tokenizer_call
from visualizer.model.tokenizer import readable


@dataclass(frozen=True)
class Metric:
    """logit[answer] - logit[wrong] at the last position, and its values on the two runs."""

    answer: int
    wrong: int
    clean: float  # the clean run's logit difference
    corrupt: float  # the corrupt run's logit difference

    def logit_diff(self, last_logits: torch.Tensor) -> torch.Tensor:
        """[..., vocab] logits at the last position -> [...] logit differences (float64)."""
        return logit_diff(last_logits, self.answer, self.wrong)

    def normalise(self, logit_diff: torch.Tensor) -> torch.Tensor:
        """(ld - corrupt) / (clean - corrupt): 1 = the clean run's, 0 = the corrupt run's."""
        return (logit_diff.double() - self.corrupt) / (self.clean - self.corrupt)


def logit_diff(last_logits: torch.Tensor, answer: int, wrong: int) -> torch.Tensor:
    """[..., vocab] -> [...] float64: logit[answer] - logit[wrong]."""
    return last_logits[..., answer].double() - last_logits[..., wrong].double()


def parse_token(loaded: LoadedModel, text: str, flag: str) -> int:
    """A token id from '#ID' or from text that is exactly one token (a BOS the tokenizer puts first
    is not counted)."""
    vocab = loaded.dims.vocab_size
    if text.startswith("#") and text[1:].isdigit():
        token_id = int(text[1:])
        if token_id >= vocab:
            raise VisualizerError(f"{flag} {text}: the vocabulary has ids 0..{vocab - 1}")
        return token_id
    ids = list(guarded_tokenizer_call(lambda: loaded.tokenizer.encode(text), f"{flag} {text!r}").ids)
    bos = loaded.tokenizer.bos_id
    if len(ids) == 2 and bos is not None and ids[0] == bos:
        ids = ids[1:]
    if len(ids) != 1:
        raise VisualizerError(f"{flag} {text!r}: encodes to {len(ids)} tokens, not one "
                              f"(give one token's text, or its id as #ID)")
    if ids[0] >= vocab:
        raise VisualizerError(f"{flag} {text!r}: token id {ids[0]} is outside the model's vocabulary of {vocab}")
    return int(ids[0])


def choose_answer(loaded: LoadedModel, clean_last: torch.Tensor, answer: str | None) -> tuple[int, str]:
    """The answer token from the clean run's last-position logits [vocab] and --answer (None: the
    clean run's top token), and how it was chosen, in words."""
    if answer is None:
        return int(clean_last.argmax()), "the clean run's top next token"
    return parse_token(loaded, answer, "--answer"), f"--answer {answer}"


def choose_metric(loaded: LoadedModel, clean_last: torch.Tensor, corrupt_last: torch.Tensor,
                  answer: str | None, wrong: str | None) -> tuple[Metric, dict]:
    """The metric from the runs' last-position logits [vocab] and the flags (None: the clean run's
    top token, the corrupt run's top token); and how each token was chosen, in words."""
    answer_id, how = choose_answer(loaded, clean_last, answer)
    chosen = {"answer": how}
    if wrong is None:
        wrong_id, chosen["wrong"] = int(corrupt_last.argmax()), "the corrupt run's top next token"
    else:
        wrong_id, chosen["wrong"] = parse_token(loaded, wrong, "--wrong"), f"--wrong {wrong}"
    if answer_id == wrong_id:
        shown = readable(loaded.tokenizer.token_str(answer_id))
        raise VisualizerError(
            f"the answer and the wrong token are the same token ({shown!r}, id {answer_id}: {chosen['answer']}, "
            f"{chosen['wrong']}): pass --answer and --wrong naming two different tokens")
    metric = Metric(answer_id, wrong_id, float(logit_diff(clean_last, answer_id, wrong_id)),
                    float(logit_diff(corrupt_last, answer_id, wrong_id)))
    if not (math.isfinite(metric.clean) and math.isfinite(metric.corrupt)):
        raise VisualizerError(f"the logit difference is not finite (clean {metric.clean}, corrupt {metric.corrupt}): "
                              "the model's logits hold infinities or NaN")
    if abs(metric.clean - metric.corrupt) < 1e-6 * max(1.0, abs(metric.clean)):
        raise VisualizerError(
            f"the clean and corrupt runs give the same logit difference ({metric.clean:.6g}) for answer id {answer_id} "
            f"and wrong id {wrong_id}: nothing to restore; choose probes or --answer/--wrong that tell them apart")
    return metric, chosen
