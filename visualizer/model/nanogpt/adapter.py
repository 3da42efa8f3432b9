"""nanoGPT: read `ckpt.pt` (+ `meta.pkl`) as nanoGPT's `train.py` writes them, and say where each
activation lives in our mirror of its module tree (`nanogpt_model.py`).

Handles: the `_orig_mod.` prefix of compiled runs, bias on or off, any shape, tied embeddings,
optimizer state present or not, float32/bfloat16/float16 weights (analysis runs in float32), the
causal-mask buffer older PyTorch versions saved. Refuses, naming the key: a field of the wrong type
(`model_args`, `iter_num`, `best_val_loss`, `config`), sizes in `model_args` that the stored
tensors do not have (checked before the model is allocated, so a hostile `n_layer` costs nothing),
a key we do not know, a missing key, a shape that does not fit `model_args`.

What this module does not do: execute or import anything from the checkpoint's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.nn import functional as F

import visualizer.capture.attention as attention
from visualizer.errors import VisualizerError
from visualizer.model.checkpoint import (
    StateDict, check_layer_count, check_missing, check_sizes, file_sha256, torch_load,
)
from visualizer.model.safe_pickle import load_restricted
from visualizer.model.tokenizer import Tokenizer, from_meta, gpt2_bpe_offline
from visualizer.model.base import (
    Adapter,
    Dims,
    HookSpec,
    KVCache,
    LoadedModel,
    MLPKind,
    StepOutput,
    checkpoint_text,
    dims_rows,
    slug,
)
from visualizer.model.block_hooks import block_specs
from visualizer.model.decompose import add_attention_pieces, frozen_layer_norm
from visualizer.model.nanogpt.model import GPT, GPTConfig

REQUIRED_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")
WTE, WPE, LM_HEAD = "transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def model_name(checkpoint: Path) -> str:
    """A short folder name: the checkpoint's folder, plus its stem when it is not ckpt.pt."""
    parent = checkpoint.resolve().parent.name
    stem = checkpoint.stem
    return slug(parent if stem == "ckpt" else f"{parent}-{stem}")


def read_checkpoint(path: Path, device: torch.device) -> dict:
    if not path.exists():
        raise VisualizerError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise VisualizerError(f"{path}: checkpoint is not a file")
    ckpt = torch_load(path, device)
    if not isinstance(ckpt, dict):
        raise VisualizerError(f"{path}: not a nanoGPT checkpoint (a {type(ckpt).__name__}, expected a dict)")
    for key in ("model", "model_args"):
        if key not in ckpt:
            raise VisualizerError(f"{path}: not a nanoGPT checkpoint: missing key '{key}'")
    return ckpt


def read_config(path: Path, model_args: object) -> GPTConfig:
    if not isinstance(model_args, dict):
        raise VisualizerError(f"{path}: key 'model_args' is not a dict")
    for key in REQUIRED_ARGS:
        value = model_args.get(key)
        if not is_int(value) or value <= 0:
            raise VisualizerError(f"{path}: model_args['{key}'] must be a positive integer, found {value!r}")
    if model_args["n_embd"] % model_args["n_head"]:
        raise VisualizerError(
            f"{path}: model_args n_embd={model_args['n_embd']} is not a multiple of n_head={model_args['n_head']}"
        )
    bias = model_args.get("bias", True)
    if not isinstance(bias, bool):
        raise VisualizerError(f"{path}: model_args['bias'] must be True or False, found {bias!r}")
    dropout = model_args.get("dropout", 0.0)
    dropout = 0.0 if dropout is None else dropout
    if not is_number(dropout) or not 0.0 <= dropout <= 1.0:
        raise VisualizerError(f"{path}: model_args['dropout'] must be a number from 0 to 1, found {dropout!r}")
    return GPTConfig(
        block_size=model_args["block_size"],
        vocab_size=model_args["vocab_size"],
        n_layer=model_args["n_layer"],
        n_head=model_args["n_head"],
        n_embd=model_args["n_embd"],
        dropout=float(dropout),
        bias=bias,
    )


def check_fields(path: Path, ckpt: dict) -> None:
    """The entries train.py writes besides the weights, each of its type (absent or None is fine):
    iter_num a non-negative integer, best_val_loss a number (or a one-element tensor, as train.py
    stores it), config a dict whose 'dataset' is a string."""
    iters = ckpt.get("iter_num")
    if iters is not None and (not is_int(iters) or iters < 0):
        raise VisualizerError(f"{path}: 'iter_num' must be a non-negative integer, found {iters!r}")
    best = ckpt.get("best_val_loss")
    if isinstance(best, torch.Tensor):
        if best.numel() != 1 or not (best.is_floating_point() or best.dtype in (torch.int32, torch.int64)):
            raise VisualizerError(
                f"{path}: 'best_val_loss' must be a number, found a {tuple(best.shape)} {best.dtype} tensor")
    elif best is not None and not is_number(best):
        raise VisualizerError(f"{path}: 'best_val_loss' must be a number, found {best!r}"[:300])
    config = ckpt.get("config")
    if config is not None and not isinstance(config, dict):
        raise VisualizerError(f"{path}: 'config' must be a dict (train.py's settings), found {type(config).__name__}")
    dataset = (config or {}).get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise VisualizerError(f"{path}: config['dataset'] must be a string, found {dataset!r}"[:300])


def read_state(path: Path, state: object) -> StateDict:
    """The state dict, `_orig_mod.` prefixes removed, the causal-mask buffers PyTorch < 2 runs saved
    dropped (we always mask causally)."""
    if not isinstance(state, dict):
        raise VisualizerError(f"{path}: key 'model' is not a state dict")
    read = StateDict(path, state)
    read.drop([k for k, t in read.tensors.items() if re.fullmatch(r"transformer\.h\.\d+\.attn\.bias", k) and t.dim() == 4])
    return read


def check_declared(read: StateDict, config: GPTConfig) -> None:
    """model_args' sizes are the stored tensors' (wte [vocab_size, n_embd], wpe [block_size, n_embd],
    blocks h.0 .. h.{n_layer-1}), checked before a model of those sizes is allocated."""
    check_sizes(read, "model_args", [
        ("vocab_size", config.vocab_size, (WTE, LM_HEAD), 0),
        ("n_embd", config.n_embd, (WTE, LM_HEAD), 1),
        ("block_size", config.block_size, (WPE,), 0),
    ])
    check_layer_count(read, "model_args", "n_layer", config.n_layer, "transformer.h.")


def clean_state_dict(read: StateDict, model: GPT) -> tuple[dict, dict]:
    """Check every key and shape against the model, cast to float32, fill in the tied matrix."""
    path = read.path
    expected = model.state_dict()
    read.check_known(expected, "not nanoGPT's, or model_args disagree", "model_args imply")
    first = next(iter(read.tensors.values()), None)
    facts = {"compiled_prefix": read.compiled, "weights_dtype": str(first.dtype).replace("torch.", "") if first is not None else None}
    cleaned = read.float32()
    tied = (WTE, LM_HEAD)
    if tied[0] in cleaned and tied[1] in cleaned:
        check_tied(path, cleaned[tied[0]], cleaned[tied[1]])
    for a, b in (tied, tied[::-1]):
        if a in cleaned and b not in cleaned:
            cleaned[b] = cleaned[a]
    check_missing(path, cleaned, expected)
    return cleaned, facts


def check_tied(path: Path, wte: torch.Tensor, lm_head: torch.Tensor) -> None:
    """nanoGPT's lm_head.weight is wte.weight (one matrix saved under both keys): the first entry
    where they differ is named, and said to be a NaN or an infinity when it is one (NaN equals
    NaN here: the same matrix with a NaN in it is still one matrix)."""
    same = (wte == lm_head) | (wte.isnan() & lm_head.isnan())  # [vocab, n_embd]
    if bool(same.all()):
        return
    differ = ~same
    row, col = (int(i) for i in differ.nonzero()[0])
    a, b = float(wte[row, col]), float(lm_head[row, col])
    count = int(differ.sum())
    broken = int((differ & ~(torch.isfinite(wte) & torch.isfinite(lm_head))).sum())
    if broken == count:
        entries = f"{count} entr{'y' if count == 1 else 'ies'}"
        what = f"the copies differ only where one holds a NaN or an infinity ({entries})"
    else:
        what = f"{count} entries differ" + (f", {broken} of them NaN or infinite in one copy" if broken else "")
    raise VisualizerError(
        f"{path}: 'lm_head.weight' differs from 'transformer.wte.weight' (nanoGPT ties them: one matrix): "
        f"at [{row}, {col}] lm_head.weight holds {b:.6g}, transformer.wte.weight {a:.6g}; {what}")


def find_meta(checkpoint: Path, ckpt: dict) -> Path | None:
    """meta.pkl beside the checkpoint, then data/<dataset>/meta.pkl as nanoGPT lays it out."""
    beside = checkpoint.parent / "meta.pkl"
    if beside.is_file():
        return beside
    config = ckpt.get("config")
    dataset = config.get("dataset") if isinstance(config, dict) else None
    if isinstance(dataset, str) and dataset and "/" not in dataset and dataset not in ("..", "."):
        for root in (Path.cwd(), *checkpoint.resolve().parents):
            candidate = root / "data" / dataset / "meta.pkl"
            if candidate.is_file():
                return candidate
    return None


def read_tokenizer(meta_path: Path | None, vocab_size: int, given: bool = True) -> Tokenizer:
    """The vocabulary in `meta_path` (GPT-2's BPE when None), checked against the checkpoint's
    vocab_size. Every message names the file it is about; `given` says whether the user named it
    (--meta) or it was found (beside the checkpoint, in data/<dataset>/), and only then is --meta
    mentioned."""
    if meta_path is None:
        tokenizer = gpt2_bpe_offline()
        source = "GPT-2's BPE (no meta.pkl found)"
    else:
        source = str(meta_path) if given else f"{meta_path} (the meta.pkl found for this checkpoint)"
        if not meta_path.is_file():
            raise VisualizerError(f"{meta_path}: meta.pkl not found")
        meta = load_restricted(meta_path)
        tokenizer = from_meta(meta, str(meta_path))
        declared = meta.get("vocab_size", tokenizer.vocab_size)
        if not is_int(declared):
            raise VisualizerError(f"{source}: 'vocab_size' must be an integer, found {declared!r}"[:300])
        if declared != vocab_size:
            raise VisualizerError(
                f"{source}: vocab_size {declared} does not match the checkpoint's vocab_size {vocab_size}"
            )
        too_big = [i for i in tokenizer.itos if not 0 <= i < vocab_size]
        if too_big:
            raise VisualizerError(f"{source}: token id {too_big[0]} is outside the checkpoint's vocab of {vocab_size}")
    if tokenizer.vocab_size > vocab_size:
        raise VisualizerError(
            f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the checkpoint's vocab_size is {vocab_size}"
        )
    return tokenizer


def load(checkpoint: Path, meta: Path | None, device: torch.device) -> LoadedModel:
    checkpoint = Path(checkpoint)
    ckpt = read_checkpoint(checkpoint, device)
    config = read_config(checkpoint, ckpt["model_args"])
    check_fields(checkpoint, ckpt)
    read = read_state(checkpoint, ckpt["model"])
    check_declared(read, config)  # before GPT(config) allocates anything
    model = GPT(config)
    state, facts = clean_state_dict(read, model)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    meta_path = Path(meta) if meta else find_meta(checkpoint, ckpt)
    tokenizer = read_tokenizer(meta_path, config.vocab_size, given=bool(meta))
    best = ckpt.get("best_val_loss")
    best = float(best.item() if isinstance(best, torch.Tensor) else best) if best is not None else None
    train_config = ckpt.get("config") or {}
    dims = Dims(
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_kv_head=config.n_head,
        d_head=config.n_embd // config.n_head,
        d_model=config.n_embd,
        d_mlp=4 * config.n_embd,
        n_ctx=config.block_size,
        vocab_size=config.vocab_size,
    )
    card = {
        "family": "nanogpt",
        "checkpoint_file": checkpoint.name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "meta_file": meta_path.name if meta_path else None,
        "model_args": {k: ckpt["model_args"][k] for k in sorted(ckpt["model_args"]) if isinstance(ckpt["model_args"][k], (int, float, bool, str))},
        "iter_num": ckpt.get("iter_num"),
        "best_val_loss": best,
        "dataset": train_config.get("dataset"),
        "n_params": model.num_params(),
        "weights_dtype": facts["weights_dtype"],
        "compiled_prefix": facts["compiled_prefix"],
        "has_optimizer_state": "optimizer" in ckpt,
        "tokenizer": tokenizer.describe(),
        "positions": "learned",
    }
    return LoadedModel(
        family="nanogpt",
        name=model_name(checkpoint),
        model=model,
        tokenizer=tokenizer,
        dims=dims,
        card=card,
        device=device,
        adapter=NanoGPTAdapter(),
    )


class NanoGPTAdapter(Adapter):
    """Where each TransformerLens-named activation lives in nanoGPT's module tree."""

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        nh, hs, C = dims.n_head, dims.d_head, dims.d_model

        def heads(t):  # [T, C] -> [T, n_head, d_head]
            return (t.view(t.shape[0], nh, hs),)

        def qkv(t):  # [T, 3C] -> q, k, v each [T, n_head, d_head]
            return tuple(part.reshape(t.shape[0], nh, hs) for part in t.split(C, dim=-1))

        specs = [
            HookSpec("transformer.wte", "output", ("hook_embed",)),
            HookSpec("transformer.wpe", "output", ("hook_pos_embed",), batched=False),
        ]
        for layer in range(dims.n_layer):
            m, b = f"transformer.h.{layer}", f"blocks.{layer}"
            names = (f"{b}.attn.hook_q", f"{b}.attn.hook_k", f"{b}.attn.hook_v")
            specs += block_specs(layer, [HookSpec(f"{m}.attn.c_attn", "output", names, qkv)], heads)
        specs += [
            HookSpec("transformer.ln_f", "output", ("ln_final.hook_normalized",)),
            HookSpec("lm_head", "output", ("logits",)),
        ]
        return specs

    def plain_forward(self, loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
        logits, _ = loaded.model(ids[None])
        return logits[0]

    def norm_kind(self, loaded: LoadedModel) -> str:
        return "LayerNorm"

    def mlp_kind(self, loaded: LoadedModel) -> MLPKind:
        return MLPKind("GELU")

    def card_rows(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        card, dims = loaded.card, loaded.dims
        bias = card["model_args"].get("bias", True)
        vocabulary = card["tokenizer"] + (f" from {card['meta_file']}" if card.get("meta_file") else "")
        weights = f"{card['weights_dtype']} (analysed in float32)" + ("; compiled (_orig_mod. keys)" if card["compiled_prefix"] else "")
        rows = [
            ("family", "nanoGPT"),
            ("checkpoint", checkpoint_text(card["checkpoint_file"], card.get("checkpoint_sha256"))),
            ("positions", "learned position embedding (wpe)"),
            ("norms", "LayerNorm " + ("with" if bias else "without") + " bias, eps 1e-5: before attention and MLP, before the head"),
            ("MLP", f"GELU, {dims.d_mlp} wide"),
            ("parameters", f"{card['n_params']:,}"),
            *dims_rows(dims, "block_size"),
            ("vocabulary", vocabulary),
            *[(f"model_args.{k}", str(v)) for k, v in card["model_args"].items()],
        ]
        iters, best = card.get("iter_num"), card.get("best_val_loss")
        rows += [("iter_num", "–" if iters is None else f"{iters:,}"), ("best_val_loss", "–" if best is None else f"{best:.4g}"),
                 ("dataset", card.get("dataset") or "–")]
        return rows + [("weights stored as", weights)]

    def training_step(self, loaded: LoadedModel) -> int | None:
        return loaded.card.get("iter_num")

    def forward_from_embeddings(self, loaded: LoadedModel, ids: torch.Tensor, tok_emb: torch.Tensor,
                                positions: list[int] | None = None) -> torch.Tensor:
        return loaded.model.forward_from_embeddings(tok_emb, positions)  # reads nothing else from the ids

    @torch.no_grad()
    def logits_from_residual(self, loaded: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
        m = loaded.model
        return m.lm_head(m.transformer.ln_f(resid.to(loaded.device))).to("cpu", torch.float32)

    def embedding_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return loaded.model.transformer.wte.weight.detach().to("cpu", torch.float32)

    def unembed_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return loaded.model.lm_head.weight.detach().to("cpu", torch.float32)

    @torch.no_grad()
    def residual_components(self, loaded: LoadedModel, cache_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dims = loaded.dims
        parts = {"embed": cache_tensors["hook_embed"], "pos_embed": cache_tensors["hook_pos_embed"]}
        for layer in range(dims.n_layer):
            c_proj = loaded.model.transformer.h[layer].attn.c_proj  # nn.Linear: weight [d_model, d_model]
            w_o = c_proj.weight.detach().to("cpu", torch.float32).T.reshape(dims.n_head, dims.d_head, dims.d_model)
            bias = c_proj.bias.detach().to("cpu", torch.float32) if c_proj.bias is not None else None
            add_attention_pieces(parts, layer, cache_tensors[f"blocks.{layer}.attn.hook_z"], w_o, bias)
            parts[f"L{layer}.mlp"] = cache_tensors[f"blocks.{layer}.hook_mlp_out"]
        return parts

    def frozen_final_norm(self, loaded: LoadedModel, x: torch.Tensor):
        ln_f = loaded.model.transformer.ln_f
        weight = ln_f.weight.detach().to("cpu", torch.float32)
        bias = ln_f.bias.detach().to("cpu", torch.float32) if ln_f.bias is not None else None
        return frozen_layer_norm(x, weight, bias, 1e-5)  # LayerNorm's own eps

    @torch.inference_mode()
    def step(self, loaded: LoadedModel, cache: KVCache, new_ids: torch.Tensor) -> StepOutput:
        """nanoGPT's forward for the new positions, block by block through our module tree's own
        submodules (ln_1, c_attn, c_proj, ln_2, mlp, ln_f, lm_head), with keys and values cached."""
        m, dims = loaded.model, loaded.dims
        nh, hs, C = dims.n_head, dims.d_head, dims.d_model
        start, new = cache.length, int(new_ids.shape[0])
        T = start + new
        assert T <= dims.n_ctx, f"cache of {start} + {new} positions passes block_size {dims.n_ctx}"
        ids = new_ids.to(loaded.device)[None]  # [1, new]
        pos = torch.arange(start, T, dtype=torch.long, device=loaded.device)  # [new]
        x = m.transformer.wte(ids) + m.transformer.wpe(pos)  # [1, new, C]
        # query at position start+i sees keys 0..start+i; one new query sees every cached key
        causal = self.attention_mask(0, T, loaded.device) if new > 1 else None  # [T, T]
        mask = causal[start:T] if start > 0 and causal is not None else None  # a prefill from 0 is the full forward's is_causal call
        patterns, zs, values, resids = [], [], [], []
        for layer, block in enumerate(m.transformer.h):
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)  # each [1, new, C]
            q = q.view(1, new, nh, hs).transpose(1, 2)  # [1, nh, new, hs]
            cache.keys[layer][:, start:T] = k.view(new, nh, hs).transpose(0, 1)
            cache.values[layer][:, start:T] = v.view(new, nh, hs).transpose(0, 1)
            keys = cache.keys[layer][None, :, :T]  # [1, nh, T, hs]
            vals = cache.values[layer][None, :, :T]  # [1, nh, T, hs]
            y = F.scaled_dot_product_attention(
                q, keys, vals, attn_mask=mask, dropout_p=0.0, is_causal=start == 0 and new > 1
            )  # [1, nh, new, hs]: the same kernel call as the full forward
            _, pattern = attention.derive(q[0].transpose(0, 1), keys[0].transpose(0, 1), self.attention_scale(dims, layer),
                                          causal, start)  # [nh, new, T]
            patterns.append(pattern)
            zs.append(y[0].transpose(0, 1))  # [new, nh, hs]
            values.append(vals[0].transpose(0, 1))  # [T, nh, hs]
            x = x + block.attn.c_proj(y.transpose(1, 2).reshape(1, new, C))  # resid_mid
            x = x + block.mlp(block.ln_2(x))  # resid_post
            resids.append(x[0])
        cache.length = T
        logits = m.lm_head(m.transformer.ln_f(x))[0]  # [new, vocab]
        return StepOutput(
            logits=logits,
            pattern=torch.stack(patterns),  # [n_layer, nh, new, T]
            z=torch.stack(zs),  # [n_layer, new, nh, hs]
            values=values,
            resid_post=torch.stack(resids),  # [n_layer, new, C]
        )
