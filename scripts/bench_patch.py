"""Time activation patching against TransformerLens's own patching functions, on a GPT-2-small-shaped
Hugging Face model with random weights (12 layers, 12 heads, d_model 768, vocabulary 50257).

    python scripts/bench_patch.py [--tokens 64] [--layers 12] [--heads 12] [--width 768] [--folder DIR] [--tl-sample N]

Both sides patch the same folder: ours through `visualizer.analysis.interventions` (batched runs that
start at the patched layer), TransformerLens 4.3 through `TransformerBridge.boot_transformers(folder)`
in compatibility mode without weight processing and `transformer_lens.patching.get_act_patch_resid_pre`
/ `get_act_patch_attn_head_out_all_pos` (one full forward per patch). The probes are random token ids
(seeded); the corrupt one differs at one position; answer and wrong are the tokens whose logit
difference moves most between the two runs. Prints, per sweep, the seconds of each side, the
ratio, the cost in plain forwards (seconds / one unhooked forward of the probe) and the largest
difference between the two maps. Ours includes the sweep's identity runs (2 per layer); TransformerLens
has none. Times are wall-clock and CPU (process time, all threads): on a shared machine the CPU
ratio is the steadier one. --tl-sample N times TransformerLens on N cells spread evenly over the
grid (its `generic_activation_patch` with an index_df: one full forward per cell, whatever the cell)
and scales to the whole grid; the maps are compared on those cells.

What this script does not do: download anything, or keep the folder (unless --folder is given).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(folder: Path, layers: int, heads: int, width: int, vocab: int) -> None:
    from tests.support.hf import gpt2_tokenizer, make_gpt2_folder

    make_gpt2_folder(folder, n_layer=layers, n_head=heads, n_embd=width, n_positions=1024,
                     extra_vocab=vocab - len(gpt2_tokenizer()))


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--folder", type=Path, help="build the model here (kept) or reuse the one already there")
    parser.add_argument("--batch-size", type=int, default=None, help="our patched runs per forward (default: automatic)")
    parser.add_argument("--tl-sample", type=int, default=None, metavar="N",
                        help="time TransformerLens on N evenly spread cells and scale up (default: every cell)")
    args = parser.parse_args()

    import torch

    from visualizer.analysis.interventions.engine import Engine
    from visualizer.analysis.interventions.metric import choose_metric
    from visualizer.analysis.interventions.sweeps import Sources, run_sweep
    from visualizer.capture import capture
    from visualizer.model.registry import load_model

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch) / "gpt2"
        if not (folder / "config.json").is_file():
            build(folder, args.layers, args.heads, args.width, args.vocab)
        loaded = load_model(folder, None)
        generator = torch.Generator().manual_seed(0)
        clean = torch.randint(0, loaded.dims.vocab_size, (args.tokens,), generator=generator).tolist()
        corrupt = list(clean)
        corrupt[args.tokens // 2] = (clean[args.tokens // 2] + 1) % loaded.dims.vocab_size
        clean_cache, corrupt_cache = capture(loaded, clean), capture(loaded, corrupt)
        # the tokens whose logit difference moves most between the runs: random weights give small gaps,
        # and the normalised metric divides by the gap
        gap = clean_cache["logits"][-1] - corrupt_cache["logits"][-1]
        metric, _ = choose_metric(loaded, clean_cache["logits"][-1], corrupt_cache["logits"][-1],
                                  f"#{int(gap.argmax())}", f"#{int(gap.argmin())}")
        ids = torch.tensor(clean, device=loaded.device)
        with torch.inference_mode():
            loaded.adapter.plain_forward(loaded, ids)
            plain = [timed(lambda: loaded.adapter.plain_forward(loaded, ids)) for _ in range(5)]
            plain_s, plain_cpu = statistics.median(t[1] for t in plain), statistics.median(t[2] for t in plain)

        import pandas
        from transformer_lens import patching
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(str(folder), device="cpu")
        bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
        bridge.eval()
        clean_t, corrupt_t = torch.tensor([clean]), torch.tensor([corrupt])
        with torch.no_grad():
            _, tl_cache = bridge.run_with_cache(clean_t)

        def tl_metric(logits):
            return metric.normalise(metric.logit_diff(logits[0, -1]))

        print(f"model: {args.layers} layers x {args.heads} heads x d_model {args.width}, vocabulary {loaded.dims.vocab_size}, "
              f"{args.tokens} tokens; torch threads {torch.get_num_threads()}; one plain forward {plain_s * 1000:.1f} ms "
              f"({plain_cpu * 1000:.1f} ms CPU)")
        sweeps = (("resid_pre", "resid_pre", patching.layer_pos_patch_setter, ("layer", "pos"), args.tokens),
                  ("head_out", "z", patching.layer_head_vector_patch_setter, ("layer", "head"), loaded.dims.n_head))
        for name, activation, setter, columns, width in sweeps:
            engine = Engine(loaded, corrupt, corrupt_cache, args.batch_size)
            ours, ours_s, ours_cpu = timed(lambda: run_sweep(engine, Sources(loaded, clean_cache, corrupt_cache), metric, name))
            cells = [(layer, i) for layer in range(loaded.dims.n_layer) for i in range(width)]
            step = max(1, len(cells) // args.tl_sample) if args.tl_sample else 1
            sample = cells[::step]
            index = pandas.DataFrame(sample, columns=list(columns))
            with torch.no_grad():
                theirs, theirs_s, theirs_cpu = timed(lambda: patching.generic_activation_patch(
                    bridge, corrupt_t, tl_cache, tl_metric, setter, activation, index_df=index))
            scale = len(cells) / len(sample)
            theirs_s, theirs_cpu = theirs_s * scale, theirs_cpu * scale
            values = torch.tensor(ours["values"], dtype=torch.float64)
            difference = max(abs(float(values[cell]) - float(t)) for cell, t in zip(sample, theirs))
            identities = max(v["max_abs_error"] for v in ours["verification"].values())
            measured = "" if scale == 1 else f", scaled from {len(sample)} of {len(cells)} cells"
            print(f"{name}: ours {ours_s:.1f} s wall, {ours_cpu:.1f} s CPU ({ours['runs']} runs in {ours['forwards']} forwards, "
                  f"{ours_s / plain_s:.0f} plain forwards wall, {ours_cpu / plain_cpu:.0f} CPU); TransformerLens {theirs_s:.1f} s wall, "
                  f"{theirs_cpu:.1f} s CPU ({len(cells)} forwards{measured}; {theirs_s / plain_s:.0f} plain forwards wall, "
                  f"{theirs_cpu / plain_cpu:.0f} CPU); TransformerLens / ours = {theirs_s / ours_s:.2f}x wall, "
                  f"{theirs_cpu / ours_cpu:.2f}x CPU; max |ours - TransformerLens| {difference:.2e}; "
                  f"identities max error {identities:.2e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
