"""Benchmark `generate`: 200 new tokens on a random 6-layer, 6-head, 384-wide character model
(block_size 256) with full recording (attention rows, logit lens, candidates), then the record.

Prints ms/step around steps 50, 100 and 200 (mean of the 10 steps ending there: flat means the
KV cache works), the generation total, building generation.json, and the whole `generate` command
(prompt report, page, snapshots) on the same model. Standalone: `python scripts/bench_generate.py
[--device cuda] [--steps 200]`.
"""

from __future__ import annotations

import argparse
import pickle
import string
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import visualizer.generation.sampling as sampling  # noqa: E402
from visualizer.model.nanogpt.model import GPT, GPTConfig  # noqa: E402
from visualizer.generation.decode import generate  # noqa: E402
from visualizer.generation.record import build_record  # noqa: E402
from visualizer.model.registry import load_model  # noqa: E402
from visualizer.artefacts.trace import Probe, dumps  # noqa: E402

PROMPT = "ROMEO:\nBut soft, what light through yonder window b"  # 48 characters


def random_char_model(folder: Path) -> tuple[Path, Path]:
    vocab = sorted("\n !$&',-.3:;?" + string.ascii_letters)  # tiny-shakespeare's 65 characters
    args = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, bias=False, vocab_size=len(vocab), dropout=0.0)
    model = GPT(GPTConfig(**args))
    model.init_weights(torch.Generator().manual_seed(0))
    torch.save({"model": model.state_dict(), "model_args": args, "iter_num": 0, "best_val_loss": 9.9,
                "config": {"dataset": "bench"}}, folder / "ckpt.pt")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(vocab), "itos": dict(enumerate(vocab)), "stoi": {c: i for i, c in enumerate(vocab)}}, f)
    return folder / "ckpt.pt", folder / "meta.pkl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the whole generate command")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, meta = random_char_model(Path(tmp))
        t0 = time.perf_counter()
        loaded = load_model(ckpt, meta, args.device)
        print(f"load                      {1000 * (time.perf_counter() - t0):8.1f} ms")
        ids = loaded.tokenizer.encode(PROMPT).ids
        stamps = []
        settings = sampling.Settings(temperature=0.8, top_k=40, seed=1)  # sampling path, controls active
        t0 = time.perf_counter()
        gen = generate(loaded, ids, args.steps, settings, on_step=lambda s: stamps.append(time.perf_counter()))
        total = time.perf_counter() - t0
        per_step = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]  # seconds per step
        for at in (50, 100, 200):
            if at <= len(per_step):
                window = per_step[max(1, at - 10) : at]  # step 0 includes the prefill
                print(f"ms/step at step {at:3d}        {1000 * sum(window) / len(window):8.2f} ms "
                      f"(context {len(ids) + at - 1} tokens)")
        print(f"  prefill + step 0        {1000 * per_step[0]:8.1f} ms")
        print(f"  steps 1..{len(per_step) - 1}          {1000 * sum(per_step[1:]):8.1f} ms")
        print(f"  full-forward check      {1000 * (t0 + total - stamps[-1]):8.1f} ms")
        print(f"generate {len(gen.steps)} tokens       {1000 * total:8.1f} ms (prefill + steps + final check)")
        t0 = time.perf_counter()
        text = dumps(build_record(loaded, Probe(PROMPT, ids), gen, settings, args.steps, 10))
        print(f"generation.json           {1000 * (time.perf_counter() - t0):8.1f} ms ({len(text) / 1e6:.1f} MB)")
        print(f"generate + record         {1000 * (total + time.perf_counter() - t0):8.1f} ms")
        if not args.no_cli:
            from visualizer.cli import main as cli_main

            t0 = time.perf_counter()
            code = cli_main(["generate", "--checkpoint", str(ckpt), "--meta", str(meta), "--prompt", PROMPT,
                             "--max-new-tokens", str(args.steps), "--temperature", "0.8", "--top-k", "40",
                             "--seed", "1", "--device", args.device, "--out", str(Path(tmp) / "gen"), "--quiet"])
            print(f"whole generate command    {1000 * (time.perf_counter() - t0):8.1f} ms (exit {code}; load, "
                  "prompt report, generation, page, snapshots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
