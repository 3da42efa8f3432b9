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

REPORT_MARKER = TRACE  # a folder holding this is a report the tool may replace
GENERATION_MARKER = "generation.json"  # ... a generation
COMPARE_MARKER = "compare.json"  # ... a comparison
