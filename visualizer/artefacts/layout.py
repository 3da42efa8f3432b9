"""The report folder as a format: the name of every data file, written down once.

A report folder holds the run's data files (below), the page (`index.html`, `data/`, `assets/`,
`figures/`, `.nojekyll`). A stored trace holds the same data files plus the store's manifest.

What this module does not do: read or write anything (artefacts/run_files.py and folder.py do).
"""

TRACE = "trace.json"  # what was run and what it showed
ACTIVATIONS = "activations.safetensors"  # every captured tensor, TransformerLens names
REPORT_DATA = "report_data.json"  # what the page shows that was computed with the model
ANALYSIS = "analysis.json"  # head labels, statistics, lens convergence (pure functions of the files)
ATTRIBUTION = "attribution.json"  # which input tokens drove the prediction

REQUIRED_FILES = (TRACE, ACTIVATIONS)
OPTIONAL_FILES = (REPORT_DATA, ANALYSIS, ATTRIBUTION)
DATA_FILES = REQUIRED_FILES + OPTIONAL_FILES

GENERATION = "generation.json"  # a generation's record
COMPARE = "compare.json"  # a comparison's record
SWEEP = "sweep.json"  # a sweep's folded statistics
PATCHING = "patching.json"  # an activation patching run's record
PATCH_RUNS = ("clean", "corrupt")  # a patch folder's subfolders: each run's report (corrupt absent: ablation only)
REPORT_MARKER = TRACE  # the record that names a report folder (the site index lists folders holding it)

# Written last into every folder the tool writes: the tool, the kind of folder, every file in it.
# Only a folder holding it (and nothing it does not list) is ever replaced.
OWNER_FILE = ".visualizer-folder.json"
# At a site root (visualizations/): the files the tool wrote there (index.html, assets/, .nojekyll).
SITE_OWNER_FILE = ".visualizer-site.json"

# Folders written before the owner file existed: the names each kind holds, and its record file.
_PAGE = ("index.html", ".nojekyll", "assets/*")
KIND_FILES = {
    "report": (*_PAGE, *DATA_FILES, "data/*.js", "figures/*.png"),
    "generation": (*_PAGE, GENERATION, "output.txt", "snapshots/*.png", "prompt/*"),
    "compare": (*_PAGE, COMPARE, "data/*.js"),
    "sweep": (*_PAGE, SWEEP, "data/*.js", "reports/*", "compare/*"),  # reports/, compare/: rendered later on demand
    "patch": (*_PAGE, PATCHING, *(f"{run}/*" for run in PATCH_RUNS)),
}
KIND_MARKERS = {"report": TRACE, "generation": GENERATION, "compare": COMPARE, "sweep": SWEEP, "patch": PATCHING}
