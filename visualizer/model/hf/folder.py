"""A Hugging Face model folder on this machine: find it (a path, or a hub name already in the local
cache), check it has config.json + weights + tokenizer files, and read the model and tokenizer
through transformers, offline.

The model is transformers' own module tree, loaded with `local_files_only=True` (never a download),
`trust_remote_code=False`, safetensors or `torch.load(weights_only=True)`, float32, sdpa attention.
Keys that do not fit are refused by name, except the saved buffers the architecture's entry allows.

What this module does not do: fetch from the hub, run code shipped with a model, or know where
anything sits inside the model (the entry in `architectures.py` does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

import torch

from visualizer.errors import VisualizerError
from visualizer.model.hf.architectures import Architecture, entry_for
from visualizer.model.hf.shapes import check_config_against_weights, check_safetensors_files, first_line
from visualizer.model.hf.tokenizer import HFTokenizer
from visualizer.model.probe import TRIAL_TEXT, guarded_tokenizer_call

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
NOT_HUB_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".json", ".safetensors", ".ckpt")
SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
HUB_BLOB = re.compile(r"[0-9a-f]{64}")  # huggingface_hub names a large file's blob by its sha256


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def parse_config_json(path: Path) -> dict:
    """config.json as a dict, or one VisualizerError naming it: not UTF-8, not JSON (NaN and
    Infinity included, which Python's json would accept), nested too deep, not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise VisualizerError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise VisualizerError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        raw = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise VisualizerError(f"{path}: not valid JSON ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(raw, dict):
        raise VisualizerError(f"{path}: not a JSON object (a {type(raw).__name__})")
    return raw


def read_config_json(folder: Path) -> dict | None:
    """config.json as a dict; None when it is absent or unreadable (parse_config_json says why)."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return parse_config_json(path)
    except VisualizerError:
        return None


def looks_like_hf(path: Path | str) -> bool:
    """True for a folder (or its config.json) whose config.json names a `model_type`.

    Any model_type counts, so that an unsupported one reaches `load` and gets a clear error."""
    path = Path(path)
    folder = path.parent if path.name == "config.json" else path
    raw = read_config_json(folder) if folder.is_dir() else None
    return isinstance(raw, dict) and isinstance(raw.get("model_type"), str)


def looks_like_hub_name(text: str) -> bool:
    """True for 'gpt2' or 'owner/name' that is not a path on this machine (nor a checkpoint file name)."""
    text = str(text)
    return (
        not Path(text).exists()
        and HUB_NAME.fullmatch(text) is not None
        and not text.lower().endswith(NOT_HUB_SUFFIXES)
    )


def hub_cache() -> str:
    """The Hugging Face cache folder as the environment says now (HF_HUB_CACHE, HF_HOME, default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def resolve_folder(source: Path | str) -> tuple[Path, str]:
    """(local folder, display name): a folder as given, or a hub name's snapshot in the local cache."""
    path = Path(source)
    if path.name == "config.json" and path.is_file():
        path = path.parent
    if path.is_dir():
        return path, path.resolve().name
    if path.exists():
        raise VisualizerError(f"{path}: a Hugging Face model is a folder (config.json + weights + tokenizer), not a file")
    name = str(source)
    if not looks_like_hub_name(name):
        raise VisualizerError(f"{path}: Hugging Face model folder not found")
    from huggingface_hub import snapshot_download

    cache = hub_cache()
    try:
        return Path(snapshot_download(name, cache_dir=cache, local_files_only=True)), name
    except Exception:  # not cached (LocalEntryNotFoundError), or an invalid repo id
        raise VisualizerError(
            f"'{name}' is not a local folder and not in the Hugging Face cache ({cache}); we never download: "
            f"fetch it once on a machine with network (`hf download {name} --local-dir FOLDER`, or "
            f"`huggingface-cli download {name}` with older huggingface_hub) and pass that folder to --checkpoint"
        ) from None


def check_folder(folder: Path) -> tuple[dict, Architecture]:
    """(config.json as a dict, the architecture's entry), or one clear error naming what is missing."""
    if not (folder / "config.json").is_file():
        raise VisualizerError(f"{folder}: no config.json (a Hugging Face model folder has one)")
    raw = parse_config_json(folder / "config.json")
    entry = entry_for(raw.get("model_type"), str(folder / "config.json"))
    for flag in entry.eager_bypass:
        if raw.get(flag):
            raise VisualizerError(
                f"{folder / 'config.json'}: {flag}=true is not supported (its eager attention bypasses the "
                "attention function the capture records q, k and v from)"
            )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise VisualizerError(f"{folder}: no weights found (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise VisualizerError(f"{folder}: no tokenizer files found (expected one of {', '.join(TOKENIZER_FILES)})")
    check_safetensors_files(folder)
    return raw, entry


def file_sha256(path: Path) -> str:
    """A file's sha256: the name of the hub-cache blob a snapshot symlink points at, else computed."""
    target = path.resolve()
    if path.is_symlink() and target.parent.name == "blobs" and HUB_BLOB.fullmatch(target.name):
        return target.name
    with open(target, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def folder_sha256(folder: Path, names: list[str]) -> str:
    """One sha256 for the files that make the model (config.json and the weights): of the lines
    'name sha256' of each, sorted by name."""
    lines = [f"{name} {file_sha256(folder / name)}" for name in sorted(names)]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def weights_facts(folder: Path, raw: dict) -> dict:
    """The weights file transformers reads, all weight files, the dtype they are stored in (from a
    safetensors header, else config.json's `torch_dtype`/`dtype`), and the folder's sha256
    (config.json + weights: the model's identity in the trace store)."""
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith((".safetensors", ".bin")) and p.is_file())
    dtype = raw.get("torch_dtype") or raw.get("dtype")
    safetensors_files = [name for name in files if name.endswith(".safetensors")]
    if safetensors_files:
        from safetensors import safe_open

        with safe_open(str(folder / safetensors_files[0]), framework="pt") as f:
            keys = list(f.keys())
            if keys:
                stored = str(f.get_slice(keys[0]).get_dtype())
                dtype = SAFETENSORS_DTYPES.get(stored, stored)
    main = next((name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    return {"checkpoint_file": main, "weights_files": files, "weights_dtype": dtype,
            "checkpoint_sha256": folder_sha256(folder, ["config.json", *files])}


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars or load reports from transformers: what they say, we check and say ourselves."""
    from transformers.utils import logging

    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def read_model(folder: Path, entry: Architecture, device: torch.device):
    """transformers' own model class for the entry, float32, in eval mode on `device`, with
    transformers' "sdpa" attention (its default: the fused kernel, no [heads, T, T] weights in
    memory; capture records its arguments and derives the pattern once)."""
    import transformers

    cls = getattr(transformers, entry.transformers_class)
    try:
        with quiet_transformers():
            config = cls.config_class.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers validates field types and values
        reason = " ".join(str(e).split())[:300]
        raise VisualizerError(f"{folder / 'config.json'}: transformers refused it ({reason})") from None
    check_config_against_weights(folder, entry, cls, config)  # before a model of config.json's sizes is allocated
    try:
        with quiet_transformers():
            model, info = cls.from_pretrained(
                str(folder),
                config=config,
                local_files_only=True,
                trust_remote_code=False,
                weights_only=True,
                dtype=torch.float32,
                attn_implementation="sdpa",
                output_loading_info=True,
                ignore_mismatched_sizes=True,  # reported in the loading info, and refused below by name
            )
    except Exception as e:  # corrupt weights, shapes that disagree with config.json, unreadable files
        raise VisualizerError(f"{folder}: transformers could not load the model ({first_line(e)})") from None
    mismatched = sorted((str(k), tuple(a), tuple(b)) for k, a, b in info.get("mismatched_keys") or ())
    if mismatched:
        key, stored, expected = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise VisualizerError(f"{folder}: weight '{key}' has shape {stored}, config.json implies {expected}{more}")
    saved_buffers = re.compile(entry.saved_buffers)
    for kind in ("missing_keys", "unexpected_keys"):
        keys = sorted(str(k) for k in info.get(kind) or ())
        if kind == "unexpected_keys":
            keys = [k for k in keys if not saved_buffers.search(k)]
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise VisualizerError(f"{folder}: {kind.replace('_', ' ')} in the weights: '{keys[0]}'{more}")
    if info.get("error_msgs"):
        raise VisualizerError(f"{folder}: transformers reported while loading: {str(info['error_msgs'][0])[:300]}")
    return model.to(device).eval()


def read_tokenizer(folder: Path, model_vocab: int) -> HFTokenizer:
    """The folder's tokenizer through transformers, and one trial encoding: a Rust panic (a hostile
    regex in tokenizer.json) is one error naming the file, at load, not at the probe."""
    from transformers import AutoTokenizer

    source = str(next((folder / name for name in TOKENIZER_FILES if (folder / name).is_file()), folder))

    def load():
        try:
            with quiet_transformers():
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except Exception as e:
            raise VisualizerError(f"{folder}: transformers could not load the tokenizer ({first_line(e)})") from None

    hf_tokenizer = guarded_tokenizer_call(load, "loading", source)
    guarded_tokenizer_call(lambda: hf_tokenizer(TRIAL_TEXT, verbose=False), "a trial text at load", source)
    return HFTokenizer(hf_tokenizer, model_vocab)
