"""Scale, side by side in one run: the long-probe report against a plain forward and TransformerLens.

    python scripts/bench_scale.py [--shape gpt2|tinyllama] [--tokens N] [--repeats 3] [--folder DIR]
                                  [--layers 12 --heads 12 --width 768 --vocab 50257] [--json FILE]

Builds (in a child process) a Hugging Face folder with random weights: GPT-2 of the given sizes with
a byte-level BPE tokenizer (tests/support/hf.py), or the TinyLlama-1.1B shape (scripts/bench_hf.py),
and a probe of exactly --tokens ids (default 1024 for GPT-2, 512 for TinyLlama). Each row runs in
its own fresh process, timed from start to exit, with its peak RSS from the kernel (os.wait4):
  plain          load the folder with transformers (eager attention) and run ONE forward: the
                 yardstick process of the report ratio;
  plain-repeat   the same forward, minimum of --repeats in-process (eager, and sdpa for reference);
  lens           TransformerLens 4.3: TransformerBridge.boot_transformers(folder) in compatibility
                 mode, one run_with_cache with every hook, its cache saved to safetensors;
  lens-repeat    run_with_cache, minimum of --repeats in-process (both only when transformer-lens is
                 installed: a test dependency, never a run-time one);
  capture        our capture + verification (hooked forward, derived attention, unhooked forward,
                 the identities), minimum of --repeats in-process;
  report         `python -m visualizer` on the folder: the whole report (figures at the default
                 --figures auto, page, attribution at default settings), --no-store;
  small          (GPT-2 shape only) the 6-layer 384-wide nanoGPT model at 48 tokens: capture +
                 verification and a plain forward, medians of --small-repeats in-process.
Prints each with wall time and peak RSS, and the issue's ratios: report wall / plain process wall
(target <= 2.5), report peak / TransformerLens peak (<= 2), capture / run_with_cache (<= 1.2),
capture / plain forward at 48 tokens (<= 1.5).

What this script does not do: download anything, decide pass/fail for CI (a shared machine is noisy:
the load average is printed beside the numbers), or keep the folder unless --folder is given.
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
what, folder, ids_file, repeats, out = {what!r}, {folder!r}, {ids!r}, {repeats}, {out!r}
ids = torch.tensor([json.load(open(ids_file))])  # [1, T]
times = []


def timed(run):
    start = time.perf_counter()
    result = run()
    times.append(time.perf_counter() - start)
    return result


if what in ("plain", "plain-repeat"):  # the yardstick: transformers' own model, eager attention
    from transformers import AutoModelForCausalLM
    impls = ["eager"] if what == "plain" else ["eager", "sdpa"]
    fields = {{}}
    for impl in impls:
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=impl).eval()
        times = []
        for _ in range(1 if what == "plain" else repeats):
            with torch.inference_mode():
                timed(lambda: model(input_ids=ids, use_cache=False))
        fields[impl + "_s"] = min(times)
        del model
    print(json.dumps({{"inner_s": fields["eager_s"], **fields}}))
    raise SystemExit(0)
if what in ("lens", "lens-repeat"):
    from transformer_lens.model_bridge import TransformerBridge
    bridge = TransformerBridge.boot_transformers(folder, device="cpu")
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    for _ in range(1 if what == "lens" else repeats):
        with torch.inference_mode():
            logits, cache = timed(lambda: bridge.run_with_cache(ids))
        if what == "lens":  # the whole job: its cache written out, as our report writes ours
            from safetensors.torch import save_file
            distinct, seen = {{}}, set()  # its hook aliases share memory: each tensor once, views copied
            for name, t in sorted(cache.items()):
                key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
                if key not in seen:
                    seen.add(key)
                    distinct[name] = t if t.is_contiguous() and t.storage_offset() == 0 else t.clone()
            save_file(distinct, out)
        del logits, cache
elif what == "capture":
    from visualizer.capture import capture
    from visualizer.model.hf.adapter import load
    loaded = load(__import__("pathlib").Path(folder), torch.device("cpu"))
    for _ in range(repeats):
        cache = timed(lambda: capture(loaded, ids[0].tolist()))
        assert cache.passed, cache.failures()
        del cache
print(json.dumps({{"inner_s": min(times)}}))
"""

SMALL = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads({threads})
from tests.support.nanogpt import make_checkpoint
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model
sys.path.insert(0, {scripts!r})
from benchmark import small_spec

spec = small_spec()
with tempfile.TemporaryDirectory() as tmp:
    checkpoint, meta = make_checkpoint(Path(tmp), n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd,
                                       block_size=spec.block_size, vocab=spec.vocab)
    loaded = load_model(checkpoint, meta, "cpu")
ids = prepare_probe(loaded, spec.probe).ids
idx = torch.tensor(ids)  # [T]


def median_ms(run, n={small_repeats}):
    run()  # the first call pays one-time set-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


with torch.inference_mode():
    plain_ms = median_ms(lambda: loaded.adapter.plain_forward(loaded, idx))
capture_ms = median_ms(lambda: capture(loaded, ids))
print(json.dumps({{"plain_ms": plain_ms, "capture_ms": capture_ms, "tokens": len(ids)}}))
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
    if args.shape == "tinyllama":
        from scripts.bench_hf import build as build_llama

        build_llama(folder, "llama")
        return
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


def ratio(a: float, b: float, target: float | None = None) -> str:
    text = f"{a / b:.2f}x"
    return text if target is None else f"{text} (target <= {target}: {'met' if a / b <= target else 'NOT met'})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["gpt2", "tinyllama"], default="gpt2",
                        help="gpt2: GPT-2 (the sizes below); tinyllama: Llama, 22 layers x 2048, 32 heads / 4 KV heads, "
                             "vocabulary 32000 (scripts/bench_hf.py)")
    parser.add_argument("--tokens", type=int, help="probe length (default 1024 for gpt2, 512 for tinyllama)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-repeats", type=int, default=30, help="repeats of the 48-token row (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, help="model folder to use (built there first if it has no config.json)")
    parser.add_argument("--json", type=Path, help="also write the rows and ratios there")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.tokens = args.tokens or (512 if args.shape == "tinyllama" else 1024)
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
        folder = args.folder or tmp / f"{args.shape}-shaped"
        shape = ["--shape", args.shape, "--tokens", str(args.tokens), "--layers", str(args.layers), "--heads",
                 str(args.heads), "--width", str(args.width), "--vocab", str(args.vocab)]
        if not (folder / "config.json").is_file():
            subprocess.run([sys.executable, __file__, "--build-only", str(folder), *shape], check=True, cwd=REPO)
        text, ids = probe(folder, args.tokens)
        (tmp / "probe.txt").write_text(text, encoding="utf-8")
        (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        print(f"{config['model_type']}: {config.get('n_layer', config.get('num_hidden_layers'))} layers, "
              f"width {config.get('n_embd', config.get('hidden_size'))}, vocabulary {config['vocab_size']}, "
              f"{len(ids)} tokens; {args.threads} threads; load average {os.getloadavg()[0]:.2f}", flush=True)

        def child(what: str) -> dict:
            code = CHILD.format(repo=str(REPO), threads=args.threads, what=what, folder=str(folder),
                                ids=str(tmp / "ids.json"), repeats=args.repeats, out=str(tmp / "lens.safetensors"))
            return peak_of_child([sys.executable, "-c", code])

        rows = {"plain": child("plain"), "plain-repeat": child("plain-repeat")}
        if lens:
            rows["lens"] = child("lens")
            rows["lens-repeat"] = child("lens-repeat")
        rows["capture"] = child("capture")
        env_file = tmp / "empty.env"
        env_file.write_text("", encoding="utf-8")
        rows["report"] = peak_of_child([sys.executable, "-m", "visualizer", "--quiet", "--no-store", "--env-file",
                                        str(env_file), "--checkpoint", str(folder), "--probe-file", str(tmp / "probe.txt"),
                                        "--out", str(tmp / "report")])
        if args.shape == "gpt2":
            code = SMALL.format(repo=str(REPO), scripts=str(REPO / "scripts"), threads=args.threads,
                                small_repeats=args.small_repeats)
            rows["small"] = peak_of_child([sys.executable, "-c", code])
        names = {"plain": "load + one plain forward (transformers, eager)",
                 "plain-repeat": f"plain forward, eager (min of {args.repeats})",
                 "lens": "TransformerLens: load + run_with_cache + save",
                 "lens-repeat": f"TransformerLens run_with_cache (min of {args.repeats})",
                 "capture": f"ours: capture + verify (min of {args.repeats})",
                 "report": "ours: the whole report (python -m visualizer)"}
        print(f"{'process':50s} {'wall':>8s} {'in-process':>11s} {'peak RSS':>10s}")
        for key, name in names.items():
            if key in rows:
                row = rows[key]
                inner = f"{row['inner_s']:10.2f}s" if "inner_s" in row else " " * 11
                wall = f"{row['wall_s']:7.1f}s" if key in ("plain", "lens", "report") else " " * 8  # one job each
                print(f"{name:50s} {wall} {inner} {row['peak_mib'] / 1024:8.2f} GiB")
        print(f"plain forward, sdpa (min of {args.repeats}): {rows['plain-repeat']['sdpa_s']:.2f}s in-process")
        ratios = {"report_over_plain_process": rows["report"]["wall_s"] / rows["plain"]["wall_s"],
                  "capture_over_plain_forward": rows["capture"]["inner_s"] / rows["plain-repeat"]["inner_s"]}
        print("report wall / plain process wall:", ratio(rows["report"]["wall_s"], rows["plain"]["wall_s"], 2.5))
        print("capture + verify / plain eager forward (in-process):",
              ratio(rows["capture"]["inner_s"], rows["plain-repeat"]["inner_s"]))
        if lens:
            ratios["report_peak_over_lens_peak"] = rows["report"]["peak_mib"] / rows["lens"]["peak_mib"]
            ratios["capture_over_run_with_cache"] = rows["capture"]["inner_s"] / rows["lens-repeat"]["inner_s"]
            print("report peak RSS / TransformerLens peak:", ratio(rows["report"]["peak_mib"], rows["lens"]["peak_mib"], 2))
            print("capture + verify / run_with_cache (in-process):",
                  ratio(rows["capture"]["inner_s"], rows["lens-repeat"]["inner_s"], 1.2))
            print("report wall / TransformerLens process wall:", ratio(rows["report"]["wall_s"], rows["lens"]["wall_s"]))
        else:
            print("transformer-lens is not installed: no TransformerLens rows (pip install -r requirements-dev.txt)")
        if "small" in rows:
            small = rows["small"]
            ratios["small_capture_over_plain_forward"] = small["capture_ms"] / small["plain_ms"]
            print(f"6 layers x 384, {small['tokens']} tokens (nanoGPT, median of {args.small_repeats}): plain forward "
                  f"{small['plain_ms']:.1f} ms, capture + verify {small['capture_ms']:.1f} ms:",
                  ratio(small["capture_ms"], small["plain_ms"], 1.5))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "ratios": ratios, "shape": args.shape, "tokens": len(ids)},
                                            indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
