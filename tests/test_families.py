"""One suite over every family (tiny models of each): the same capture names, the verification
identities, the dot-product breakdown, and a written report through the command line."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.support.nanogpt import make_checkpoint
from tests.support.cli import run_cli
from tests.support.nanochat import make_nanochat
import visualizer.figures.plan as plots
from visualizer.capture import capture
from visualizer.model.registry import load_model
from visualizer.model.probe import prepare_probe
from visualizer.analysis.report_data import build_report_data


def nanogpt(tmp):
    return make_checkpoint(tmp / "out-n", bias=True, block_size=32, vocab=list("\n !,.abcdefghijklmnopqrstuvwxyzT"))[0]


def nanochat_original(tmp):
    return make_nanochat(tmp / "nc-o", architecture="original")


def nanochat_current(tmp):
    return make_nanochat(tmp / "nc-c", architecture="current")


def hf(name: str, **shape):
    """A builder for tests.support.hf's make_{name}_folder (transformers is imported when it runs)."""

    def build(tmp):
        pytest.importorskip("transformers")
        import tests.support.hf as support

        return getattr(support, f"make_{name}_folder")(tmp / name, **shape)

    return build


FAMILIES = {"nanogpt": nanogpt, "nanochat-original": nanochat_original, "nanochat-current": nanochat_current,
            "hf-gpt2": hf("gpt2"), "hf-llama": hf("llama"),
            "hf-mistral": hf("mistral", sliding_window=4),  # a 4-key window: later positions do not see the start
            "hf-qwen2": hf("qwen2"), "hf-qwen3": hf("qwen3")}
PROBE = "the cat sat on the mat."

# every family, whatever its architecture, fills these for every layer
LAYER_NAMES = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
               "ln1.hook_normalized", "ln2.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
               "attn.hook_z", "attn.hook_attn_scores", "attn.hook_pattern", "mlp.hook_pre", "mlp.hook_post")


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_model(request, tmp_path_factory):
    return request.param, FAMILIES[request.param](tmp_path_factory.mktemp(request.param))


def test_same_names_verified_identities_and_exact_breakdown(family_model):
    name, checkpoint = family_model
    loaded = load_model(checkpoint, None)
    probe = prepare_probe(loaded, PROBE)
    cache = capture(loaded, probe.ids)
    T, d = len(probe.ids), loaded.dims
    for layer in range(d.n_layer):
        for hook in LAYER_NAMES:
            assert f"blocks.{layer}.{hook}" in cache, (name, layer, hook)
    assert {"hook_embed", "ln_final.hook_normalized", "logits"} <= set(cache.tensors)
    assert cache["blocks.0.attn.hook_pattern"].shape == (d.n_head, T, T)
    assert cache["blocks.0.attn.hook_k"].shape == (T, d.n_kv_head, d.d_head)
    assert cache.passed, (name, cache.failures())
    assert {"pattern @ v == z", "resid_mid == resid_pre + attn_out", "resid_post == resid_mid + mlp_out",
            "hooked logits == plain forward logits"} <= set(cache.verification)
    data = build_report_data(loaded, cache, probe.ids, 5)
    for candidate in data["dla"]["candidates"]:
        assert candidate["error"] <= 1e-4, (name, candidate["error"])
    last_lens = data["logit_lens"][-1]["topk"][-1][0]["id"]
    assert last_lens == data["final"]["topk"][-1][0]["id"] or name == "nanochat-current"  # backout after the last block


def test_report_through_the_command_line(family_model, tmp_path):
    name, checkpoint = family_model
    code, stdout, stderr = run_cli("--checkpoint", checkpoint, "--probe", PROBE, "--out", tmp_path / "r", "--no-store")
    assert code == 0, (name, stderr)
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["verification_passed"] and trace["family"] == name.split("-")[0]
    assert (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "activations.safetensors").is_file()
    assert any((tmp_path / "r" / "figures").glob("*.png"))
    check_presentation(name, tmp_path / "r", trace)


NORMS = {"nanogpt": "LayerNorm", "nanochat-original": "RMSNorm", "nanochat-current": "RMSNorm", "hf-gpt2": "LayerNorm",
         "hf-llama": "RMSNorm", "hf-mistral": "RMSNorm", "hf-qwen2": "RMSNorm", "hf-qwen3": "RMSNorm"}
GATED = {"hf-llama", "hf-mistral", "hf-qwen2", "hf-qwen3"}


def check_presentation(name: str, folder, trace: dict) -> None:
    """Captions, groups and the model card say what the family's adapter declared: its norm kind (an
    RMSNorm model's page never says LayerNorm), its MLP kind, its stream operations, its card rows."""
    declared = trace["presentation"]
    assert declared["norm"] == NORMS[name] and declared["mlp"]["gated"] == (name in GATED)
    report_data = json.loads((folder / "report_data.json").read_text())
    tensors = load_file(str(folder / "activations.safetensors"))
    jobs = {job.figure.key: job.figure for job in plots.plan_figures(trace, tensors, report_data)}
    assert jobs["blocks.0.ln1.hook_normalized"].caption.startswith(f"{NORMS[name]} 1 output")
    assert jobs["ln_final.hook_normalized"].caption.startswith(f"Final {NORMS[name]} output")
    assert ("gate projection" in jobs["blocks.0.mlp.hook_pre"].caption) == declared["mlp"]["gated"]
    html = (folder / "index.html").read_text(encoding="utf-8")
    said = [f.caption + f.title + f.scale for f in jobs.values()] + [t for row in declared["card_rows"] for t in row] + [html]
    if NORMS[name] == "RMSNorm":
        assert not [text for text in said if "LayerNorm" in text] and "RMSNorm" in html
    card = html[html.index('<table class="card">'):]
    card = card[: card.index("</table>")]
    assert card.count("<tr>") == len(declared["card_rows"])
    notes = declared["stream_notes"]
    assert bool(notes) == name.startswith("nanochat")
    for note in notes:  # each declared operation is shown where it happens, on tensors the capture has
        assert f"<h3>{note['heading']}</h3>" in html
        assert all(any(t.format(l=l) in tensors for l in range(trace["dims"]["n_layer"])) for t in note["tensors"])
    if name == "nanochat-current":  # backout: the lens's last row is not the model's output, and says so
        assert "Backout comes in between" in jobs["final.logit_lens"].caption
