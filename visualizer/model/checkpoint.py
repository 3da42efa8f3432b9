"""Reading a torch checkpoint's state dict safely, shared by the nanoGPT and nanochat loaders:
`torch.load(weights_only=True)` with one-line errors, the file's sha256, the `_orig_mod.` prefix of
compiled runs removed, and every key checked against the model's own state dict (unknown key,
shape, floating dtype, missing key), each failure a VisualizerError naming the file and the key as
the file spells it.

What this module does not do: know a family's layout (which keys exist, how a config implies
shapes, which buffers to drop): the family adapters pass their model's state dict and wording.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from visualizer.errors import VisualizerError

COMPILED_PREFIX = "_orig_mod."
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_load(path: Path, device: torch.device) -> object:
    """`torch.load(weights_only=True)`, its failures told as one-line VisualizerErrors."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except PermissionError:
        raise VisualizerError(f"{path}: checkpoint is not readable (permission denied)") from None
    except Exception as e:  # corrupt zip, truncated file, disallowed global under weights_only
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VisualizerError(f"{path}: not a loadable torch checkpoint ({first[:200]})") from None


class StateDict:
    """A checkpoint's tensors by key, `_orig_mod.` prefixes removed; `raw[key]` is the key as the
    file spells it (for messages), `compiled` whether any prefix was removed."""

    def __init__(self, path: Path, state: dict):
        self.path = Path(path)
        self.tensors: dict[str, torch.Tensor] = {}
        self.raw: dict[str, str] = {}
        self.compiled = False
        for raw_key, tensor in state.items():
            key = str(raw_key)
            while key.startswith(COMPILED_PREFIX):
                key, self.compiled = key[len(COMPILED_PREFIX) :], True
            if not isinstance(tensor, torch.Tensor):
                raise VisualizerError(f"{path}: state-dict key '{raw_key}' is not a tensor")
            self.tensors[key] = tensor
            self.raw[key] = str(raw_key)

    def drop(self, keys: list[str]) -> None:
        """Forget keys the family never loads (buffers older versions saved)."""
        for key in keys:
            del self.tensors[key], self.raw[key]

    def check_known(self, expected: dict[str, torch.Tensor], unexpected_hint: str, implied_by: str) -> None:
        """Every key is one of `expected`'s, of its shape, floating point; the first that is not is
        named: '... unexpected state-dict key ... (<unexpected_hint>)', '... has shape ..., <implied_by> ...'."""
        for key, tensor in self.tensors.items():
            raw = self.raw[key]
            if key not in expected:
                raise VisualizerError(f"{self.path}: unexpected state-dict key '{raw}' ({unexpected_hint})")
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise VisualizerError(
                    f"{self.path}: state-dict key '{raw}' has shape {tuple(tensor.shape)}, "
                    f"{implied_by} {tuple(expected[key].shape)}"
                )
            if tensor.dtype not in FLOAT_DTYPES:
                raise VisualizerError(f"{self.path}: state-dict key '{raw}' has dtype {tensor.dtype}, expected floats")

    def dtype_counts(self) -> dict[str, int]:
        """dtype name ('bfloat16') -> how many tensors, sorted by name."""
        counts: dict[str, int] = {}
        for tensor in self.tensors.values():
            name = str(tensor.dtype).replace("torch.", "")
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def float32(self) -> dict[str, torch.Tensor]:
        """key -> tensor cast to float32 (the precision analysis runs in)."""
        return {key: t.to(torch.float32) for key, t in self.tensors.items()}


def check_missing(path: Path, present: dict, expected: dict, hint: str = "") -> None:
    """A VisualizerError naming the first of `expected`'s keys not in `present` (and how many more)."""
    missing = [k for k in expected if k not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise VisualizerError(f"{path}: missing state-dict key '{missing[0]}'{more}{hint}")
