"""What generic code derives from an architecture entry and the loaded module tree: the check that
the tree is the one the entry describes, the dims, each layer's sliding window, the hook specs
(TransformerLens names) and the model card.

Hook names for the MLP follow TransformerLens: `mlp.hook_pre` is the first input projection (the
plain MLP's fc, the gated MLP's gate before the activation), `mlp.hook_pre_linear` the gated MLP's
up projection, `mlp.hook_post` what the output projection reads (act(fc), or act(gate) * up).
q, k and v are not hooked here: they are recorded from the attention call (`recording.py`).

What this module does not do: load files (folder.py) or run the model (adapter.py, step.py).
"""

from __future__ import annotations

import torch

from visualizer.errors import VisualizerError
from visualizer.model.base import Dims, HookSpec
from visualizer.model.hf.architectures import Architecture

MLP_TEXT = {"plain": "plain (act(c_fc))", "gated": "gated (SwiGLU: act(gate) * up)"}  # the card's words
MLP_IN_NAMES = ("mlp.hook_pre", "mlp.hook_pre_linear")


def blocks_of(entry: Architecture, model) -> list[torch.nn.Module]:
    return list(model.get_submodule(entry.tree.blocks))


def attention_modules(entry: Architecture, model) -> list[torch.nn.Module]:
    """Each layer's attention module (what transformers passes to its attention function)."""
    return [block.get_submodule(entry.tree.attention) for block in blocks_of(entry, model)]


def part(entry: Architecture, model, layer: int, path: str) -> torch.nn.Module:
    """A block-relative module (`path` from the entry's tree) of one layer."""
    return model.get_submodule(f"{entry.tree.blocks}.{layer}.{path}")


def config_flag(config, value: bool | str) -> bool:
    """An entry's fixed bool, or the value of the config field it names."""
    return bool(getattr(config, value, False)) if isinstance(value, str) else value


def check_tree(entry: Architecture, model, where: str) -> None:
    """Every module the entry names exists in every layer, with the biases the entry says: a
    transformers version that renamed or rebuilt a part is one clear error, not a wrong capture."""
    import transformers

    t, config = entry.tree, model.config
    paths = [t.embed, t.blocks, t.final_norm, t.lm_head] + ([t.pos_embed] if t.pos_embed else [])
    block_parts = [t.ln1, t.attention, *t.qkv, t.out_proj, t.attn_out, t.ln2, t.mlp, *t.mlp_in, t.mlp_out, *(entry.qk_norm or ())]
    paths += [f"{t.blocks}.{layer}.{p}" for layer in range(len(blocks_of(entry, model))) for p in block_parts]
    modules = dict(model.named_modules())
    missing = [p for p in paths if p not in modules]
    if missing:
        raise VisualizerError(
            f"{where}: transformers {transformers.__version__}'s {type(model).__name__} has no module '{missing[0]}' "
            f"(named by the {entry.model_type} entry in visualizer/model/hf/architectures.py)"
        )
    biases = [(p, entry.qkv_bias) for p in t.qkv] + [(t.out_proj, entry.out_bias)]
    biases += [(p, entry.mlp_bias) for p in (*t.mlp_in, t.mlp_out)]
    for path, expected in biases:
        has = getattr(part(entry, model, 0, path), "bias", None) is not None
        if has != config_flag(config, expected):
            raise VisualizerError(
                f"{where}: '{t.blocks}.0.{path}' {'has' if has else 'lacks'} a bias, unlike the {entry.model_type} "
                f"entry in visualizer/model/hf/architectures.py (transformers {transformers.__version__})"
            )


def weight_in_out(entry: Architecture, module: torch.nn.Module) -> torch.Tensor:
    """A projection's weight as [in, out] (Conv1D stores it so, nn.Linear as [out, in])."""
    return module.weight if entry.weights_in_out else module.weight.T


def dims_of(entry: Architecture, model) -> Dims:
    config = model.config
    n_head = config.num_attention_heads  # GPT-2's config maps the standard names onto n_head, n_embd, ...
    attention = part(entry, model, 0, entry.tree.attention)
    return Dims(
        n_layer=len(blocks_of(entry, model)),
        n_head=n_head,
        n_kv_head=(getattr(config, entry.kv_heads, None) if entry.kv_heads else None) or n_head,
        d_head=attention.head_dim,
        d_model=config.hidden_size,
        d_mlp=weight_in_out(entry, part(entry, model, 0, entry.tree.mlp_out)).shape[0],
        n_ctx=config.max_position_embeddings,
        vocab_size=config.vocab_size,
    )


def windows_of(entry: Architecture, config, n_layer: int) -> list[int | None]:
    """Per layer, how many keys back (itself included) a query sees; None: every earlier key.

    transformers' sliding mask allows key j for query i when i - window < j <= i."""
    window = getattr(config, "sliding_window", None) if entry.window != "none" else None
    if window is None:
        return [None] * n_layer
    if entry.window == "every layer":
        return [int(window)] * n_layer
    types = list(getattr(config, "layer_types", None) or [])
    if len(types) != n_layer:
        raise VisualizerError(f"config.json: layer_types has {len(types)} entries for {n_layer} layers")
    return [int(window) if kind == "sliding_attention" else None for kind in types]


def hook_specs(entry: Architecture, dims: Dims) -> list[HookSpec]:
    """Where each TransformerLens-named activation is read, in forward order."""
    t, nh, hs = entry.tree, dims.n_head, dims.d_head

    def heads(x):  # [T, n_head * d_head] -> [T, n_head, d_head]
        return (x.reshape(x.shape[0], nh, hs),)

    specs = [HookSpec(t.embed, "output", ("hook_embed",))]
    if t.pos_embed:  # transformers passes position ids with a batch dimension
        specs.append(HookSpec(t.pos_embed, "output", ("hook_pos_embed",)))
    for layer in range(dims.n_layer):
        m, b = f"{t.blocks}.{layer}", f"blocks.{layer}"
        specs += [
            HookSpec(m, "input", (f"{b}.hook_resid_pre",)),
            HookSpec(f"{m}.{t.ln1}", "output", (f"{b}.ln1.hook_normalized",)),
            HookSpec(f"{m}.{t.out_proj}", "input", (f"{b}.attn.hook_z",), heads),
            HookSpec(f"{m}.{t.attn_out}", "output", (f"{b}.hook_attn_out",)),
            HookSpec(f"{m}.{t.ln2}", "input", (f"{b}.hook_resid_mid",)),
            HookSpec(f"{m}.{t.ln2}", "output", (f"{b}.ln2.hook_normalized",)),
            *(HookSpec(f"{m}.{path}", "output", (f"{b}.{name}",)) for path, name in zip(t.mlp_in, MLP_IN_NAMES)),
            HookSpec(f"{m}.{t.mlp_out}", "input", (f"{b}.mlp.hook_post",)),
            HookSpec(f"{m}.{t.mlp}", "output", (f"{b}.hook_mlp_out",)),
            HookSpec(m, "output", (f"{b}.hook_resid_post",)),
        ]
    specs += [
        HookSpec(t.final_norm, "output", ("ln_final.hook_normalized",)),
        HookSpec(t.lm_head, "output", ("logits",)),
    ]
    return specs


def window_text(windows: list[int | None]) -> str | None:
    """'8 keys, every layer' / '8 keys, layers 2, 3' for the card; None without a window."""
    sliding = [layer for layer, w in enumerate(windows) if w is not None]
    if not sliding:
        return None
    sizes = sorted({windows[layer] for layer in sliding})
    where = "every layer" if len(sliding) == len(windows) else "layers " + ", ".join(map(str, sliding))
    return f"{'/'.join(map(str, sizes))} keys, {where}"


def card_of(entry: Architecture, raw: dict, model, windows: list[int | None], tokenizer, dims: Dims, facts: dict,
            source: str) -> dict:
    """JSON-ready facts for the report: config.json's scalars, the architecture's kinds, the files."""
    import transformers

    t, config = entry.tree, model.config
    extras = {}
    if window_text(windows):
        extras["sliding_window"] = window_text(windows)
    if entry.qk_norm:
        extras["qk_norm"] = f"{entry.norm} per head on q and k, before rotary"
    return {
        "family": "hf",
        "source": source,
        "model_type": entry.model_type,
        "architecture": type(model).__name__,
        "model_args": {k: raw[k] for k in sorted(raw) if not k.startswith("_") and (raw[k] is None or isinstance(raw[k], (bool, int, float, str)))},
        "n_params": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        **facts,
        "positions": entry.positions,
        "norm": entry.norm,
        "activation": getattr(config, entry.activation),
        "mlp": MLP_TEXT[entry.mlp],
        **extras,
        "n_kv_head": dims.n_kv_head,
        "tied_embeddings": model.get_submodule(t.embed).weight is model.get_submodule(t.lm_head).weight,
        "attn_implementation": model.config._attn_implementation,
        "transformers_version": transformers.__version__,
        "tokenizer": tokenizer.describe(),
        "bos_token_id": tokenizer.bos_id,
        "special_token_ids": sorted(tokenizer.special_ids),
    }
