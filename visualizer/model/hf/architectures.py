"""The Hugging Face architectures we read, one declarative entry per config.json `model_type`.

An entry says where each part of the model sits in transformers' own module tree (dotted module
paths) and what kind of part it is: norm, MLP, positions, biases, grouped-query attention, q/k
norms, sliding windows, the saved buffers a folder may carry unused, the transformers class. The
hook specs, dims, module-tree check, attention mask, cached step and model card are derived from
the entry by generic code (`adapter.py`, `step.py`); nothing else branches on `model_type`.

Where the entries come from (transformers 5.24, `models/<type>/modeling_<type>.py`):
- gpt2: fused `c_attn` (Conv1D, weights stored [in, out]), learned positions `wpe`, LayerNorm, GELU.
- llama: q/k/v/o projections, rotary, RMSNorm, SwiGLU (`act(gate_proj) * up_proj`), grouped-query
  attention; biases set by `attention_bias` / `mlp_bias`.
- mistral: Llama's tree; `sliding_window` (when set) applies to every layer, each query sees the
  last `sliding_window` keys (itself included); no biases.
- qwen2: Llama's tree; q/k/v biases always, o without; a sliding window on the layers that
  `layer_types` marks "sliding_attention" (derived by the config from `use_sliding_window`,
  `max_window_layers`).
- qwen3: Qwen2's windows; q and k pass through a per-head RMSNorm (`q_norm`, `k_norm`, over
  d_head) before rotary; biases set by `attention_bias`.

What this module does not do: import transformers or touch a model (it is data; `adapter.py`
reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

from visualizer.errors import VisualizerError


@dataclass(frozen=True)
class Tree:
    """Module paths in the *ForCausalLM model. Top-level paths are absolute; the others are relative
    to one block (`{blocks}.{layer}`)."""

    embed: str  # token embedding (nn.Embedding)
    pos_embed: str | None  # learned position embedding; None with rotary positions
    blocks: str  # the ModuleList of blocks
    ln1: str  # norm before attention
    attention: str  # the module that calls transformers' attention function (has `.scaling`, `.head_dim`)
    qkv: tuple[str, ...]  # one fused projection (q, k, v side by side), or the q, k, v projections
    out_proj: str  # attention output projection: its input is hook_z
    attn_out: str  # where the attention output leaves the attention module (which returns a tuple)
    ln2: str  # norm before the MLP
    mlp: str
    mlp_in: tuple[str, ...]  # (fc,) for a plain MLP; (gate, up) for a gated one
    mlp_out: str  # MLP output projection: its input is mlp.hook_post
    final_norm: str
    lm_head: str


@dataclass(frozen=True)
class Architecture:
    """Everything generic code needs to know about one `model_type`."""

    model_type: str
    transformers_class: str  # the *ForCausalLM class in `transformers`
    tree: Tree
    norm: str  # "LayerNorm" | "RMSNorm" (every norm of the model)
    mlp: str  # "plain": act(fc(x)) | "gated": act(gate(x)) * up(x)
    activation: str  # config field naming the MLP activation
    positions: str  # "learned" | "rotary"
    weights_in_out: bool  # projections store weights [in, out] (GPT-2's Conv1D), else nn.Linear's [out, in]
    # bias on the q/k/v projections, the attention output, the MLP projections: fixed, or the config field deciding it
    qkv_bias: bool | str
    out_bias: bool | str
    mlp_bias: bool | str
    kv_heads: str | None  # config field counting key/value heads (grouped-query attention); None: one per query head
    qk_norm: tuple[str, str] | None  # per-head norms of q and k (block-relative paths), applied before rotary
    window: str  # "none" | "every layer": config.sliding_window on all layers | "layer_types": on the layers it marks
    saved_buffers: str  # regex: keys older checkpoints saved that the model recomputes, allowed unused
    eager_bypass: tuple[str, ...] = ()  # config flags under which eager attention skips the attention function
    context_key: str = "max_position_embeddings"  # the config.json key that sets the context length (the card names it)


GPT2_TREE = Tree(
    embed="transformer.wte",
    pos_embed="transformer.wpe",
    blocks="transformer.h",
    ln1="ln_1",
    attention="attn",
    qkv=("attn.c_attn",),
    out_proj="attn.c_proj",
    attn_out="attn.resid_dropout",
    ln2="ln_2",
    mlp="mlp",
    mlp_in=("mlp.c_fc",),
    mlp_out="mlp.c_proj",
    final_norm="transformer.ln_f",
    lm_head="lm_head",
)

# Llama's tree, which Mistral, Qwen2 and Qwen3 keep name for name (Qwen3 adds q_norm, k_norm)
DECODER_TREE = Tree(
    embed="model.embed_tokens",
    pos_embed=None,
    blocks="model.layers",
    ln1="input_layernorm",
    attention="self_attn",
    qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    out_proj="self_attn.o_proj",
    attn_out="self_attn.o_proj",
    ln2="post_attention_layernorm",
    mlp="mlp",
    mlp_in=("mlp.gate_proj", "mlp.up_proj"),
    mlp_out="mlp.down_proj",
    final_norm="model.norm",
    lm_head="lm_head",
)

ROTARY_BUFFERS = r"(^|\.)layers\.\d+\.self_attn\.rotary_emb\.inv_freq$"

ENTRIES = {
    entry.model_type: entry
    for entry in (
        Architecture(
            model_type="gpt2", transformers_class="GPT2LMHeadModel", tree=GPT2_TREE, norm="LayerNorm", mlp="plain",
            activation="activation_function", positions="learned", weights_in_out=True,
            qkv_bias=True, out_bias=True, mlp_bias=True, kv_heads=None, qk_norm=None, window="none",
            saved_buffers=r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$",
            eager_bypass=("reorder_and_upcast_attn",),  # eager then runs its own upcast kernel, not the function
            context_key="n_positions",
        ),
        Architecture(
            model_type="llama", transformers_class="LlamaForCausalLM", tree=DECODER_TREE, norm="RMSNorm", mlp="gated",
            activation="hidden_act", positions="rotary", weights_in_out=False,
            qkv_bias="attention_bias", out_bias="attention_bias", mlp_bias="mlp_bias",
            kv_heads="num_key_value_heads", qk_norm=None, window="none", saved_buffers=ROTARY_BUFFERS,
        ),
        Architecture(
            model_type="mistral", transformers_class="MistralForCausalLM", tree=DECODER_TREE, norm="RMSNorm", mlp="gated",
            activation="hidden_act", positions="rotary", weights_in_out=False,
            qkv_bias=False, out_bias=False, mlp_bias=False,
            kv_heads="num_key_value_heads", qk_norm=None, window="every layer", saved_buffers=ROTARY_BUFFERS,
        ),
        Architecture(
            model_type="qwen2", transformers_class="Qwen2ForCausalLM", tree=DECODER_TREE, norm="RMSNorm", mlp="gated",
            activation="hidden_act", positions="rotary", weights_in_out=False,
            qkv_bias=True, out_bias=False, mlp_bias=False,
            kv_heads="num_key_value_heads", qk_norm=None, window="layer_types", saved_buffers=ROTARY_BUFFERS,
        ),
        Architecture(
            model_type="qwen3", transformers_class="Qwen3ForCausalLM", tree=DECODER_TREE, norm="RMSNorm", mlp="gated",
            activation="hidden_act", positions="rotary", weights_in_out=False,
            qkv_bias="attention_bias", out_bias="attention_bias", mlp_bias=False,
            kv_heads="num_key_value_heads", qk_norm=("self_attn.q_norm", "self_attn.k_norm"), window="layer_types",
            saved_buffers=ROTARY_BUFFERS,
        ),
    )
}

SUPPORTED = tuple(ENTRIES)


def entry_for(model_type: object, where: str) -> Architecture:
    """The entry for a config.json's `model_type`; an unknown one is one clear error naming `where`."""
    if not isinstance(model_type, str) or model_type not in ENTRIES:
        raise VisualizerError(f"{where}: model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED)})")
    return ENTRIES[model_type]
