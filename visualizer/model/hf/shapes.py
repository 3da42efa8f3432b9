"""A Hugging Face folder's config.json against its weights, before transformers allocates a model of
config.json's sizes: every tensor's shape is read from the weight files' headers (safetensors) or
as meta tensors (torch.load of a .bin, weights_only, nothing materialised), and compared with what
the config implies: the number of blocks first, then the embedding, then every tensor of a model
built from the config on the meta device (no memory). A hostile `num_hidden_layers: 2000` or
`intermediate_size: 2**30` is one error naming config.json, the field or the key, and the file.

Also here: every `*.safetensors` file in the folder must have a readable header (a stray 0-byte
file beside the real weights is named, not a crash later).

What this module does not do: load weights (folder.py's read_model does, through transformers), or
know an architecture beyond its entry's module paths.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import torch

from visualizer.errors import VisualizerError
from visualizer.model.hf.architectures import Architecture

SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)[:300]


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """key -> shape from a safetensors file's header (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as e:  # SafetensorError (0 bytes, truncated header), OSError
        raise VisualizerError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def check_safetensors_files(folder: Path) -> None:
    """Every *.safetensors file in the folder has a readable header (the folder's identity and
    facts read them all): a stray empty or damaged one is named."""
    for path in sorted(folder.glob("*.safetensors")):
        if path.is_file():
            safetensors_shapes(path)


def bin_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """key -> shape of a torch.save'd state dict, loaded as meta tensors (weights_only, nothing read)."""
    from visualizer.model.checkpoint import torch_load

    state = torch_load(path, torch.device("meta"))
    if not isinstance(state, dict):
        raise VisualizerError(f"{path}: not a state dict (a {type(state).__name__})")
    return {str(k): tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def index_files(index: Path) -> list[str]:
    """The shard file names an *.index.json's weight_map names, each inside the folder."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise VisualizerError(f"{index}: not readable JSON ({type(e).__name__}: {first_line(e)})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise VisualizerError(f"{index}: no 'weight_map' of key -> file name")
    names = sorted(set(weight_map.values()))
    for name in names:
        if len(PurePosixPath(name).parts) != 1 or name in (".", ".."):
            raise VisualizerError(f"{index}: weight_map names {name!r}, not a file in this folder")
        if not (index.parent / name).is_file():
            raise VisualizerError(f"{index}: weight_map names {name}, which is not in the folder")
    return names


def stored_shapes(folder: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, file name) of the weights transformers reads from this folder, in its order of
    preference: model.safetensors, its sharded index, pytorch_model.bin, its sharded index."""
    if (folder / SAFETENSORS).is_file():
        files, read = [SAFETENSORS], safetensors_shapes
    elif (folder / SAFETENSORS_INDEX).is_file():
        files, read = index_files(folder / SAFETENSORS_INDEX), safetensors_shapes
    elif (folder / BIN).is_file():
        files, read = [BIN], bin_shapes
    elif (folder / BIN_INDEX).is_file():
        files, read = index_files(folder / BIN_INDEX), bin_shapes
    else:
        return {}
    return {key: (shape, name) for name in files for key, shape in read(folder / name).items()}


def config_key(config, attribute: str) -> str:
    """The config.json key holding a standard attribute (GPT-2 writes n_layer for num_hidden_layers)."""
    return getattr(config, "attribute_map", {}).get(attribute, attribute)


def check_config_against_weights(folder: Path, entry: Architecture, model_class, config) -> None:
    """config.json's sizes are the stored tensors' (see the module docstring), or one error."""
    stored = stored_shapes(folder)
    if not stored:
        return
    prefix = getattr(model_class, "base_model_prefix", "") or ""

    def full(key: str) -> str:  # a base model's file (GPT-2 on the hub) spells keys without the prefix
        return key if not prefix or key.startswith(prefix + ".") or key.startswith("lm_head.") else f"{prefix}.{key}"

    shapes = {full(key): value for key, value in stored.items()}
    where = folder / "config.json"
    layers = re.compile(re.escape(entry.tree.blocks) + r"\.(\d+)\.")
    indices = {int(m.group(1)) for key in shapes if (m := layers.match(key))}
    n_layer = config.num_hidden_layers
    if indices and max(indices) + 1 != n_layer:
        file = next(name for key, (_, name) in shapes.items() if layers.match(key))
        raise VisualizerError(
            f"{where}: {config_key(config, 'num_hidden_layers')} is {n_layer} but {file} holds blocks "
            f"{entry.tree.blocks}.0 .. {entry.tree.blocks}.{max(indices)} ({max(indices) + 1} layers)"
        )
    embed = shapes.get(f"{entry.tree.embed}.weight")
    if embed is not None:
        for axis, attribute in ((0, "vocab_size"), (1, "hidden_size")):
            value = getattr(config, attribute)
            if len(embed[0]) != 2 or embed[0][axis] != value:
                raise VisualizerError(f"{where}: {config_key(config, attribute)} is {value} but "
                                      f"'{entry.tree.embed}.weight' in {embed[1]} has shape {embed[0]}")
    try:
        with torch.device("meta"):  # shapes only: no memory
            expected = {key: tuple(t.shape) for key, t in model_class(config).state_dict().items()}
    except Exception as e:  # a config transformers accepts but cannot build a model from
        raise VisualizerError(
            f"{where}: transformers cannot build a {model_class.__name__} from it ({first_line(e)})") from None
    wrong = sorted((key, shape, expected[key]) for key, (shape, _) in shapes.items()
                   if key in expected and expected[key] != shape)
    if wrong:  # worded as transformers' own mismatch report is (folder.read_model)
        key, shape, implied = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise VisualizerError(f"{folder}: weight '{key}' has shape {shape}, config.json implies {implied}{more}")
