"""Test helper for the figure tests: what plots.plan_figures reads (trace, tensors, report_data),
built from a real capture of a random-weight factory checkpoint, plus a PNG chunk reader.

The report_data here is the real one (`visualizer.analysis.report_data.build_report_data`), so the
figures are tested against the same contract the report writes.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.support.nanogpt import make_checkpoint
from visualizer.capture import capture
from visualizer.model.registry import load_model
from visualizer.analysis.report_data import build_report_data
from visualizer.model.probe import Probe
from visualizer.pipeline import trace_record


def capture_inputs(folder: Path, probe: str, **model) -> tuple[dict, dict, dict]:
    """(trace, tensors, report_data) for `probe` run through a make_checkpoint(folder, **model) model."""
    ckpt, meta = make_checkpoint(folder, **model)
    loaded = load_model(ckpt, meta)
    encoded = loaded.tokenizer.encode(probe)
    ids = encoded.ids
    cache = capture(loaded, ids)
    assert cache.passed, cache.failures()
    trace = trace_record(loaded, Probe(text=probe, ids=ids), cache)
    return trace, cache.tensors, build_report_data(loaded, cache, ids)


def png_chunks(path: Path) -> list[str]:
    """The chunk types of a PNG file, in order (raises if it is not a well-formed PNG)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i + 4 : i + 8].decode("ascii"))
        i += 12 + length
    assert i == len(data) and chunks[-1] == "IEND", f"{path}: truncated PNG"
    return chunks
