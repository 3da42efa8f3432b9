"""A safetensors file written tensor by tensor, straight from each tensor's memory.

safetensors' own `save_file` first copies every tensor into one in-memory buffer (a second copy of
a 2 GB cache) and then writes it. This writer lays out the same bytes as `save_file` (the format:
an 8-byte little-endian header length, the JSON header padded with spaces to a multiple of 8, then
the tensors' bytes in the header's order: by dtype size descending, then by name) and writes each
tensor from a view of its own storage, cast one tensor at a time when a dtype is asked for. The
tests compare it with `save_file` byte for byte and read it back with safetensors.

What this module does not do: read files (safetensors' loader does), or decide which tensors a
report keeps (trace.py, the store).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

DTYPES = {  # torch dtype -> (safetensors name, bytes per entry)
    torch.float64: ("F64", 8), torch.float32: ("F32", 4), torch.float16: ("F16", 2), torch.bfloat16: ("BF16", 2),
    torch.int64: ("I64", 8), torch.int32: ("I32", 4), torch.int16: ("I16", 2), torch.int8: ("I8", 1),
    torch.uint8: ("U8", 1), torch.bool: ("BOOL", 1),
}


def header_bytes(shapes: dict[str, tuple[torch.dtype, list[int]]], metadata: dict[str, str] | None) -> tuple[bytes, list[str]]:
    """(the header with its length prefix, the names in file order) for name -> (dtype, shape)."""
    order = sorted(shapes, key=lambda name: (-DTYPES[shapes[name][0]][1], name))
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        dtype, shape = shapes[name]
        code, size = DTYPES[dtype]
        nbytes = size
        for dim in shape:
            nbytes *= dim
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, order


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype | None = None,
                  metadata: dict[str, str] | None = None) -> None:
    """name -> tensor as a safetensors file at `path`, each tensor cast to `dtype` when given; the
    bytes `safetensors.torch.save_file` writes for the same (cast, contiguous) tensors."""
    shapes = {name: (t.dtype if dtype is None else dtype, list(t.shape)) for name, t in tensors.items()}
    unknown = sorted({str(kind) for kind, _ in shapes.values() if kind not in DTYPES})
    if unknown:
        raise TypeError(f"safetensors has no dtype for {', '.join(unknown)}")
    header, order = header_bytes(shapes, metadata)
    with open(path, "wb") as f:
        f.write(header)
        for name in order:
            t = tensors[name].detach()
            t = (t if dtype is None else t.to(dtype)).to("cpu").contiguous()  # a view when nothing changes
            if t.numel():
                f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
