"""Train the small character-level Shakespeare model shipped in demo/shakespeare-char/.

The output is in nanoGPT's own format, so the visualizer opens it exactly as it would open a
checkpoint written by nanoGPT's train.py:

  ckpt.pt   {'model': state_dict, 'model_args': {...}, 'iter_num': int,
             'best_val_loss': float, 'config': {...}}   (no optimizer state, to keep it small)
  meta.pkl  {'vocab_size': int, 'itos': {int: str}, 'stoi': {str: int}}

The recipe follows nanoGPT's train.py: 90/10 train/val split, random windows as batches,
AdamW (weight decay on matrices only), linear warmup then cosine decay of the learning rate,
gradient clipping, a val-loss estimate every --eval_interval steps, and only the best model kept.
Runs on the CPU and is deterministic for a given --seed and --threads.

Run from the repository root:
    python scripts/train_demo.py            # defaults reproduce the committed checkpoint
    python scripts/train_demo.py --help
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # so that `visualizer` imports without installing the package

from visualizer.model.nanogpt.model import GPT, GPTConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train a small character-level GPT on Tiny Shakespeare and write a "
        "nanoGPT-format ckpt.pt and meta.pkl.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("input / output")
    g.add_argument("--data", default="../shared/data/tinyshakespeare.txt",
                   help="training text (path relative to the repository root, or absolute)")
    g.add_argument("--out_dir", default="demo/shakespeare-char",
                   help="where ckpt.pt and meta.pkl are written (relative to the repository root)")
    g = p.add_argument_group("model")
    g.add_argument("--n_layer", type=int, default=4)
    g.add_argument("--n_head", type=int, default=4)
    g.add_argument("--n_embd", type=int, default=128)
    g.add_argument("--block_size", type=int, default=128, help="context length in characters")
    g.add_argument("--bias", action="store_true", help="use biases in Linear and LayerNorm layers")
    g.add_argument("--dropout", type=float, default=0.0)
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch_size", type=int, default=32)
    g.add_argument("--max_iters", type=int, default=3500)
    g.add_argument("--learning_rate", type=float, default=2e-3, help="peak learning rate")
    g.add_argument("--min_lr", type=float, default=2e-4, help="learning rate at the end of the decay")
    g.add_argument("--warmup_iters", type=int, default=100)
    g.add_argument("--lr_decay_iters", type=int, default=None, help="default: --max_iters")
    g.add_argument("--weight_decay", type=float, default=0.1)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.99)
    g.add_argument("--grad_clip", type=float, default=1.0, help="0 disables clipping")
    g = p.add_argument_group("evaluation / logging")
    g.add_argument("--eval_interval", type=int, default=250)
    g.add_argument("--eval_iters", type=int, default=40, help="batches per split in each estimate")
    g.add_argument("--log_interval", type=int, default=50)
    g = p.add_argument_group("runtime")
    g.add_argument("--seed", type=int, default=1337)
    g.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    g.add_argument("--sample_chars", type=int, default=200,
                   help="characters to sample greedily from the best model at the end")
    g.add_argument("--sample_prompt", default="\n", help="text the final sample starts from")
    args = p.parse_args(argv)
    if args.lr_decay_iters is None:
        args.lr_decay_iters = args.max_iters
    return args


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file next to `path`, then rename it over `path`.

    An interrupted run therefore leaves either the previous file or the new one, never half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def get_lr(it: int, args: argparse.Namespace) -> float:
    """nanoGPT's schedule: linear warmup, cosine decay to min_lr, then flat at min_lr."""
    if it < args.warmup_iters:
        return args.learning_rate * (it + 1) / (args.warmup_iters + 1)
    if it > args.lr_decay_iters:
        return args.min_lr
    decay_ratio = (it - args.warmup_iters) / (args.lr_decay_iters - args.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # goes 1 -> 0
    return args.min_lr + coeff * (args.learning_rate - args.min_lr)


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, gen: torch.Generator):
    """Random windows of block_size characters; y is x shifted left by one."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])
    return x, y


@torch.no_grad()
def estimate_loss(model: GPT, splits: dict[str, torch.Tensor], args: argparse.Namespace) -> dict[str, float]:
    """Mean loss over eval_iters batches per split.

    The batches come from a generator re-seeded on every call, so every estimate sees the same
    windows and successive val losses are directly comparable when picking the best model.
    """
    model.eval()
    out = {}
    for name, data in splits.items():
        gen = torch.Generator().manual_seed(args.seed + 1)
        losses = torch.zeros(args.eval_iters)
        for k in range(args.eval_iters):
            x, y = get_batch(data, args.block_size, args.batch_size, gen)
            _, loss = model(x, y)
            losses[k] = loss.item()
        out[name] = losses.mean().item()
    model.train()
    return out


@torch.no_grad()
def greedy_sample(model: GPT, prompt: list[int], n: int, block_size: int) -> list[int]:
    """Append the most likely next token n times (argmax, no randomness)."""
    model.eval()
    idx = torch.tensor([prompt], dtype=torch.long)
    for _ in range(n):
        logits, _ = model(idx[:, -block_size:])
        nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        idx = torch.cat([idx, nxt], dim=1)
    return idx[0, len(prompt) :].tolist()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    data_path = Path(args.data)
    if not data_path.is_absolute():
        data_path = (REPO_ROOT / data_path).resolve()
    out_dir = Path(args.out_dir)
    if not out_dir.is_absolute():
        out_dir = REPO_ROOT / out_dir

    # --- data: character vocabulary exactly as nanoGPT's data/shakespeare_char/prepare.py ---
    text = data_path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    splits = {"train": data[:n], "val": data[n:]}
    print(f"{data_path}: {len(text):,} characters, vocab {len(chars)}, "
          f"train {n:,} / val {len(data) - n:,} tokens")

    meta = {"vocab_size": len(chars), "itos": itos, "stoi": stoi}
    atomic_write(out_dir / "meta.pkl", lambda f: pickle.dump(meta, f))

    # --- model and optimizer (nanoGPT's configure_optimizers: decay only the >=2-D tensors) ---
    model_args = dict(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                      block_size=args.block_size, bias=args.bias, vocab_size=len(chars),
                      dropout=args.dropout)
    model = GPT(GPTConfig(**model_args))
    model.init_weights(torch.Generator().manual_seed(args.seed))
    model.train()
    print(f"model: {model.num_params() / 1e6:.3f}M parameters, {model_args}")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.learning_rate, betas=(args.beta1, args.beta2),
    )

    config = {k: v for k, v in vars(args).items() if k not in ("data", "out_dir")}
    config.update(dataset="shakespeare_char", device="cpu", dtype="float32",
                  gradient_accumulation_steps=1, data_file=data_path.name)

    # --- training loop (same order as nanoGPT: set lr, maybe evaluate/save, then one step) ---
    train_gen = torch.Generator().manual_seed(args.seed)
    best_val_loss, best_iter = float("inf"), -1
    ckpt_path = out_dir / "ckpt.pt"
    t_start = t_last = time.time()
    for it in range(args.max_iters + 1):
        lr = get_lr(it, args)
        for group in optimizer.param_groups:
            group["lr"] = lr

        if it % args.eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss(model, splits, args)
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  f"({time.time() - t_start:.0f}s)", flush=True)
            if losses["val"] < best_val_loss and it > 0:
                best_val_loss, best_iter = losses["val"], it
                checkpoint = {
                    "model": model.state_dict(),
                    "model_args": model_args,
                    "iter_num": it,
                    "best_val_loss": float(best_val_loss),
                    "config": config,
                }
                atomic_write(ckpt_path, lambda f: torch.save(checkpoint, f))
                print(f"  saved {ckpt_path} (best val loss so far)", flush=True)
        if it == args.max_iters:
            break

        x, y = get_batch(splits["train"], args.block_size, args.batch_size, train_gen)
        _, loss = model(x, y)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        if it % args.log_interval == 0:
            now = time.time()
            dt = (now - t_last) / (args.log_interval if it else 1)
            t_last = now
            print(f"iter {it}: loss {loss.item():.4f}, lr {lr:.2e}, {dt * 1000:.0f} ms/iter", flush=True)

    wall = time.time() - t_start
    print(f"done: {args.max_iters} iterations in {wall:.0f}s ({wall / 60:.1f} min); "
          f"best val loss {best_val_loss:.4f} at step {best_iter}")
    print(f"{ckpt_path}: {ckpt_path.stat().st_size / 1e6:.2f} MB")

    # --- a greedy sample from the saved (best) model, to show it learned something ---
    if args.sample_chars > 0:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"], strict=True)
        prompt = [stoi[c] for c in args.sample_prompt]
        out = greedy_sample(model, prompt, args.sample_chars, args.block_size)
        print(f"greedy sample ({args.sample_chars} chars, prompt {args.sample_prompt!r}):")
        print("-" * 60)
        print(args.sample_prompt + "".join(itos[i] for i in out))
        print("-" * 60)


if __name__ == "__main__":
    main()
