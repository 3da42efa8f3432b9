"""Time the Hugging Face path on a TinyLlama-1.1B-shaped model with random weights.

    python scripts/bench_hf.py [--folder DIR] [--tokens 256] [--device cpu] [--model-type llama]

--model-type picks the architecture entry the folder is written for (llama, mistral, qwen2, qwen3:
the same shape, transformers' own class for it; Qwen3 with its q/k norms). Shape: 22 layers, d_model 2048, 32 heads, 4 key/value heads, d_mlp 5632, vocabulary 32000,
context 2048, float32 weights (~4.4 GB) written as one safetensors shard per layer with an index,
plus a Llama-style tokenizer (metaspace, byte fallback) learned from Python's own library sources.
The folder is built by a child process (so its memory is not counted), unless --folder already
holds one. Prints the seconds of each stage (load, capture, report data, trace files, page) and the
peak resident memory of this process.

What this script does not do: download anything, or keep the folder (unless --folder is given).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHAPE = dict(
    vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
    num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
)


def corpus(limit_bytes: int = 4_000_000) -> list[str]:
    """Text of Python's standard library sources, sorted by path, up to `limit_bytes`."""
    texts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def build(folder: Path, model_type: str = "llama") -> None:
    """Write config.json, a sharded safetensors checkpoint (one shard per layer) and the tokenizer."""
    import torch
    import transformers
    from safetensors.torch import save_file

    from tests.support.hf import llama_tokenizer
    from visualizer.model.hf.architectures import ENTRIES

    folder.mkdir(parents=True, exist_ok=True)
    head_dim = SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
    config = transformers.AutoConfig.for_model(model_type, **SHAPE, head_dim=head_dim)
    config.save_pretrained(folder)
    model_class = getattr(transformers, ENTRIES[model_type].transformers_class)
    with torch.device("meta"):
        shapes = {name: p.shape for name, p in model_class(config).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    groups: dict[str, list[str]] = {}
    for name in shapes:
        layer = name.split(".")[2] if name.startswith("model.layers.") else "other"
        groups.setdefault(layer, []).append(name)
    weight_map, total = {}, 0
    for i, (group, names) in enumerate(sorted(groups.items())):
        file = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = shapes[name]
            t = torch.randn(shape, generator=generator) * 0.02
            tensors[name] = (1.0 + t) if len(shape) == 1 else t  # norm weights near 1
            weight_map[name] = file
            total += tensors[name].numel() * 4
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        del tensors
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=1)
    )
    tokenizer = llama_tokenizer(corpus(), learned=SHAPE["vocab_size"] - 259)
    tokenizer.save_pretrained(folder)


def probe_text(loaded, n_tokens: int) -> str:
    """The shortest prefix (in words) of a library source text that encodes to >= n_tokens ids."""
    words = " ".join(corpus(200_000)).split(" ")
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(loaded.tokenizer.encode(" ".join(words[:mid])).ids) >= n_tokens:
            hi = mid
        else:
            lo = mid + 1
    return " ".join(words[:lo])


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="model folder to use (built there first if it has no config.json)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--model-type", default="llama", choices=("llama", "mistral", "qwen2", "qwen3"))
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # a small shape, to test the script
    args = parser.parse_args()
    if args.smoke:
        SHAPE.update(hidden_size=256, intermediate_size=704, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2)
    if args.build_only:
        build(args.build_only, args.model_type)
        return 0

    import torch

    import visualizer.model.hf.adapter as hf
    import visualizer.pipeline as report
    from visualizer.model.probe import prepare_probe

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        folder = args.folder or Path(tmp) / f"tinyllama-shaped-{args.model_type}"
        times = {}
        if not (folder / "config.json").is_file():
            start = time.perf_counter()
            smoke = ["--smoke"] if args.smoke else []
            subprocess.run([sys.executable, __file__, "--build-only", str(folder), "--model-type", args.model_type, *smoke],
                           check=True)
            times["build folder (child process, not in peak)"] = time.perf_counter() - start
        start = time.perf_counter()
        loaded = hf.load(folder, torch.device(args.device))
        times["load"] = time.perf_counter() - start
        rss_loaded = rss_mib()
        probe = prepare_probe(loaded, probe_text(loaded, args.tokens))
        run = report.compute_run(loaded, probe, args.top_k)
        times["capture (hooked + plain forward, derive, verify)"] = run.seconds["capture + verify"]
        for stage in ("trace", "report data", "analysis"):
            times[stage] = run.seconds[stage]
        times["attribution (integrated gradients skipped above its budget)"] = run.seconds["attribution"]
        out = Path(tmp) / "report"
        start = time.perf_counter()
        report.write_run(out, run)
        times["write: data files, figures + page"] = time.perf_counter() - start
        cache = run.cache
        sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
        print(f"model: {loaded.card['n_params']:,} parameters, {loaded.dims}")
        print(f"probe: {len(probe.ids)} tokens; verification {'passed' if cache.passed else 'FAILED ' + str(cache.failures())}")
        print(f"threads: {torch.get_num_threads()}, device {args.device}")
        for stage, seconds in times.items():
            print(f"{stage:60s} {seconds:8.1f} s")
        print(f"{'RSS after load':60s} {rss_loaded / 1024:8.2f} GiB")
        print(f"{'peak RSS (this process)':60s} {peak_mib() / 1024:8.2f} GiB")
        print("files: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sorted(sizes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
