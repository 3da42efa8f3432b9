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
skip dot-folders. The store may also live on an fsspec URL (`sweep --store file://...|memory://|s3://`):
workers stage files under a dot-prefix, the driver alone assigns ids and writes each manifest LAST
(object stores have no rename), and `scan_store` lists only folders whose manifest is written. Root: `--store DIR`, else TRACE_STORE from the environment or `.env`, else
`traces/`.

What this module does not do: import torch at module level (`traces list` reads manifests only
and must start fast), render pages (report.py, site.py), or compute anything from tensors.
"""

from __future__ import annotations

# the store's public API, from the modules that implement it
from visualizer.store.options import (  # noqa: F401
    DEFAULT_ROOT, DTYPES, GROUPS, StoreOptions, is_local, parse_keep, store_filesystem, tensor_group,
)
from visualizer.store.reader import (  # noqa: F401
    ID_PATTERN, Scan, StoredTrace, check_manifest, fs_sha256, matches, open_trace, read_manifest, remove, resolve, scan,
    scan_store, stored_size, summarize, trace_folders, verify_files,
)
from visualizer.store.writer import (  # noqa: F401
    ID_DIGITS, MANIFEST, MANIFEST_FORMAT, base_id, build_manifest, check_root, commit_staged, copy_activations, file_record,
    now_utc, remove_dead_staging, save, stage_files, staging_prefix, summary_figures,
)
