"""Keep a run in the trace store: a new folder `<root>/<id>/` with the run's data files and
`manifest.json`, written into a `.tmp-*` folder inside the root and renamed to its id when complete.

What this module does not do: read traces back (reader.py), or import torch at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from visualizer.artefacts.layout import ACTIVATIONS, ANALYSIS, DATA_FILES, TRACE
from visualizer.artefacts.folder import kill_point, leftover_pid, process_alive
from visualizer.errors import VisualizerError
from visualizer.readfile import read_json
from visualizer.store.options import DTYPES, GROUPS, StoreOptions, tensor_group

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ID_DIGITS = 10

def file_record(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def base_id(checkpoint_sha256: str, probe: str, token_ids: list[int], keep: tuple[str, ...], dtype: str) -> str:
    key = json.dumps([checkpoint_sha256, probe, list(token_ids), list(keep), dtype], ensure_ascii=True)
    return hashlib.sha256(key.encode("ascii")).hexdigest()[:ID_DIGITS]


def copy_activations(source: Path, target: Path, keep: tuple[str, ...], dtype: str) -> list[str]:
    """Copy the report's activations, keeping only `keep` groups (all when empty) at `dtype`.
    Returns the names stored. Byte-deterministic like the report's own file."""
    if not keep and dtype == "float32":
        shutil.copyfile(source, target)
        with open(source, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            names = [k for k in json.loads(f.read(header_len)) if k != "__metadata__"]
        return sorted(names)
    import torch  # only here: listing the store never needs it
    from safetensors.torch import load_file

    from visualizer.artefacts.trace import save_tensors

    tensors = {n: t for n, t in load_file(str(source)).items() if not keep or tensor_group(n) in keep}
    save_tensors(target, tensors, getattr(torch, dtype))
    return sorted(tensors)


def summary_figures(trace: dict, analysis: dict | None) -> dict:
    """A few numbers to tell traces apart in listings: verification, next token, probe loss."""
    nxt = (trace.get("next_tokens") or [{}])[0]
    figures = {
        "positions": len(trace.get("token_ids", [])),
        "verification_passed": bool(trace.get("verification_passed")),
        "next_token": nxt.get("token"),
        "next_token_readable": nxt.get("readable"),
        "next_token_prob": nxt.get("prob"),
    }
    logits = (analysis or {}).get("logits") or {}
    figures["probe_loss_nats"] = logits.get("mean_loss_nats")
    figures["last_entropy_bits"] = (logits.get("entropy_bits") or [None])[-1]
    heads = (analysis or {}).get("attention") or {}
    figures["labelled_heads"] = sum(1 for h in heads.get("heads", []) if h.get("label"))
    return figures


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_root(root: Path) -> None:
    """The store root exists (made if needed) and is writable, or a VisualizerError naming it."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VisualizerError(f"--store {root}: cannot create it ({e.strerror or e})") from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise VisualizerError(f"--store {root}: not a writable folder")


def remove_dead_staging(root: Path) -> None:
    """Staging folders (`.tmp-PID-*`) of runs that died before their rename: never visible as traces
    (readers skip dot-folders), removed here once their process is gone."""
    for entry in root.iterdir():
        pid = leftover_pid(entry.name, ".tmp-")
        if pid is not None and not process_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def build_manifest(trace: dict, analysis: dict | None, files: dict, checkpoint: str, options: StoreOptions,
                   tensors: int, created: str, extra: dict | None = None) -> dict:
    """A trace's manifest (its id still None) from its trace record, analysis and file records."""
    card = trace.get("model", {})
    return {
        "format": MANIFEST_FORMAT,
        "id": None,
        "created": created,
        "model": {
            "name": trace.get("model_name"),
            "family": trace.get("family"),
            "path": checkpoint,
            "checkpoint_sha256": card.get("checkpoint_sha256"),
            "iter_num": card.get("iter_num"),
            "dims": trace.get("dims"),
            "tokenizer": card.get("tokenizer"),
        },
        "probe": trace.get("probe"),
        "tokens": trace.get("tokens"),
        "token_ids": trace.get("token_ids"),
        "tags": list(options.tags),
        "category": options.category,
        "summary": summary_figures(trace, analysis),
        "kept": {
            "groups": list(options.keep) or sorted(GROUPS),
            "all_groups": not options.keep,
            "dtype": options.dtype,
            "tensors": tensors,
        },
        "files": files,
        **(extra or {}),
    }


def save(report_folder: Path, checkpoint: Path, options: StoreOptions, created: str | None = None) -> dict:
    """Store the run whose files are in `report_folder` as a new trace; returns its manifest."""
    report_folder, root = Path(report_folder), Path(options.root)
    trace = read_json(report_folder / TRACE, str(report_folder))
    analysis_path = report_folder / ANALYSIS
    analysis = read_json(analysis_path, str(report_folder)) if analysis_path.is_file() else None
    if not (report_folder / ACTIVATIONS).is_file():
        raise VisualizerError(f"{report_folder}: {ACTIVATIONS}: missing (nothing to store)")
    if options.dtype not in DTYPES:
        raise VisualizerError(f"--store-dtype {options.dtype!r}: choose float32 or float16")
    check_root(root)
    remove_dead_staging(root)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=root))
    except OSError as e:
        raise VisualizerError(f"--store {root}: cannot write there ({e.strerror or e})") from None
    try:
        files = {}
        for name in DATA_FILES:
            source = report_folder / name
            if name == ACTIVATIONS:
                names = copy_activations(source, tmp / name, options.keep, options.dtype)
            elif source.is_file():
                shutil.copyfile(source, tmp / name)
            else:
                continue
            files[name] = file_record(tmp / name)
        manifest = build_manifest(trace, analysis, files, str(Path(checkpoint).resolve()), options, len(names),
                                  created or now_utc())
        card = trace.get("model", {})
        base = base_id(card.get("checkpoint_sha256", ""), trace.get("probe", ""), trace.get("token_ids", []),
                       options.keep, options.dtype)
        for n in range(1, 10_000):
            manifest["id"] = base if n == 1 else f"{base}-{n}"
            target = root / manifest["id"]
            if target.exists():
                continue
            (tmp / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
            for path in [tmp, *tmp.iterdir()]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            kill_point("store-before-rename")
            try:
                os.rename(tmp, target)
            except OSError:
                continue  # another run took this id between the check and the rename
            return manifest
        raise VisualizerError(f"--store {root}: no free id for {base}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- stores on fsspec filesystems: staged by workers, committed by one driver -------------------------


def staging_prefix(fs, root: str, token: str) -> str:
    """Where a sweep's workers write: a dot-folder of the root (readers skip it) carrying the driver's
    pid, so a later save removes it once that driver is gone (remove_dead_staging)."""
    return f"{root}/.tmp-{os.getpid()}-sweep-{token}"


def stage_files(fs, staged: str, local_folder: Path) -> dict:
    """Upload a run's data files from a local folder to `staged`; returns name -> {bytes, sha256}."""
    files = {}
    fs.makedirs(staged, exist_ok=True)
    for name in DATA_FILES:
        source = Path(local_folder) / name
        if source.is_file():
            files[name] = file_record(source)
            fs.put_file(str(source), f"{staged}/{name}")
    return files


def _free_id(fs, root: str, base: str) -> str:
    for n in range(1, 10_000):
        trace_id = base if n == 1 else f"{base}-{n}"
        if not fs.exists(f"{root}/{trace_id}"):
            return trace_id
    raise VisualizerError(f"--store {root}: no free id for {base}")


def commit_staged(fs, root: str, staged: str, manifest: dict) -> dict:
    """Make a staged trace visible under its id (the driver alone calls this, one trace at a time).
    Local disk: the manifest goes into the staged folder, which is renamed (atomic, as `save`).
    Object stores have no rename: files are copied, their sizes checked, and the manifest written
    LAST; a trace without its manifest is never listed (reader.scan_store)."""
    base = base_id(manifest["model"]["checkpoint_sha256"] or "", manifest["probe"] or "", manifest["token_ids"] or [],
                   tuple(() if manifest["kept"]["all_groups"] else manifest["kept"]["groups"]), manifest["kept"]["dtype"])
    manifest = dict(manifest, id=_free_id(fs, root, base))
    text = json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    target = f"{root}/{manifest['id']}"
    from visualizer.store.options import is_local

    if is_local(fs):
        Path(staged, MANIFEST).write_text(text, encoding="utf-8")
        for path in [Path(staged), *Path(staged).iterdir()]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.rename(staged, target)
        return manifest
    for name, record in sorted(manifest["files"].items()):
        fs.copy(f"{staged}/{name}", f"{target}/{name}")
        if fs.size(f"{target}/{name}") != record["bytes"]:
            raise VisualizerError(f"--store {root}: {manifest['id']}/{name}: size differs after the copy")
    fs.pipe_file(f"{target}/{MANIFEST}", text.encode("utf-8"))
    fs.rm(staged, recursive=True)
    return manifest
