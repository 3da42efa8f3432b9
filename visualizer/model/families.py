"""The model families this tool opens, by name (torch-free, so the command line can list them).

What this module does not do: detect or load a family (registry.py).
"""

FAMILIES = ("nanogpt", "nanochat", "hf")
