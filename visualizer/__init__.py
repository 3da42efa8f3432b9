"""visualizer: open a trained GPT and show, as a static site, what happens inside it for a probe."""

__version__ = "0.1.0"
