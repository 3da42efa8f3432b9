"""scripts/benchmark.py still runs against the current pipeline (on a tiny model, one repeat)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", REPO_ROOT / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_stage_runs_and_the_summary_adds_up(tmp_path):
    bench = load_benchmark()
    tiny = bench.ModelSpec("tiny", 2, 2, 32, 16, bench.SHAKESPEARE_CHARS, "ROMEO:\nBut soft")
    stages = [s for s in bench.STAGES if s.fn is not bench.stage_cli_cold]  # no second process here
    result = bench.bench_model(tiny, 1, False, tmp_path, stages)
    assert list(result["stages"]) == [s.name for s in stages]
    assert result["tokens"] == len("ROMEO:\nBut soft")
    med = {name: t["median_s"] for name, t in result["stages"].items()}
    assert all(t["cold_s"] > 0 and len(t["runs_s"]) == 1 for t in result["stages"].values())
    assert result["load_capture_write_s"] == med["load"] + med["capture + verify"] + med["write (all after capture)"]
    assert result["capture_over_plain_forward"] == med["capture + verify"] / med["plain forward"]
    reports = list(tmp_path.glob("model-*/report-*"))
    assert len(reports) == 4  # write and report stages: one cold run and one repeat each
    assert all((folder / "index.html").is_file() and (folder / "trace.json").is_file() for folder in reports)
