"""Benchmark of the trace store, attribution and rendering (issue 6), on a random-weight model of
nanoGPT's shakespeare-char shape: 6 layers, 6 heads, 384 wide, 65 characters, a 48-token probe.

Prints: integrated gradients (64 steps, batched) alone; the whole report run (load, capture,
report data, analysis, attribution, write, store); `render ID` of that trace (no model); and
`traces list` over 1,000 traces, in-process and as a fresh `python -m visualizer` process.
Targets: IG < 5 s, render < the report run, list < 1 s. Run from the repo root:

    python scripts/bench_store.py [--threads 2]

The machine's load average is printed with the numbers: on a shared machine they vary.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import visualizer.cli as cli  # noqa: E402
import visualizer.store.traces as store  # noqa: E402
from visualizer.analysis.attribution import AttributionOptions, attribute  # noqa: E402
from visualizer.capture import capture  # noqa: E402
from visualizer.model.nanogpt.model import GPT, GPTConfig  # noqa: E402
from visualizer.model.registry import load_model  # noqa: E402

VOCAB = sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"[:48]  # 48 characters


def make_model(folder: Path) -> Path:
    args = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, bias=False, vocab_size=len(VOCAB), dropout=0.0)
    model = GPT(GPTConfig(**args))
    model.init_weights(torch.Generator().manual_seed(0))
    folder.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "model_args": args, "iter_num": 5000, "best_val_loss": 1.5,
                "config": {"dataset": "shakespeare_char"}}, folder / "ckpt.pt")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(VOCAB), "itos": dict(enumerate(VOCAB)), "stoi": {c: i for i, c in enumerate(VOCAB)}}, f)
    return folder / "ckpt.pt"


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls."""
    return timed_cpu(fn, repeat)[0]


def timed_cpu(fn, repeat: int = 1) -> tuple[float, float]:
    """Best (wall, CPU) seconds of `repeat` calls; CPU time is this process's, all threads: on a
    busy shared machine it shows the work done when the wall time shows the waiting."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best


def quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()):
        code = fn()
    assert code == 0, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine's cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert len(PROBE) == 48
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        ckpt = make_model(work / "model")
        loaded = load_model(ckpt, ckpt.parent / "meta.pkl")
        ids = loaded.tokenizer.encode(PROBE).ids
        cache = capture(loaded, ids)
        ig_time, ig_cpu = timed_cpu(lambda: attribute(loaded, cache, ids, AttributionOptions(steps=64)), repeat=3)
        result = attribute(loaded, cache, ids, AttributionOptions(steps=64))
        ig = result["methods"][0]

        root = work / "traces"
        run = ["--checkpoint", str(ckpt), "--probe", PROBE, "--store", str(root), "--quiet"]
        report_time = timed(lambda: quiet(lambda: cli.main([*run, "--out", str(work / "report")])))
        trace_id = store.scan(root).manifests[0]["id"]
        render_time = timed(lambda: quiet(lambda: cli.main(["render", trace_id, "--out", str(work / "rendered"),
                                                            "--store", str(root)])), repeat=3)

        many = work / "many"
        many.mkdir()
        manifest = json.loads((root / trace_id / "manifest.json").read_text())
        for i in range(1000):
            manifest["id"] = f"{i:010x}"
            (many / manifest["id"]).mkdir()
            (many / manifest["id"] / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=1))
        list_time = timed(lambda: quiet(lambda: cli.main(["traces", "list", "--store", str(many)])), repeat=3)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "visualizer", "traces", "list", "--store", str(many)]
        process_time = timed(lambda: subprocess.run(command, check=True, capture_output=True, env=env, cwd=work), repeat=3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, torch threads {args.threads}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} (shared with other jobs: figures vary)")
    print(f"model: 6 layers, 6 heads, d_model 384, vocab {len(VOCAB)}, probe {len(ids)} tokens")
    print(f"integrated gradients, 64 steps batched:   {ig_time:6.2f} s  ({ig_cpu:.2f} CPU s; target < 5 s; completeness error "
          f"{ig['completeness_error']:.2e}, relative {ig['relative_error'] or 0:.2e})")
    print(f"report run (load..store, incl. IG):       {report_time:6.2f} s")
    print(f"render ID (no model, no forward):         {render_time:6.2f} s  (target < the report run)")
    print(f"traces list, 1,000 traces, in-process:    {list_time:6.3f} s  (target < 1 s)")
    print(f"traces list, 1,000 traces, new process:   {process_time:6.3f} s  (python start-up included)")


if __name__ == "__main__":
    main()
