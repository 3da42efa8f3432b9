"""Checkpoint (+ tokenizer files) -> LoadedModel, through the family adapter that reads them.

Only this module and `families/` know that model families exist. Loading is always safe:
`torch.load(..., weights_only=True)`, restricted unpickling for vocabularies, no code from the
checkpoint's folder is imported or run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import VisualizerError
from .families import nanogpt
from .families.base import LoadedModel

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINT = REPO_ROOT / "demo" / "shakespeare-char" / "ckpt.pt"
DEMO_META = REPO_ROOT / "demo" / "shakespeare-char" / "meta.pkl"


def choose_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VisualizerError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        return torch.device(name)
    raise VisualizerError(f"--device {name!r}: expected 'cpu' or 'cuda' (or 'cuda:N')")


def load_model(checkpoint: Path, meta: Path | None, device: str = "cpu") -> LoadedModel:
    """Load a nanoGPT checkpoint (the only family so far) in eval mode, float32, on `device`."""
    return nanogpt.load(Path(checkpoint), Path(meta) if meta else None, choose_device(device))
