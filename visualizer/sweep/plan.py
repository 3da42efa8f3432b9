"""What a sweep runs: the checkpoints (one per training step) and the probes, read from the command line.

`--checkpoint` is a folder of training checkpoints (every weights file is a step) or one checkpoint
file (repeat the flag for several, of any family: their step is their position, 0, 1, ...).
`--steps` picks steps: `all`, `A:B:S` (A to B inclusive, every S-th) or `N,M,...`.
`--probes` is a UTF-8 file: one probe per line, or `.jsonl` with {"text": ...} on each line; it is
read lazily, batch by batch, so the driver never holds every probe.

What this module does not do: load a model (tasks.py), or run anything (driver.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from visualizer.errors import VisualizerError
from visualizer.model.registry import checkpoint_steps


@dataclass(frozen=True)
class Checkpoint:
    """One step of the sweep: what to pass to load_model, and the weights file (hashed for the cache)."""

    step: int
    path: str  # given to load_model
    load_step: int | None  # load_model(step=...) for a folder of training checkpoints
    weights: str  # the file whose sha256 keys a worker's model cache


def parse_steps(text: str) -> tuple:
    """'all' -> ('all',) | 'A:B:S' -> ('range', A, B, S) | 'N,M' -> ('list', N, M); else a VisualizerError."""
    text = (text or "all").strip()
    if text == "all":
        return ("all",)
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            a, b, s = parts if len(parts) == 3 else (*parts, 1)
            if s <= 0 or b < a:
                raise ValueError
            return ("range", a, b, s)
        values = tuple(int(p) for p in text.split(",") if p.strip())
        if not values:
            raise ValueError
        return ("list", *values)
    except ValueError:
        raise VisualizerError(f"--steps {text!r}: expected all, A:B:S (A <= B, S >= 1) or N,M,...") from None


def pick(available: list[int], selector: tuple, where: str) -> list[int]:
    """The available steps the selector names, sorted; a step named but absent is an error."""
    listing = ", ".join(map(str, sorted(available)))
    if selector[0] == "all":
        return sorted(available)
    if selector[0] == "range":
        _, a, b, s = selector
        wanted = [n for n in sorted(available) if a <= n <= b and (n - a) % s == 0]
        if not wanted:
            raise VisualizerError(f"--steps {a}:{b}:{s}: no step of {where} in that range (it has {listing})")
        return wanted
    missing = [n for n in selector[1:] if n not in available]
    if missing:
        raise VisualizerError(f"--steps: {where} has no step {', '.join(map(str, missing))} (it has {listing})")
    return sorted(set(selector[1:]))


def plan_checkpoints(paths: list[str], steps: str) -> list[Checkpoint]:
    """The checkpoints to sweep, in step order."""
    if not paths:
        raise VisualizerError("--checkpoint: give a folder of training checkpoints or one or more checkpoint files")
    selector = parse_steps(steps)
    for path in paths:
        if not Path(path).exists():
            raise VisualizerError(f"--checkpoint {path}: not found")
    found = checkpoint_steps(Path(paths[0])) if len(paths) == 1 else {}
    if found:
        return [Checkpoint(step=n, path=str(Path(paths[0])), load_step=n, weights=str(found[n]))
                for n in pick(list(found), selector, paths[0])]
    for path in paths:
        if not Path(path).is_file():
            raise VisualizerError(f"--checkpoint {path}: not a folder of training checkpoints nor a checkpoint file")
    return [Checkpoint(step=n, path=str(Path(paths[n])), load_step=None, weights=str(Path(paths[n])))
            for n in pick(list(range(len(paths))), selector, "the --checkpoint list")]


def iter_probes(path: Path) -> Iterator[str]:
    """The probes of --probes, one at a time (a line, or a .jsonl line's "text")."""
    path = Path(path)
    jsonl = path.suffix == ".jsonl"
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                if not jsonl:
                    yield line
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise VisualizerError(f"--probes {path}: line {number}: not JSON ({e.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str) or not record["text"]:
                    raise VisualizerError(f'--probes {path}: line {number}: expected {{"text": "..."}}')
                yield record["text"]
    except OSError as e:
        raise VisualizerError(f"--probes {path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise VisualizerError(f"--probes {path}: not UTF-8 text") from None


def count_probes(path: Path) -> int:
    count = sum(1 for _ in iter_probes(path))
    if not count:
        raise VisualizerError(f"--probes {path}: no probe in it")
    return count


def batches(path: Path, size: int) -> Iterator[tuple[tuple[int, str], ...]]:
    """(index, probe) batches of at most `size`, read lazily."""
    batch: list[tuple[int, str]] = []
    for index, text in enumerate(iter_probes(path)):
        batch.append((index, text))
        if len(batch) == size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)
