"""A stored trace as the input of another run (`patch --clean-trace ID --corrupt-trace ID`): the
probe exactly as it was run (text, token ids, chat turn) and the model it was made with (the
checkpoint path the store recorded, its family, nanochat's step and the weights' sha256), read from
the trace's manifest and trace.json after the store's own size and sha256 checks; and the checks
that two traces come from one model and that the model loaded is that model.

What this module does not do: load the model or run anything (pipeline.py), or import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from visualizer.artefacts.layout import TRACE
from visualizer.errors import VisualizerError
from visualizer.readfile import read_json
from visualizer.store.reader import open_trace


@dataclass(frozen=True)
class StoredProbe:
    """One stored run's probe and model."""

    flag: str  # '--clean-trace REF': how errors name it
    trace: str  # the trace id
    text: str
    ids: tuple[int, ...]
    chat: bool
    model_name: str
    checkpoint: str  # the path the store recorded
    checkpoint_sha256: str
    family: str | None
    step: int | None  # nanochat's step (the card's 'step'); None for other families


def read_stored_probe(root: Path, ref: str, flag: str) -> StoredProbe:
    """The probe and model of the stored trace `ref` (an id, a unique prefix or a trace folder)."""
    stored = open_trace(root, ref)
    where = f"{flag} {ref}"
    if stored.manifest is None:
        raise VisualizerError(f"{where}: a report folder, not a stored trace (it has no manifest.json naming its "
                              "checkpoint); give its trace id, or the probe's text")
    trace = read_json(stored.folder / TRACE, f"trace {stored.name}")
    ids, card = trace.get("token_ids"), trace.get("model")
    if not (isinstance(ids, list) and ids and all(isinstance(i, int) and i >= 0 for i in ids)):
        raise VisualizerError(f"trace {stored.name}: {TRACE}: 'token_ids' is not a list of token ids")
    if not isinstance(card, dict) or not isinstance(card.get("checkpoint_sha256"), str):
        raise VisualizerError(f"trace {stored.name}: {TRACE}: 'model.checkpoint_sha256' is missing")
    step = card.get("step")
    model = stored.manifest["model"]
    return StoredProbe(flag=where, trace=stored.manifest["id"], text=str(trace.get("probe", "")), ids=tuple(ids),
                       chat=bool(trace.get("chat")), model_name=str(model["name"]), checkpoint=model["path"],
                       checkpoint_sha256=card["checkpoint_sha256"], family=model.get("family"),
                       step=step if isinstance(step, int) else None)


def check_one_model(probes: list[StoredProbe]) -> None:
    """Every stored probe was made with the same weights (sha256), or one line naming two that were not."""
    for other in probes[1:]:
        first = probes[0]
        if other.checkpoint_sha256 != first.checkpoint_sha256:
            raise VisualizerError(
                f"{first.flag} and {other.flag} are traces of different models ('{first.model_name}' sha256 "
                f"{first.checkpoint_sha256[:12]}, '{other.model_name}' sha256 {other.checkpoint_sha256[:12]}): "
                "patching writes one run's activations into the other, so both must come from one model")


def check_loaded_model(probe: StoredProbe, checkpoint_sha256: str | None, checkpoint: Path) -> None:
    """The model loaded from `checkpoint` is the one the trace was made with (same sha256)."""
    if checkpoint_sha256 != probe.checkpoint_sha256:
        raise VisualizerError(
            f"{probe.flag}: the trace was made with weights of sha256 {probe.checkpoint_sha256[:12]}, but {checkpoint} "
            f"has {str(checkpoint_sha256)[:12]}; pass --checkpoint with the model the trace was made with")


def check_fits(probe: StoredProbe, vocab_size: int, n_ctx: int) -> None:
    """The stored ids are ids of this model's vocabulary and fit its context."""
    if max(probe.ids) >= vocab_size:
        raise VisualizerError(f"{probe.flag}: token id {max(probe.ids)} is outside the model's vocabulary of {vocab_size}")
    if len(probe.ids) > n_ctx:
        raise VisualizerError(f"{probe.flag}: {len(probe.ids)} tokens, more than the model's context of {n_ctx}")
