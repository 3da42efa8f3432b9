"""nanochat: capture equals nanochat's own forward (the shared fixtures), on models built here too;
the residual stream adds up with its lambdas; files are found and refused as they should be."""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from tests.support.cli import SHARED, need_fixture, run_cli
from tests.support.nanochat import SPECIALS, VOCAB_SIZE, make_nanochat, rewrite_meta, rewrite_state
from visualizer.capture import capture
from visualizer.errors import VisualizerError
import visualizer.model.nanochat.adapter as nanochat
from visualizer.model.nanochat.model import attention_allowed, rms_norm
from visualizer.model.registry import detect_family, load_model
from visualizer.analysis.distributions import log_probs, token_table
from visualizer.analysis.report_data import dot_product_breakdown

FIXTURES = {"original": SHARED / "fixtures" / "nanochat-original", "current": SHARED / "fixtures" / "nanochat-current"}
PROBE = "The theory: <b>&amp;</b> 'quoted' \"text\" 😀 then\n\ttabs and a <|bos|> that stays text."


@functools.lru_cache(maxsize=None)
def fixture_capture(architecture: str):
    fixture = need_fixture(FIXTURES[architecture])
    reference = np.load(fixture / "reference.npz")
    loaded = load_model(fixture, None)
    ids = loaded.tokenizer.encode((fixture / "PROBE.txt").read_text(encoding="utf-8")).ids
    assert ids == reference["token_ids"].tolist()
    return loaded, capture(loaded, ids), reference


@pytest.mark.parametrize("architecture", ["original", "current"])
def test_fixture_matches_nanochat_reference_on_every_tensor(architecture):
    loaded, cache, reference = fixture_capture(architecture)
    assert loaded.card["nanochat"]["architecture"] == architecture
    worst, windows = {}, 0
    for key in reference.files:
        if key == "token_ids":
            continue
        if key.endswith(".window"):
            assert int(reference[key]) == loaded.adapter.windows[int(key.split(".")[1])], key
            windows += 1
            continue
        assert cache[key].shape == reference[key].shape, key
        worst[key] = float(np.abs(cache[key].numpy() - reference[key]).max())
    assert windows == loaded.dims.n_layer and len(worst) == 1 + 8 * loaded.dims.n_layer
    assert max(worst.values()) <= 1e-4, sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    assert cache.passed, cache.failures()


@pytest.mark.parametrize("architecture", ["original", "current"])
def test_fixture_patterns_are_zero_outside_the_window(architecture):
    loaded, cache, reference = fixture_capture(architecture)
    for layer in range(loaded.dims.n_layer):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [head, q, k]
        T = pattern.shape[-1]
        allowed = attention_allowed(T, int(reference[f"blocks.{layer}.attn.window"]))
        assert torch.all(pattern[:, ~allowed] == 0)
        assert torch.all(pattern[:, allowed] > 0)
        assert torch.allclose(pattern.sum(-1), torch.ones(pattern.shape[:2]), atol=1e-5)
    if architecture == "current":  # 290 tokens > the 128-token short window: the window cut something
        assert not attention_allowed(290, 128)[-1, 0] and loaded.adapter.windows[0] == 128


@pytest.mark.parametrize("architecture", ["original", "current"])
def test_fixture_full_cli_run(tmp_path, architecture):
    fixture = need_fixture(FIXTURES[architecture])
    out = tmp_path / "report"
    code, stdout, stderr = run_cli("--checkpoint", fixture, "--probe-file", fixture / "PROBE.txt", "--out", out)
    assert code == 0, stderr
    assert "family nanochat (" in stdout
    for name in ("trace.json", "activations.safetensors", "index.html", "report_data.json"):
        assert (out / name).is_file(), name
    trace = json.loads((out / "trace.json").read_text(encoding="utf-8"))
    assert trace["verification_passed"] and trace["family"] == "nanochat"
    assert trace["tokens"][0] == "<|bos|>" and trace["token_ids"] == np.load(fixture / "reference.npz")["token_ids"].tolist()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "rotary" in page and "hook_pos_embed" not in page
    data = json.loads((out / "report_data.json").read_text(encoding="utf-8"))
    assert all(c["error"] <= 1e-4 and c["cap"] == 15.0 for c in data["dla"]["candidates"])


# --- tiny models built here, both architectures --------------------------------------------------

VARIANTS = {
    "current-gqa": dict(architecture="current"),
    "current-mqa-compiled-1layer": dict(architecture="current", n_layer=1, n_kv_head=1, compiled=True),
    "current-L": dict(architecture="current", n_layer=4, n_head=2, n_kv_head=2, n_embd=24, window_pattern=None),
    "original-bf16": dict(architecture="original", n_kv_head=4),
    "original-padded-gqa": dict(architecture="original", padded=True),
}


def tiny(tmp_path, **options):
    folder = make_nanochat(tmp_path / "nc", **options)
    return folder, load_model(folder, None)


def expected_names(loaded) -> set[str]:
    names = {"hook_embed", "ln_embed.hook_normalized", "hook_x0", "ln_final.hook_normalized", "logits"}
    cfg = loaded.adapter.config
    if cfg.current:
        names |= {"hook_smear_gate", "hook_smear", "hook_resid_final"}
    for layer in range(loaded.dims.n_layer):
        b = f"blocks.{layer}"
        names |= {f"{b}.{n}" for n in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
                                          "ln1.hook_normalized", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post")}
        names |= {f"{b}.attn.{n}" for n in ("hook_q", "hook_k", "hook_v", "hook_z", "hook_attn_scores", "hook_pattern")}
        if layer in cfg.value_embedding_layers():
            names |= {f"{b}.attn.hook_ve", f"{b}.attn.hook_ve_gate"}
    return names


@pytest.mark.parametrize("options", list(VARIANTS.values()), ids=list(VARIANTS))
def test_tiny_models_capture_every_name_and_verify(tmp_path, options):
    _, loaded = tiny(tmp_path, **options)
    dims = loaded.dims
    ids = loaded.tokenizer.encode(PROBE).ids
    T = len(ids)
    cache = capture(loaded, ids)
    assert set(cache.tensors) == expected_names(loaded)
    assert cache.passed, cache.failures()
    assert cache["logits"].shape == (T, VOCAB_SIZE)  # padding sliced off
    assert cache["logits"].abs().max() < 15.0
    assert cache["blocks.0.attn.hook_q"].shape == (T, dims.n_head, dims.d_head)
    assert cache["blocks.0.attn.hook_k"].shape == (T, dims.n_kv_head, dims.d_head)
    assert cache["blocks.0.attn.hook_v"].shape == (T, dims.n_kv_head, dims.d_head)
    assert "hook_pos_embed" not in cache and loaded.card["positions"] == "rotary"
    if loaded.adapter.config.current:
        assert cache["hook_smear_gate"][0] == 0 and torch.all(cache["hook_smear"][0] == 0)
        assert cache["hook_smear_gate"][1:].abs().min() > 0
        layer = loaded.adapter.config.value_embedding_layers()[0]
        gate = cache[f"blocks.{layer}.attn.hook_ve_gate"]
        assert gate.shape == (T, dims.n_kv_head) and torch.all((gate > 0) & (gate < 3))
    else:
        assert loaded.adapter.config.qk_scale == 1.0 and loaded.adapter.config.rotary_base == 10000.0


def test_tiny_sliding_window_cuts_far_keys_and_the_last_layer_sees_all(tmp_path):
    _, loaded = tiny(tmp_path, architecture="current", window_pattern="S")
    assert loaded.adapter.windows == [128, 128, 256]
    ids = loaded.tokenizer.encode("x" * 300).ids[:200]  # no merge has an x: one token per letter
    assert len(ids) == 200
    cache = capture(loaded, ids)
    assert cache.passed, cache.failures()
    short, full = cache["blocks.0.attn.hook_pattern"], cache["blocks.2.attn.hook_pattern"]
    assert torch.all(short[:, 199, :199 - 128] == 0) and torch.all(short[:, 199, 199 - 128 :] > 0)
    assert torch.all(full[:, 199, :] > 0)
    assert torch.isinf(cache["blocks.0.attn.hook_attn_scores"][:, 150, 0]).all()


def test_kv_heads_are_shared_by_consecutive_query_heads(tmp_path):
    _, loaded = tiny(tmp_path, architecture="current", n_head=4, n_kv_head=2)
    assert loaded.adapter.kv_head_index(loaded.dims).tolist() == [0, 0, 1, 1]
    assert loaded.card["nanochat"]["query_heads_per_kv_head"] == [[0, 1], [2, 3]]
    assert ["key/value heads", "2 for 4 query heads: kv 0 ← q 0, 1; kv 1 ← q 2, 3"] in loaded.card["facts"]


@pytest.mark.parametrize("architecture", ["original", "current"])
def test_residual_components_sum_to_the_final_residual_and_explain_the_logit(tmp_path, architecture):
    _, loaded = tiny(tmp_path, architecture=architecture)
    ids = loaded.tokenizer.encode(PROBE).ids
    cache = capture(loaded, ids)
    adapter, dims = loaded.adapter, loaded.dims
    parts = adapter.residual_components(loaded, cache.tensors)
    heads = [f"L{l}.H{h}" for l in range(dims.n_layer) for h in range(dims.n_head)]
    assert set(heads + [f"L{l}.mlp" for l in range(dims.n_layer)]) <= set(parts)
    assert ("smear" in parts) == (architecture == "current") and "embed" in parts
    final = adapter.final_residual(cache.tensors, dims)
    total = torch.stack(list(parts.values())).sum(0)
    assert (total - final).abs().max() <= 1e-4 * final.abs().max()
    if architecture == "current":  # backout really is in there
        assert not torch.allclose(final, cache[f"blocks.{dims.n_layer - 1}.hook_resid_post"], atol=1e-3)
    linear, constant = adapter.frozen_final_norm(loaded, final[-1])
    assert torch.allclose(linear(final[-1]) + constant, rms_norm(final[-1]), atol=1e-6)
    assert torch.allclose(adapter.logits_from_residual(loaded, final), cache["logits"], atol=1e-5)
    dla = dot_product_breakdown(loaded, cache.tensors, token_table(log_probs(cache["logits"]), cache["logits"], loaded.tokenizer.token_str, 5)[-1])
    for cand in dla["candidates"]:
        assert cand["error"] <= 1e-4 and cand["cap"] == 15.0
        assert math.isclose(15.0 * math.tanh(cand["raw_logit"] / 15.0), cand["logit"], abs_tol=1e-5)
        assert abs(cand["raw_logit"]) > abs(cand["logit"])  # the cap squashed it


def test_wrong_lambda_bookkeeping_fails_verification(tmp_path, monkeypatch):
    _, loaded = tiny(tmp_path, architecture="current")
    ids = loaded.tokenizer.encode(PROBE).ids
    monkeypatch.setattr(nanochat, "stream_coefficients", lambda model: (1.0, [1.0] * model.config.n_layer))
    cache = capture(loaded, ids)
    assert cache.failures() == ["final residual == scaled x0 + scaled block outputs"]


# --- finding files, steps, tokenizers, families ---------------------------------------------------


def test_every_path_form_finds_the_newest_step(tmp_path):
    folder = make_nanochat(tmp_path / "base", steps=(5, 40, 100), tag="d3")
    make_nanochat(tmp_path / "base", steps=(7,), tag="d1")  # a shallower model: nanochat takes the deepest
    for path in (tmp_path / "base", tmp_path / "base" / "base_checkpoints", folder, folder / "model_000100.pt"):
        assert detect_family(path)[0] == "nanochat"
        loaded = load_model(path, None)
        assert loaded.card["step"] == 100 and loaded.card["checkpoint_file"] == "model_000100.pt", path
    assert load_model(tmp_path / "base", None, step=40).card["step"] == 40
    with pytest.raises(VisualizerError, match=r"--step 41: .* has steps 5, 40, 100"):
        load_model(folder, None, step=41)
    with pytest.raises(VisualizerError, match="--step 5 does not match model_000100.pt"):
        load_model(folder / "model_000100.pt", None, step=5)


def test_tokenizer_from_env_base_dir_or_flag(tmp_path, monkeypatch):
    folder = make_nanochat(tmp_path / "base")
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    for f in folder.iterdir():
        shutil.copy(f, alone / f.name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NANOCHAT_BASE_DIR", raising=False)
    with pytest.raises(VisualizerError, match="no nanochat tokenizer.pkl found .*pass --tokenizer DIR"):
        load_model(alone, None)
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    assert load_model(alone, None).tokenizer.vocab_size == VOCAB_SIZE
    monkeypatch.delenv("NANOCHAT_BASE_DIR")
    assert load_model(alone, None, tokenizer=tmp_path / "base" / "tokenizer").tokenizer.vocab_size == VOCAB_SIZE
    with pytest.raises(VisualizerError, match="--tokenizer .*: no tokenizer.pkl there"):
        load_model(alone, None, tokenizer=tmp_path)


def test_probe_and_chat_encoding_as_nanochat(tmp_path):
    _, loaded = tiny(tmp_path)
    tok = loaded.tokenizer
    bos = tok.specials["<|bos|>"]
    ids = tok.encode("say <|user_end|>").ids
    assert ids[0] == bos and tok.specials["<|user_end|>"] not in ids  # special text stays ordinary
    chat = loaded.adapter.encode_chat(loaded, "hi there").ids
    assert [tok.token_str(i) for i in chat[:2] + chat[-2:]] == ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>"]
    assert tok.decode(chat[2:-2]) == "hi there"
    assert [tok.token_str(tok.specials[s]) for s in SPECIALS] == list(SPECIALS)


def test_cli_chat_and_hostile_probe(tmp_path):
    folder = make_nanochat(tmp_path / "base")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("--checkpoint", folder, "--chat", "<script>alert(1)</script>", "--probe", PROBE, "--out", out)
    assert code == 0, stderr
    reports = sorted(p for p in out.iterdir() if (p / "trace.json").is_file())
    assert len(reports) == 2
    traces = [json.loads((p / "trace.json").read_text(encoding="utf-8")) for p in reports]
    chat = next(t for t in traces if t.get("chat"))
    assert chat["tokens"][:2] == ["<|bos|>", "<|user_start|>"] and chat["tokens"][-1] == "<|assistant_start|>"
    for p in reports:
        page = (p / "index.html").read_text(encoding="utf-8")
        assert "<script>alert(1)" not in page and "<b>&amp;" not in page


# --- refusals --------------------------------------------------------------------------------------


def expect_error(match, *args, **kwargs):
    with pytest.raises(VisualizerError, match=match):
        load_model(*args, **kwargs)


def test_unknown_missing_and_misshapen_keys_are_named(tmp_path):
    folder = make_nanochat(tmp_path / "a", architecture="current")
    model_file = folder / "model_000020.pt"
    rewrite_state(model_file, lambda s: s.__setitem__("transformer.h.0.attn.rope_scale", torch.ones(1)))
    expect_error(r"unexpected state-dict key 'transformer.h.0.attn.rope_scale'", folder, None)
    rewrite_state(model_file, lambda s: (s.pop("transformer.h.0.attn.rope_scale"), s.pop("smear_lambda")))
    expect_error(r"missing state-dict key 'smear_lambda' .*before smear and backout", folder, None)
    folder = make_nanochat(tmp_path / "b", architecture="original", n_kv_head=4)
    rewrite_state(folder / "model_000020.pt", lambda s: s.pop("lm_head.weight"))
    expect_error(r"missing state-dict key 'lm_head.weight'", folder, None)
    folder = make_nanochat(tmp_path / "c", architecture="original", n_kv_head=4)
    rewrite_state(folder / "model_000020.pt", lambda s: s.__setitem__("lm_head.weight", torch.zeros(3, 32)))
    expect_error(r"'lm_head.weight' has shape \(3, 32\), model_config implies \(277, 32\)", folder, None)


def test_bad_configs_are_named(tmp_path):
    folder = make_nanochat(tmp_path / "a")
    meta = folder / "meta_000020.json"
    rewrite_meta(meta, lambda m: m["model_config"].__setitem__("rope_theta", 10))
    expect_error(r"unknown model_config key 'rope_theta'", folder, None)
    rewrite_meta(meta, lambda m: (m["model_config"].pop("rope_theta"), m["model_config"].__setitem__("window_pattern", "SXL")))
    expect_error(r"window_pattern'\] must be letters S and L", folder, None)
    folder = make_nanochat(tmp_path / "b", architecture="original", n_kv_head=4)
    rewrite_meta(folder / "meta_000020.json", lambda m: m["model_config"].__setitem__("window_pattern", "L"))
    expect_error(r"has 'window_pattern' but the weights have none of the current architecture's keys", folder, None)
    (folder / "meta_000020.json").unlink()
    expect_error(r"meta_000020.json: not found", folder / "model_000020.pt", None, family="nanochat")


def test_tokenizer_of_another_size_is_refused(tmp_path):
    folder = make_nanochat(tmp_path / "a")
    rewrite_meta(folder / "meta_000020.json", lambda m: m["model_config"].__setitem__("vocab_size", VOCAB_SIZE + 1))
    expect_error(r"the tokenizer has 277 tokens but the model's vocab_size is 278", folder, None)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_tokenizer_pickle_is_refused_without_running(tmp_path):
    folder = make_nanochat(tmp_path / "base")
    marker = tmp_path / "pwned"
    with open(tmp_path / "base" / "tokenizer" / "tokenizer.pkl", "wb") as f:
        pickle.dump(_Exploit(marker), f)
    expect_error(r"tokenizer.pkl: refused to unpickle '(posix|os)\.system'.*nothing in the file was executed", folder, None)
    assert not marker.exists()


def test_encoding_pickled_by_registered_name_is_refused_offline(tmp_path):
    folder = make_nanochat(tmp_path / "base")
    # what tiktoken writes for a registered encoding: Encoding() then __setstate__('cl100k_base'),
    # which in tiktoken itself would download the ranks
    by_name = b"\x80\x04\x8c\x0dtiktoken.core\x8c\x08Encoding\x93)\x81\x8c\x0bcl100k_base" + b"b."
    (tmp_path / "base" / "tokenizer" / "tokenizer.pkl").write_bytes(by_name)
    expect_error(r"refers to tiktoken's registered encoding 'cl100k_base' by name", folder, None)


def test_family_detection_and_flags(tmp_path):
    from tests.support.nanogpt import make_checkpoint

    ckpt, meta = make_checkpoint(tmp_path / "gpt")
    assert detect_family(ckpt) == ("nanogpt", "a single checkpoint file")
    folder = make_nanochat(tmp_path / "base")
    assert detect_family(tmp_path / "base")[0] == "nanochat"
    expect_error("--meta is nanoGPT's meta.pkl", folder, meta)
    expect_error("--step applies to nanochat checkpoints", ckpt, meta, step=3)
    expect_error("not a nanoGPT checkpoint", folder / "model_000020.pt", None, family="nanogpt")
    expect_error("not a nanochat checkpoint", ckpt, None, family="nanochat")
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--chat", "hello", "--out", tmp_path / "o")
    assert code == 2 and "--chat: the nanogpt family has no chat format" in stderr


def test_folders_of_other_families(tmp_path):
    from tests.support.nanogpt import make_checkpoint

    ckpt, meta = make_checkpoint(tmp_path / "gpt")
    assert detect_family(ckpt.parent) == ("nanogpt", "ckpt.pt in the folder")
    assert load_model(ckpt.parent, meta).family == "nanogpt"
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}", encoding="utf-8")
    assert detect_family(tmp_path / "hf")[0] == "hf"
    (tmp_path / "empty").mkdir()
    expect_error("no checkpoint in this folder", tmp_path / "empty", None)


def test_cli_family_step_and_tokenizer_flags(tmp_path):
    folder = make_nanochat(tmp_path / "base", steps=(3, 9))
    tokenizer = tmp_path / "base" / "tokenizer"
    code, stdout, stderr = run_cli("--checkpoint", folder, "--family", "nanochat", "--step", "3", "--tokenizer", tokenizer,
                                   "--probe", "the end", "--out", tmp_path / "out")
    assert code == 0, stderr
    assert "family nanochat (--family)" in stdout
    trace = json.loads((tmp_path / "out" / "trace.json").read_text(encoding="utf-8"))
    assert trace["model"]["step"] == 3 and trace["model"]["checkpoint_file"] == "model_000003.pt"
    code, _, stderr = run_cli("--checkpoint", folder, "--step", "4", "--out", tmp_path / "out2")
    assert code == 2 and stderr.startswith("error: --step 4: ") and "has steps 3, 9" in stderr
    assert not (tmp_path / "out2").exists()
