"""Hugging Face causal LMs from a local folder (config.json + weights + tokenizer files), through
transformers, offline: GPT-2 (learned positions, LayerNorm, GELU, Conv1D weights stored [in, out])
and Llama (rotary positions, RMSNorm, SwiGLU, grouped-query attention).

The model is transformers' own module tree, loaded with `local_files_only=True` (never a download),
safetensors or `torch.load(weights_only=True)`, float32, eager attention. Activations come from
read-only hooks on its modules, under TransformerLens names. Llama's q and k exist after rotary only
inside the attention call, so for the duration of a capture the attention function transformers
looks up (`ALL_ATTENTION_FUNCTIONS.get_interface`) is wrapped to record its (query, key, value)
arguments; the forward itself is never copied. `hook_k`/`hook_v` keep n_kv_head heads.

MLP names for the gated (SwiGLU) MLP follow TransformerLens: `mlp.hook_pre` is the gate projection
before the activation, `mlp.hook_pre_linear` the up projection, `mlp.hook_post` act(gate) * up.

What this module does not do: fetch from the hub, run code shipped with a model (no
`trust_remote_code`), or handle architectures other than GPT-2 and Llama (a clear error names
what is supported).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from pathlib import Path

import torch

from visualizer.errors import VisualizerError
import visualizer.model.hf.step as hf_step
from visualizer.model.base import Adapter, Dims, HookSpec, KVCache, LoadedModel, MLPKind, StepOutput, checkpoint_text, dims_rows, slug
from visualizer.model.decompose import add_attention_pieces, frozen_layer_norm, frozen_rms_norm
from visualizer.model.hf.tokenizer import HFTokenizer
from visualizer.model.nanogpt.adapter import NanoGPTAdapter

SUPPORTED = ("gpt2", "llama")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
# buffers older checkpoints saved that the model recomputes (causal masks, rotary frequencies): the
# only keys we let pass unused
SAVED_BUFFERS = {
    "gpt2": re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$"),
    "llama": re.compile(r"(^|\.)layers\.\d+\.self_attn\.rotary_emb\.inv_freq$"),
}
NOT_HUB_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".json", ".safetensors", ".ckpt")
# what the page says per model_type: norm kind, gated MLP, the config.json key that sets n_ctx
PAGE_KINDS = {"gpt2": ("LayerNorm", False, "n_positions"), "llama": ("RMSNorm", True, "max_position_embeddings")}


# --- finding and reading the folder -------------------------------------------------------------


def read_config_json(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


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


def check_folder(folder: Path) -> dict:
    raw = read_config_json(folder)
    if raw is None:
        raise VisualizerError(f"{folder}: no readable config.json (a Hugging Face model folder has one)")
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED:
        raise VisualizerError(
            f"{folder / 'config.json'}: model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise VisualizerError(f"{folder}: no weights found (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise VisualizerError(f"{folder}: no tokenizer files found (expected one of {', '.join(TOKENIZER_FILES)})")
    return raw


SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def weights_facts(folder: Path, raw: dict) -> dict:
    """The weights file transformers reads, all weight files, and the dtype they are stored in
    (from a safetensors header, else config.json's `torch_dtype`/`dtype`)."""
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
    return {"checkpoint_file": main, "weights_files": files, "weights_dtype": dtype}


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


def read_model(folder: Path, model_type: str, device: torch.device):
    import transformers

    cls = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM}[model_type]
    try:
        with quiet_transformers():
            model, info = cls.from_pretrained(
                str(folder),
                local_files_only=True,
                trust_remote_code=False,
                weights_only=True,
                dtype=torch.float32,
                attn_implementation="eager",
                output_loading_info=True,
                ignore_mismatched_sizes=True,  # reported in the loading info, and refused below by name
            )
    except Exception as e:  # corrupt weights, shapes that disagree with config.json, unreadable files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VisualizerError(f"{folder}: transformers could not load the model ({first[:300]})") from None
    mismatched = sorted((str(k), tuple(a), tuple(b)) for k, a, b in info.get("mismatched_keys") or ())
    if mismatched:
        key, stored, expected = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise VisualizerError(f"{folder}: weight '{key}' has shape {stored}, config.json implies {expected}{more}")
    for kind in ("missing_keys", "unexpected_keys"):
        keys = sorted(str(k) for k in info.get(kind) or ())
        if kind == "unexpected_keys":
            keys = [k for k in keys if not SAVED_BUFFERS[model_type].search(k)]
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise VisualizerError(f"{folder}: {kind.replace('_', ' ')} in the weights: '{keys[0]}'{more}")
    if info.get("error_msgs"):
        raise VisualizerError(f"{folder}: transformers reported while loading: {str(info['error_msgs'][0])[:300]}")
    return model.to(device).eval()


def read_tokenizer(folder: Path, model_vocab: int) -> HFTokenizer:
    from transformers import AutoTokenizer

    try:
        with quiet_transformers():
            hf_tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VisualizerError(f"{folder}: transformers could not load the tokenizer ({first[:300]})") from None
    return HFTokenizer(hf_tokenizer, model_vocab)


# --- the architectures --------------------------------------------------------------------------


def dims_of(model_type: str, config) -> Dims:
    if model_type == "gpt2":
        return Dims(
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_kv_head=config.n_head,
            d_head=config.n_embd // config.n_head,
            d_model=config.n_embd,
            d_mlp=config.n_inner or 4 * config.n_embd,
            n_ctx=config.n_positions,
            vocab_size=config.vocab_size,
        )
    n_head = config.num_attention_heads
    return Dims(
        n_layer=config.num_hidden_layers,
        n_head=n_head,
        n_kv_head=config.num_key_value_heads or n_head,
        d_head=getattr(config, "head_dim", None) or config.hidden_size // n_head,
        d_model=config.hidden_size,
        d_mlp=config.intermediate_size,
        n_ctx=config.max_position_embeddings,
        vocab_size=config.vocab_size,
    )


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float32)


class HFAdapter(Adapter):
    """What GPT-2 and Llama share: forward, unembedding, final norm, per-head residual pieces.

    Subclasses name the modules (`hook_specs`, `final_norm`, `out_projection`)."""

    def __init__(self, scales: list[float]):
        self.scales = scales  # per layer: the scaling the model's attention module applies to q.k

    def attention_scale(self, dims: Dims, layer: int) -> float:
        return self.scales[layer]

    def plain_forward(self, loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
        return loaded.model(input_ids=ids[None], use_cache=False).logits[0]

    def forward_from_embeddings(self, loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor,
                                positions: list[int] | None = None) -> torch.Tensor:
        keep = 0 if positions is None else torch.tensor(positions, device=emb.device)  # 0: every position
        return loaded.model(inputs_embeds=emb, use_cache=False, logits_to_keep=keep).logits

    def final_norm(self, model) -> torch.nn.Module:
        raise NotImplementedError

    # --- what the page says (per model_type, from PAGE_KINDS and the card) ---

    def page_kinds(self, loaded: LoadedModel) -> tuple[str, bool, str]:
        return PAGE_KINDS[loaded.card["model_type"]]

    def norm_kind(self, loaded: LoadedModel) -> str:
        return self.page_kinds(loaded)[0]

    def mlp_kind(self, loaded: LoadedModel) -> MLPKind:
        return MLPKind(str(loaded.card["activation"]), gated=self.page_kinds(loaded)[1])

    def card_rows(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        card = loaded.card
        return [
            ("family", "Hugging Face transformers"),
            ("checkpoint", checkpoint_text(card["checkpoint_file"])),
            ("source", card["source"]),
            *[(key, str(card[key])) for key in ("model_type", "architecture", "positions", "norm", "activation", "mlp",
                                                 "n_kv_head", "tied_embeddings")],
            ("parameters", f"{card['n_params']:,}"),
            *dims_rows(loaded.dims, self.page_kinds(loaded)[2]),
            ("vocabulary", card["tokenizer"]),
            *[(f"model_args.{k}", str(v)) for k, v in card["model_args"].items()],
            ("weights stored as", f"{card['weights_dtype']} (analysed in float32)"),
        ]

    def attention_modules(self, model) -> list[torch.nn.Module]:
        """Each layer's attention module (what transformers passes to its attention function)."""
        raise NotImplementedError

    def start_cache(self, loaded: LoadedModel) -> KVCache:
        return hf_step.start_cache(loaded)

    def step(self, loaded: LoadedModel, cache: KVCache, new_ids: torch.Tensor) -> StepOutput:
        """transformers' own forward with its own cache (see hf_step)."""
        return hf_step.step(loaded, self.attention_modules(loaded.model), cache, new_ids)

    def out_projection(self, model, layer: int, dims: Dims) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W_O [n_head, d_head, d_model], bias [d_model] or None) of one layer's attention output."""
        raise NotImplementedError

    @torch.no_grad()
    def logits_from_residual(self, loaded: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
        model = loaded.model
        return f32(model.get_output_embeddings()(self.final_norm(model)(resid.to(loaded.device))))

    def embedding_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return f32(loaded.model.get_input_embeddings().weight)

    def unembed_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return f32(loaded.model.get_output_embeddings().weight)

    @torch.no_grad()
    def residual_components(self, loaded: LoadedModel, cache_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        parts = {"embed": cache_tensors["hook_embed"]}
        if "hook_pos_embed" in cache_tensors:
            parts["pos_embed"] = cache_tensors["hook_pos_embed"]
        for layer in range(loaded.dims.n_layer):
            w_o, bias = self.out_projection(loaded.model, layer, loaded.dims)
            add_attention_pieces(parts, layer, cache_tensors[f"blocks.{layer}.attn.hook_z"], w_o, bias)
            parts[f"L{layer}.mlp"] = cache_tensors[f"blocks.{layer}.hook_mlp_out"]
        return parts

    def frozen_final_norm(self, loaded: LoadedModel, x: torch.Tensor):
        norm = self.final_norm(loaded.model)
        if isinstance(norm, torch.nn.LayerNorm):
            return frozen_layer_norm(x, f32(norm.weight), f32(norm.bias) if norm.bias is not None else None, norm.eps)
        return frozen_rms_norm(x, f32(norm.weight), norm.variance_epsilon)  # LlamaRMSNorm


class GPT2Adapter(HFAdapter):
    """transformers' GPT2LMHeadModel: fused c_attn (Conv1D, [in, out]) splits into q, k, v."""

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        """nanoGPT's module tree is GPT-2's, names and all; two hooks differ: transformers' wpe
        gets position ids with a batch dimension, and its attention module returns a tuple, so
        the attention output is read where it leaves (resid_dropout, identity in eval)."""
        specs = []
        for spec in NanoGPTAdapter().hook_specs(dims):
            if spec.names == ("hook_pos_embed",):
                spec = dataclasses.replace(spec, batched=True)
            elif spec.names[0].endswith(".hook_attn_out"):
                spec = dataclasses.replace(spec, module=f"{spec.module}.resid_dropout")
            specs.append(spec)
        return specs

    def final_norm(self, model) -> torch.nn.Module:
        return model.transformer.ln_f

    def attention_modules(self, model) -> list[torch.nn.Module]:
        return [block.attn for block in model.transformer.h]

    def out_projection(self, model, layer: int, dims: Dims):
        c_proj = model.transformer.h[layer].attn.c_proj  # Conv1D: y = x @ weight + bias, weight [in, out]
        w_o = f32(c_proj.weight).reshape(dims.n_head, dims.d_head, dims.d_model)
        return w_o, f32(c_proj.bias) if c_proj.bias is not None else None


class LlamaAdapter(HFAdapter):
    """transformers' LlamaForCausalLM: q and k recorded after rotary from the attention call."""

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        nh, hs = dims.n_head, dims.d_head

        def heads(t):  # [T, n_head * d_head] -> [T, n_head, d_head]
            return (t.reshape(t.shape[0], nh, hs),)

        specs = [HookSpec("model.embed_tokens", "output", ("hook_embed",))]
        for layer in range(dims.n_layer):
            m, b = f"model.layers.{layer}", f"blocks.{layer}"
            specs += [
                HookSpec(m, "input", (f"{b}.hook_resid_pre",)),
                HookSpec(f"{m}.input_layernorm", "output", (f"{b}.ln1.hook_normalized",)),
                # hook_q, hook_k (after rotary), hook_v: recorded by capture_context
                HookSpec(f"{m}.self_attn.o_proj", "input", (f"{b}.attn.hook_z",), heads),
                HookSpec(f"{m}.self_attn.o_proj", "output", (f"{b}.hook_attn_out",)),
                HookSpec(f"{m}.post_attention_layernorm", "input", (f"{b}.hook_resid_mid",)),
                HookSpec(f"{m}.post_attention_layernorm", "output", (f"{b}.ln2.hook_normalized",)),
                HookSpec(f"{m}.mlp.gate_proj", "output", (f"{b}.mlp.hook_pre",)),
                HookSpec(f"{m}.mlp.up_proj", "output", (f"{b}.mlp.hook_pre_linear",)),
                HookSpec(f"{m}.mlp.down_proj", "input", (f"{b}.mlp.hook_post",)),
                HookSpec(f"{m}.mlp", "output", (f"{b}.hook_mlp_out",)),
                HookSpec(m, "output", (f"{b}.hook_resid_post",)),
            ]
        specs += [
            HookSpec("model.norm", "output", ("ln_final.hook_normalized",)),
            HookSpec("lm_head", "output", ("logits",)),
        ]
        return specs

    @torch.no_grad()
    def attribution_baseline(self, loaded: LoadedModel, ids: torch.Tensor) -> tuple[torch.Tensor, str]:
        """The BOS token's embedding at every position: with rotary positions and a scale-invariant
        RMSNorm first, a zero stream would make the path's output jump right next to it."""
        bos = loaded.tokenizer.bos_id
        if bos is None:
            return super().attribution_baseline(loaded, ids)
        row = f32(loaded.model.get_input_embeddings().weight[bos])  # [d_model]
        return row.expand(len(ids), -1).clone(), f"hook_embed of the BOS token (id {bos}) at every position"

    def capture_context(self, loaded: LoadedModel, store: dict[str, torch.Tensor]):
        attention = {id(module): i for i, module in enumerate(self.attention_modules(loaded.model))}
        return recording_attention_calls(attention, store)

    def final_norm(self, model) -> torch.nn.Module:
        return model.model.norm

    def attention_modules(self, model) -> list[torch.nn.Module]:
        return [layer.self_attn for layer in model.model.layers]

    def out_projection(self, model, layer: int, dims: Dims):
        o_proj = model.model.layers[layer].self_attn.o_proj  # nn.Linear: weight [d_model, n_head * d_head]
        w_o = f32(o_proj.weight).T.reshape(dims.n_head, dims.d_head, dims.d_model)
        return w_o, f32(o_proj.bias) if o_proj.bias is not None else None


@contextlib.contextmanager
def recording_attention_calls(layer_of: dict[int, int], store: dict[str, torch.Tensor]):
    """While open, every attention function transformers hands out records, for the attention
    modules in `layer_of` (id(module) -> layer), the query, key and value it is called with
    ([batch, heads, T, d_head]; key and value with n_kv_head heads, before any repeat) as
    blocks.{l}.attn.hook_q|hook_k|hook_v [T, heads, d_head]. The call itself is unchanged."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS as registry

    had_own = "get_interface" in vars(registry)
    previous = registry.get_interface
    seen: set[int] = set()

    def get_interface(implementation, default):
        function = previous(implementation, default)

        def recorded(module, query, key, value, *args, **kwargs):
            layer = layer_of.get(id(module))
            if layer is not None:
                b = f"blocks.{layer}.attn"
                store[f"{b}.hook_q"] = query[0].transpose(0, 1)  # [T, n_head, d_head]
                store[f"{b}.hook_k"] = key[0].transpose(0, 1)  # [T, n_kv_head, d_head]
                store[f"{b}.hook_v"] = value[0].transpose(0, 1)  # [T, n_kv_head, d_head]
                seen.add(layer)
            return function(module, query, key, value, *args, **kwargs)

        return recorded

    registry.get_interface = get_interface
    try:
        yield store
    finally:
        if had_own:
            registry.get_interface = previous
        else:
            del registry.get_interface
    missing = sorted(set(layer_of.values()) - seen)
    if missing:
        raise VisualizerError(
            f"transformers did not call its attention interface for layer {missing[0]}: this transformers "
            "version is not supported by the capture (q and k after rotary cannot be recorded)"
        )


# --- loading ------------------------------------------------------------------------------------

ADAPTERS = {"gpt2": GPT2Adapter, "llama": LlamaAdapter}


def card_of(model_type: str, raw: dict, model, tokenizer: HFTokenizer, dims: Dims, facts: dict, source: str) -> dict:
    import transformers

    config = model.config
    gated = model_type == "llama"
    return {
        "family": "hf",
        "source": source,
        "model_type": model_type,
        "architecture": type(model).__name__,
        "model_args": {k: raw[k] for k in sorted(raw) if not k.startswith("_") and (raw[k] is None or isinstance(raw[k], (bool, int, float, str)))},
        "n_params": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        **facts,
        "positions": "learned" if model_type == "gpt2" else "rotary",
        "norm": "LayerNorm" if model_type == "gpt2" else "RMSNorm",
        "activation": config.activation_function if model_type == "gpt2" else config.hidden_act,
        "mlp": "gated (SwiGLU: act(gate) * up)" if gated else "plain (act(c_fc))",
        "n_kv_head": dims.n_kv_head,
        "tied_embeddings": model.get_input_embeddings().weight is model.get_output_embeddings().weight,
        "attn_implementation": "eager",
        "transformers_version": transformers.__version__,
        "tokenizer": tokenizer.describe(),
        "bos_token_id": tokenizer.bos_id,
        "special_token_ids": sorted(tokenizer.special_ids),
    }


def load(source: Path | str, device: torch.device) -> LoadedModel:
    """A local Hugging Face model folder (or a hub name already in the local cache) -> LoadedModel."""
    folder, display = resolve_folder(source)
    raw = check_folder(folder)
    model_type = raw["model_type"]
    model = read_model(folder, model_type, device)
    dims = dims_of(model_type, model.config)
    tokenizer = read_tokenizer(folder, dims.vocab_size)
    attention = model.transformer.h if model_type == "gpt2" else model.model.layers
    scales = [float(block.attn.scaling if model_type == "gpt2" else block.self_attn.scaling) for block in attention]
    return LoadedModel(
        family="hf",
        name=slug(display),
        model=model,
        tokenizer=tokenizer,
        dims=dims,
        card=card_of(model_type, raw, model, tokenizer, dims, weights_facts(folder, raw), display),
        device=device,
        adapter=ADAPTERS[model_type](scales),
    )
