"""Activation patching and ablation (`python -m visualizer patch`), checked three ways:

- against TransformerLens 4.3's own patching functions and hooks, on a tiny Hugging Face GPT-2
  folder booted with `TransformerBridge.boot_transformers(folder)` in compatibility mode without
  weight processing (standard hook names, offline): every sweep, zero and mean ablation of every head
  and MLP (answer logit and loss), attention-edge knock-outs;
- against a plain re-run of the model's own forward with one activation replaced by a hook written
  here (nanoGPT, nanochat both architectures, a Llama folder), for every cell of every sweep;
- on a nanoGPT trained here to copy (a known circuit): the maps single out the copying head.
Plus the command line's refusals, the folder kind, the page (escaping, re-render from patching.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from tests.support.circuit import HALF, REPLACEMENT, SEQUENCE, copy_probes, make_copy_model
from tests.support.cli import run_cli
from tests.support.hf import make_gpt2_folder, make_llama_folder
from tests.support.nanochat import make_nanochat
from tests.support.nanogpt import HOSTILE_VOCAB, make_checkpoint
from visualizer.analysis.interventions.ablation import parse_knockout
from visualizer.analysis.interventions.hooks import spec_of
from visualizer.analysis.interventions.record import PatchOptions, compute_patching, planned_runs
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model
from visualizer.site.patching import render_patching_file

TOL = 1e-4


def widest_tokens(loaded, clean_ids, corrupt_ids) -> tuple[str, str]:
    """--answer and --wrong (as #ID) with the largest clean - corrupt logit-difference gap, so the
    normalised metric of a random model is not a ratio of two tiny numbers."""
    gap = capture(loaded, clean_ids)["logits"][-1] - capture(loaded, corrupt_ids)["logits"][-1]
    return f"#{int(gap.argmax())}", f"#{int(gap.argmin())}"


def patch_record(loaded, clean_text, corrupt_text, knockouts=(), data=()):
    clean, corrupt = prepare_probe(loaded, clean_text), prepare_probe(loaded, corrupt_text)
    assert len(clean.ids) == len(corrupt.ids)
    answer, wrong = widest_tokens(loaded, clean.ids, corrupt.ids)
    kos = [parse_knockout(k, loaded, len(clean.ids)) for k in knockouts]
    record = compute_patching(loaded, clean, corrupt, PatchOptions(answer=answer, wrong=wrong),
                              [prepare_probe(loaded, t) for t in data], kos)
    return record, clean.ids, corrupt.ids


# --- TransformerLens --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    pytest.importorskip("transformer_lens")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformer_lens.model_bridge import TransformerBridge

    folder = make_gpt2_folder(tmp_path_factory.mktemp("gpt2") / "gpt2", n_layer=2, n_head=4, n_embd=32, n_positions=64)
    bridge = TransformerBridge.boot_transformers(str(folder), device="cpu")
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    bridge.eval()
    return load_model(folder, None), bridge


def test_every_sweep_ablation_and_knockout_match_transformer_lens(gpt2):
    from transformer_lens import patching

    loaded, bridge = gpt2
    record, clean_ids, corrupt_ids = patch_record(loaded, "the fox and the dog", "the dog and the fox",
                                                  knockouts=["1.2:-1:1", "0.1:3:0"])
    assert record["verification_passed"]
    answer, wrong = record["metric"]["answer"]["id"], record["metric"]["wrong"]["id"]
    clean, corrupt = torch.tensor([clean_ids]), torch.tensor([corrupt_ids])
    with torch.no_grad():
        clean_logits, cache = bridge.run_with_cache(clean)
        corrupt_logits = bridge(corrupt)
        ld_clean = float(clean_logits[0, -1, answer] - clean_logits[0, -1, wrong])
        ld_corrupt = float(corrupt_logits[0, -1, answer] - corrupt_logits[0, -1, wrong])
        assert abs(ld_clean - record["metric"]["clean_logit_diff"]) < TOL
        assert abs(ld_corrupt - record["metric"]["corrupt_logit_diff"]) < TOL

        def metric(logits):
            return (logits[0, -1, answer] - logits[0, -1, wrong] - ld_corrupt) / (ld_clean - ld_corrupt)

        theirs = {
            "resid_pre": patching.get_act_patch_resid_pre(bridge, corrupt, cache, metric),
            "attn_out": patching.get_act_patch_attn_out(bridge, corrupt, cache, metric),
            "mlp_out": patching.get_act_patch_mlp_out(bridge, corrupt, cache, metric),
            "head_out": patching.get_act_patch_attn_head_out_all_pos(bridge, corrupt, cache, metric),
            # TransformerLens orders it [layer, position, head]; ours is [layer, head, position]
            "head_out_by_pos": patching.get_act_patch_attn_head_out_by_pos(bridge, corrupt, cache, metric).permute(0, 2, 1),
            "pattern": patching.get_act_patch_attn_head_pattern_all_pos(bridge, corrupt, cache, metric),
        }
    for name, values in theirs.items():
        ours = torch.tensor(record["sweeps"][name]["values"], dtype=torch.float64)
        assert ours.shape == values.shape, name
        assert (ours - values.double()).abs().max() < TOL, name
    assert theirs["resid_pre"].abs().max() > 0.5  # the maps are not all zero: the comparison means something

    ablation = record["ablation"]
    with torch.no_grad():
        assert abs(float(bridge(clean, return_type="loss")) - ablation["baseline"]["loss"]) < TOL
        for row in ablation["rows"]:
            layer, head, kind = row["layer"], row["head"], row["kind"]
            if head is None:
                name = f"blocks.{layer}.hook_mlp_out"

                def hook(x, hook, kind=kind):
                    return torch.zeros_like(x) if kind == "zero" else x.mean(1, keepdim=True).expand_as(x).clone()
            else:
                name = f"blocks.{layer}.attn.hook_z"

                def hook(x, hook, head=head, kind=kind):
                    x = x.clone()
                    x[:, :, head] = 0 if kind == "zero" else x[:, :, head].mean(1, keepdim=True)
                    return x
            logits = bridge.run_with_hooks(clean, fwd_hooks=[(name, hook)])
            loss = bridge.run_with_hooks(clean, fwd_hooks=[(name, hook)], return_type="loss")
            assert abs(float(logits[0, -1, answer]) - row["target_logit"]) < TOL, row
            assert abs(float(loss) - row["loss"]) < TOL, row
        assert len(ablation["knockouts"]) == 2
        for row in ablation["knockouts"]:
            def knock(x, hook, row=row):
                x = x.clone()
                x[:, row["head"], row["query"], row["key"]] = float("-inf")
                return x
            hooks = [(f"blocks.{row['layer']}.attn.hook_attn_scores", knock)]
            logits = bridge.run_with_hooks(clean, fwd_hooks=hooks)
            loss = bridge.run_with_hooks(clean, fwd_hooks=hooks, return_type="loss")
            assert abs(float(logits[0, -1, answer]) - row["target_logit"]) < TOL, row
            assert abs(float(loss) - row["loss"]) < TOL, row
            assert row["weight"] == pytest.approx(float(cache[f"blocks.{row['layer']}.attn.hook_pattern"][0, row["head"], row["query"], row["key"]]), abs=1e-6)


def test_mean_ablation_over_a_dataset_and_ablation_alone_match_transformer_lens(gpt2):
    """--ablation-data: each head's z and each MLP's output replaced by its mean over every position of
    the data probes (TransformerLens: the means from run_with_cache of each probe, written by hooks);
    and the same ablation with no corrupt probe at all."""
    loaded, bridge = gpt2
    data = ["the cat sat on the mat", "a dog", "and the fox ran far away from the dog"]
    record, clean_ids, _ = patch_record(loaded, "the fox and the dog", "the dog and the fox", data=data)
    alone = compute_patching(loaded, prepare_probe(loaded, "the fox and the dog"), None,
                             PatchOptions(answer=f"#{record['metric']['answer']['id']}"),
                             [prepare_probe(loaded, t) for t in data])
    assert alone["sweeps"] == {} and alone["corrupt"] is None and alone["verification_passed"]
    assert alone["ablation"]["rows"] == record["ablation"]["rows"]  # the ablation does not depend on the corrupt probe
    assert record["ablation"]["data_probes"] == 3
    answer, n_layer = record["metric"]["answer"]["id"], loaded.dims.n_layer
    clean = torch.tensor([clean_ids])
    with torch.no_grad():
        caches = [bridge.run_with_cache(torch.tensor([prepare_probe(loaded, t).ids]))[1] for t in data]
        means = {name: torch.cat([c[name][0] for c in caches]).mean(0)  # over every position of every probe
                 for layer in range(n_layer) for name in (f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out")}
        checked = 0
        for row in record["ablation"]["rows"]:
            if row["kind"] != "mean":
                continue
            layer, head = row["layer"], row["head"]
            name = f"blocks.{layer}.hook_mlp_out" if head is None else f"blocks.{layer}.attn.hook_z"

            def hook(x, hook, name=name, head=head):
                x = x.clone()
                if head is None:
                    x[:] = means[name]
                else:
                    x[:, :, head] = means[name][head]
                return x
            logits = bridge.run_with_hooks(clean, fwd_hooks=[(name, hook)])
            loss = bridge.run_with_hooks(clean, fwd_hooks=[(name, hook)], return_type="loss")
            assert abs(float(logits[0, -1, answer]) - row["target_logit"]) < TOL, row
            assert abs(float(loss) - row["loss"]) < TOL, row
            checked += 1
    assert checked == n_layer * (loaded.dims.n_head + 1)


# --- a plain re-run with the activation replaced ------------------------------------------------------


def plain_rerun(loaded, ids, name, edit):
    """The family's own unhooked forward of `ids`, with `edit(tensor[0])` applied in place to the
    activation `name` where capture reads it; logits at the last position."""
    spec, _ = spec_of(loaded.adapter.hook_specs(loaded.dims))[name]
    module = loaded.model.get_submodule(spec.module)

    def replaced(t):
        t = t.clone()
        edit(t[0])
        return t

    if spec.side == "input":
        handle = module.register_forward_pre_hook(lambda m, a: (*a[:spec.arg], replaced(a[spec.arg]), *a[spec.arg + 1:]))
    else:
        handle = module.register_forward_hook(lambda m, a, out: replaced(out))
    try:
        with torch.no_grad():
            return loaded.adapter.plain_forward(loaded, torch.tensor(ids, device=loaded.device))[-1]
    finally:
        handle.remove()


def expected_maps(loaded, record, clean_ids, corrupt_ids) -> dict[str, torch.Tensor]:
    """Every sweep, cell by cell, as plain re-runs."""
    dims, T = loaded.dims, len(clean_ids)
    nh, dh = dims.n_head, dims.d_head
    clean, corrupt = capture(loaded, clean_ids), capture(loaded, corrupt_ids)
    m = record["metric"]
    a, w, ldc, ldk = m["answer"]["id"], m["wrong"]["id"], m["clean_logit_diff"], m["corrupt_logit_diff"]
    group = dims.n_head // dims.n_kv_head

    def metric(logits):
        return (float(logits[a] - logits[w]) - ldk) / (ldc - ldk)

    def at(name, pos):
        def edit(t):
            t[pos] = clean[name][pos]
        return edit

    def head(layer, h, pos=None, source=None):
        z = clean[f"blocks.{layer}.attn.hook_z"] if source is None else source

        def edit(t):  # the output projection reads the heads side by side
            view = t.view(T, nh, dh)
            if pos is None:
                view[:, h] = z[:, h]
            else:
                view[pos, h] = z[pos, h]
        return edit

    maps = {}
    for sweep in ("resid_pre", "attn_out", "mlp_out"):
        maps[sweep] = torch.tensor([[metric(plain_rerun(loaded, corrupt_ids, f"blocks.{l}.hook_{sweep}", at(f"blocks.{l}.hook_{sweep}", p)))
                                     for p in range(T)] for l in range(dims.n_layer)])
    z_name = "blocks.{}.attn.hook_z"
    maps["head_out"] = torch.tensor([[metric(plain_rerun(loaded, corrupt_ids, z_name.format(l), head(l, h)))
                                      for h in range(nh)] for l in range(dims.n_layer)])
    maps["head_out_by_pos"] = torch.tensor([[[metric(plain_rerun(loaded, corrupt_ids, z_name.format(l), head(l, h, p)))
                                              for p in range(T)] for h in range(nh)] for l in range(dims.n_layer)])
    rows = []
    for l in range(dims.n_layer):
        pattern, v = clean[f"blocks.{l}.attn.hook_pattern"], corrupt[f"blocks.{l}.attn.hook_v"]  # [nh, T, T], [T, nkv, dh]
        z = torch.stack([pattern[h] @ v[:, h // group] for h in range(nh)], 1)  # [T, nh, dh]
        rows.append([metric(plain_rerun(loaded, corrupt_ids, z_name.format(l), head(l, h, source=z))) for h in range(nh)])
    maps["pattern"] = torch.tensor(rows)
    return maps


FAMILIES = ("nanogpt", "nanochat-current", "nanochat-original", "llama")


def family_model(family: str, root: Path):
    if family == "nanogpt":
        ckpt, meta = make_checkpoint(root / "m", n_layer=2, n_head=2, n_embd=32, block_size=32)
        return load_model(ckpt, meta), ("abcd e", "abxd e")
    if family.startswith("nanochat"):
        make_nanochat(root / "m", architecture=family.split("-")[1], n_layer=3)
        return load_model(root / "m", None, family="nanochat"), ("the cat", "the dog")
    return load_model(make_llama_folder(root / "m", n_layer=2), None), ("the fox and the dog", "the dog and the fox")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_cell_equals_a_plain_rerun_with_the_activation_replaced(family, tmp_path):
    loaded, (clean_text, corrupt_text) = family_model(family, tmp_path)
    record, clean_ids, corrupt_ids = patch_record(loaded, clean_text, corrupt_text)
    assert record["verification_passed"], {k: v for k, v in record["sweeps"].items()}
    for name, values in expected_maps(loaded, record, clean_ids, corrupt_ids).items():
        ours = torch.tensor(record["sweeps"][name]["values"], dtype=torch.float64)
        assert (ours - values.double()).abs().max() < TOL, name
    # the progress bar's total is the number of runs made
    assert record["runs"] == planned_runs(loaded, len(clean_ids), PatchOptions(), 0)
    # the runs really were batched and started late: fewer forwards than runs
    sweep = record["sweeps"]["resid_pre"]
    assert sweep["forwards"] < sweep["runs"] and sweep["runs"] == loaded.dims.n_layer * (len(clean_ids) + 2)
    # and the model was left as it was: no hook, no block forward replaced
    assert all(not m._forward_hooks and not m._forward_pre_hooks and "forward" not in vars(m) for m in loaded.model.modules())


@pytest.mark.parametrize("family", ("nanogpt", "nanochat-current"))
def test_ablation_and_knockout_equal_a_plain_rerun(family, tmp_path):
    loaded, (clean_text, corrupt_text) = family_model(family, tmp_path)
    T = len(prepare_probe(loaded, clean_text).ids)
    record, clean_ids, _ = patch_record(loaded, clean_text, corrupt_text, knockouts=[f"1.1:-1:{T - 3}"])
    clean = capture(loaded, clean_ids)
    answer, nh, dh = record["metric"]["answer"]["id"], loaded.dims.n_head, loaded.dims.d_head
    rows = {(r["component"], r["kind"]): r for r in record["ablation"]["rows"]}
    z = clean["blocks.1.attn.hook_z"]  # [T, nh, dh]

    def zero_head(t):
        t.view(T, nh, dh)[:, 1] = 0

    def mean_head(t):
        t.view(T, nh, dh)[:, 1] = z[:, 1].mean(0)

    def mean_mlp(t):
        t[:] = clean["blocks.0.hook_mlp_out"].mean(0)

    for key, name, edit in ((("L1.H1", "zero"), "blocks.1.attn.hook_z", zero_head),
                            (("L1.H1", "mean"), "blocks.1.attn.hook_z", mean_head),
                            (("L0.mlp", "mean"), "blocks.0.hook_mlp_out", mean_mlp)):
        assert abs(float(plain_rerun(loaded, clean_ids, name, edit)[answer]) - rows[key]["target_logit"]) < TOL, key
    # the knock-out: softmax of the scores with one key masked, then @ v, written into the head's z
    q, k, v = (clean[f"blocks.1.attn.hook_{n}"] for n in "qkv")
    group = loaded.dims.n_head // loaded.dims.n_kv_head
    scores = (q[:, 1] @ k[:, 1 // group].T) * loaded.adapter.attention_scale(loaded.dims, 1)  # [T, T]
    scores = scores.masked_fill(~loaded.adapter.attention_mask(1, T, torch.device("cpu")), float("-inf"))
    scores[T - 1, T - 3] = float("-inf")
    knocked = torch.softmax(scores, -1) @ v[:, 1 // group]  # [T, dh]

    def knock(t):
        t.view(T, nh, dh)[:, 1] = knocked

    row = record["ablation"]["knockouts"][0]
    assert (row["query"], row["key"]) == (T - 1, T - 3)
    assert abs(float(plain_rerun(loaded, clean_ids, "blocks.1.attn.hook_z", knock)[answer]) - row["target_logit"]) < TOL


def test_mean_ablation_over_a_dataset(tmp_path):
    loaded, (clean_text, corrupt_text) = family_model("nanogpt", tmp_path)
    alone, _, _ = patch_record(loaded, clean_text, corrupt_text)
    same, _, _ = patch_record(loaded, clean_text, corrupt_text, data=[clean_text])  # the data is the probe itself
    other, _, _ = patch_record(loaded, clean_text, corrupt_text, data=["abc", "gfe dcba"])
    assert other["ablation"]["means_over"] == "every position of the ablation data" and other["ablation"]["data_probes"] == 2
    for a, b, c in zip(alone["ablation"]["rows"], same["ablation"]["rows"], other["ablation"]["rows"]):
        assert a["target_logit"] == pytest.approx(b["target_logit"], abs=1e-5)
        if a["kind"] == "zero":
            assert a["target_logit"] == c["target_logit"]
    assert any(abs(a["target_logit"] - c["target_logit"]) > 1e-4
               for a, c in zip(alone["ablation"]["rows"], other["ablation"]["rows"]) if a["kind"] == "mean")
    # and each dataset mean equals a plain re-run with the mean over the data's positions written in
    clean_ids = prepare_probe(loaded, clean_text).ids
    caches = [capture(loaded, prepare_probe(loaded, t).ids) for t in ("abc", "gfe dcba")]
    T, nh, dh = len(clean_ids), loaded.dims.n_head, loaded.dims.d_head
    answer = other["metric"]["answer"]["id"]
    for row in (r for r in other["ablation"]["rows"] if r["kind"] == "mean"):
        name = f"blocks.{row['layer']}.hook_mlp_out" if row["head"] is None else f"blocks.{row['layer']}.attn.hook_z"
        mean = torch.cat([c[name] for c in caches]).mean(0)  # [d_model] or [nh, d_head]

        def edit(t, mean=mean, head=row["head"]):
            if head is None:
                t[:] = mean
            else:
                t.view(T, nh, dh)[:, head] = mean[head]
        assert abs(float(plain_rerun(loaded, clean_ids, name, edit)[answer]) - row["target_logit"]) < TOL, row


# --- a known circuit ---------------------------------------------------------------------------------


def test_the_copying_circuit_shows_in_the_maps(tmp_path):
    ckpt, meta = make_copy_model(tmp_path / "copy")
    clean, corrupt = copy_probes()
    code, stdout, stderr = run_cli("patch", "--checkpoint", ckpt, "--meta", meta, "--clean", clean, "--corrupt", corrupt,
                                   "--out", tmp_path / "out", "--quiet")
    assert code == 0, stderr
    record = json.loads((tmp_path / "out" / "patching.json").read_text(encoding="utf-8"))
    assert record["verification_passed"]
    # the model learned the task: each run predicts the token 7 positions back
    assert record["metric"]["answer"]["token"] == SEQUENCE[HALF - 1]
    assert record["metric"]["wrong"]["token"] == REPLACEMENT
    resid = torch.tensor(record["sweeps"]["resid_pre"]["values"])  # [layer, position]
    T = resid.shape[1]
    assert resid[0, HALF - 1] > 0.95 and resid[0].abs().sum() - resid[0, HALF - 1] < 0.05  # the detail enters at position 7
    assert (resid.max(dim=1).values > 0.9).all()  # and every layer carries it somewhere
    heads = torch.tensor(record["sweeps"]["head_out"]["values"])  # [layer, head]
    top = int(heads.argmax())
    layer, head = divmod(top, heads.shape[1])
    assert heads.flatten()[top] > 0.8 and (heads.flatten().abs() > 0.2).sum() == 1  # one head carries it
    loaded = load_model(ckpt, meta)
    pattern = capture(loaded, prepare_probe(loaded, clean).ids)[f"blocks.{layer}.attn.hook_pattern"]
    assert int(pattern[head, T - 1].argmax()) == HALF - 1  # and that head reads position 7 from the last position
    by_pos = torch.tensor(record["sweeps"]["head_out_by_pos"]["values"])  # [layer, head, position]
    assert by_pos[layer, head, T - 1] > 0.8  # at the last position, where it writes
    ablation = record["ablation"]["rows"]
    worst = min((r for r in ablation if r["head"] is not None), key=lambda r: r["delta_target_logit"])
    assert (worst["layer"], worst["head"]) == (layer, head)  # ablation agrees
    # the page: the maps, the metric in words, the ablation table; re-rendered from patching.json alone, the same bytes
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "1 means the patch brings" in page and f"L{layer}.H{head}" in page and "head_out_by_pos" in page
    render_patching_file(tmp_path / "out")
    assert (tmp_path / "out" / "index.html").read_text(encoding="utf-8") == page


# --- the command line --------------------------------------------------------------------------------


def test_the_command_line_refuses_what_it_cannot_do(tiny_checkpoint, tmp_path):
    ckpt, meta = tiny_checkpoint
    base = ("patch", "--checkpoint", ckpt, "--meta", meta, "--out", tmp_path / "o")
    cases = [
        (("--clean", "abcd", "--corrupt", "abc"), "--clean has 4 tokens and --corrupt has 3"),
        (("--clean", "abcd", "--corrupt", "abce", "--answer", "ab"), "--answer 'ab': encodes to 2 tokens"),
        (("--clean", "abcd", "--corrupt", "abce", "--wrong", "#99999"), "--wrong #99999: the vocabulary has ids"),
        (("--clean", "abcd", "--corrupt", "abce", "--answer", "a", "--wrong", "#0"), None),  # fine up to the answer check
        (("--clean", "abcd", "--corrupt", "abce", "--answer", "a", "--wrong", "a"), "the answer and the wrong token are the same"),
        (("--clean", "abcd", "--corrupt", "abce", "--knockout", "1.0:3"), "--knockout 1.0:3: expected LAYER.HEAD:QUERY:KEY"),
        (("--clean", "abcd", "--corrupt", "abce", "--knockout", "5.0:3:1"), "the model has layers 0..1"),
        (("--clean", "abcd", "--corrupt", "abce", "--knockout", "1.0:1:3"), "query 1 does not attend key 3"),
        (("--clean", "abcd", "--corrupt", "abce", "--knockout", "1.0:0:0"), "the only key query 0 sees"),
        (("--clean", "abcd", "--corrupt", "abce", "--ablation-data", tmp_path / "missing.txt"), "--ablation-data"),
        (("--clean", "", "--corrupt", "abce"), "the --clean probe is empty"),
        (("--corrupt", "abce",), "the following arguments are required: --clean"),
    ]
    for flags, message in cases:
        code, _, stderr = run_cli(*base, *flags, "--quiet")
        if message is None:
            assert code in (0, 3), stderr
            continue
        assert code == 2 and message in stderr and stderr.count("\n") == 1, (flags, stderr)


def browse(page: Path) -> None:
    """Open the page in headless Chromium from file:// (when there is one): nothing runs that should
    not, nothing is fetched from the network, no console error."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return
    sync_api = pytest.importorskip("playwright.sync_api")
    problems, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page()
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.on("dialog", lambda d: problems.append(f"dialog {d.message}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(page.as_uri())
            assert tab.evaluate("typeof window.__vizPalette") == "object"
            assert tab.locator("table.heat").count() >= 5
        finally:
            browser.close()
    assert problems == [] and all(url.startswith("file://") for url in requests), (problems, requests)


def test_folder_kind_budget_and_a_hostile_vocabulary(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path / "m", vocab=HOSTILE_VOCAB, block_size=32, n_layer=2, n_head=2)
    clean, corrupt = "<script>alert(1)</script>&amp;a", "<script>alert(1)</script>&lt;a"
    out = tmp_path / "out"
    args = ("patch", "--checkpoint", ckpt, "--meta", meta, "--clean", clean, "--corrupt", corrupt, "--out", out,
            "--answer", "#0", "--wrong", "#1", "--budget", "0", "--quiet", "--knockout", "1.1:-1:0")
    code, _, stderr = run_cli(*args)
    assert code == 0, stderr
    record = json.loads((out / "patching.json").read_text(encoding="utf-8"))
    assert "budget of 0" in record["sweeps"]["head_out_by_pos"]["skipped"] and "values" not in record["sweeps"]["head_out_by_pos"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "budget of 0" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # base.html's palette.js only: the page runs nothing of its own
    browse(out / "index.html")
    owner = json.loads((out / ".visualizer-folder.json").read_text(encoding="utf-8"))
    assert owner["kind"] == "patch" and "patching.json" in owner["files"]
    assert run_cli(*args)[0] == 0  # its own folder is replaced
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "a", "--out", tmp_path / "report", "--no-store", "--quiet")
    assert code == 0, stderr
    code, _, stderr = run_cli("patch", "--checkpoint", ckpt, "--meta", meta, "--clean", clean, "--corrupt", corrupt,
                              "--out", tmp_path / "report", "--quiet")
    assert code == 2 and "holds a visualizer report, not a patch" in stderr
