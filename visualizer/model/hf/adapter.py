"""Hugging Face causal LMs from a local folder, through transformers, offline: one adapter for every
architecture in `architectures.py` (GPT-2, Llama, Mistral, Qwen2, Qwen3), driven by its entry.

Activations come from read-only hooks on transformers' own modules, under TransformerLens names
(`derive.hook_specs`); q, k (after rotary and any q/k norm) and v from the attention call
(`recording.py`), k and v with n_kv_head heads. The attention pattern is derived by capture from q
and k with this adapter's mask: causal, and the entry's sliding window where the config sets one.

What this module does not do: read files (folder.py), know an architecture by name (every
difference is a field of the entry), or run code shipped with a model.
"""

from __future__ import annotations

from pathlib import Path

import torch

import visualizer.model.hf.step as hf_step
from visualizer.model.base import Adapter, Dims, HookSpec, KVCache, LoadedModel, MLPKind, StepOutput, checkpoint_text, dims_rows, slug
from visualizer.model.decompose import add_attention_pieces, frozen_layer_norm, frozen_rms_norm
from visualizer.model.hf.architectures import Architecture
from visualizer.model.hf.derive import (
    attention_modules, card_of, check_tree, dims_of, hook_specs, part, weight_in_out, windows_of,
)
from visualizer.model.hf.folder import (  # noqa: F401 (looks_like_*: the registry's detection)
    check_folder, looks_like_hf, looks_like_hub_name, read_model, read_tokenizer, resolve_folder, weights_facts,
)
from visualizer.model.hf.recording import recording


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float32)


class HFAdapter(Adapter):
    """One transformers *ForCausalLM seen through its architecture entry."""

    def __init__(self, entry: Architecture, scales: list[float], windows: list[int | None]):
        self.entry = entry
        self.scales = scales  # per layer: the scaling the model's attention module applies to q.k
        self.windows = windows  # per layer: keys a query sees (itself included), None: all earlier keys

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        return hook_specs(self.entry, dims)

    def capture_context(self, loaded: LoadedModel, store: dict[str, torch.Tensor]):
        return recording(loaded.model, attention_modules(self.entry, loaded.model), store)

    def attention_mask(self, layer: int, T: int, device: torch.device) -> torch.Tensor:
        """[query, key] bool: causal, and key j > i - window when the layer has a sliding window."""
        i = torch.arange(T, device=device)[:, None]
        j = torch.arange(T, device=device)[None, :]
        window = self.windows[layer]
        return (j <= i) if window is None else (j <= i) & (j > i - window)

    def attention_scale(self, dims: Dims, layer: int) -> float:
        return self.scales[layer]

    def plain_forward(self, loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
        return loaded.model(input_ids=ids[None], use_cache=False).logits[0]

    def forward_from_embeddings(self, loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor,
                                positions: list[int] | None = None) -> torch.Tensor:
        keep = 0 if positions is None else torch.tensor(positions, device=emb.device)  # 0: every position
        return loaded.model(inputs_embeds=emb, use_cache=False, logits_to_keep=keep).logits

    def final_norm(self, model) -> torch.nn.Module:
        return model.get_submodule(self.entry.tree.final_norm)

    # --- what the page says: the entry's declared kinds and the card ---

    def norm_kind(self, loaded: LoadedModel) -> str:
        return self.entry.norm

    def mlp_kind(self, loaded: LoadedModel) -> MLPKind:
        return MLPKind(str(loaded.card["activation"]), gated=self.entry.mlp == "gated")

    def card_rows(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        card = loaded.card
        return [
            ("family", "Hugging Face transformers"),
            ("checkpoint", checkpoint_text(card["checkpoint_file"], card.get("checkpoint_sha256"))),
            ("source", card["source"]),
            *[(key, str(card[key])) for key in ("model_type", "architecture", "positions", "norm", "activation", "mlp",
                                                 "sliding_window", "qk_norm", "n_kv_head", "tied_embeddings")
              if key in card],
            ("parameters", f"{card['n_params']:,}"),
            *dims_rows(loaded.dims, self.entry.context_key),
            ("vocabulary", card["tokenizer"]),
            *[(f"model_args.{k}", str(v)) for k, v in card["model_args"].items()],
            ("weights stored as", f"{card['weights_dtype']} (analysed in float32)"),
        ]

    def start_cache(self, loaded: LoadedModel) -> KVCache:
        return hf_step.start_cache(loaded)

    def step(self, loaded: LoadedModel, cache: KVCache, new_ids: torch.Tensor) -> StepOutput:
        """transformers' own forward with its own cache (see hf_step)."""
        return hf_step.step(loaded, attention_modules(self.entry, loaded.model), cache, new_ids)

    def out_projection(self, model, layer: int, dims: Dims) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W_O [n_head, d_head, d_model], bias [d_model] or None) of one layer's attention output."""
        proj = part(self.entry, model, layer, self.entry.tree.out_proj)
        w_o = f32(weight_in_out(self.entry, proj)).reshape(dims.n_head, dims.d_head, dims.d_model)
        return w_o, f32(proj.bias) if proj.bias is not None else None

    @torch.no_grad()
    def logits_from_residual(self, loaded: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
        model = loaded.model
        head = model.get_submodule(self.entry.tree.lm_head)
        return f32(head(self.final_norm(model)(resid.to(loaded.device))))

    def embedding_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return f32(loaded.model.get_submodule(self.entry.tree.embed).weight)

    def unembed_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return f32(loaded.model.get_submodule(self.entry.tree.lm_head).weight)

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
        if self.entry.norm == "LayerNorm":
            return frozen_layer_norm(x, f32(norm.weight), f32(norm.bias) if norm.bias is not None else None, norm.eps)
        return frozen_rms_norm(x, f32(norm.weight), norm.variance_epsilon)

    @torch.no_grad()
    def attribution_baseline(self, loaded: LoadedModel, ids: torch.Tensor) -> tuple[torch.Tensor, str]:
        """With rotary positions, the BOS token's embedding at every position: with a scale-invariant
        RMSNorm first, a zero stream would make the path's output jump right next to it."""
        bos = loaded.tokenizer.bos_id
        if self.entry.positions != "rotary" or bos is None:
            return super().attribution_baseline(loaded, ids)
        row = f32(loaded.model.get_submodule(self.entry.tree.embed).weight[bos])  # [d_model]
        return row.expand(len(ids), -1).clone(), f"hook_embed of the BOS token (id {bos}) at every position"


def load(source: Path | str, device: torch.device) -> LoadedModel:
    """A local Hugging Face model folder (or a hub name already in the local cache) -> LoadedModel."""
    folder, display = resolve_folder(source)
    raw, entry = check_folder(folder)
    model = read_model(folder, entry, device)
    check_tree(entry, model, str(folder))
    dims = dims_of(entry, model)
    windows = windows_of(entry, model.config, dims.n_layer)
    tokenizer = read_tokenizer(folder, dims.vocab_size)
    scales = [float(module.scaling) for module in attention_modules(entry, model)]
    return LoadedModel(
        family="hf",
        name=slug(display),
        model=model,
        tokenizer=tokenizer,
        dims=dims,
        card=card_of(entry, raw, model, windows, tokenizer, dims, weights_facts(folder, raw), display),
        device=device,
        adapter=HFAdapter(entry, scales, windows),
    )
