"""What every model family adapter provides, so that nothing outside `families/` knows an architecture.

An adapter is mostly a table: activation name -> (module path, input or output side, how to cut the
module's tensor into named [pos, ...] tensors). Capture, verification, analysis and the report only
read that table and the flat name -> tensor cache it fills.

What this module does not do: load files (each family does), or run hooks (capture.py does).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from visualizer.model.tokenizer import Encoded, Tokenizer


def slug(text: str, limit: int = 48) -> str:
    """Lower-case letters and digits joined by "-", for folder names (models, probes)."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].strip("-") or "x"


@dataclass(frozen=True)
class HookSpec:
    """One hook: the module at `module` (dotted path), on its `side` ('input' or 'output').

    `split` turns the module's tensor, batch dimension already dropped, into one tensor per name
    in `names`. `batched=False` for modules whose tensor has no batch dimension (nanoGPT's wpe).
    `arg` picks the positional argument on the input side: a module that stands for a function
    call (an attention kernel taking q, k, v) gives each argument its own spec.
    """

    module: str
    side: str
    names: tuple[str, ...]
    split: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] = lambda t: (t,)
    batched: bool = True
    arg: int = 0


@dataclass(frozen=True)
class Dims:
    n_layer: int
    n_head: int  # query heads
    n_kv_head: int  # key/value heads (== n_head without grouped-query attention)
    d_head: int
    d_model: int
    d_mlp: int
    n_ctx: int  # longest context the model takes (block_size)
    vocab_size: int  # rows of the unembedding the model computes logits for


NORM_KINDS = ("LayerNorm", "RMSNorm")  # what `Adapter.norm_kind` may declare
STAGES = ("embedding", "attention", "final")  # where a StreamNote's operation happens


@dataclass(frozen=True)
class MLPKind:
    """What a family's MLP computes: `activation` (its name, e.g. 'GELU', 'SiLU', 'ReLU²') applied to
    the first projection (plain), or to a gate projection then multiplied by a linear 'up'
    projection (gated: hook_pre is the gate, hook_pre_linear the up projection)."""

    activation: str
    gated: bool = False


@dataclass(frozen=True)
class StreamNote:
    """An operation on the residual stream beyond "each block adds its attention and MLP outputs",
    for the page: where it happens (`stage`: 'embedding' = between the embedding and block 0,
    'attention' = inside each layer's attention, 'final' = between the last block and the final
    norm), a heading, the capture names that show it ('{l}' for the layer) and one line saying
    what it does."""

    stage: str
    heading: str
    tensors: tuple[str, ...]
    text: str


@dataclass
class LoadedModel:
    """A model ready to capture: module tree in eval mode (float32), tokenizer, facts for the card."""

    family: str
    name: str  # short name used in output paths (slug)
    model: nn.Module
    tokenizer: Tokenizer
    dims: Dims
    card: dict  # JSON-ready facts: model args, checkpoint facts, parameter count, tokenizer
    device: torch.device
    adapter: "Adapter" = field(repr=False, default=None)


@torch.no_grad()
def non_finite_weights(model: nn.Module) -> dict[str, dict[str, int]]:
    """name -> {"nan": count, "inf": count} for every floating parameter or buffer of `model` that
    holds a NaN or an infinity, in the module tree's order; {} for a healthy model."""
    found, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=False).items():
        if tensor.data_ptr() in seen:  # a tied matrix (nanoGPT's lm_head is wte) is counted once
            continue
        seen.add(tensor.data_ptr())
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            found[name] = {"nan": int(tensor.isnan().sum()), "inf": int(tensor.isinf().sum())}
    return found


def describe_non_finite(found: dict[str, dict[str, int]]) -> str:
    """'1 NaN in transformer.h.0.mlp.c_fc.weight (and 2 more tensors)' for `non_finite_weights`."""
    name, counts = next(iter(found.items()))
    what = " and ".join(f"{counts[kind]:,} {name}" for kind, name in (("nan", "NaN"), ("inf", "inf")) if counts[kind])
    more = f" (and {len(found) - 1} more tensor{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return f"{what} in {name}{more}"


class Adapter:
    """Per-family knowledge used by capture and the report. Subclasses fill in every method."""

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        raise NotImplementedError

    def encode_probe(self, loaded: LoadedModel, text: str) -> Encoded:
        return loaded.tokenizer.encode(text)

    def plain_forward(self, loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
        """Logits [pos, vocab] from the model's own forward, no hooks involved."""
        raise NotImplementedError

    def capture_context(self, loaded: LoadedModel, store: dict[str, torch.Tensor]) -> contextlib.AbstractContextManager:
        """Entered around the hooked forward, for activations that exist only inside a function call
        (q and k after rotary, say): the context records them into `store` under their names, then
        restores whatever it wrapped. Default: nothing to record."""
        return contextlib.nullcontext(store)

    def attention_mask(self, layer: int, T: int, device: torch.device) -> torch.Tensor:
        """[query_pos, key_pos] bool, True where a query may attend a key. Default: causal."""
        return torch.ones(T, T, dtype=torch.bool, device=device).tril()

    def attention_scale(self, dims: Dims, layer: int) -> float:
        return dims.d_head**-0.5

    # --- what analysis needs from the weights (logit lens, dot-product breakdown, neighbours) ---

    def logits_from_residual(self, loaded: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
        """[..., d_model] residual stream -> [..., vocab] logits: final norm, unembedding, any cap.

        Applied to the last block's output it gives the model's logits (the logit lens uses it on
        every layer's output)."""
        raise NotImplementedError

    def embedding_weight(self, loaded: LoadedModel) -> torch.Tensor:
        """[vocab, d_model] token embedding rows (for nearest-neighbour maps)."""
        raise NotImplementedError

    def unembed_weight(self, loaded: LoadedModel) -> torch.Tensor:
        """[vocab, d_model]: logit_t = final_norm(x) . W_U[t] (+ unembed bias, see final_logit_parts)."""
        raise NotImplementedError

    def final_residual(self, cache_tensors: dict[str, torch.Tensor], dims: Dims) -> torch.Tensor:
        """[pos, d_model]: the residual stream that enters the final norm."""
        return cache_tensors[f"blocks.{dims.n_layer - 1}.hook_resid_post"]

    def residual_components(self, loaded: LoadedModel, cache_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """name -> [pos, d_model] pieces that add up to `final_residual` exactly (up to float error):
        embeddings, every attention head of every layer (z_h @ W_O[h]), attention biases, MLPs.
        Names: 'embed', 'pos_embed', 'L{l}.H{h}', 'L{l}.attn_bias', 'L{l}.mlp', in model order."""
        raise NotImplementedError

    def frozen_final_norm(self, loaded: LoadedModel, x: torch.Tensor):
        """The final norm linearised at x [d_model], its scale frozen: returns (linear, constant) with
        final_norm(x) == linear(x) + constant, and linear applicable to any [..., d_model] piece."""
        raise NotImplementedError

    # the capture name of the tensor `forward_from_embeddings` starts from (attribution scales it)
    embedding_hook = "hook_embed"

    def attribution_baseline(self, loaded: LoadedModel, ids: torch.Tensor) -> tuple[torch.Tensor, str]:
        """The integrated-gradients baseline for `embedding_hook` [pos, d_model], and what it is in
        words. Default: zeros (a model with position embeddings then sees positions only)."""
        return torch.zeros(len(ids), loaded.dims.d_model), f"{self.embedding_hook} = 0 at every position"

    def forward_from_embeddings(self, loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor,
                                positions: list[int] | None = None) -> torch.Tensor:
        """Differentiable rest of the forward: emb [B, pos, d_model] (what `embedding_hook`
        captures) -> logits [B, pos, vocab], or [B, len(positions), vocab]. ids [pos] are the
        probe's tokens, for whatever else the model reads from them (nanochat's value embeddings),
        held fixed; position information is added inside as the model does. Attribution runs
        through it."""
        raise NotImplementedError

    def logit_cap(self, loaded: LoadedModel) -> float | None:
        """The c in logits = c * tanh(raw / c) (nanochat's softcap); None when logits are not capped."""
        return None

    def stream_identities(self, loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> dict:
        """How the residual stream is built and passed between blocks, as identities capture verifies.

        name -> (computed, captured) for a single check, or a list of such pairs for a per-layer
        identity (the worst is reported with the count checked). Default, a plain residual stream:
        resid_pre[l+1] == resid_post[l], and resid_pre[0] == embed + pos_embed when both exist.
        """
        n_layer = loaded.dims.n_layer
        identities: dict = {}
        if n_layer > 1:
            identities["resid_pre[l+1] == resid_post[l]"] = [
                (tensors[f"blocks.{l + 1}.hook_resid_pre"], tensors[f"blocks.{l}.hook_resid_post"]) for l in range(n_layer - 1)
            ]
        if "hook_embed" in tensors and "hook_pos_embed" in tensors:
            identities["resid_pre[0] == embed + pos_embed"] = (
                tensors["hook_embed"] + tensors["hook_pos_embed"], tensors["blocks.0.hook_resid_pre"]
            )
        return identities

    def stream_inputs(self, dims: Dims, layer: int) -> list[str]:
        """Capture names, besides blocks.{layer}.hook_resid_pre, through which the probe still
        reaches block `layer` and the later ones: with all of them and resid_pre replaced by another
        run's values, the rest of the forward is that run's (activation patching checks it).
        Default: none, a plain residual stream carries everything."""
        return []

    def encode_chat(self, loaded: LoadedModel, user_text: str) -> Encoded:
        """A one-turn chat rendered as the family's conversation tokens, ready for the reply."""
        from visualizer.errors import VisualizerError

        raise VisualizerError(f"--chat: the {loaded.family} family has no chat format")

    def kv_head_index(self, dims: Dims) -> torch.Tensor:
        """[n_head] long: the key/value head each query head reads."""
        group = dims.n_head // dims.n_kv_head
        return torch.arange(dims.n_head) // group

    # --- what the page says about the architecture (recorded in trace.json by `presentation`) ---

    def norm_kind(self, loaded: LoadedModel) -> str:
        """The kind of every norm of the model, one of NORM_KINDS (figure captions name it)."""
        raise NotImplementedError

    def mlp_kind(self, loaded: LoadedModel) -> MLPKind:
        """What the MLP computes (figure captions and the page's MLP text say it)."""
        raise NotImplementedError

    def stream_notes(self, loaded: LoadedModel) -> list[StreamNote]:
        """The model's extra residual-stream operations, one line each. Default: none."""
        return []

    def card_rows(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        """The page's model card, in order: (label, text) rows, dimensions included (`dims_rows`)."""
        raise NotImplementedError

    def training_step(self, loaded: LoadedModel) -> int | None:
        """How far the checkpoint was trained (iterations or steps), for the list of reports; None: unknown."""
        return None

    # --- generation: one step of the model's own forward with a key/value cache ---

    def start_cache(self, loaded: LoadedModel) -> "KVCache":
        """An empty key/value cache for up to n_ctx positions (one batch row), on the model's device."""
        dims = loaded.dims
        shape = (dims.n_kv_head, dims.n_ctx, dims.d_head)
        dtype = next(loaded.model.parameters()).dtype
        return KVCache(
            keys=[torch.zeros(shape, dtype=dtype, device=loaded.device) for _ in range(dims.n_layer)],
            values=[torch.zeros(shape, dtype=dtype, device=loaded.device) for _ in range(dims.n_layer)],
        )

    def step(self, loaded: LoadedModel, cache: "KVCache", new_ids: torch.Tensor) -> "StepOutput":
        """Run `new_ids` [new] at positions cache.length.. through the model's own modules, reading and
        extending `cache`. Must compute what the full forward over the cached prefix + new_ids computes
        at the new positions (tests check it against `capture`). The caller never lets the cache pass
        n_ctx: a context that would is cropped and prefilled again (nanoGPT's `generate` crops)."""
        raise NotImplementedError


def dims_rows(dims: Dims, context: str) -> list[tuple[str, str]]:
    """The card's rows for the dimensions; `context` names the family's setting for n_ctx."""
    return [
        ("layers · heads · d_model · d_head · d_mlp",
         f"{dims.n_layer} · {dims.n_head} · {dims.d_model} · {dims.d_head} · {dims.d_mlp}"),
        (f"context ({context})", str(dims.n_ctx)),
    ]


def checkpoint_text(file: str | None, sha256: str | None = None) -> str:
    """A card's checkpoint row: the file name and the start of its SHA-256."""
    return f"{file}" + (f" (sha256 {sha256[:16]}…)" if sha256 else "")


def presentation(loaded: LoadedModel) -> dict:
    """What the adapter declares for the page, JSON-ready (trace.json's `presentation`): norm kind,
    MLP kind, stream notes, card rows and training step. The figures and the page read only this,
    never the card's keys."""
    adapter = loaded.adapter
    norm, mlp = adapter.norm_kind(loaded), adapter.mlp_kind(loaded)
    if norm not in NORM_KINDS:
        raise ValueError(f"{type(adapter).__name__}.norm_kind: {norm!r} is not one of {NORM_KINDS}")
    notes = adapter.stream_notes(loaded)
    for note in notes:
        if note.stage not in STAGES:
            raise ValueError(f"{type(adapter).__name__}.stream_notes: stage {note.stage!r} is not one of {STAGES}")
    return {
        "norm": norm,
        "mlp": {"activation": mlp.activation, "gated": mlp.gated},
        "stream_notes": [{"stage": n.stage, "heading": n.heading, "tensors": list(n.tensors), "text": n.text} for n in notes],
        "card_rows": [[str(label), str(text)] for label, text in adapter.card_rows(loaded)],
        "training_step": adapter.training_step(loaded),
    }


@dataclass
class KVCache:
    """Keys and values of every layer for the positions run so far (family-blind container)."""

    keys: list[torch.Tensor]  # per layer [n_kv_head, n_ctx, d_head]; the first `length` positions are valid
    values: list[torch.Tensor]  # per layer [n_kv_head, n_ctx, d_head]
    length: int = 0  # positions in the cache


@dataclass
class StepOutput:
    """What one cached step computed for its `new` positions, over all `T` = cache.length keys.

    All tensors stay on the model's device; `values` are views of the cache (valid until the next step).
    """

    logits: torch.Tensor  # [new, vocab]
    pattern: torch.Tensor  # [n_layer, n_head, new, T]: softmax(q k^T * scale), masked; derived once
    z: torch.Tensor  # [n_layer, new, n_head, d_head]: the attention kernel's output (what c_proj reads)
    values: list[torch.Tensor]  # per layer [T, n_kv_head, d_head]
    resid_post: torch.Tensor  # [n_layer, new, d_model]: each block's output (the logit lens reads it)
    # [new, d_model]: the residual entering the final norm when it is not the last block's output
    # (nanochat's backout subtracts a mid-layer residual); None: resid_post[-1]
    resid_final: torch.Tensor | None = None
