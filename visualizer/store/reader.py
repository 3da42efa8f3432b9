"""Find traces again without the model: scan a store, check manifests and every file's size and
sha256, resolve ids and unique prefixes, remove, summarise.

What this module does not do: write traces (writer.py), or import torch at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from visualizer.artefacts.layout import DATA_FILES, REQUIRED_FILES, TRACE
from visualizer.errors import VisualizerError
from visualizer.readfile import read_json
from visualizer.store.options import DTYPES
from visualizer.store.writer import ID_DIGITS, MANIFEST, MANIFEST_FORMAT, file_record

ID_PATTERN = re.compile(r"[0-9a-f]{%d}(-[0-9]+)?" % ID_DIGITS)

def _expect(ok: bool, trace_id: str, problem: str) -> None:
    if not ok:
        raise VisualizerError(f"trace {trace_id}: {MANIFEST}: {problem}")


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_manifest(manifest, trace_id: str) -> dict:
    """The manifest if it has every field with the right type, else a VisualizerError naming it."""
    _expect(isinstance(manifest, dict), trace_id, "not a JSON object")
    _expect(manifest.get("format") == MANIFEST_FORMAT, trace_id, f"format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
    _expect(manifest.get("id") == trace_id, trace_id, f"id {manifest.get('id')!r} does not match its folder")
    _expect(isinstance(manifest.get("created"), str), trace_id, "'created' is not a string")
    model = manifest.get("model")
    _expect(isinstance(model, dict), trace_id, "'model' is not an object")
    for key in ("name", "checkpoint_sha256", "path"):
        _expect(isinstance(model.get(key), str), trace_id, f"'model.{key}' is not a string")
    _expect(isinstance(manifest.get("probe"), str), trace_id, "'probe' is not a string")
    _expect(_is_str_list(manifest.get("tokens")), trace_id, "'tokens' is not a list of strings")
    ids = manifest.get("token_ids")
    _expect(isinstance(ids, list) and all(isinstance(i, int) for i in ids), trace_id, "'token_ids' is not a list of integers")
    _expect(_is_str_list(manifest.get("tags")), trace_id, "'tags' is not a list of strings")
    _expect(manifest.get("category") is None or isinstance(manifest.get("category"), str), trace_id, "'category' is not a string")
    _expect(isinstance(manifest.get("summary"), dict), trace_id, "'summary' is not an object")
    kept = manifest.get("kept")
    _expect(isinstance(kept, dict) and kept.get("dtype") in DTYPES and _is_str_list(kept.get("groups")),
            trace_id, "'kept' must give 'groups' (strings) and 'dtype' (float32 or float16)")
    files = manifest.get("files")
    _expect(isinstance(files, dict), trace_id, "'files' is not an object")
    for name in REQUIRED_FILES:
        _expect(name in files, trace_id, f"'files' does not list {name}")
    for name, record in files.items():
        _expect(name in DATA_FILES, trace_id, f"'files' lists {name!r}, which is not a trace file")
        _expect(isinstance(record, dict) and isinstance(record.get("bytes"), int) and isinstance(record.get("sha256"), str),
                trace_id, f"'files.{name}' must give 'bytes' and 'sha256'")
    return manifest


def read_manifest(folder: Path) -> dict:
    return check_manifest(read_json(folder / MANIFEST, f"trace {folder.name}"), folder.name)


def verify_files(folder: Path | str, manifest: dict, fs=None) -> None:
    """Every file the manifest lists exists with its recorded size and sha256 (on local disk, or on
    the fsspec filesystem `fs`)."""
    trace_id = manifest["id"]
    for name, record in sorted(manifest["files"].items()):
        if fs is None:
            path = Path(folder) / name
            exists, size = path.is_file(), (path.stat().st_size if path.is_file() else None)
        else:
            path = f"{folder}/{name}"
            exists = fs.isfile(path)
            size = fs.size(path) if exists else None
        if not exists:
            raise VisualizerError(f"trace {trace_id}: {name}: missing")
        if size != record["bytes"]:
            raise VisualizerError(f"trace {trace_id}: {name}: {size} bytes, the manifest says {record['bytes']} "
                                  f"(truncated or changed)")
        digest = file_record(path)["sha256"] if fs is None else fs_sha256(fs, path)
        if digest != record["sha256"]:
            raise VisualizerError(f"trace {trace_id}: {name}: content changed since it was stored (sha256 differs)")


def fs_sha256(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan_store(fs, root: str) -> Scan:
    """`scan` on an fsspec filesystem: every trace folder whose manifest is written (the manifest is
    written last, so a folder without one is a commit in progress and not listed); dot-folders
    (staging) are skipped; a damaged manifest is reported."""
    result = Scan()
    if not fs.isdir(root):
        return result
    for entry in sorted(fs.ls(root, detail=True), key=lambda e: e["name"]):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if entry["type"] != "directory" or name.startswith(".") or not fs.isfile(f"{root}/{name}/{MANIFEST}"):
            continue
        try:
            text = fs.cat_file(f"{root}/{name}/{MANIFEST}").decode("utf-8")
            result.manifests.append(check_manifest(json.loads(text), name))
        except (VisualizerError, ValueError) as e:
            result.damaged.append(str(e) if isinstance(e, VisualizerError) else f"trace {name}: {MANIFEST}: {e}")
    result.manifests.sort(key=lambda m: (m["created"], m["id"]))
    return result


def trace_folders(root: Path) -> list[Path]:
    """Every trace folder under root (dot-folders are writes in progress), sorted by name."""
    if not root.is_dir():
        return []
    with os.scandir(root) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


@dataclass
class Scan:
    manifests: list[dict] = field(default_factory=list)  # valid ones, oldest first
    damaged: list[str] = field(default_factory=list)  # one line each, naming trace and file


def scan(root: Path) -> Scan:
    """Read every manifest (nothing else); a damaged one is reported and the rest still listed."""
    result = Scan()
    for folder in trace_folders(Path(root)):
        try:
            result.manifests.append(read_manifest(folder))
        except VisualizerError as e:
            result.damaged.append(str(e))
    result.manifests.sort(key=lambda m: (m["created"], m["id"]))
    return result


def matches(manifest: dict, tags: list[str] | None = None, model: str | None = None) -> bool:
    """All of `tags` present; `model` a substring of the model's name or path, or a sha256 prefix."""
    if tags and not set(tags) <= set(manifest["tags"]) | ({manifest["category"]} - {None}):
        return False
    if model:
        m = manifest["model"]
        needle = model.lower()
        if not (needle in m["name"].lower() or needle in m["path"].lower() or m["checkpoint_sha256"].startswith(needle)):
            return False
    return True


def resolve(root: Path, ref: str) -> Path:
    """The folder of trace `ref`: an id in the store, a path to a trace or report folder, or a
    unique prefix of an id, in that order."""
    root = Path(root)
    hexish = re.fullmatch(r"[0-9a-f]+(-[0-9]+)?", ref) is not None
    if hexish and (root / ref).is_dir():
        return root / ref
    folder = Path(ref)
    if folder.is_dir() and ((folder / TRACE).is_file() or (folder / MANIFEST).is_file()):
        return folder
    if not hexish:
        raise VisualizerError(f"trace {ref!r}: not a trace id in {root} (ids are hex digits, e.g. 3f9a1c2b7d) "
                              "nor a folder holding trace.json")
    found = [f for f in trace_folders(root) if f.name.startswith(ref)]
    if not found:
        raise VisualizerError(f"trace {ref}: not in the store {root}")
    if len(found) > 1:
        raise VisualizerError(f"trace {ref}: ambiguous in {root} ({', '.join(f.name for f in found[:5])}"
                              f"{', ...' if len(found) > 5 else ''})")
    return found[0]


@dataclass
class StoredTrace:
    folder: Path
    manifest: dict | None  # None for a report folder that was never stored

    @property
    def name(self) -> str:
        return self.manifest["id"] if self.manifest else str(self.folder)


def open_trace(root: Path, ref: str) -> StoredTrace:
    """Resolve and check a trace: its manifest, then every listed file's size and sha256."""
    folder = resolve(root, ref)
    if not (folder / MANIFEST).is_file() and (folder / TRACE).is_file():
        return StoredTrace(folder, None)  # a plain report folder: nothing recorded to check against
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    return StoredTrace(folder, manifest)


def remove(root: Path, ref: str) -> str:
    """Delete a stored trace (damaged ones too); returns its id. Renamed away first, then deleted."""
    root = Path(root)
    folder = resolve(root, ref)
    if folder.parent.resolve() != root.resolve():
        raise VisualizerError(f"traces rm {ref}: not a trace of the store {root} (give a trace id)")
    gone = Path(tempfile.mkdtemp(prefix=".rm-", dir=root))
    os.rename(folder, gone / folder.name)
    shutil.rmtree(gone, ignore_errors=True)
    return folder.name


def stored_size(manifest: dict) -> int:
    return sum(r["bytes"] for r in manifest["files"].values())


def summarize(scan_result: Scan) -> dict:
    """Counts by model (checkpoint hash), tag and category; sizes; mean probe loss per model."""
    models: dict[str, dict] = {}
    tags: dict[str, int] = {}
    categories: dict[str, int] = {}
    for m in scan_result.manifests:
        key = m["model"]["checkpoint_sha256"]
        entry = models.setdefault(key, {"name": m["model"]["name"], "checkpoint_sha256": key,
                                        "iter_num": m["model"].get("iter_num"), "traces": 0, "probes": set(),
                                        "losses": [], "bytes": 0, "paths": set()})
        entry["traces"] += 1
        entry["probes"].add(m["probe"])
        entry["paths"].add(m["model"]["path"])
        entry["bytes"] += stored_size(m)
        loss = m["summary"].get("probe_loss_nats")
        if isinstance(loss, (int, float)):
            entry["losses"].append(loss)
        for tag in m["tags"]:
            tags[tag] = tags.get(tag, 0) + 1
        if m["category"]:
            categories[m["category"]] = categories.get(m["category"], 0) + 1
    rows = []
    for entry in sorted(models.values(), key=lambda e: (e["name"], e["iter_num"] or 0, e["checkpoint_sha256"])):
        losses = entry.pop("losses")
        rows.append({**entry, "probes": len(entry["probes"]), "paths": sorted(entry["paths"]),
                     "mean_probe_loss_nats": sum(losses) / len(losses) if losses else None})
    return {
        "traces": len(scan_result.manifests),
        "damaged": len(scan_result.damaged),
        "bytes": sum(stored_size(m) for m in scan_result.manifests),
        "models": rows,
        "tags": dict(sorted(tags.items())),
        "categories": dict(sorted(categories.items())),
    }
