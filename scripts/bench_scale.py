"""Scale, side by side in one run: the long-probe report against a plain forward and TransformerLens.

    python scripts/bench_scale.py [--tokens 1024] [--layers 12 --heads 12 --width 768 --vocab 50257]
                                  [--repeats 3] [--folder DIR]

Builds (in a child process) a Hugging Face GPT-2 folder of that shape with random weights and a
byte-level BPE tokenizer (tests/support/hf.py), and a probe of exactly --tokens ids. Then each
measurement runs in its own fresh process, timed from start to exit, with its peak RSS from the
kernel (os.wait4):
  plain     load the folder with transformers (eager attention) and run one forward: the yardstick;
            its in-process forward time is the minimum of --repeats;
  lens      TransformerLens 4.3: TransformerBridge.boot_transformers(folder) in compatibility mode,
            then run_with_cache with every hook (minimum of --repeats) -- only when transformer-lens
            is installed (a test dependency, never a run-time one);
  capture   our capture + verification (hooked forward, derived attention, unhooked forward, the
            identities) in-process, minimum of --repeats;
  report    `python -m visualizer` on the folder: the whole report (figures at the default
            --figures auto, page, attribution at default settings), --no-store.
Prints each with wall time and peak RSS, and the issue's ratios: report wall / plain process wall
(target <= 2.5), report peak / TransformerLens peak (<= 2), capture / run_with_cache (<= 1.2).

What this script does not do: download anything, decide pass/fail (a shared machine is noisy: the
load average is printed beside the numbers), or keep the folder unless --folder is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads({threads})
what, folder, ids_file, repeats = {what!r}, {folder!r}, {ids!r}, {repeats}
ids = torch.tensor([json.load(open(ids_file))])  # [1, T]
best = float("inf")
if what == "plain":
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False)
        best = min(best, time.perf_counter() - start)
elif what == "lens":
    from transformer_lens.model_bridge import TransformerBridge
    bridge = TransformerBridge.boot_transformers(folder, device="cpu")
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            logits, cache = bridge.run_with_cache(ids)
        best = min(best, time.perf_counter() - start)
        del logits, cache
elif what == "capture":
    from visualizer.capture import capture
    from visualizer.model.hf.adapter import load
    loaded = load(__import__("pathlib").Path(folder), torch.device("cpu"))
    for _ in range(repeats):
        start = time.perf_counter()
        cache = capture(loaded, ids[0].tolist())
        best = min(best, time.perf_counter() - start)
        assert cache.passed, cache.failures()
        del cache
print(json.dumps({{"inner_s": best}}))
"""


def peak_of_child(command: list[str]) -> dict:
    """Run `command` to its end: wall seconds, peak RSS (MiB) read by os.wait4 on the child itself (not
    the maximum over every child this script has waited for), and the fields of its last JSON line."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:  # a file: a chatty stderr cannot fill a pipe
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
        out_lines = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        errors.seek(0)
        err = errors.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(map(str, command[:4]))}...: exit {code}\n{err[-2000:]}")
    result = {"wall_s": wall, "peak_mib": usage.ru_maxrss / 1024}
    lines = [line for line in out_lines.splitlines() if line.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def build(folder: Path, args) -> None:
    from tests.support.hf import gpt2_tokenizer, make_gpt2_folder

    extra = args.vocab - len(gpt2_tokenizer())
    make_gpt2_folder(folder, n_layer=args.layers, n_head=args.heads, n_embd=args.width, n_positions=args.tokens,
                     extra_vocab=max(0, extra))


def probe(folder: Path, tokens: int) -> tuple[str, list[int]]:
    """A text of library source encoding to at least `tokens` ids with the folder's tokenizer, cut to
    exactly `tokens` ids (decoded back, re-encoded: the report runs the text)."""
    from scripts.bench_hf import corpus
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    words = " ".join(corpus(400_000)).split(" ")
    text, n = "", 64
    while len(tokenizer(text)["input_ids"]) < tokens and n < len(words):
        n *= 2
        text = " ".join(words[:n])
    lo, hi = 1, n  # the shortest word prefix with >= tokens ids
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer(" ".join(words[:mid]))["input_ids"]) >= tokens:
            hi = mid
        else:
            lo = mid + 1
    text = " ".join(words[:lo])
    ids = tokenizer(text)["input_ids"]
    return text, ids[-tokens:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, help="model folder to use (built there first if it has no config.json)")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        build(args.build_only, args)
        return 0
    try:
        import transformer_lens  # noqa: F401
        lens = True
    except ImportError:
        lens = False
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        folder = args.folder or tmp / "gpt2-shaped"
        shape = ["--tokens", str(args.tokens), "--layers", str(args.layers), "--heads", str(args.heads),
                 "--width", str(args.width), "--vocab", str(args.vocab)]
        if not (folder / "config.json").is_file():
            subprocess.run([sys.executable, __file__, "--build-only", str(folder), *shape], check=True, cwd=REPO)
        text, ids = probe(folder, args.tokens)
        (tmp / "probe.txt").write_text(text, encoding="utf-8")
        (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        print(f"GPT-2-shaped: {args.layers} layers x {args.heads} heads x {args.width}, vocabulary {args.vocab}, "
              f"{len(ids)} tokens; {args.threads} threads; load average {os.getloadavg()[0]:.2f}", flush=True)

        def child(what: str) -> dict:
            code = CHILD.format(repo=str(REPO), threads=args.threads, what=what, folder=str(folder),
                                ids=str(tmp / "ids.json"), repeats=args.repeats)
            return peak_of_child([sys.executable, "-c", code])

        rows = {"plain": child("plain")}
        if lens:
            rows["lens"] = child("lens")
        rows["capture"] = child("capture")
        env_file = tmp / "empty.env"
        env_file.write_text("", encoding="utf-8")
        rows["report"] = peak_of_child([sys.executable, "-m", "visualizer", "--quiet", "--no-store", "--env-file",
                                        str(env_file), "--checkpoint", str(folder), "--probe-file", str(tmp / "probe.txt"),
                                        "--out", str(tmp / "report")])
        names = {"plain": "load + plain forward (transformers eager)", "lens": "TransformerLens load + run_with_cache",
                 "capture": "our load + capture + verification", "report": "our full report (python -m visualizer)"}
        print(f"{'process':45s} {'wall':>8s} {'in-process':>11s} {'peak RSS':>10s}")
        for key, row in rows.items():
            inner = f"{row['inner_s']:10.2f}s" if "inner_s" in row else " " * 11
            print(f"{names[key]:45s} {row['wall_s']:7.1f}s {inner} {row['peak_mib'] / 1024:8.2f} GiB")
        print(f"report wall / plain process wall: {rows['report']['wall_s'] / rows['plain']['wall_s']:.2f}x (target <= 2.5)")
        print(f"capture + verify / plain forward (in-process): "
              f"{rows['capture']['inner_s'] / rows['plain']['inner_s']:.2f}x")
        if lens:
            print(f"report peak RSS / TransformerLens peak: {rows['report']['peak_mib'] / rows['lens']['peak_mib']:.2f}x "
                  "(target <= 2)")
            print(f"capture + verify / run_with_cache (in-process): "
                  f"{rows['capture']['inner_s'] / rows['lens']['inner_s']:.2f}x (target <= 1.2)")
        else:
            print("transformer-lens is not installed: no TransformerLens rows (pip install -r requirements-dev.txt)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
