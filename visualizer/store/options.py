"""What a run asks of the trace store: where it is, tags, category, which tensor groups are kept
and at which dtype.

What this module does not do: read or write traces (writer.py, reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from visualizer.errors import VisualizerError

DEFAULT_ROOT = Path("traces")
DTYPES = ("float32", "float16")

GROUPS = {
    "embed": "token and position embeddings: hook_embed, hook_pos_embed",
    "resid": "residual stream: blocks.{l}.hook_resid_pre|hook_resid_mid|hook_resid_post",
    "norm": "normalised inputs: blocks.{l}.ln1|ln2.hook_normalized, ln_final.hook_normalized",
    "qkv": "queries, keys, values: blocks.{l}.attn.hook_q|hook_k|hook_v",
    "attn": "attention: blocks.{l}.attn.hook_attn_scores|hook_pattern|hook_z, blocks.{l}.hook_attn_out",
    "mlp": "MLP: blocks.{l}.mlp.hook_pre|hook_post, blocks.{l}.hook_mlp_out",
    "logits": "logits",
    "other": "any capture name not listed above",
}


def tensor_group(name: str) -> str:
    """The --keep group a capture name belongs to."""
    last = name.rsplit(".", 1)[-1]
    if name in ("hook_embed", "hook_pos_embed"):
        return "embed"
    if name == "logits":
        return "logits"
    if last in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post"):
        return "resid"
    if last == "hook_normalized":
        return "norm"
    if ".attn." in name and last in ("hook_q", "hook_k", "hook_v"):
        return "qkv"
    if (".attn." in name and last in ("hook_attn_scores", "hook_pattern", "hook_z")) or last == "hook_attn_out":
        return "attn"
    if ".mlp." in name or last == "hook_mlp_out":
        return "mlp"
    return "other"


@dataclass(frozen=True)
class StoreOptions:
    root: Path = DEFAULT_ROOT
    tags: tuple[str, ...] = ()
    category: str | None = None
    dtype: str = "float32"  # of the stored activations: float32 (as captured) or float16
    keep: tuple[str, ...] = ()  # tensor groups kept; () keeps every group


def parse_keep(values: list[str] | None) -> tuple[str, ...]:
    """--keep attn --keep mlp, or --keep attn,mlp -> ('attn', 'mlp'); unknown groups are errors."""
    groups: list[str] = []
    for value in values or []:
        for group in (g.strip() for g in value.split(",")):
            if group not in GROUPS:
                raise VisualizerError(f"--keep {group!r}: unknown tensor group (choose from {', '.join(GROUPS)})")
            if group not in groups:
                groups.append(group)
    return tuple(sorted(groups))


def store_filesystem(location: str | Path):
    """(fsspec filesystem, root path inside it) for a store given as a URL (`file://`, `memory://`,
    `s3://`, ... once its filesystem package is installed) or a plain local path (the `file://` case).
    Imported lazily: the local store's commands never need fsspec."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    text = str(location)
    if "://" not in text:
        return LocalFileSystem(), str(Path(text).resolve())
    try:
        fs, root = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as e:
        raise VisualizerError(f"--store {text}: no filesystem for this URL ({str(e).splitlines()[0][:160]})") from None
    if isinstance(fs, LocalFileSystem):
        root = str(Path(root).resolve())
    return fs, root.rstrip("/") or "/"


def is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)
