"""Headless Chromium for the page tests (Debian's /usr/bin/chromium driven by Playwright; no browser
download): launch arguments and `Page`, a page opened from file:// that records console messages,
errors, requests and dialogs.

What this module does not do: test anything itself (test_page.py, test_views.py do).
"""

from __future__ import annotations

import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Page:
    """A page opened from file://, recording console messages, errors, requests and dialogs."""

    def __init__(self, browser, folder: Path, width: int = 1300, height: int = 900, artifacts: Path | None = None):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.artifacts = artifacts
        self.console, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        start = time.perf_counter()
        self.page.goto((folder / "index.html").resolve().as_uri(), wait_until="load")
        self.load_s = time.perf_counter() - start

    def open(self, selector: str) -> float:
        """Open a <details> by clicking its summary; seconds until its view is drawn."""
        start = time.perf_counter()
        self.page.locator(f"{selector} > summary").click()
        self.page.wait_for_function(f"document.querySelector('{selector}').getAttribute('data-state') === 'ready'",
                                    timeout=30_000)
        return time.perf_counter() - start

    def js(self, code, arg=None):
        return self.page.evaluate(code, arg)

    def errors(self):
        return [m for m in self.console if m[0] in ("error", "pageerror")]

    def foreign_requests(self):
        return [u for u in self.requests if not u.startswith(("file://", "data:"))]

    def shot(self, name: str, selector: str | None = None):
        path = self.artifacts / f"{name}.png"
        if selector:
            self.page.locator(selector).screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=True)


def chromium():
    """A module fixture's body: yields a launched headless Chromium, or skips the module when
    Chromium or Playwright is missing."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()
