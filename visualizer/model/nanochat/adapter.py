"""nanochat: read `model_NNNNNN.pt` + `meta_NNNNNN.json` as nanochat's checkpoint_manager writes them,
tell its two architectures apart, and say where each activation lives in our mirror of its module
tree (`nanochat_model.py`).

Layout: `<base>/<kind>_checkpoints/<tag>/model_NNNNNN.pt` with `meta_NNNNNN.json` (`model_config`)
beside it and the tokenizer in `<base>/tokenizer/`. `--checkpoint` may name the .pt file, the tag
folder, the `<kind>_checkpoints` folder or the base folder; the newest step is read unless a step
is given; the deepest `d<N>` tag is taken, as nanochat does.

Architectures, from the state-dict keys: any of `resid_lambdas`, `x0_lambdas`, `smear_*`,
`backout_lambda`, `value_embeds.*`, `*.ve_gate.*` means "current" (then all of them must be there),
none means "original". A key we do not know, a missing key or a shape that does not fit
`model_config` is a VisualizerError naming it. Weights are analysed in float32 (the original's
bfloat16 embedding included); the `_orig_mod.` prefix of compiled runs is removed.

Extra activations beyond the shared names (all [pos, ...], batch dropped):
`ln_embed.hook_normalized` (the normalised embedding), `hook_smear_gate` [pos] and `hook_smear`
(current: what smear adds, 0 at position 0), `hook_x0` (the stream entering block 0, mixed back in
by the x0 lambdas), `blocks.{l}.attn.hook_ve` [pos, kv_head, d_head] and `hook_ve_gate`
[pos, kv_head] (value-embedding layers), `hook_resid_final` (current: after backout, the input of
the final norm). q, k and v are what enters the attention call: after rotary, QK norm and the 1.2
scale, v after the value embedding, k and v with n_kv_head heads.

What this module does not do: run or import anything from the checkpoint's folder, read
optimizer shards, or reproduce nanochat versions between the two architectures (commits
aa530cd..a14c399 have lambdas but no smear; they are refused by name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from visualizer.errors import VisualizerError
from visualizer.model.tokenizer import Encoded
import visualizer.model.nanochat.step as nanochat_step
from visualizer.model.base import (
    Adapter,
    Dims,
    HookSpec,
    KVCache,
    LoadedModel,
    MLPKind,
    StepOutput,
    StreamNote,
    checkpoint_text,
    dims_rows,
    slug,
)
from visualizer.model.block_hooks import block_specs
from visualizer.model.checkpoint import (
    MAX_CONTEXT, StateDict, check_layer_count, check_missing, check_sizes, file_sha256, torch_load,
)
from visualizer.model.nanochat.model import (
    GPT,
    SMEAR_GATE_CHANNELS,
    SOFTCAP,
    NanochatConfig,
    attention_allowed,
    PAD_VOCAB_TO,
    padded_vocab,
    rms_norm,
)
from visualizer.model.nanochat.tokenizer import load_tokenizer

MODEL_FILE = re.compile(r"model_(\d+)\.pt")
CONFIG_INTS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")
CONFIG_KEYS = CONFIG_INTS + ("window_pattern",)
CURRENT_SCALARS = ("resid_lambdas", "x0_lambdas", "smear_gate.weight", "smear_lambda", "backout_lambda")
TOO_OLD_HINT = (
    " (a nanochat version with lambdas but before smear and backout, commits aa530cd..a14c399, "
    "which visualizer does not reproduce)"
)


# --- finding the files ---------------------------------------------------------------------------


def steps_in(folder: Path) -> dict[int, Path]:
    """step -> model_NNNNNN.pt in `folder`."""
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = MODEL_FILE.fullmatch(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return found


def choose_tag(folder: Path) -> Path:
    """Inside a <kind>_checkpoints folder: the tag folder nanochat would take (deepest d<N>)."""
    tags = sorted(p for p in folder.iterdir() if p.is_dir() and steps_in(p))
    if not tags:
        raise VisualizerError(f"{folder}: no folder with model_NNNNNN.pt files in it")
    depths = [(int(m.group(1)), p) for p in tags if (m := re.match(r"d(\d+)", p.name))]
    if depths:
        return max(depths)[1]
    if len(tags) == 1:
        return tags[0]
    raise VisualizerError(f"{folder}: several checkpoint folders ({', '.join(p.name for p in tags)}): pass one of them")


def checkpoint_folder(path: Path) -> Path:
    """The folder holding model_*.pt for a tag folder, a <kind>_checkpoints folder or a base folder."""
    if steps_in(path):
        return path
    kinds = sorted(p for p in path.iterdir() if p.is_dir() and p.name.endswith("_checkpoints"))
    if len(kinds) > 1:
        raise VisualizerError(f"{path}: holds {', '.join(p.name for p in kinds)}: pass one of them")
    return choose_tag(kinds[0] if kinds else path)


def looks_like_nanochat(path: Path) -> str | None:
    """Why `path` is a nanochat checkpoint (for the family detection message), or None."""
    path = Path(path)
    if path.is_file():
        match = MODEL_FILE.fullmatch(path.name)
        if match and path.with_name(f"meta_{match.group(1)}.json").is_file():
            return f"{path.name} with meta_{match.group(1)}.json beside it"
        return None
    if not path.is_dir():
        return None
    if steps_in(path):
        return "a folder of model_NNNNNN.pt files"
    for child in sorted(path.iterdir()):  # a base folder, or a <kind>_checkpoints folder of tags
        if child.is_dir() and (child.name.endswith("_checkpoints") or steps_in(child)):
            return f"a nanochat folder ({child.name}/)"
    return None


def locate(checkpoint: Path, step: int | None) -> tuple[Path, Path]:
    """(model_NNNNNN.pt, meta_NNNNNN.json) for a file or folder and an optional step."""
    if not checkpoint.exists():
        raise VisualizerError(f"{checkpoint}: checkpoint not found")
    if checkpoint.is_file():
        match = MODEL_FILE.fullmatch(checkpoint.name)
        if not match:
            raise VisualizerError(f"{checkpoint}: not a nanochat checkpoint (expected a file named model_NNNNNN.pt)")
        if step is not None and int(match.group(1)) != step:
            raise VisualizerError(f"--step {step} does not match {checkpoint.name}: pass the folder, or no --step")
        model_file = checkpoint
    else:
        folder = checkpoint_folder(checkpoint)
        found = steps_in(folder)
        if step is None:
            model_file = found[max(found)]
        elif step in found:
            model_file = found[step]
        else:
            raise VisualizerError(f"--step {step}: {folder} has steps {', '.join(str(s) for s in sorted(found))}")
    digits = MODEL_FILE.fullmatch(model_file.name).group(1)
    meta_file = model_file.with_name(f"meta_{digits}.json")
    if not meta_file.is_file():
        raise VisualizerError(f"{meta_file}: not found (nanochat writes it beside {model_file.name})")
    return model_file, meta_file


# --- reading them --------------------------------------------------------------------------------


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # unreadable, not UTF-8, not JSON, nested too deep
        raise VisualizerError(f"{path}: not readable JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict):
        raise VisualizerError(f"{path}: no 'model_config' object")
    config = meta["model_config"]
    for key in config:
        if key not in CONFIG_KEYS:
            raise VisualizerError(f"{path}: unknown model_config key '{key}' (nanochat's are {', '.join(CONFIG_KEYS)})")
    for key in CONFIG_INTS:
        value = config.get(key)
        if type(value) is not int or value <= 0:
            raise VisualizerError(f"{path}: model_config['{key}'] must be a positive integer, found {value!r}")
    pattern = config.get("window_pattern")
    if pattern is not None and (not isinstance(pattern, str) or not pattern or set(pattern.upper()) - set("SL")):
        raise VisualizerError(f"{path}: model_config['window_pattern'] must be letters S and L, found {pattern!r}")
    n_embd, n_head, n_kv = config["n_embd"], config["n_head"], config["n_kv_head"]
    if n_embd % n_head or n_head % n_kv or (n_embd // n_head) % 2:
        raise VisualizerError(
            f"{path}: model_config n_embd={n_embd}, n_head={n_head}, n_kv_head={n_kv}: n_embd must divide into "
            "n_head heads of even size, and n_head into n_kv_head groups"
        )
    return meta


def read_state(path: Path, device: torch.device) -> StateDict:
    """The state dict with `_orig_mod.` prefixes removed (`.compiled` says whether there were any)."""
    state = torch_load(path, device)
    if not isinstance(state, dict):
        raise VisualizerError(f"{path}: not a nanochat state dict (a {type(state).__name__})")
    return StateDict(path, state)


def is_current_key(key: str) -> bool:
    return key in CURRENT_SCALARS or key.startswith("value_embeds.") or ".attn.ve_gate." in key


def architecture_of(state: dict) -> str:
    return "current" if any(is_current_key(k) for k in state) else "original"


def build_config(path: Path, model_config: dict, architecture: str, state: dict) -> NanochatConfig:
    vocab = model_config["vocab_size"]
    if architecture == "original" and "window_pattern" in model_config:
        raise VisualizerError(
            f"{path}: model_config has 'window_pattern' but the weights have none of the current architecture's keys ("
            + ", ".join(CURRENT_SCALARS) + ")"
        )
    if architecture == "current" and model_config["n_embd"] < SMEAR_GATE_CHANNELS:
        raise VisualizerError(
            f"{path}: model_config n_embd={model_config['n_embd']} is narrower than the {SMEAR_GATE_CHANNELS} channels "
            "nanochat's smear gate reads"
        )
    rows = vocab
    wte = state.get("transformer.wte.weight")
    if architecture == "current":
        rows = padded_vocab(vocab)
    elif isinstance(wte, torch.Tensor) and wte.dim() == 2 and wte.shape[0] == padded_vocab(vocab):
        rows = padded_vocab(vocab)  # original math, vocabulary padding from f1bf69d on
    return NanochatConfig(
        **{k: model_config[k] for k in CONFIG_INTS},
        architecture=architecture,
        window_pattern=model_config.get("window_pattern"),
        padded_vocab_size=rows,
    )


def check_declared(meta_file: Path, state: StateDict, config: NanochatConfig) -> None:
    """model_config's sizes against the stored tensors (wte [rows, n_embd], c_k [n_kv_head * d_head,
    n_embd], blocks h.0 .. h.{n_layer-1}) and sequence_len within MAX_CONTEXT (the rotary tables
    are that long), before a model of those sizes is allocated."""
    if config.sequence_len > MAX_CONTEXT:
        raise VisualizerError(f"{meta_file}: model_config['sequence_len'] is {config.sequence_len}, more than the "
                              f"{MAX_CONTEXT:,} positions visualizer allocates rotary tables for")
    padded = f"{config.vocab_size} ({config.padded_vocab_size} rows, padded to {PAD_VOCAB_TO})" \
        if config.padded_vocab_size != config.vocab_size else str(config.vocab_size)
    check_sizes(state, "model_config", [
        ("n_embd", config.n_embd, ("transformer.wte.weight", "lm_head.weight"), 1),
        ("vocab_size", config.padded_vocab_size, ("transformer.wte.weight", "lm_head.weight"), 0),
    ], source=meta_file, shown={"vocab_size": padded})
    check_layer_count(state, "model_config", "n_layer", config.n_layer, "transformer.h.", source=meta_file)
    key_rows = config.n_kv_head * config.head_dim
    check_sizes(state, "model_config", [("n_kv_head", key_rows, ("transformer.h.0.attn.c_k.weight",), 0)], source=meta_file,
                shown={"n_kv_head": f"{config.n_kv_head} (with n_head {config.n_head}: {key_rows} key rows)"})


def check_state(path: Path, state: StateDict, model: GPT) -> tuple[dict, dict[str, int]]:
    """Every key known and present, shapes as the config implies, floats -> float32. dtype counts."""
    expected = model.state_dict()
    state.check_known(expected, f"not nanochat's {model.config.architecture} architecture", "model_config implies")
    lacks_scalars = any(k in expected and k not in state.tensors for k in CURRENT_SCALARS)
    hint = TOO_OLD_HINT if model.config.current and lacks_scalars else ""
    check_missing(path, state.tensors, expected, hint)
    return state.float32(), state.dtype_counts()


# --- what the page says about the model ----------------------------------------------------------


def stream_coefficients(model: GPT) -> tuple[float, list[float]]:
    """How much of x0 and of each block's output (attn_out + mlp_out) reaches the final norm.

    resid_pre[l] = r_l * resid_post[l-1] + a_l * x0 (resid_post[-1] = x0), and the final residual
    is resid_post[L-1] - backout * resid_post[L//2]: every earlier term is scaled by the later r's.
    """
    cfg = model.config
    if not cfg.current:
        return 1.0, [1.0] * cfg.n_layer
    r = model.resid_lambdas.detach().double().tolist()
    a = model.x0_lambdas.detach().double().tolist()
    x0_coef, out_coefs, at_backout = 1.0, [], None
    for layer in range(cfg.n_layer):
        x0_coef = r[layer] * x0_coef + a[layer]
        out_coefs = [c * r[layer] for c in out_coefs] + [1.0]
        if layer == cfg.backout_layer:
            at_backout = (x0_coef, list(out_coefs))
    beta = float(model.backout_lambda.detach().double())
    x0_coef -= beta * at_backout[0]
    out_coefs = [c - beta * (at_backout[1][j] if j < len(at_backout[1]) else 0.0) for j, c in enumerate(out_coefs)]
    return x0_coef, out_coefs


def _g(x: float) -> str:
    return f"{x:.6g}"


def architecture_facts(model: GPT) -> tuple[dict, list[list[str]]]:
    """JSON facts for the trace and [label, text] rows for the page's model card."""
    cfg = model.config
    group = cfg.n_head // cfg.n_kv_head
    sharing = [list(range(kv * group, (kv + 1) * group)) for kv in range(cfg.n_kv_head)]
    windows = cfg.windows()
    x0_coef, out_coefs = stream_coefficients(model)
    facts = {
        "architecture": cfg.architecture,
        "rotary_base": cfg.rotary_base,
        "rotary_tables": "bfloat16" if not cfg.current else "float32",
        "qk_scale": cfg.qk_scale,
        "logit_softcap": SOFTCAP,
        "padded_vocab_size": cfg.padded_vocab_size,
        "query_heads_per_kv_head": sharing,
        "windows": windows,
        "value_embedding_layers": cfg.value_embedding_layers(),
        "final_residual_scale": {"x0": x0_coef, "layers": out_coefs},
    }
    rows = [
        ["architecture", f"nanochat {cfg.architecture}"],
        ["positions", f"rotary (base {cfg.rotary_base:g}{', tables in bfloat16' if not cfg.current else ''}); no position embedding"],
        ["norms", "RMS norm without weights: after the embedding, before attention and MLP, before the head"],
        ["attention", "QK norm after rotary" + (f", q and k scaled by {cfg.qk_scale:g}" if cfg.qk_scale != 1 else "")
         + f"; scores scaled by 1/sqrt({cfg.head_dim})"],
        ["key/value heads", f"{cfg.n_kv_head} for {cfg.n_head} query heads: "
         + "; ".join(f"kv {kv} ← q {', '.join(map(str, qs))}" for kv, qs in enumerate(sharing))],
        ["attention windows", ", ".join(f"L{i} " + ("full" if w < 0 else f"{w}" + (" (full)" if w >= cfg.sequence_len else ""))
                                        for i, w in enumerate(windows))
         + ("" if cfg.current else " (no sliding window)")],
        ["MLP", f"ReLU², {4 * cfg.n_embd} wide"],
        ["logits", f"untied lm_head, softcap {SOFTCAP:g}·tanh(x/{SOFTCAP:g})"
         + (f"; {cfg.padded_vocab_size} rows, sliced to {cfg.vocab_size}" if cfg.padded_vocab_size != cfg.vocab_size else "")],
    ]
    if cfg.current:
        facts.update(
            resid_lambdas=model.resid_lambdas.detach().double().tolist(),
            x0_lambdas=model.x0_lambdas.detach().double().tolist(),
            smear_lambda=float(model.smear_lambda.detach().double()),
            backout_lambda=float(model.backout_lambda.detach().double()),
            backout_layer=cfg.backout_layer,
            window_pattern=cfg.window_pattern,
        )
        rows += [
            ["window pattern", f"{cfg.window_pattern} (short = a quarter of {cfg.sequence_len}, rounded up to 128; last layer full)"],
            ["value embeddings", "layers " + ", ".join(map(str, cfg.value_embedding_layers()))
             + "; v += 3·sigmoid(W x[:12]) · value embedding, per kv head"],
            ["residual lambdas", ", ".join(_g(x) for x in facts["resid_lambdas"])],
            ["x0 lambdas", ", ".join(_g(x) for x in facts["x0_lambdas"])],
            ["smear", f"λ {_g(facts['smear_lambda'])} · sigmoid(W x[:24]) · previous normalised embedding"],
            ["backout", f"λ {_g(facts['backout_lambda'])} · output of layer {cfg.backout_layer} subtracted before the final norm"],
            ["scale reaching the final norm", f"x0 {_g(x0_coef)}; " + ", ".join(f"L{i} {_g(c)}" for i, c in enumerate(out_coefs))
             + " (later lambdas and backout; the dot-product breakdown scales each part by these)"],
            ["logit lens", "reads a block's output through the final norm and head without backout, "
             "which only the model's final residual has"],
        ]
    return facts, rows


# --- loading -------------------------------------------------------------------------------------


def load(checkpoint: Path, device: torch.device, step: int | None = None, tokenizer_dir: Path | None = None) -> LoadedModel:
    checkpoint = Path(checkpoint)
    model_file, meta_file = locate(checkpoint, step)
    meta = read_meta(meta_file)
    state = read_state(model_file, torch.device("cpu"))
    architecture = architecture_of(state.tensors)
    config = build_config(meta_file, meta["model_config"], architecture, state.tensors)
    check_declared(meta_file, state, config)  # before GPT(config) allocates anything
    model = GPT(config)
    weights, dtypes = check_state(model_file, state, model)
    model.load_state_dict(weights, strict=True)
    model.to(device).eval()
    tokenizer = load_tokenizer(model_file.parent, tokenizer_dir, config.vocab_size)
    dims = Dims(
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_kv_head=config.n_kv_head,
        d_head=config.head_dim,
        d_model=config.n_embd,
        d_mlp=4 * config.n_embd,
        n_ctx=config.sequence_len,
        vocab_size=config.vocab_size,
    )
    facts, rows = architecture_facts(model)
    step_number = int(MODEL_FILE.fullmatch(model_file.name).group(1))
    extras = {k: v for k, v in sorted(meta.items()) if k not in ("model_config", "step") and isinstance(v, (int, float, str, bool))}
    rows += [[f"meta.{k}", str(v)] for k, v in extras.items()]
    card = {
        "family": "nanochat",
        "checkpoint_file": model_file.name,
        "checkpoint_sha256": file_sha256(model_file),
        "meta_file": None,
        "meta_json": meta_file.name,
        "model_config": {k: meta["model_config"][k] for k in sorted(meta["model_config"])},
        "step": step_number,
        "meta": extras,
        "n_params": model.num_params(),
        "weights_dtype": ", ".join(f"{n} {d}" for d, n in dtypes.items()) + " tensors",
        "compiled_prefix": state.compiled,
        "tokenizer": f"{tokenizer.describe()} from tokenizer/tokenizer.pkl",
        "positions": "rotary",
        "nanochat": facts,
        "facts": rows,
    }
    return LoadedModel(
        family="nanochat",
        name=slug(f"{model_file.parent.name}-{model_file.stem}"),
        model=model,
        tokenizer=tokenizer,
        dims=dims,
        card=card,
        device=device,
        adapter=NanochatAdapter(config),
    )


# --- the adapter ---------------------------------------------------------------------------------


class NanochatAdapter(Adapter):
    """Where each activation lives in our nanochat tree, and how its residual stream adds up."""

    def __init__(self, config: NanochatConfig):
        self.config = config
        self.windows = config.windows()

    def hook_specs(self, dims: Dims) -> list[HookSpec]:
        cfg, nh, nkv, hs = self.config, dims.n_head, dims.n_kv_head, dims.d_head

        def heads(t):  # [T, n_head * d_head] -> [T, n_head, d_head]
            return (t.view(t.shape[0], nh, hs),)

        def kv_heads(t):  # [T, n_kv_head * d_head] -> [T, n_kv_head, d_head]
            return (t.view(t.shape[0], nkv, hs),)

        specs = [
            HookSpec("transformer.wte", "output", ("hook_embed",)),
            HookSpec("ln_embed", "output", ("ln_embed.hook_normalized",)),
        ]
        if cfg.current:
            specs += [
                HookSpec("hook_smear_gate", "output", ("hook_smear_gate",)),
                HookSpec("hook_smear", "output", ("hook_smear",)),
            ]
        specs.append(HookSpec("hook_x0", "output", ("hook_x0",)))
        ve_layers = cfg.value_embedding_layers()
        for layer in range(dims.n_layer):
            m, b = f"transformer.h.{layer}", f"blocks.{layer}"
            if layer in ve_layers:
                specs += [
                    HookSpec(f"value_embeds.{layer}", "output", (f"{b}.attn.hook_ve",), kv_heads),
                    HookSpec(f"{m}.attn.ve_gate", "output", (f"{b}.attn.hook_ve_gate",)),
                ]
            # q, k, v: the three arguments of the attention call, as they enter the kernel
            qkv = [HookSpec(f"{m}.attn.attend", "input", (f"{b}.attn.hook_{n}",), arg=i) for i, n in enumerate("qkv")]
            specs += block_specs(layer, qkv, heads)
        if cfg.current:
            specs.append(HookSpec("hook_resid_final", "output", ("hook_resid_final",)))
        specs += [
            HookSpec("ln_f", "output", ("ln_final.hook_normalized",)),
            HookSpec("softcap", "output", ("logits",)),
        ]
        return specs

    def stream_inputs(self, dims: Dims, layer: int) -> list[str]:
        """Current architecture: x0 (every later layer mixes it back in), the value embeddings of
        this layer and later ones (read from the token ids), and the backout residual once its
        layer is behind. The original architecture's stream is plain."""
        cfg = self.config
        if not cfg.current:
            return []
        names = ["hook_x0"] + [f"blocks.{i}.attn.hook_ve" for i in cfg.value_embedding_layers() if i >= layer]
        if cfg.backout_layer < layer:
            names.append(f"blocks.{cfg.backout_layer}.hook_resid_post")
        return names

    def encode_chat(self, loaded: LoadedModel, user_text: str) -> Encoded:
        return loaded.tokenizer.encode_chat(user_text)

    def norm_kind(self, loaded: LoadedModel) -> str:
        return "RMSNorm"

    def mlp_kind(self, loaded: LoadedModel) -> MLPKind:
        return MLPKind("ReLU²")

    def stream_notes(self, loaded: LoadedModel) -> list[StreamNote]:
        cfg = self.config
        if not cfg.current:
            return [StreamNote("embedding", "x0", ("hook_x0",), "The stream entering block 0: the normalised embedding.")]
        return [
            StreamNote("embedding", "Smear", ("hook_smear_gate", "hook_smear"),
                       "A gate per position and what it mixes in from the previous position's normalised embedding."),
            StreamNote("embedding", "x0", ("hook_x0",),
                       "The stream entering block 0, which every later layer also mixes back in with learned weights (x0 lambdas)."),
            StreamNote("attention", "Value embeddings", ("blocks.{l}.attn.hook_ve", "blocks.{l}.attn.hook_ve_gate"),
                       "A per-token embedding, gated per position and head, added to the values of this layer."),
            StreamNote("final", "Backout", ("hook_resid_final",),
                       f"The last layer's output minus λ times layer {cfg.backout_layer}'s output: the residual entering the final "
                       "norm. The logit lens reads each layer's output without it."),
        ]

    def card_rows(self, loaded: LoadedModel) -> list[tuple[str, str]]:
        card = loaded.card
        weights = f"{card['weights_dtype']} (analysed in float32)" + ("; compiled (_orig_mod. keys)" if card["compiled_prefix"] else "")
        return [
            ("family", "nanochat"),
            ("checkpoint", checkpoint_text(card["checkpoint_file"], card.get("checkpoint_sha256"))),
            ("parameters", f"{card['n_params']:,}"),
            *dims_rows(loaded.dims, "sequence_len"),
            ("vocabulary", card["tokenizer"]),
            *[(f"model_config.{k}", str(v)) for k, v in card["model_config"].items()],
            ("step", f"{card['step']:,} ({card['meta_json']})"),
            *[(label, text) for label, text in card["facts"]],
            ("weights stored as", weights),
        ]

    def training_step(self, loaded: LoadedModel) -> int | None:
        return loaded.card["step"]

    def plain_forward(self, loaded: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
        return loaded.model(ids[None])[0]

    # ln_embed is a scale-invariant RMSNorm: on the path alpha * wte(x) the output would not change
    # until a jump at alpha = 0, so attribution moves the normalised embedding instead
    embedding_hook = "ln_embed.hook_normalized"

    @torch.no_grad()
    def attribution_baseline(self, loaded: LoadedModel, ids: torch.Tensor) -> tuple[torch.Tensor, str]:
        """<|bos|>'s normalised embedding at every position. Not zeros: with no position embeddings
        the first block's RMSNorm would see a zero stream, and the path's output jumps next to it."""
        m, bos = loaded.model, loaded.tokenizer.bos_id
        row = m.ln_embed(m.transformer.wte.weight[bos].to(torch.float32)).to("cpu")  # [d_model]
        return row.expand(len(ids), -1).clone(), f"{self.embedding_hook} of {loaded.tokenizer.bos_token} at every position"

    def forward_from_embeddings(self, loaded: LoadedModel, ids: torch.Tensor, emb: torch.Tensor,
                                positions: list[int] | None = None) -> torch.Tensor:
        idx = ids.to(emb.device)[None].expand(emb.shape[0], -1)  # [B, T]: value embeddings stay the tokens'
        return loaded.model.forward_from_embeddings(idx, emb, positions)

    def attention_mask(self, layer: int, T: int, device: torch.device) -> torch.Tensor:
        return attention_allowed(T, self.windows[layer], device)

    def start_cache(self, loaded: LoadedModel) -> KVCache:
        return nanochat_step.start_cache(super().start_cache(loaded))

    def step(self, loaded: LoadedModel, cache: KVCache, new_ids: torch.Tensor) -> StepOutput:
        """nanochat's KV-cache forward through our tree's own submodules (see nanochat_step)."""
        return nanochat_step.step(loaded, cache, new_ids)

    @torch.no_grad()
    def logits_from_residual(self, loaded: LoadedModel, resid: torch.Tensor) -> torch.Tensor:
        """Final norm, lm_head, padding sliced off, softcap. Backout is not applied: on a block's
        output this is the logit lens; on `final_residual` it gives the model's logits."""
        m = loaded.model
        return m.softcap(m.lm_head(m.ln_f(resid.to(loaded.device)))).to("cpu", torch.float32)

    def embedding_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return loaded.model.transformer.wte.weight.detach()[: self.config.vocab_size].to("cpu", torch.float32)

    def unembed_weight(self, loaded: LoadedModel) -> torch.Tensor:
        return loaded.model.lm_head.weight.detach()[: self.config.vocab_size].to("cpu", torch.float32)

    def final_residual(self, cache_tensors: dict[str, torch.Tensor], dims: Dims) -> torch.Tensor:
        if "hook_resid_final" in cache_tensors:
            return cache_tensors["hook_resid_final"]
        return super().final_residual(cache_tensors, dims)

    @torch.no_grad()
    def residual_components(self, loaded: LoadedModel, cache_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """'embed' (normalised embedding), 'smear', every head 'L{l}.H{h}' (z_h @ W_O[h], value
        embedding included) and 'L{l}.mlp', each scaled by what the later lambdas and backout leave
        of it in the final residual (`stream_coefficients`), so they add up to `final_residual`."""
        dims = loaded.dims
        x0_coef, out_coefs = stream_coefficients(loaded.model)
        parts = {"embed": x0_coef * cache_tensors["ln_embed.hook_normalized"]}
        if "hook_smear" in cache_tensors:
            parts["smear"] = x0_coef * cache_tensors["hook_smear"]
        for layer in range(dims.n_layer):
            c_proj = loaded.model.transformer.h[layer].attn.c_proj
            w_o = c_proj.weight.detach().to("cpu", torch.float32).T.reshape(dims.n_head, dims.d_head, dims.d_model)
            z = cache_tensors[f"blocks.{layer}.attn.hook_z"]  # [T, nh, hs]
            per_head = torch.einsum("thd,hdm->htm", z, w_o) * out_coefs[layer]  # [nh, T, d_model]
            for head in range(dims.n_head):
                parts[f"L{layer}.H{head}"] = per_head[head]
            parts[f"L{layer}.mlp"] = out_coefs[layer] * cache_tensors[f"blocks.{layer}.hook_mlp_out"]
        return parts

    def frozen_final_norm(self, loaded: LoadedModel, x: torch.Tensor):
        """RMS norm without weights at x: linear(piece) = piece / rms(x), no constant."""
        x = x.to("cpu", torch.float32)
        scale = torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + torch.finfo(torch.float32).eps)

        def linear(piece: torch.Tensor) -> torch.Tensor:
            return piece * scale

        return linear, torch.zeros_like(x)

    def logit_cap(self, loaded: LoadedModel) -> float | None:
        return float(loaded.model.softcap.cap)

    def stream_identities(self, loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> dict:
        cfg, model, L = self.config, loaded.model, loaded.dims.n_layer
        x0, normed = tensors["hook_x0"], tensors["ln_embed.hook_normalized"]
        ids: dict = {"ln_embed == rms_norm(embed)": (rms_norm(tensors["hook_embed"]), normed)}
        if cfg.current:
            r = model.resid_lambdas.detach().to("cpu", torch.float32)
            a = model.x0_lambdas.detach().to("cpu", torch.float32)
            previous = torch.nn.functional.pad(normed[:-1], (0, 0, 1, 0))  # [T, C], 0 at position 0
            ids["smear == gate * previous ln_embed"] = (tensors["hook_smear_gate"][:, None] * previous, tensors["hook_smear"])
            ids["x0 == ln_embed + smear"] = (normed + tensors["hook_smear"], x0)
            ids["resid_pre[0] == (resid_lambda + x0_lambda) * x0"] = (r[0] * x0 + a[0] * x0, tensors["blocks.0.hook_resid_pre"])
            if L > 1:
                ids["resid_pre[l+1] == resid_lambda * resid_post[l] + x0_lambda * x0"] = [
                    (r[l + 1] * tensors[f"blocks.{l}.hook_resid_post"] + a[l + 1] * x0, tensors[f"blocks.{l + 1}.hook_resid_pre"])
                    for l in range(L - 1)
                ]
            beta = model.backout_lambda.detach().to("cpu", torch.float32)
            ids["resid_final == resid_post[L-1] - backout * resid_post[L//2]"] = (
                tensors[f"blocks.{L - 1}.hook_resid_post"] - beta * tensors[f"blocks.{cfg.backout_layer}.hook_resid_post"],
                tensors["hook_resid_final"],
            )
        else:
            ids["x0 == ln_embed"] = (normed, x0)
            ids["resid_pre[0] == x0"] = (x0, tensors["blocks.0.hook_resid_pre"])
            if L > 1:
                ids["resid_pre[l+1] == resid_post[l]"] = [
                    (tensors[f"blocks.{l + 1}.hook_resid_pre"], tensors[f"blocks.{l}.hook_resid_post"]) for l in range(L - 1)
                ]
        # the bookkeeping residual_components uses, on whole blocks (per-head pieces sum to attn_out)
        final = self.final_residual(tensors, loaded.dims)
        x0_coef, out_coefs = stream_coefficients(model)
        total = x0_coef * x0
        for layer, coef in enumerate(out_coefs):
            total = total + coef * (tensors[f"blocks.{layer}.hook_attn_out"] + tensors[f"blocks.{layer}.hook_mlp_out"])
        ids["final residual == scaled x0 + scaled block outputs"] = (total, final)
        ids["logits == softcap(lm_head(norm(final residual)))"] = (self.logits_from_residual(loaded, final), tensors["logits"])
        return ids
