"""The trace store: every run kept as a folder `<root>/<id>/`, found again without the model.

A trace folder holds the run's data files exactly as the report wrote them (`trace.json`,
`activations.safetensors`, and `report_data.json`, `analysis.json`, `attribution.json` when the run
made them) plus `manifest.json`: the id, the creation time (the only clock anywhere in a trace),
the checkpoint's path and sha256, the probe and its tokens, tags and category, summary figures,
which tensor groups were kept and at which dtype, and each file's size and sha256 (so a damaged
file is caught before it is read).

Ids: the first 10 hex digits of sha256 over (checkpoint sha256, probe text, token ids, kept
groups, dtype). The same run stored twice gets `<hash>-2`, `-3`, ... (every run is a trace; the
creation time tells them apart). Ids are referred to in full or by a unique prefix.

Writing is atomic: a `.tmp-*` folder inside the root, renamed to its id when complete; readers
skip dot-folders. Root: `--store DIR`, else TRACE_STORE from the environment or `.env`, else
`traces/`.

What this module does not do: import torch at module level (`traces list` reads manifests only
and must start fast), render pages (report.py, site.py), or compute anything from tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from visualizer.artefacts.layout import ACTIVATIONS, ANALYSIS, DATA_FILES, REQUIRED_FILES, TRACE
from visualizer.errors import VisualizerError
from visualizer.readfile import read_json

DEFAULT_ROOT = Path("traces")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DTYPES = ("float32", "float16")
ID_DIGITS = 10
ID_PATTERN = re.compile(r"[0-9a-f]{%d}(-[0-9]+)?" % ID_DIGITS)

# tensor groups by capture name (the names are the same for every family)
GROUPS = {
    "embed": "token and position embeddings: hook_embed, hook_pos_embed",
    "resid": "residual stream: blocks.{l}.hook_resid_pre|hook_resid_mid|hook_resid_post",
    "norm": "normalised inputs: blocks.{l}.ln1|ln2.hook_normalized, ln_final.hook_normalized",
    "qkv": "queries, keys, values: blocks.{l}.attn.hook_q|hook_k|hook_v",
    "attn": "attention: blocks.{l}.attn.hook_attn_scores|hook_pattern|hook_z, blocks.{l}.hook_attn_out",
    "mlp": "MLP: blocks.{l}.mlp.hook_pre|hook_post, blocks.{l}.hook_mlp_out",
    "logits": "logits",
    "other": "any capture name not listed above",
}


def tensor_group(name: str) -> str:
    """The --keep group a capture name belongs to."""
    last = name.rsplit(".", 1)[-1]
    if name in ("hook_embed", "hook_pos_embed"):
        return "embed"
    if name == "logits":
        return "logits"
    if last in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post"):
        return "resid"
    if last == "hook_normalized":
        return "norm"
    if ".attn." in name and last in ("hook_q", "hook_k", "hook_v"):
        return "qkv"
    if (".attn." in name and last in ("hook_attn_scores", "hook_pattern", "hook_z")) or last == "hook_attn_out":
        return "attn"
    if ".mlp." in name or last == "hook_mlp_out":
        return "mlp"
    return "other"


@dataclass(frozen=True)
class StoreOptions:
    root: Path = DEFAULT_ROOT
    tags: tuple[str, ...] = ()
    category: str | None = None
    dtype: str = "float32"  # of the stored activations: float32 (as captured) or float16
    keep: tuple[str, ...] = ()  # tensor groups kept; () keeps every group


def parse_keep(values: list[str] | None) -> tuple[str, ...]:
    """--keep attn --keep mlp, or --keep attn,mlp -> ('attn', 'mlp'); unknown groups are errors."""
    groups: list[str] = []
    for value in values or []:
        for group in (g.strip() for g in value.split(",")):
            if group not in GROUPS:
                raise VisualizerError(f"--keep {group!r}: unknown tensor group (choose from {', '.join(GROUPS)})")
            if group not in groups:
                groups.append(group)
    return tuple(sorted(groups))


# ----------------------------------------------------------------------------------------- writing


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
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
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
        card = trace.get("model", {})
        manifest = {
            "format": MANIFEST_FORMAT,
            "id": None,
            "created": created or now_utc(),
            "model": {
                "name": trace.get("model_name"),
                "family": trace.get("family"),
                "path": str(Path(checkpoint).resolve()),
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
                "tensors": len(names),
            },
            "files": files,
        }
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
            try:
                os.rename(tmp, target)
            except OSError:
                continue  # another run took this id between the check and the rename
            return manifest
        raise VisualizerError(f"--store {root}: no free id for {base}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ----------------------------------------------------------------------------------------- reading


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


def verify_files(folder: Path, manifest: dict) -> None:
    """Every file the manifest lists exists with its recorded size and sha256."""
    trace_id = manifest["id"]
    for name, record in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            raise VisualizerError(f"trace {trace_id}: {name}: missing")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise VisualizerError(f"trace {trace_id}: {name}: {size} bytes, the manifest says {record['bytes']} "
                                  f"(truncated or changed)")
        if file_record(path)["sha256"] != record["sha256"]:
            raise VisualizerError(f"trace {trace_id}: {name}: content changed since it was stored (sha256 differs)")


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

