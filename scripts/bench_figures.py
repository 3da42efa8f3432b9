"""Time the figures of one report (not a test: pytest does not collect it).

    python scripts/bench_figures.py N_LAYER N_HEAD N_EMBD T [WORKERS] [--layer L] [--out DIR]

Builds a random character-level nanoGPT checkpoint of that shape (cached in the system temp
folder), runs a T-token probe through capture and report_data, plans and renders every figure
(or only layer L's) and prints wall and CPU times per stage and the PNG sizes.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    start = time.time()
    from tests.support.nanogpt import make_checkpoint
    import visualizer.figures.plan as plots
    from visualizer.capture import capture
    from visualizer.model.registry import load_model
    from visualizer.analysis.report_data import build_report_data
    from visualizer.model.probe import Probe
    from visualizer.pipeline import trace_record

    imported = time.time() - start
    parser = argparse.ArgumentParser()
    for name in ("n_layer", "n_head", "n_embd", "T"):
        parser.add_argument(name, type=int)
    parser.add_argument("workers", type=int, nargs="?", default=2)
    parser.add_argument("--layer", type=int)
    parser.add_argument("--out", type=Path)
    a = parser.parse_args()
    model_dir = Path(tempfile.gettempdir()) / f"bench_figures_{a.n_layer}_{a.n_head}_{a.n_embd}_{a.T}"
    if not (model_dir / "ckpt.pt").exists():
        make_checkpoint(model_dir, n_layer=a.n_layer, n_head=a.n_head, n_embd=a.n_embd, block_size=a.T)
    loaded = load_model(model_dir / "ckpt.pt", model_dir / "meta.pkl")
    text = ("first citizen:\nbefore we proceed any further, hear me speak. " * (a.T // 40 + 1))[: a.T]
    ids = loaded.tokenizer.encode(text).ids

    stages = {}
    t = time.time()
    cache = capture(loaded, ids)
    stages["capture"] = time.time() - t
    t = time.time()
    trace = trace_record(loaded, Probe(text=text, ids=ids), cache)
    data = build_report_data(loaded, cache, ids)
    stages["trace+report_data"] = time.time() - t
    t = time.time()
    jobs = plots.plan_figures(trace, cache.tensors, data)
    stages["plan"] = time.time() - t
    if a.layer is not None:
        jobs = [job for job in jobs if job.figure.section == f"layer.{a.layer}"]
    out = a.out or Path(tempfile.mkdtemp(prefix="bench_figures_out_"))
    shutil.rmtree(out / "figures", ignore_errors=True)
    cpu, t = cpu_seconds(), time.time()
    plots.render_figures(out, jobs, workers=a.workers)
    stages["render"] = time.time() - t
    render_cpu = cpu_seconds() - cpu
    sizes = sorted(((p.stat().st_size, p.name) for p in (out / "figures").glob("*.png")), reverse=True)
    print(f"imports {imported:.2f}s, " + ", ".join(f"{k} {v:.2f}s" for k, v in stages.items())
          + f"; total {time.time() - start:.2f}s wall")
    print(f"{len(jobs)} figures with {a.workers} workers: render CPU {render_cpu:.2f}s "
          f"(self + workers), max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    print(f"PNGs {sum(s for s, _ in sizes) / 1e6:.2f} MB in {out / 'figures'}; largest {sizes[0][1]} {sizes[0][0]} bytes")


if __name__ == "__main__":
    main()
