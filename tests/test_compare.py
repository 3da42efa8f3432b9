"""compare A B: zeros against itself, real differences between checkpoints, aligned prefixes
between probes, refusal of incomparable traces, and a page that works offline."""

from __future__ import annotations

import json
import shutil

import pytest

import visualizer.cli as cli
import visualizer.store.compare as compare
import visualizer.store.traces as store
from visualizer.errors import VisualizerError

from tests.support.nanogpt import char_vocab
from tests.support.store import checkpoint, run

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    root = base / "traces"
    early, late = checkpoint(base / "early", seed=1), checkpoint(base / "late", seed=2)
    wide = checkpoint(base / "wide", seed=1, n_embd=48)
    deep = checkpoint(base / "deep", seed=3, n_layer=3)
    words = checkpoint(base / "words", seed=1, vocab=char_vocab("But soft, what light!"))  # another vocabulary
    ids = {}
    for name, ckpt, probe in (("early", early, "But soft, what light"), ("late", late, "But soft, what light"),
                              ("probe2", early, "But soft, who goes there"), ("wide", wide, "But soft, what light"),
                              ("deep", deep, "But soft, what light"), ("words", words, "But soft, what light")):
        assert run(ckpt, base / f"report-{name}", root, "--ig-steps", "0", "--tag", name, probe=probe) == 0
        ids[name] = next(m["id"] for m in store.scan(root).manifests if name in m["tags"])
    return root, ids


def side(root, ref):
    return compare.Side(store.open_trace(root, ref))


def test_a_trace_compared_with_itself_is_all_zeros(traces):
    root, ids = traces
    a = side(root, ids["early"])
    result = compare.compare(a, side(root, ids["early"]))
    assert result["mode"] == "same probe" and result["differing_positions"] == []
    assert all(d == 0.0 for r in result["residual"] for d in r["distance"])
    assert all(r["mean_cosine"] == 1.0 for r in result["residual"])
    assert all(v == 0.0 for row in result["attention_jsd"] for v in row)
    assert all(v == 0.0 for v in result["next_token"]["kl_bits"]) and result["next_token"]["top1_agreement"] == 1.0


def test_two_checkpoints_on_one_probe_differ(traces):
    root, ids = traces
    result = compare.compare(side(root, ids["early"]), side(root, ids["late"]))
    assert result["positions"] == len("But soft, what light") and result["mode"] == "same probe"
    assert all(r["mean_distance"] > 0 for r in result["residual"])
    assert all(v > 0 for row in result["attention_jsd"] for v in row)
    assert result["next_token"]["mean_kl_bits"] > 0
    assert all(0 <= v <= 1 for row in result["attention_jsd"] for v in row)  # JSD in bits is at most 1


def test_two_probes_are_aligned_on_the_shorter_prefix(traces):
    root, ids = traces
    result = compare.compare(side(root, ids["early"]), side(root, ids["probe2"]))
    n = len("But soft, what light")
    assert result["mode"] == "different probes" and result["positions"] == n
    first_diff = len("But soft, w") + 1  # 'what' vs 'who ': 'h' matches, then 'a' vs 'o'
    assert result["differing_positions"][0] == first_diff
    # causal: before the first different token, both runs computed the same thing
    assert all(d == 0.0 for r in result["residual"] for d in r["distance"][:first_diff])
    assert result["next_token"]["kl_bits"][:first_diff] == [0.0] * first_diff
    assert any("positions 0.." in note for note in result["notes"])


def test_incomparable_traces_are_refused(traces, capsys):
    root, ids = traces
    with pytest.raises(VisualizerError, match="vocab_size differs"):
        compare.compare(side(root, ids["early"]), side(root, ids["words"]))
    code = cli.main(["compare", ids["early"], ids["words"], "--out", str(root.parent / "x"), "--store", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: compare") and "vocab_size" in err
    assert not (root.parent / "x").exists()


@pytest.mark.parametrize("other, key", [("wide", "d_model"), ("deep", "n_layer")])
def test_models_of_different_shapes_compare_their_outputs_only(traces, tmp_path, other, key):
    root, ids = traces
    a, b = side(root, ids["early"]), side(root, ids[other])
    result = compare.compare(a, b)
    assert result["residual"] is None and result["attention_jsd"] is None
    assert any(note.startswith("different shapes (") and key in note for note in result["notes"])
    assert not any("does not hold" in note for note in result["notes"])
    n = result["positions"]
    # the outputs, position by position, from each model's own logits
    expected = compare.kl_bits(compare.log_probs(a.tensors["logits"][:n].double()),
                               compare.log_probs(b.tensors["logits"][:n].double()))
    assert result["next_token"]["kl_bits"] == expected.tolist() and max(expected.tolist()) > 0
    code = cli.main(["compare", ids["early"], ids[other], "--out", str(tmp_path / "page"), "--store", str(root)])
    assert code == 0
    page = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert "different shapes" in page and not (tmp_path / "page" / "data").exists()


def test_unrelated_probes_say_what_their_numbers_mean(traces):
    root, ids = traces
    result = compare.compare(side(root, ids["early"]), side(root, ids["probe2"]))
    assert any("hold different tokens" in note and "like with like" in note for note in result["notes"])


def test_compare_page_rewrites_only_its_own_folder(traces, tmp_path, capsys):
    root, ids = traces
    out = tmp_path / "cmp"
    for _ in range(2):  # the second run replaces the first comparison
        assert cli.main(["compare", ids["early"], ids["late"], "--out", str(out), "--store", str(root)]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert data["a"]["id"] == ids["early"] and data["b"]["id"] == ids["late"]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["compare-layer-0.js", "compare-layer-1.js"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert cli.main(["compare", ids["early"], ids["late"], "--out", str(other), "--store", str(root)]) == 2
    assert (other / "keep.txt").read_text() == "mine"
    capsys.readouterr()


def test_compare_page_in_a_browser(traces, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium") and not __import__("os").path.exists("/usr/bin/chromium"):
        pytest.skip("no chromium")
    root, ids = traces
    out = tmp_path / "cmp"
    assert cli.main(["compare", ids["early"], ids["late"], "--out", str(out), "--store", str(root)]) == 0
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page()
        problems, requests = [], []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "index.html").as_uri())
        page.locator("td.cell[data-layer='1'][data-head='1']").click()
        page.wait_for_function("window.__compareLayers && window.__compareLayers[1]")
        assert page.locator("#hv-layer").input_value() == "1" and page.locator("#hv-head").input_value() == "1"
        box = page.locator("#hv-a").bounding_box()
        page.mouse.move(box["x"] + 2, box["y"] + box["height"] - 2)  # bottom-left cell: last query, first key
        info = page.locator("#hv-info").inner_text()
        assert "query" in info and "A 0." in info and "B 0." in info
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        browser.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests)
