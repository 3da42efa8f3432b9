"""Generation: the KV-cached steps against full forwards (capture), the slide, nanoGPT's own loop,
reproducibility, stop strings, and the `generate` command's outputs and error contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.support.nanogpt import HOSTILE_VOCAB, make_checkpoint
from tests.support.cli import run_cli
import visualizer.generation.sampling as sampling
from visualizer.capture import capture
from visualizer.generation.decode import generate
from visualizer.artefacts.attention_codec import decode_float32
from visualizer.generation.record import build_record
from visualizer.model.registry import load_model
from visualizer.artefacts.trace import Probe

VOCAB = list("\n !',.:;?abcdefghijklmnopqrstuvwxyzRO")
TOL = 1e-4


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("gen") / "out-tiny", vocab=VOCAB, block_size=16, bias=True)


@pytest.fixture(scope="module")
def loaded(model_files):
    return load_model(*model_files)


def ids_of(loaded, text):
    return loaded.tokenizer.encode(text).ids


def rows_of(cache, n_layer):  # [n_layer, n_head, T]: the last query's attention row in every layer
    return torch.stack([cache[f"blocks.{l}.attn.hook_pattern"][:, -1] for l in range(n_layer)])


def test_adapter_step_equals_the_full_forward(loaded):
    """One-token steps and a multi-token step after a prefix (the masked path) against capture."""
    adapter, ids = loaded.adapter, ids_of(loaded, "o rare romeo, so")  # 16 tokens = block_size
    cache = adapter.start_cache(loaded)
    adapter.step(loaded, cache, torch.tensor(ids[:5]))
    out = adapter.step(loaded, cache, torch.tensor(ids[5:9]))  # 4 new positions at 5..8
    assert cache.length == 9 and out.pattern.shape == (2, 2, 4, 9) and out.logits.shape == (4, len(VOCAB))
    full = capture(loaded, ids[:9])
    assert (out.logits - full["logits"][5:9]).abs().max() <= TOL
    for layer in range(2):
        assert (out.pattern[layer] - full[f"blocks.{layer}.attn.hook_pattern"][:, 5:9]).abs().max() <= TOL
        assert (out.resid_post[layer] - full[f"blocks.{layer}.hook_resid_post"][5:9]).abs().max() <= TOL
    for t in range(9, 16):
        out = adapter.step(loaded, cache, torch.tensor([ids[t]]))
        full = capture(loaded, ids[: t + 1])
        assert (out.logits[-1] - full["logits"][-1]).abs().max() <= TOL
        assert (out.pattern[:, :, -1] - rows_of(full, 2)).abs().max() <= TOL
    assert cache.length == 16


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_every_cached_step_equals_capture_over_its_context_across_a_slide(loaded, temperature):
    prompt = ids_of(loaded, "romeo: o ")
    gen = generate(loaded, prompt, 14, sampling.Settings(temperature=temperature, seed=5))
    assert len(gen.steps) == 14
    # context: 9 prompt tokens; step 7 reads 16 = block_size; step 8 is the first that must crop
    assert gen.slides == list(range(8, 14))
    sequence = prompt + gen.ids
    for step in gen.steps:
        context = sequence[step.context_start : step.context_start + step.context_length]
        assert step.context_start == max(0, len(prompt) + step.index - 16)
        assert len(context) == min(16, len(prompt) + step.index)
        full = capture(loaded, context)
        assert (step.logits - full["logits"][-1]).abs().max() <= TOL, step.index
        assert (step.attention - rows_of(full, 2)).abs().max() <= TOL, step.index
        assert (step.lens_logits[-1] - full["logits"][-1]).abs().max() <= TOL
    assert all(check["passed"] for check in gen.checks.values()), gen.checks
    assert gen.checks["pattern @ v == z (every step)"]["checked"] == 14 * 2


def test_greedy_and_seeded_sampling_match_nanogpts_generate_loop(loaded):
    """nanoGPT's loop: crop to block_size, full forward, logits / temperature, top-k, multinomial."""
    prompt = ids_of(loaded, "so rare")
    for settings in (sampling.Settings(temperature=0), sampling.Settings(temperature=0.8, top_k=5, seed=11)):
        gen = generate(loaded, prompt, 12, settings)
        generator, idx = torch.Generator().manual_seed(settings.seed), list(prompt)
        for _ in range(12):
            with torch.no_grad():
                logits = loaded.adapter.plain_forward(loaded, torch.tensor(idx[-16:]))[-1].double()
            if settings.temperature == 0:
                idx.append(int(logits.argmax()))
                continue
            logits = logits / settings.temperature
            v, _ = torch.topk(logits, settings.top_k)
            logits[logits < v[-1]] = -float("inf")
            idx.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)))
        assert gen.ids == idx[len(prompt):], settings


def test_runs_are_reproducible_and_the_seed_matters(loaded):
    prompt = ids_of(loaded, "o ")
    run = lambda **kw: generate(loaded, prompt, 12, sampling.Settings(**kw), verify_last=False).ids  # noqa: E731
    assert run(temperature=0) == run(temperature=0)
    assert run(seed=1) == run(seed=1)
    assert run(seed=1) != run(seed=2)


def test_stop_string_ends_generation_and_is_kept(loaded):
    prompt = ids_of(loaded, "romeo")
    free = generate(loaded, prompt, 6, sampling.Settings(seed=3), verify_last=False)
    stop = loaded.tokenizer.decode(free.ids[1:3])  # appears once tokens 1 and 2 are out
    gen = generate(loaded, prompt, 6, sampling.Settings(seed=3, stop=(stop,)), verify_last=False)
    assert gen.ids == free.ids[: len(gen.ids)]
    assert gen.stop_reason == "stop_string" and gen.stop_string == stop
    assert loaded.tokenizer.decode(gen.ids).endswith(stop) and len(gen.ids) <= 3


def test_no_token_allowed_stops_cleanly(tmp_path):
    loaded = load_model(*make_checkpoint(tmp_path / "m", vocab=list("ab"), block_size=8))
    gen = generate(loaded, [0, 1], 5, sampling.Settings(no_repeat_ngram_size=1), verify_last=False)
    assert gen.ids == [] and gen.stop_reason == "no_allowed_token"


def test_record_holds_the_step_data_exactly(loaded):
    prompt = ids_of(loaded, "romeo: o ")
    settings = sampling.Settings(temperature=0.9, top_k=4, repetition_penalty=1.5, seed=2)
    gen = generate(loaded, prompt, 10, settings)
    record = build_record(loaded, Probe("romeo: o ", prompt), gen, settings, 10, 5)
    json.dumps(record, allow_nan=False)
    assert record["generated_ids"] == gen.ids and record["slides"] == [8, 9]
    assert record["output"] == "romeo: o " + loaded.tokenizer.decode(gen.ids)
    for step, entry in zip(gen.steps, record["steps"]):
        attention = decode_float32(entry["attention"])
        assert np.array_equal(attention, step.attention.numpy())
        assert np.allclose(attention.sum(-1), 1.0, atol=1e-5)
        probs = torch.softmax(step.logits.double(), -1)
        assert entry["prob"] == pytest.approx(float(probs[step.token]), abs=1e-12)
        assert [c["id"] for c in entry["candidates_before"]] == torch.argsort(probs, descending=True, stable=True)[:5].tolist()
        assert [c["control"] for c in entry["controls"]] == ["repetition_penalty", "temperature", "top_k"]
        assert len(entry["candidates_after"]) <= 4 and step.token in [c["id"] for c in entry["candidates_after"]]
        assert entry["sampled_prob"] == pytest.approx(sum(c["prob"] for c in entry["candidates_after"] if c["id"] == step.token))
        lens_last = entry["logit_lens"][-1]
        assert lens_last["chosen_prob"] == pytest.approx(entry["prob"], abs=1e-5)
        assert len(entry["logit_lens"]) == 2


# --- the command -----------------------------------------------------------------------------


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def gen_cli(model_files, out, *extra):
    ckpt, meta = model_files
    return run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--out", out, "--quiet", *extra)


def test_generate_writes_every_output(tmp_path, model_files):
    out = tmp_path / "g"
    code, stdout, stderr = gen_cli(model_files, out, "--prompt", "romeo: o", "--max-new-tokens", "12",
                                   "--snapshot-every", "5", "--top-p", "0.9", "--seed", "4")
    assert code == 0, stderr
    assert stdout == "" and stderr == ""
    names = set(files_of(out))
    assert {"index.html", "generation.json", "output.txt", "assets/generation.js", "assets/generation.css",
            "prompt/index.html", "prompt/trace.json", "snapshots/attention-step-0004.png",
            "snapshots/attention-step-0009.png"} <= names
    record = json.loads((out / "generation.json").read_text())
    assert record["settings"]["top_p"] == 0.9 and record["settings"]["seed"] == 4 and record["verification_passed"]
    assert (out / "output.txt").read_text() == record["output"] == "romeo: o" + record["continuation"]
    assert json.loads((out / "prompt" / "trace.json").read_text())["probe"] == "romeo: o"
    page = (out / "index.html").read_text()
    assert 'href="prompt/index.html"' in page and 'src="assets/generation.js"' in page
    assert "Context slid" in page and "from step 9 on" in page  # step 8 reads 8 + 8 = 16 tokens; step 9 crops
    assert "fetch(" not in (out / "assets" / "generation.js").read_text()
    assert (out / "snapshots/attention-step-0004.png").read_bytes()[:4] == b"\x89PNG"


def test_temperature_zero_alone_is_greedy_argmax(tmp_path, model_files, loaded):
    out = tmp_path / "g"
    assert gen_cli(model_files, out, "--prompt", "so", "--max-new-tokens", "6", "--temperature", "0",
                   "--snapshot-every", "0")[0] == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["settings"]["top_k"] is None and record["settings"]["repetition_penalty"] == 1.0
    seq = ids_of(loaded, "so")
    for entry in record["steps"]:
        with torch.no_grad():
            logits = loaded.adapter.plain_forward(loaded, torch.tensor(seq[-16:]))[-1]
        assert entry["id"] == int(logits.argmax()) and entry["rank"] == 1 and entry["sampled_prob"] == 1.0
        seq.append(entry["id"])


def test_two_runs_give_identical_bytes(tmp_path, model_files):
    args = ("--prompt", "o rare", "--max-new-tokens", "10", "--snapshot-every", "4", "--temperature", "0.7")
    for name in ("a", "b"):
        assert gen_cli(model_files, tmp_path / name, *args)[0] == 0
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys() and "index.html" in a and "generation.json" in a
    assert [k for k in a if a[k] != b[k]] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "romeo#"], "character '#' (U+0023) at position 5 is not in the vocabulary"),
        (["--prompt", "o", "--max-new-tokens", "0"], "--max-new-tokens 0: must be at least 1"),
        (["--prompt", "o", "--top-p", "0"], "--top-p 0.0"),
        (["--prompt", "o", "--temperature", "-1"], "--temperature -1.0"),
        (["--prompt", "o", "--top-k", "x"], "argument --top-k: invalid int value"),
        (["--prompt", "o", "--checkpoint", "{tmp}/nope.pt"], "nope.pt: checkpoint not found"),
    ],
)
def test_bad_input_is_one_error_line_and_the_earlier_output_survives(tmp_path, model_files, args, message):
    out = tmp_path / "g"
    assert gen_cli(model_files, out, "--prompt", "o", "--max-new-tokens", "2", "--snapshot-every", "0")[0] == 0
    before = files_of(out)
    code, stdout, stderr = gen_cli(model_files, out, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]


def test_refuses_to_replace_a_report_or_a_foreign_folder(tmp_path, model_files):
    ckpt, meta = model_files
    report = tmp_path / "report"
    assert run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", "o", "--out", report)[0] == 0
    code, _, stderr = gen_cli(model_files, report, "--prompt", "o", "--max-new-tokens", "2")
    assert code == 2 and "folder is not empty" in stderr
    assert (report / "trace.json").is_file() and not (report / "generation.json").exists()


def test_env_supplies_model_prompt_and_out(tmp_path, model_files, monkeypatch):
    ckpt, meta = model_files
    monkeypatch.chdir(tmp_path)
    for key in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT", "DEVICE"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".env").write_text(f"MODEL={ckpt}\nNANOGPT_META_PATH={meta}\nPROBE_SENTENCE=a rose\nOUT=from-env\n")
    code, _, stderr = run_cli("generate", "--max-new-tokens", "2", "--snapshot-every", "0", "--quiet")
    assert code == 0, stderr
    assert json.loads((tmp_path / "from-env" / "generation.json").read_text())["prompt"] == "a rose"


def test_hostile_vocabulary_is_escaped(tmp_path):
    files = make_checkpoint(tmp_path / "m", vocab=HOSTILE_VOCAB, block_size=12)
    prompt = '<script>alert(1)</script>" onmouseover="x'
    code, _, stderr = gen_cli(files, tmp_path / "g", "--prompt", prompt, "--max-new-tokens", "14",
                              "--snapshot-every", "7", "--stop", "</details>")
    assert code == 0, stderr
    page = (tmp_path / "g" / "index.html").read_text()
    assert "<script>alert(1)" not in page and '" onmouseover="x' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    data = page.split('<script type="application/json" id="generation-data">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["steps"]


def test_long_prompt_word_vocabulary_and_nothing_to_generate(tmp_path):
    from tests.support.nanogpt import WORD_VOCAB

    vocab = [w for w in WORD_VOCAB if w != " "]  # spaces separate words, as in most word vocabularies
    files = make_checkpoint(tmp_path / "w", vocab=vocab, block_size=6)
    code, _, stderr = gen_cli(files, tmp_path / "g", "--prompt", "the king and my lord, you shall", "--max-new-tokens", "3",
                              "--snapshot-every", "0", "--temperature", "0")
    assert code == 0
    assert "warning: the probe has 8 tokens, more than the model's context of 6" in stderr
    record = json.loads((tmp_path / "g" / "generation.json").read_text())
    assert record["dropped_tokens"] == 2 and len(record["prompt_ids"]) == 6 and record["slides"] == [1, 2]
    words = [vocab[i] for i in record["generated_ids"]]
    assert record["continuation"] == " " + " ".join(words)  # a word vocabulary joins with spaces
    assert (tmp_path / "g" / "output.txt").read_text() == "the king and my lord, you shall" + record["continuation"]

    files = make_checkpoint(tmp_path / "ab", vocab=list("ab"), block_size=8)
    code, _, stderr = gen_cli(files, tmp_path / "none", "--prompt", "ab", "--no-repeat-ngram-size", "1")
    assert code == 0, stderr
    record = json.loads((tmp_path / "none" / "generation.json").read_text())
    assert record["steps"] == [] and record["stop"]["reason"] == "no_allowed_token"
    assert "every token was banned" in (tmp_path / "none" / "index.html").read_text()


def test_a_wrong_derived_pattern_fails_verification_loudly(tmp_path, model_files, monkeypatch):
    from visualizer.model.nanogpt.adapter import NanoGPTAdapter

    monkeypatch.setattr(NanoGPTAdapter, "attention_scale", lambda self, dims, layer: 2 * dims.d_head**-0.5)
    code, _, stderr = gen_cli(model_files, tmp_path / "g", "--prompt", "o rare", "--max-new-tokens", "3",
                              "--snapshot-every", "0")
    assert code == 3
    assert "VERIFICATION FAILED: pattern @ v == z (every step)" in stderr
    assert "Verification failed" in (tmp_path / "g" / "index.html").read_text()
    record = json.loads((tmp_path / "g" / "generation.json").read_text())
    assert record["verification_passed"] is False
    assert record["verification"]["cached logits == full forward (last step)"]["passed"] is True
