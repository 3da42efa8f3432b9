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
import re
from pathlib import Path

import torch

from visualizer.errors import VisualizerError

COMPILED_PREFIX = "_orig_mod."
MAX_CONTEXT = 1 << 20  # positions: far above any model this tool opens; a bound on tables sized by a declared context
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", re.S)


def load_failure(e: BaseException) -> str:
    """What a failed `torch.load(weights_only=True)` says, in our words: the class a checkpoint
    holds that the safe loader refuses, or the loader's own reason, never torch's advice to load
    the file with `weights_only=False` (which would run code from it)."""
    text = str(e).strip()
    refused = UNSUPPORTED_GLOBAL.search(text)
    if refused:
        return (f"not a plain tensor checkpoint (it holds {refused.group(1)}, which the safe loader refuses: "
                "unpickling it could run code from the file; nothing was run)")
    reason = UNPICKLER_ERROR.search(text)
    if reason:
        detail = " ".join(reason.group(1).split())
        return f"not a loadable torch checkpoint (the safe loader cannot read it: {detail[:160]})"
    if isinstance(e, EOFError):
        return "not a loadable torch checkpoint (the file is empty or ends too early)"
    first = text.splitlines()[0] if text else ""
    if "weights_only" in first:  # any other torch advice about the unsafe loader: not ours to repeat
        first = ""
    return f"not a loadable torch checkpoint ({type(e).__name__}{': ' + first[:200] if first else ''})"


def torch_load(path: Path, device: torch.device) -> object:
    """`torch.load(weights_only=True)`, its failures told as one-line VisualizerErrors."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except PermissionError:
        raise VisualizerError(f"{path}: checkpoint is not readable (permission denied)") from None
    except IsADirectoryError:
        raise VisualizerError(f"{path}: a folder, not a checkpoint file") from None
    except Exception as e:  # corrupt zip, truncated file, disallowed global under weights_only
        raise VisualizerError(f"{path}: {load_failure(e)}") from None


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


def check_sizes(state: StateDict, where: str, sizes: list[tuple[str, int, tuple[str, ...], int]],
                source: Path | None = None, shown: dict[str, str] | None = None) -> None:
    """Declared sizes against the stored tensors, before a model of those sizes is allocated: each
    (field, value, keys, axis) needs the first of `keys` the state dict has to be `value` long
    along `axis`. A VisualizerError names the field (of `where`, in `source` when the sizes come
    from another file than the weights), its value (or `shown[field]`), the key and its shape."""
    shown = shown or {}
    prefix, of = (state.path, "") if source is None else (source, f" in {state.path.name}")
    for field, value, keys, axis in sizes:
        key = next((k for k in keys if k in state.tensors), None)
        if key is None:
            raise VisualizerError(f"{state.path}: missing state-dict key '{keys[0]}' (it holds {where}['{field}'])")
        shape = tuple(state.tensors[key].shape)
        if len(shape) <= axis or shape[axis] != value:
            raise VisualizerError(
                f"{prefix}: {where}['{field}'] is {shown.get(field, value)} but state-dict key '{state.raw[key]}'{of} "
                f"has shape {shape}"
            )


def check_layer_count(state: StateDict, where: str, field: str, n_layer: int, prefix: str,
                      source: Path | None = None) -> None:
    """The state dict holds blocks `prefix`0 .. `prefix`(n_layer - 1) (a gap is a missing key,
    found later): a VisualizerError naming the field and what the file holds otherwise."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state.tensors if (m := pattern.match(key))}
    name, holds = (state.path, "the state dict holds") if source is None else (source, f"{state.path.name} holds")
    if not indices:
        raise VisualizerError(f"{name}: {where}['{field}'] is {n_layer} but {holds} no '{prefix}N.' keys")
    if max(indices) + 1 != n_layer:
        raise VisualizerError(
            f"{name}: {where}['{field}'] is {n_layer} but {holds} blocks {prefix}0 .. {prefix}{max(indices)} "
            f"({max(indices) + 1} layers)"
        )
