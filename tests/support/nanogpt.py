"""Build random-weight checkpoints in nanoGPT's on-disk format, for the test-suite.

`make_checkpoint` writes what nanoGPT's train.py writes (ckpt.pt) and what its
data/*/prepare.py writes (meta.pkl), with knobs for the variants a loader meets in the wild:
torch.compile's '_orig_mod.' key prefix, half-precision weights, an optimizer entry, no meta.pkl.

The weights are nanoGPT's initialisation (seeded), plus a perturbation of every LayerNorm
weight and of every bias vector: freshly initialised, those would be exactly 1 and 0, so a
loader that silently dropped them would go unnoticed.

The vocabularies below are for exercising tokenisation and HTML escaping:
  char_vocab(text)  sorted unique characters, exactly as nanoGPT's prepare.py
  WORD_VOCAB        a word-level vocabulary (multi-character tokens, '\n', '<unk>')
  HOSTILE_VOCAB     tokens full of HTML metacharacters, whitespace and emoji
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from visualizer.model.nanogpt.model import GPT, GPTConfig

__all__ = ["make_checkpoint", "char_vocab", "DEFAULT_VOCAB", "WORD_VOCAB", "HOSTILE_VOCAB"]


def char_vocab(text: str) -> list[str]:
    """Sorted unique characters of `text`, as nanoGPT's data/shakespeare_char/prepare.py."""
    return sorted(set(text))


# The default: a small character vocabulary of the shakespeare_char kind (newline, space,
# punctuation, letters).
DEFAULT_VOCAB: list[str] = char_vocab("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCD")

WORD_VOCAB: list[str] = [
    "<unk>", "\n", " ", ".", ",", "!", "?", ":", ";", "'",
    "the", "and", "to", "of", "a", "I", "you", "my", "that", "in",
    "is", "not", "me", "it", "with", "be", "your", "his", "for", "this",
    "thou", "thy", "thee", "shall", "lord", "king", "love", "good", "ROMEO", "JULIET",
]

HOSTILE_VOCAB: list[str] = [
    "<", ">", "&", '"', "'", "`", "/", "\\", "=",
    " ", "  ", "\n", "\t", "\r", "\r\n", "\x00", "\u00a0", "\u200b",
    "😀", "👍🏽", "é", "ß", "中", "ع",
    "<script>", "</script>", "<script>alert(1)</script>", "&amp;", "&lt;", "&#x27;",
    "</details>", "<!--", "-->", "]]>", "${x}", "{{x}}", '" onmouseover="x',
    "a", "b", "c", "A", "B", "0", "1", ".", ",",
]


def _check_vocab(vocab: list[str]) -> None:
    if not vocab:
        raise ValueError("vocab is empty")
    if not all(isinstance(t, str) for t in vocab):
        raise TypeError("every vocab entry must be a str")
    if len(set(vocab)) != len(vocab):
        dupes = sorted({t for t in vocab if vocab.count(t) > 1})
        raise ValueError(f"vocab has duplicate tokens: {dupes!r}")


def _perturb(model: GPT, generator: torch.Generator, scale: float = 0.1) -> None:
    """Move LayerNorm weights off 1 and all bias vectors off 0 (deterministically)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1:
                continue  # matrices and embeddings keep nanoGPT's init
            noise = torch.randn(p.shape, generator=generator) * scale
            p.add_(noise)  # LayerNorm weight: 1 + noise; any bias: 0 + noise


def _cast(state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Cast every tensor, keeping tensors that share storage (tied wte/lm_head) shared."""
    seen: dict[int, torch.Tensor] = {}
    out = {}
    for k, t in state_dict.items():
        key = t.data_ptr()
        if key not in seen:
            seen[key] = t.detach().to(dtype).clone()
        out[k] = seen[key]
    return out


def _optimizer_state(model: GPT) -> dict:
    """An AdamW state_dict as train.py saves it: nanoGPT's two param groups, after one step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99),
    )
    # Fill exp_avg / exp_avg_sq without touching the weights: step with lr 0 on fake gradients.
    for group in opt.param_groups:
        group["lr"] = 0.0
    g = torch.Generator().manual_seed(12345)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    opt.step()
    for p in params:
        p.grad = None
    for group in opt.param_groups:
        group["lr"] = 1e-3
    return opt.state_dict()


def make_checkpoint(
    dir: Path,
    *,
    n_layer: int = 2,
    n_head: int = 2,
    n_embd: int = 32,
    block_size: int = 16,
    bias: bool = False,
    vocab: list[str] | None = None,
    compiled: bool = False,
    dtype: torch.dtype = torch.float32,
    with_optimizer: bool = False,
    dataset: str = "testset",
    seed: int = 0,
    write_meta: bool = True,
) -> tuple[Path, Path | None]:
    """Writes dir/ckpt.pt and (if write_meta) dir/meta.pkl; returns (ckpt_path, meta_path).

    vocab:          tokens in id order (default DEFAULT_VOCAB); vocab_size = len(vocab)
    compiled:       prefix every state-dict key with '_orig_mod.' (a torch.compile'd model)
    dtype:          torch.float32, torch.bfloat16 or torch.float16 for the saved weights
    with_optimizer: include an 'optimizer' entry (AdamW state_dict) as train.py does
    seed:           same seed, same weights
    """
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, not {dtype}")
    vocab = list(DEFAULT_VOCAB if vocab is None else vocab)
    _check_vocab(vocab)
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)

    model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                      bias=bias, vocab_size=len(vocab), dropout=0.0)
    model = GPT(GPTConfig(**model_args))
    gen = torch.Generator().manual_seed(seed)
    model.init_weights(gen)
    _perturb(model, gen)

    state_dict = _cast(model.state_dict(), dtype)
    if compiled:
        state_dict = {"_orig_mod." + k: v for k, v in state_dict.items()}

    checkpoint = {
        "model": state_dict,
        "model_args": model_args,
        "iter_num": 100,
        "best_val_loss": torch.tensor(3.25),  # train.py stores the tensor from estimate_loss()
        "config": {
            "out_dir": f"out-{dataset}", "dataset": dataset, "eval_interval": 50,
            "batch_size": 4, "block_size": block_size, "n_layer": n_layer, "n_head": n_head,
            "n_embd": n_embd, "dropout": 0.0, "bias": bias, "learning_rate": 1e-3,
            "max_iters": 100, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99,
            "grad_clip": 1.0, "device": "cpu", "dtype": str(dtype).removeprefix("torch."),
            "compile": compiled, "init_from": "scratch", "seed": seed,
        },
    }
    if with_optimizer:
        checkpoint["optimizer"] = _optimizer_state(model)

    ckpt_path = dir / "ckpt.pt"
    torch.save(checkpoint, ckpt_path)

    meta_path = None
    if write_meta:
        meta_path = dir / "meta.pkl"
        meta = {
            "vocab_size": len(vocab),
            "itos": {i: t for i, t in enumerate(vocab)},
            "stoi": {t: i for i, t in enumerate(vocab)},
        }
        with open(meta_path, "wb") as f:
            pickle.dump(meta, f)
    return ckpt_path, meta_path
