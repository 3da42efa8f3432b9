"""Checkpoint (+ tokenizer files) -> LoadedModel, through the family adapter that reads them.

Only this module and `families/` know that model families exist. Loading is always safe:
`torch.load(..., weights_only=True)`, restricted unpickling for vocabularies, no code from the
checkpoint's folder is imported or run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from visualizer.errors import VisualizerError
import visualizer.model.hf.adapter as hf
import visualizer.model.nanochat.adapter as nanochat
import visualizer.model.nanogpt.adapter as nanogpt
from visualizer.model.base import LoadedModel, non_finite_weights

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = REPO_ROOT / "demo" / "shakespeare-char" / "ckpt.pt"
DEMO_META = REPO_ROOT / "demo" / "shakespeare-char" / "meta.pkl"
DEMO_FAMILY = "nanogpt"


def demo_paths(family: str | None, meta: Path | None) -> tuple[Path, Path | None]:
    """The embedded demo's checkpoint and meta.pkl; its meta.pkl only for its own family (a --family
    naming another gets the demo's own error, not one about a --meta nobody gave)."""
    return DEMO_CHECKPOINT, meta or (DEMO_META if family in (None, DEMO_FAMILY) else None)


def choose_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VisualizerError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        return torch.device(name)
    raise VisualizerError(f"--device {name!r}: expected 'cpu' or 'cuda' (or 'cuda:N')")


# --- model families: detection and dispatch ---

from visualizer.model.families import FAMILIES  # noqa: E402


def detect_family(checkpoint: Path) -> tuple[str, str]:
    """(family, why) from file and folder names alone: nothing is loaded to decide."""
    path = Path(checkpoint)
    if not path.exists():
        if hf.looks_like_hub_name(str(checkpoint)):
            return "hf", "a Hugging Face hub name (looked up in the local cache only)"
        raise VisualizerError(f"{path}: checkpoint not found")
    why = nanochat.looks_like_nanochat(path)
    if why:
        return "nanochat", why
    if path.is_file():
        return "nanogpt", "a single checkpoint file"
    if (path / "config.json").is_file():
        return "hf", "config.json in the folder"
    if (path / "ckpt.pt").is_file():
        return "nanogpt", "ckpt.pt in the folder"
    raise VisualizerError(
        f"{path}: no checkpoint in this folder (looked for ckpt.pt, model_NNNNNN.pt with meta_NNNNNN.json, "
        "<kind>_checkpoints/, config.json)"
    )


def resolve_family(checkpoint: Path, family: str | None) -> tuple[str, str]:
    """The family to load with, and why: `--family` when given, else `detect_family`."""
    if family is None:
        return detect_family(checkpoint)
    if family not in FAMILIES:
        raise VisualizerError(f"--family {family!r}: expected one of {', '.join(FAMILIES)}")
    return family, "--family"


def load_model(
    checkpoint: Path,
    meta: Path | None,
    device: str = "cpu",
    family: str | None = None,
    step: int | None = None,
    tokenizer: Path | None = None,
) -> LoadedModel:
    """Load a checkpoint of any family we know, in eval mode, float32, on `device`. Weights that are
    not finite are counted in the card ('non_finite_weights'; verification then fails, by name)."""
    loaded = _load(Path(checkpoint), meta, device, family, step, tokenizer)
    broken = non_finite_weights(loaded.model)
    if broken:
        loaded.card["non_finite_weights"] = broken
    return loaded


def _load(checkpoint: Path, meta: Path | None, device: str, family: str | None, step: int | None,
          tokenizer: Path | None) -> LoadedModel:
    family, _ = resolve_family(checkpoint, family)
    torch_device = choose_device(device)
    if family == "nanochat":
        if meta:
            raise VisualizerError("--meta is nanoGPT's meta.pkl; nanochat reads tokenizer/tokenizer.pkl (use --tokenizer DIR)")
        return nanochat.load(checkpoint, torch_device, step=step, tokenizer_dir=Path(tokenizer) if tokenizer else None)
    if family == "nanogpt":
        for flag, value in (("--step", step), ("--tokenizer", tokenizer)):
            if value is not None:
                raise VisualizerError(f"{flag} applies to nanochat checkpoints, not to nanoGPT's {checkpoint}")
        if checkpoint.is_dir() and (checkpoint / "ckpt.pt").is_file():
            checkpoint = checkpoint / "ckpt.pt"
        return nanogpt.load(checkpoint, Path(meta) if meta else None, torch_device)
    for flag, value in (("--step", step), ("--tokenizer", tokenizer)):
        if value is not None:
            raise VisualizerError(f"{flag} applies to nanochat checkpoints, not to the Hugging Face model {checkpoint}")
    if meta:
        raise VisualizerError("--meta is for nanoGPT checkpoints; a Hugging Face folder brings its own tokenizer")
    return hf.load(checkpoint, torch_device)


def checkpoint_steps(checkpoint: Path) -> dict[int, Path]:
    """step -> weights file of a folder of training checkpoints (nanochat's model_NNNNNN.pt); {} when
    `checkpoint` is not such a folder."""
    path = Path(checkpoint)
    if not path.is_dir() or not nanochat.looks_like_nanochat(path):
        return {}
    return nanochat.steps_in(nanochat.checkpoint_folder(path))
