"""Hugging Face family: tiny GPT-2, Llama, Mistral, Qwen2 and Qwen3 folders built here (no downloads),
captured with our hooks and compared with transformers' own outputs (eager attention) loaded
independently; shapes none of the five defaults have (GQA, MQA, biases on and off, head_dim !=
d_model / n_head, tied and untied heads, sliding windows on some layers) in the same comparison."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

pytest.importorskip("transformers")

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from tests.support.hf import (  # noqa: E402
    make_gpt2_folder, make_llama_folder, make_mistral_folder, make_qwen2_folder, make_qwen3_folder,
)
from visualizer.capture import capture  # noqa: E402
from visualizer.errors import VisualizerError  # noqa: E402
import visualizer.model.hf.adapter as hf  # noqa: E402
from visualizer.model.probe import prepare_probe
from visualizer.pipeline import write_report  # noqa: E402
from visualizer.analysis.report_data import build_report_data  # noqa: E402
from visualizer.model.tokenizer import readable  # noqa: E402

CPU = torch.device("cpu")
TOL = 1e-4
PROBE = 'The quick fox\njumps over the dog & <tags> "x"'

VARIANTS = {
    # learned positions, LayerNorm with bias, GELU, Conv1D weights, padded vocabulary
    "gpt2": lambda d: make_gpt2_folder(d),
    # GPT-2 with the per-layer attention scale 1/(layer+1) and weights in pytorch_model.bin
    "gpt2-bin-layerscale": lambda d: _edit_config(make_gpt2_folder(d, n_layer=3, weights="bin"), scale_attn_by_inverse_layer_idx=True),
    # rotary, RMSNorm, SwiGLU, grouped-query attention (4 query heads, 2 kv heads), untied head
    "llama": lambda d: make_llama_folder(d),
    # multi-query (1 kv head), head_dim != d_model / n_head, attention biases, tied embeddings
    "llama-mqa": lambda d: make_llama_folder(d, n_head=4, n_kv_head=1, head_dim=16, attention_bias=True, tie=True),
    # Llama's tree with a 6-key sliding window on every layer (the probe is 16 tokens)
    "mistral": lambda d: make_mistral_folder(d),
    # q/k/v biases (o without), grouped-query attention
    "qwen2": lambda d: make_qwen2_folder(d),
    # per-head q/k RMSNorm before rotary, head_dim 12 with d_model 32 and 4 heads, tied embeddings
    "qwen3": lambda d: make_qwen3_folder(d),
    # shapes none of the defaults have:
    # GPT-2 with an MLP width of its own (n_inner), 2 heads
    "gpt2-ninner": lambda d: make_gpt2_folder(d, n_head=2, n_inner=80),
    # Mistral multi-query, head_dim 16, a 3-key window, tied embeddings
    "mistral-mqa-tied": lambda d: make_mistral_folder(d, n_kv_head=1, head_dim=16, sliding_window=3, tie=True),
    # Mistral without a window (sliding_window null), 3 layers
    "mistral-nowindow": lambda d: make_mistral_folder(d, n_layer=3, sliding_window=None),
    # Qwen2 sliding on layers 1 and 2 only (layer_types), multi-query, tied
    "qwen2-window-mqa-tied": lambda d: make_qwen2_folder(d, n_layer=3, n_kv_head=1, sliding_window=4, max_window_layers=1, tie=True),
    # Qwen3 with biases on q/k/v/o, no grouping (4 kv heads), head_dim 16, untied, a window on layer 1
    "qwen3-bias-untied": lambda d: make_qwen3_folder(d, n_kv_head=4, head_dim=16, attention_bias=True, tie=False,
                                                     sliding_window=5, max_window_layers=1),
}
ROTARY = {name for name in VARIANTS if not name.startswith("gpt2")}
OUT_BIAS = {"gpt2", "gpt2-bin-layerscale", "gpt2-ninner", "llama-mqa", "qwen3-bias-untied"}  # attention output bias
WINDOWED = {"mistral": [6, 6], "mistral-mqa-tied": [3, 3], "qwen2-window-mqa-tied": [None, 4, 4], "qwen3-bias-untied": [None, 5]}
MAIN = ["gpt2", "llama", "mistral", "qwen2", "qwen3"]  # one per architecture entry


def _edit_config(folder, **changes):
    path = folder / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {name: make(root / name) for name, make in VARIANTS.items()}


@pytest.fixture(scope="module")
def runs(folders):
    """name -> (loaded, ids, cache): one load and capture per variant for the whole module."""
    out = {}
    for name, folder in folders.items():
        loaded = hf.load(folder, CPU)
        ids = prepare_probe(loaded, PROBE).ids
        out[name] = (loaded, ids, capture(loaded, ids))
    return out


def max_err(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_capture_matches_transformers_own_outputs(name, folders, runs):
    loaded, ids, cache = runs[name]
    reference = AutoModelForCausalLM.from_pretrained(folders[name], local_files_only=True, attn_implementation="eager").eval()
    with torch.no_grad():
        out = reference(input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True, use_cache=False)
    n = loaded.dims.n_layer
    assert len(out.hidden_states) == n + 1 and len(out.attentions) == n
    errors = {"logits": max_err(cache["logits"], out.logits[0])}
    for layer in range(n):
        errors[f"resid_pre {layer}"] = max_err(cache[f"blocks.{layer}.hook_resid_pre"], out.hidden_states[layer][0])
        errors[f"pattern {layer}"] = max_err(cache[f"blocks.{layer}.attn.hook_pattern"], out.attentions[layer][0])
    # transformers' last hidden state is after the final norm
    errors["ln_final"] = max_err(cache["ln_final.hook_normalized"], out.hidden_states[n][0])
    worst = max(errors, key=errors.get)
    print(f"{name}: max error {errors[worst]:.2e} ({worst})")
    assert errors[worst] <= TOL, errors
    assert cache.passed, cache.failures()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_names_and_shapes(name, runs):
    loaded, ids, cache = runs[name]
    d, T = loaded.dims, len(ids)
    rotary = name in ROTARY
    assert ("hook_pos_embed" in cache) is not rotary
    assert ("blocks.0.mlp.hook_pre_linear" in cache) is rotary
    for layer in range(d.n_layer):
        b = f"blocks.{layer}"
        assert cache[f"{b}.attn.hook_q"].shape == (T, d.n_head, d.d_head)
        assert cache[f"{b}.attn.hook_k"].shape == (T, d.n_kv_head, d.d_head)
        assert cache[f"{b}.attn.hook_v"].shape == (T, d.n_kv_head, d.d_head)
        assert cache[f"{b}.attn.hook_z"].shape == (T, d.n_head, d.d_head)
        assert cache[f"{b}.attn.hook_pattern"].shape == (d.n_head, T, T)
        assert cache[f"{b}.mlp.hook_post"].shape == (T, d.d_mlp)
        for hook in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
                     "ln1.hook_normalized", "ln2.hook_normalized"):
            assert cache[f"{b}.{hook}"].shape == (T, d.d_model)
    assert cache["logits"].shape == (T, d.vocab_size)
    assert loaded.card["n_kv_head"] == d.n_kv_head
    assert loaded.card["positions"] == ("rotary" if rotary else "learned")
    assert loaded.card["norm"] == ("RMSNorm" if rotary else "LayerNorm")


def test_llama_q_k_are_after_rotary(runs):
    """q.k of the recorded q and k reproduce the pattern; q_proj's output (before rotary) does not."""
    loaded, ids, cache = runs["llama"]
    attn = loaded.model.model.layers[0].self_attn
    with torch.no_grad():
        q_before = attn.q_proj(cache["blocks.0.ln1.hook_normalized"]).view(len(ids), loaded.dims.n_head, -1)
    assert max_err(q_before[0], cache["blocks.0.attn.hook_q"][0]) < 1e-6  # position 0: rotation by angle 0
    assert max_err(q_before[1:], cache["blocks.0.attn.hook_q"][1:]) > 1e-3


def test_silu_gate_times_up_is_hook_post(runs):
    loaded, _, cache = runs["llama"]
    pre, lin, post = (cache[f"blocks.1.mlp.{h}"] for h in ("hook_pre", "hook_pre_linear", "hook_post"))
    assert max_err(torch.nn.functional.silu(pre) * lin, post) < 1e-5


@pytest.mark.parametrize("name", list(VARIANTS))
def test_residual_components_dla_and_final_norm(name, runs):
    loaded, ids, cache = runs[name]
    adapter, tensors = loaded.adapter, cache.tensors
    final = adapter.final_residual(tensors, loaded.dims)
    parts = adapter.residual_components(loaded, tensors)
    assert max_err(sum(parts.values()), final) <= TOL
    assert sum(k.startswith("L0.H") for k in parts) == loaded.dims.n_head
    assert ("L0.attn_bias" in parts) is (name in OUT_BIAS)
    linear, constant = adapter.frozen_final_norm(loaded, final[-1])
    assert max_err(linear(final[-1]) + constant, tensors["ln_final.hook_normalized"][-1]) <= TOL
    assert max_err(adapter.logits_from_residual(loaded, final), tensors["logits"]) <= TOL
    data = build_report_data(loaded, cache, ids, top_k=5)
    for cand in data["dla"]["candidates"]:
        assert cand["error"] <= TOL and abs(cand["component_sum"] - cand["logit"]) <= TOL
    assert adapter.logit_cap(loaded) is None


@pytest.mark.parametrize("name", MAIN)
def test_token_ids_are_the_tokenizers_own(name, folders, runs):
    loaded, ids, _ = runs[name]
    own = AutoTokenizer.from_pretrained(folders[name], local_files_only=True)
    assert ids == own(PROBE)["input_ids"]
    assert (ids[0] == own.bos_token_id) is (name in ("llama", "mistral"))  # Llama's tokenizer prepends BOS


def test_gpt2_tokens_readable(runs):
    loaded, ids, _ = runs["gpt2"]
    tok = loaded.tokenizer
    raw = loaded.tokenizer.hf.convert_ids_to_tokens(ids)
    assert any(t.startswith("Ġ") for t in raw) and "Ċ" in raw
    texts = [tok.token_str(i) for i in ids]
    assert "".join(texts) == PROBE  # byte-level tokens stand for exactly the probe's bytes
    shown = [readable(t) for t in texts]
    assert "↵" in shown and any(s.startswith("␣") for s in shown)
    assert not any("Ġ" in s or "Ċ" in s for s in shown)
    assert tok.token_str(tok.bos_id) == "[BOS]"  # <|endoftext|> is bos, eos and unk: its first role
    emoji = tok.encode("😀").ids  # four byte tokens, each part of one character
    assert "".join(tok.token_str(i) for i in emoji) == "\\xf0\\x9f\\x98\\x80"


def test_llama_tokens_readable(runs):
    loaded, ids, _ = runs["llama"]
    tok = loaded.tokenizer
    raw = tok.hf.convert_ids_to_tokens(ids)
    assert "<0x0A>" in raw and any(t.startswith("▁") for t in raw)
    texts = [tok.token_str(i) for i in ids]
    assert texts[0] == "[BOS]"
    assert "".join(texts[1:]) == " " + PROBE  # the metaspace prepended to the first word shows as a space
    assert texts[raw.index("<0x0A>")] == "\n" and readable("\n") == "↵"
    assert tok.token_str(2) == "[EOS]" and tok.token_str(0) == "[UNK]"
    assert tok.decode(ids) == tok.hf.decode(ids)


def test_bos_position_and_special_positions(runs, tmp_path):
    for name, expected in (("llama", 0), ("gpt2", None)):
        loaded, _, _ = runs[name]
        probe = prepare_probe(loaded, PROBE + " <|endoftext|>" if name == "gpt2" else PROBE)
        trace = write_report(loaded, probe, tmp_path / name, 5)
        assert trace["bos_position"] == expected
        specials = [i for i, t in enumerate(probe.ids) if t in loaded.tokenizer.special_ids]
        assert trace["special_positions"] == specials and specials  # gpt2: the typed <|endoftext|>
        assert trace["model"]["bos_token_id"] == loaded.tokenizer.bos_id


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3"])
def test_full_report_run(name, runs, tmp_path):
    loaded, _, _ = runs[name]
    probe = prepare_probe(loaded, PROBE)
    folder = tmp_path / "report"
    trace = write_report(loaded, probe, folder, 5)
    assert trace["verification_passed"] and trace["family"] == "hf"
    assert {p.name for p in folder.iterdir()} >= {"index.html", "trace.json", "activations.safetensors", "report_data.json"}
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert ("rotary" if name in ROTARY else "learned") in page
    assert ("<th>qk_norm</th>" in page) is (name == "qwen3")  # the card row only where the entry has q/k norms
    assert "&lt;tags&gt;" in page and "<tags>" not in page
    saved = load_file(str(folder / "activations.safetensors"))
    assert ("hook_pos_embed" in saved) is (name not in ROTARY)
    data = json.loads((folder / "report_data.json").read_text(encoding="utf-8"))
    assert len(data["logit_lens"]) == loaded.dims.n_layer


def test_bin_weights_load_like_safetensors(tmp_path):
    a = hf.load(make_gpt2_folder(tmp_path / "st", seed=3), CPU)
    b = hf.load(make_gpt2_folder(tmp_path / "bin", seed=3, weights="bin"), CPU)
    assert b.card["checkpoint_file"] == "pytorch_model.bin" and a.card["checkpoint_file"] == "model.safetensors"
    ids = torch.tensor(a.adapter.encode_probe(a, "the fox").ids)
    with torch.no_grad():
        assert torch.equal(a.adapter.plain_forward(a, ids), b.adapter.plain_forward(b, ids))


def test_hub_name_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert hf.looks_like_hub_name("gpt2") and hf.looks_like_hub_name("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    with pytest.raises(VisualizerError, match=r"'gpt2' is not a local folder.*hf download gpt2"):
        hf.load("gpt2", CPU)


def test_hub_name_in_the_local_cache_loads(tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    repo = home / "hub" / "models--someone--tiny-llama"
    commit = "0" * 40
    make_llama_folder(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    loaded = hf.load("someone/tiny-llama", CPU)
    assert loaded.name == "someone-tiny-llama" and loaded.card["source"] == "someone/tiny-llama"


def test_detection(folders, tmp_path):
    assert hf.looks_like_hf(folders["gpt2"]) and hf.looks_like_hf(folders["llama"] / "config.json")
    assert not hf.looks_like_hf(tmp_path) and not hf.looks_like_hf(tmp_path / "missing")
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    assert not hf.looks_like_hf(tmp_path / "ckpt.pt")
    assert not hf.looks_like_hub_name("out/ckpt.pt") and not hf.looks_like_hub_name(str(tmp_path / "ckpt.pt"))


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def test_unsupported_model_type(folders, tmp_path):
    folder = _edit_config(_copy(folders["gpt2"], tmp_path), model_type="bert")
    assert hf.looks_like_hf(folder)
    with pytest.raises(VisualizerError, match=r"model_type 'bert' is not supported \(supported: gpt2, llama, mistral, qwen2, qwen3\)"):
        hf.load(folder, CPU)


def test_missing_weights_or_tokenizer(folders, tmp_path):
    folder = _copy(folders["llama"], tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(VisualizerError, match="no tokenizer files"):
        hf.load(folder, CPU)
    (folder / "model.safetensors").unlink()
    with pytest.raises(VisualizerError, match="no weights found"):
        hf.load(folder, CPU)


@pytest.mark.parametrize("change", ["unexpected", "missing"])
def test_weight_keys_that_do_not_fit_are_named(change, folders, tmp_path):
    folder = _copy(folders["llama"], tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    if change == "unexpected":
        state["model.layers.0.self_attn.surprise"] = torch.zeros(3)
        pattern = "unexpected keys in the weights: 'model.layers.0.self_attn.surprise'"
    else:
        del state["model.layers.1.mlp.up_proj.weight"]
        pattern = "missing keys in the weights: 'model.layers.1.mlp.up_proj.weight'"
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(VisualizerError, match=pattern):
        hf.load(folder, CPU)


def test_attention_interface_is_restored(runs):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from visualizer.model.hf.recording import RECORDING

    assert "get_interface" not in vars(ALL_ATTENTION_FUNCTIONS)
    loaded, ids, cache = runs["llama"]
    again = capture(loaded, ids)
    assert "get_interface" not in vars(ALL_ATTENTION_FUNCTIONS)
    assert torch.equal(again["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_q"])
    # recorded through transformers' own registry, under our name, for the capture only
    assert RECORDING["sdpa"] in ALL_ATTENTION_FUNCTIONS and loaded.model.config._attn_implementation == "sdpa"


def test_gpt2_legacy_layout_loads_the_same(folders, tmp_path):
    """OpenAI-era GPT-2 files: keys without 'transformer.', saved causal-mask buffers, no lm_head."""
    folder = _copy(folders["gpt2"], tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    legacy = {k.removeprefix("transformer."): v for k, v in state.items() if k != "lm_head.weight"}
    for layer in range(2):
        legacy[f"h.{layer}.attn.bias"] = torch.ones(64, 64).tril().view(1, 1, 64, 64)
        legacy[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(legacy, str(folder / "model.safetensors"), metadata={"format": "pt"})
    a, b = hf.load(folders["gpt2"], CPU), hf.load(folder, CPU)
    ids = torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        assert torch.equal(a.adapter.plain_forward(a, ids), b.adapter.plain_forward(b, ids))


def test_shapes_that_disagree_with_config_are_an_error(folders, tmp_path):
    folder = _edit_config(_copy(folders["gpt2"], tmp_path), n_inner=64)
    with pytest.raises(VisualizerError, match=r"copy: weight 'transformer.h.0.mlp.c_fc.bias' has shape \(128,\), "
                                              r"config.json implies \(64,\) \(and 5 more\)"):
        hf.load(folder, CPU)


@pytest.mark.parametrize("name", MAIN)
def test_command_line_detects_the_family_and_writes_the_report(name, folders, tmp_path, monkeypatch):
    """Then `render ID` rebuilds the same page from the trace store alone, the model never loaded."""
    from tests.support.cli import run_cli
    from tests.support.store import only_trace

    store = tmp_path / "traces"
    code, stdout, stderr = run_cli("--checkpoint", folders[name], "--probe", "the cat <sat>", "--out", tmp_path / "r",
                                   "--store", store)
    assert code == 0, stderr
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["family"] == "hf" and trace["verification_passed"]
    assert "<sat>" not in (tmp_path / "r" / "index.html").read_text()
    code, _, stderr = run_cli("--checkpoint", folders[name], "--meta", tmp_path / "m.pkl", "--probe", "x", "--out", tmp_path / "s")
    assert code == 2 and "--meta is for nanoGPT checkpoints" in stderr

    stored = only_trace(store)
    assert json.loads((stored / "trace.json").read_text())["model"]["model_type"] == name

    def refuse(*args, **kwargs):
        raise AssertionError("render must not load or run the model")

    monkeypatch.setattr(hf, "load", refuse)
    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    code, _, stderr = run_cli("render", stored.name, "--out", tmp_path / "again", "--store", store)
    assert code == 0, stderr
    assert (tmp_path / "again" / "index.html").read_bytes() == (tmp_path / "r" / "index.html").read_bytes()
    code, stdout, stderr = run_cli("traces", "show", stored.name, "--store", store)
    assert code == 0 and trace["model"]["checkpoint_sha256"] in stdout, stderr


@pytest.mark.parametrize("name", sorted(WINDOWED))
def test_sliding_windows_cut_the_pattern(name, runs):
    """Each query of a sliding layer sees exactly its last `window` keys (itself included), as
    transformers' mask allows; full layers see every earlier key. The probe is longer than every window."""
    loaded, ids, cache = runs[name]
    T = len(ids)
    assert loaded.adapter.windows == WINDOWED[name]
    assert T > max(w for w in WINDOWED[name] if w is not None)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    for layer, window in enumerate(WINDOWED[name]):
        seen = (j <= i) if window is None else (j <= i) & (i - j < window)  # [T, T]
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [nh, T, T]
        assert torch.all(pattern[:, ~seen] == 0) and torch.all(pattern[:, seen] > 0), layer
    sliding = [layer for layer, w in enumerate(WINDOWED[name]) if w is not None]
    expected = "every layer" if len(sliding) == loaded.dims.n_layer else "layers " + ", ".join(map(str, sliding))
    assert loaded.card["sliding_window"] == f"{WINDOWED[name][sliding[0]]} keys, {expected}"


def test_no_window_means_no_card_entry(runs):
    for name in ("llama", "qwen2", "mistral-nowindow", "gpt2"):
        loaded = runs[name][0]
        assert "sliding_window" not in loaded.card and set(loaded.adapter.windows) == {None}, name


def test_qwen3_q_and_k_are_normed_per_head_before_rotary(runs):
    loaded, ids, cache = runs["qwen3"]
    d, attn = loaded.dims, loaded.model.model.layers[0].self_attn
    x = cache["blocks.0.ln1.hook_normalized"]  # [T, d_model]
    with torch.no_grad():
        q_raw = attn.q_proj(x).view(len(ids), d.n_head, d.d_head)
        k_raw = attn.k_proj(x).view(len(ids), d.n_kv_head, d.d_head)
        q_normed, k_normed = attn.q_norm(q_raw), attn.k_norm(k_raw)
    q, k = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]
    assert max_err(q_normed[0], q[0]) < 1e-6 and max_err(k_normed[0], k[0]) < 1e-6  # position 0: angle 0
    assert max_err(q_raw[0], q[0]) > 1e-3  # the norm is applied ...
    assert max_err(q_normed[1:], q[1:]) > 1e-3  # ... and rotary after it
    assert d.d_head == 12 != d.d_model // d.n_head
    assert loaded.card["qk_norm"] == "RMSNorm per head on q and k, before rotary"
    assert "qk_norm" not in runs["qwen2"][0].card


def test_qwen2_q_k_v_biases_reach_the_attention_call(runs):
    loaded, ids, cache = runs["qwen2"]
    attn = loaded.model.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.v_proj.bias is not None and attn.o_proj.bias is None
    x = cache["blocks.0.ln1.hook_normalized"]
    with torch.no_grad():
        v = attn.v_proj(x).view(len(ids), loaded.dims.n_kv_head, -1)
        q0 = attn.q_proj(x[:1]).view(loaded.dims.n_head, -1)
    assert max_err(v, cache["blocks.0.attn.hook_v"]) < 1e-6
    assert max_err(q0, cache["blocks.0.attn.hook_q"][0]) < 1e-6
    assert max_err(v - attn.v_proj.bias.view(loaded.dims.n_kv_head, -1), cache["blocks.0.attn.hook_v"]) > 1e-3


@pytest.mark.parametrize("name", MAIN)
def test_capture_and_cached_steps_print_no_warning(name, runs, capfd):
    """No FutureWarning (the deprecated past_key_values), no transformers log line."""
    loaded, ids, _ = runs[name]
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capture(loaded, ids[:12])
        cache = loaded.adapter.start_cache(loaded)
        loaded.adapter.step(loaded, cache, torch.tensor(ids[:10]))
        loaded.adapter.step(loaded, cache, torch.tensor(ids[10:12]))
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_eager_attention_that_bypasses_the_function_is_refused(folders, tmp_path):
    folder = _edit_config(_copy(folders["gpt2"], tmp_path), reorder_and_upcast_attn=True)
    with pytest.raises(VisualizerError, match=r"config.json: reorder_and_upcast_attn=true is not supported"):
        hf.load(folder, CPU)


def test_a_module_the_entry_names_but_the_model_lacks_is_named(folders, monkeypatch):
    import dataclasses

    import visualizer.model.hf.architectures as architectures

    entry = architectures.ENTRIES["qwen2"]
    renamed = dataclasses.replace(entry, tree=dataclasses.replace(entry.tree, ln2="pre_mlp_norm"))
    monkeypatch.setitem(architectures.ENTRIES, "qwen2", renamed)
    with pytest.raises(VisualizerError, match=r"Qwen2ForCausalLM has no module 'model.layers.0.pre_mlp_norm'"):
        hf.load(folders["qwen2"], CPU)
    monkeypatch.setitem(architectures.ENTRIES, "qwen2", dataclasses.replace(entry, out_bias=True))
    with pytest.raises(VisualizerError, match=r"'model.layers.0.self_attn.o_proj' lacks a bias, unlike the qwen2 entry"):
        hf.load(folders["qwen2"], CPU)


def test_every_entry_is_a_transformers_class_of_its_model_type():
    """The table is data generic code reads: every field from its vocabulary, every class real."""
    import transformers

    from visualizer.model.hf.architectures import ENTRIES
    from visualizer.model.hf.derive import MLP_TEXT

    assert sorted(ENTRIES) == ["gpt2", "llama", "mistral", "qwen2", "qwen3"]
    for model_type, entry in ENTRIES.items():
        assert getattr(transformers, entry.transformers_class).config_class.model_type == model_type
        assert entry.norm in ("LayerNorm", "RMSNorm") and entry.mlp in MLP_TEXT
        assert entry.positions in ("learned", "rotary") and (entry.tree.pos_embed is None) == (entry.positions == "rotary")
        assert entry.window in ("none", "every layer", "layer_types")
        assert len(entry.tree.mlp_in) == (2 if entry.mlp == "gated" else 1)
