"""The run's data files: `trace.json` (what was run and what it showed) and
`activations.safetensors` (every captured tensor, float32, TransformerLens names).

Both are byte-deterministic for the same inputs: sorted keys, no clock, no absolute paths.
What this module does not do: decide how anything looks (site.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from visualizer import __version__
from visualizer.artefacts.numbers import finite_json
from visualizer.artefacts.tensor_file import write_tensors
from visualizer.capture import Cache
from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel, presentation
from visualizer.model.probe import Probe
from visualizer.model.tokenizer import readable

TRACE_FORMAT = 1


_finite = finite_json  # JSON has no NaN or infinity: strings, so a broken model still gets a trace


def dumps(obj, compact: bool = False) -> str:
    """Deterministic JSON; `compact` drops the indentation for large machine-read files."""
    layout = {"separators": (",", ":")} if compact else {"indent": 1}

    def encode(tree) -> str:
        return json.dumps(tree, sort_keys=True, ensure_ascii=False, allow_nan=False, **layout) + "\n"

    try:  # every number finite (the usual case): one pass of the C encoder, no copy of the tree
        return encode(obj)
    except ValueError:  # a NaN or infinity somewhere: the same text with those as strings
        return encode(_finite(obj))


def model_header(loaded: LoadedModel, fmt: int) -> dict:
    """What every data file says about the tool and the model it describes."""
    return {
        "format": fmt,
        "tool": {"name": "visualizer", "version": __version__},
        "family": loaded.family,
        "model_name": loaded.name,
        "model": loaded.card,
        "presentation": presentation(loaded),  # what the adapter declares for the page (kinds, card rows)
        "dims": vars(loaded.dims),
    }


def build_trace(loaded: LoadedModel, probe: Probe, cache: Cache, next_tokens: list[dict], tensor_stats: dict) -> dict:
    """trace.json's contents: the model header, the probe as run, the verification, the next-token
    table at the last position and every tensor's statistics (both computed by analysis/)."""
    tok = loaded.tokenizer
    tokens = [tok.token_str(i) for i in probe.ids]
    return {
        **model_header(loaded, TRACE_FORMAT),
        "probe": probe.text,
        **({"chat": True} if probe.chat else {}),
        "tokens": tokens,
        "tokens_readable": [readable(t) for t in tokens],
        "token_ids": list(probe.ids),
        # positions of marker tokens, so views can hide attention to them (a BOS attention sink)
        "bos_position": 0 if probe.ids and tok.bos_id is not None and probe.ids[0] == tok.bos_id else None,
        "special_positions": [i for i, t in enumerate(probe.ids) if t in tok.special_ids],
        "dropped_tokens": len(probe.dropped_ids),
        "dropped_token_ids": list(probe.dropped_ids),
        "warnings": list(probe.warnings),
        "verification": cache.verification,
        "verification_passed": cache.passed,
        "next_tokens": next_tokens,
        "tensors": tensor_stats,
    }


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> None:
    """name -> tensor as safetensors, byte-deterministic (names in the format's fixed order, one
    metadata key), every tensor cast to `dtype` (the store keeps float16 copies with it); written
    tensor by tensor from the tensors' own memory (tensor_file.py), no copy of the whole cache."""
    write_tensors(path, tensors, dtype, metadata={"writer": f"visualizer {__version__}"})


def write_activations_file(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A report's activations file: every captured tensor, float32, as captured."""
    save_tensors(path, tensors, torch.float32)


def read_activations(path: Path, owner: str) -> dict[str, torch.Tensor]:
    """name -> float32 tensor from an activations file (stored float16 is widened), or a
    VisualizerError '<owner>: activations.safetensors: <problem>' for a missing or damaged file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise VisualizerError(f"{owner}: {path.name}: missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise VisualizerError(f"{owner}: {path.name}: not a readable safetensors file ({first[:160]})") from None
    return {name: t.to(torch.float32) for name, t in tensors.items()}
