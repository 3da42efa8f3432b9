"""Activation patching and ablation ("what if"): activations of one run written into another, or
replaced by zero or a mean, through hooks that replace what the model's own modules compute.

- hooks.py: replacing hooks on the modules capture reads (the adapter's hook specs), the prefix shortcut;
- engine.py: many patched runs per batched forward, each starting at its patched layer;
- metric.py: the normalised logit difference, --answer / --wrong;
- sweeps.py: the TransformerLens-style sweeps and their identities;
- ablation.py: zero and mean ablation of heads and MLPs, attention-edge knock-outs;
- record.py: one run end to end as patching.json's record.

What this package does not do: re-implement a model (every run is the family's own forward), parse
flags, or write files.
"""
