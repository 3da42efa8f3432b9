"""Size and speed of a report page for a large model: builds a random GPT-2-small-shaped nanoGPT
checkpoint (12 layers, 12 heads, d_model 768 by default), runs the real pipeline on a probe of
--tokens tokens, renders the page (no figures: plots.py's PNGs come on top), then prints the size
of index.html, of data/, of the site without activations.safetensors, and how long headless
Chromium takes to load the page from file:// and to open a layer.

    python scripts/bench_site.py --out /tmp/bench [--tokens 1024] [--layers 12] [--heads 12] [--width 768]

Takes about a minute and several GB of memory and disk (activations.safetensors alone is
n_layer x n_head x T x T x 8 bytes): not part of the test-suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.site import CHAR_VOCAB, make_report, site_files  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def open_times(folder: Path, layers: list[int]) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        page.goto((folder / "index.html").resolve().as_uri(), wait_until="load")
        out["load_s"] = round(time.perf_counter() - start, 3)
        for layer in layers:
            start = time.perf_counter()
            page.locator(f"#layer-{layer} > summary").click()
            page.wait_for_function(f"document.querySelector('#layer-{layer}').getAttribute('data-state') === 'ready'",
                                   timeout=60_000)
            out[f"layer_{layer}_open_s"] = round(time.perf_counter() - start, 3)
        for section in ("attention", "lens"):
            start = time.perf_counter()
            page.locator(f"#{section} > summary").click()
            page.wait_for_function(f"document.querySelector('#{section}').getAttribute('data-state') === 'ready'",
                                   timeout=60_000)
            out[f"{section}_open_s"] = round(time.perf_counter() - start, 3)
        out["browser_ms"] = page.evaluate("window.__vizTiming")
        out["console_errors"] = errors
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    args = ap.parse_args()
    text = ("ROMEO: But soft, what light through yonder window breaks? It is the east. " * 40)[: args.tokens]
    start = time.perf_counter()
    make_report(args.out, text, CHAR_VOCAB, n_layer=args.layers, n_head=args.heads, n_embd=args.width,
                block_size=args.tokens)
    built = time.perf_counter() - start
    files = site_files(args.out)
    report = {
        "pipeline_s": round(built, 1),
        "index_html_bytes": len(files["index.html"]),
        "data_bytes": sum(len(b) for name, b in files.items() if name.startswith("data/")),
        "site_bytes_without_activations": sum(len(b) for b in files.values()),
        "largest_data_files": sorted(((len(b), n) for n, b in files.items() if n.startswith("data/")), reverse=True)[:4],
        **open_times(args.out, [0, args.layers - 1]),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
