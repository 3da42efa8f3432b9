"""The one writer and the one reader of a run's data files in a report folder (names: layout.py).

Reading checks what it reads: each file parses, has the type it must have, and the trace's
declared dimensions agree with the tensors beside it, so a damaged or hostile folder is one
VisualizerError naming the file, not a crash or a hang later.

What this module does not do: draw or write the page (figures/, site/), or choose folders (pipeline.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from visualizer.artefacts import layout
from visualizer.artefacts.trace import dumps, read_activations, write_activations_file
from visualizer.errors import VisualizerError
from visualizer.readfile import read_json


@dataclass
class RunFiles:
    """A run's data as its files hold it."""

    trace: dict
    tensors: dict[str, torch.Tensor]  # name -> float32 CPU tensor
    report_data: dict | None
    analysis: dict | None
    attribution: dict | None


def write_run_files(folder: Path, trace: dict, tensors: dict[str, torch.Tensor], report_data: dict | None,
                    analysis: dict | None = None, attribution: dict | None = None, activations: bool = True) -> RunFiles:
    """trace.json, activations.safetensors (unless `activations` is False: the caller writes it with
    write_activations_file before the folder is read), and report_data.json, analysis.json,
    attribution.json for those given (None: the file is not written). Returns what the files hold, as a reader gets it
    (non-finite numbers as artefacts/numbers.py writes them), so the figures drawn now are the
    ones `render` draws from the files."""
    folder = Path(folder)
    written = {}
    for name, obj, compact in ((layout.TRACE, trace, False), (layout.REPORT_DATA, report_data, True),
                               (layout.ANALYSIS, analysis, True), (layout.ATTRIBUTION, attribution, True)):
        if obj is not None:
            text = dumps(obj, compact=compact)
            (folder / name).write_text(text, encoding="utf-8")
            written[name] = json.loads(text)
    if activations:
        write_activations_file(folder / layout.ACTIVATIONS, tensors)
    return RunFiles(trace=written[layout.TRACE], tensors=tensors, report_data=written.get(layout.REPORT_DATA),
                    analysis=written.get(layout.ANALYSIS), attribution=written.get(layout.ATTRIBUTION))


MAX_LAYERS = 1024  # far above any model this tool opens; a bound so a hostile trace cannot make us loop
MAX_HEADS = 1024


def _dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise VisualizerError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def check_trace(trace: dict, tensors: dict[str, torch.Tensor], where: str, need_patterns: bool = True) -> None:
    """The trace's dims are sane integers and (need_patterns) every layer's attention pattern is in the tensors."""
    dims = _dict(trace.get("dims"), f"{where}: {layout.TRACE}: 'dims'")
    for key, bound in (("n_layer", MAX_LAYERS), ("n_head", MAX_HEADS)):
        value = dims.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= bound:
            raise VisualizerError(f"{where}: {layout.TRACE}: dims.{key} is {value!r}, expected an integer 1..{bound}")
    for key in ("token_ids", "tokens_readable"):
        if not isinstance(trace.get(key), list):
            raise VisualizerError(f"{where}: {layout.TRACE}: '{key}' is missing or not a list")
    for layer in range(dims["n_layer"] if need_patterns else 0):
        name = f"blocks.{layer}.attn.hook_pattern"
        if name not in tensors:
            raise VisualizerError(f"{where}: {layout.ACTIVATIONS}: has no tensor '{name}' (trace.json declares "
                                  f"{dims['n_layer']} layers)")


def read_run_files(folder: Path, owner: str, need_report_data: bool = True, need_patterns: bool = True) -> RunFiles:
    """A report or trace folder's data files, checked; optional files are None when absent."""
    folder = Path(folder)
    trace = _dict(read_json(folder / layout.TRACE, owner), f"{owner}: {layout.TRACE}")
    tensors = read_activations(folder / layout.ACTIVATIONS, owner)
    check_trace(trace, tensors, owner, need_patterns)

    def optional(name: str) -> dict | None:
        path = folder / name
        return _dict(read_json(path, owner), f"{owner}: {name}") if path.is_file() else None

    report_data = optional(layout.REPORT_DATA)
    if need_report_data and report_data is None:
        raise VisualizerError(f"{owner}: {layout.REPORT_DATA}: missing (the report page needs it)")
    return RunFiles(trace=trace, tensors=tensors, report_data=report_data,
                    analysis=optional(layout.ANALYSIS), attribution=optional(layout.ATTRIBUTION))
