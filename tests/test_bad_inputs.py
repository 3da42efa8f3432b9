"""Every bad input a careless user or an attacker gives on the command line, in settings or in a
vocabulary: one `error:` line naming the flag, file or key, exit 2, and nothing changed around it.
(Bad checkpoints and model folders: tests/test_bad_model_inputs.py; folders: test_folder_safety.py.)"""

from __future__ import annotations

import pickle

import pytest

from tests.support.cli import FAST, run_cli
from tests.support.faults import checksums, one_error_line
from visualizer.config import MAX_PROBE_BYTES



@pytest.fixture
def model(tiny_checkpoint):
    ckpt, meta = tiny_checkpoint
    return ("--checkpoint", ckpt, "--meta", meta)


def refused(tmp_path, argv, needle):
    before = checksums(tmp_path)
    code, _, stderr = run_cli(*argv)
    assert code == 2, stderr
    line = one_error_line(stderr)
    assert needle in line, line
    assert checksums(tmp_path) == before
    return line


@pytest.mark.parametrize("flags,needle", [
    (["--top-k", "0"], "--top-k 0"),
    (["--top-k", "-3"], "--top-k -3"),
    (["--top-k", "100000"], "--top-k 100000"),
    (["--ig-steps", "100000000"], "--ig-steps 100000000"),
    (["--ig-steps", "-1"], "--ig-steps -1"),
    (["--target-position", "99"], "--target-position 99"),
    (["--step", "-1"], "--step"),
    (["--family", "gpt5"], "--family"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_report_flags_out_of_range(tmp_path, model, flags, needle):
    refused(tmp_path, [*model, "--probe", "a rose", "--out", tmp_path / "r", *FAST, *flags], needle)


@pytest.mark.parametrize("flags,needle", [
    (["--seed", str(2**70)], "--seed"),
    (["--seed", "-1"], "--seed -1"),
    (["--max-new-tokens", "1000000000"], "--max-new-tokens 1000000000"),
    (["--max-new-tokens", "0"], "--max-new-tokens 0"),
    (["--candidates", "0"], "--candidates 0"),
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "1.5"], "top-p"),
])
def test_generate_flags_out_of_range(tmp_path, model, flags, needle):
    refused(tmp_path, ["generate", *model, "--prompt", "a rose", "--out", tmp_path / "g", "--quiet", *flags], needle)


def test_a_generation_too_large_for_memory_is_refused_up_front(tmp_path, model, monkeypatch):
    import visualizer.pipeline as pipeline

    monkeypatch.setattr(pipeline, "physical_memory", lambda: 2**30)  # a 1 GiB machine
    line = refused(tmp_path, ["generate", *model, "--prompt", "a", "--out", tmp_path / "g", "--max-new-tokens", "99999",
                              "--quiet"], "--max-new-tokens 99999")
    assert "ask for at most" in line


def test_env_file_that_is_not_utf8(tmp_path, model):
    env = tmp_path / "bad.env"
    env.write_bytes(b"OUT=\xff\xfe\n")
    refused(tmp_path, [*model, "--env-file", env, "--probe", "a", *FAST], "not UTF-8")


def test_probe_file_keeps_cr_and_crlf(tmp_path, model):
    import json

    probe = tmp_path / "probe.txt"
    probe.write_bytes(b"a\r\nb\rc\n")
    code, _, stderr = run_cli(*model, "--probe-file", probe, "--out", tmp_path / "r", *FAST)
    if code == 2:  # the tiny vocabulary has no CR: the error must name it, at its position
        assert "U+000D" in one_error_line(stderr) and "position 1" in stderr
    else:
        assert json.loads((tmp_path / "r" / "trace.json").read_text())["probe"] == "a\r\nb\rc\n"


def test_probe_file_keeps_cr_when_the_vocabulary_has_it(tmp_path):
    import json

    from tests.support.nanogpt import char_vocab, make_checkpoint

    ckpt, meta = make_checkpoint(tmp_path / "m", vocab=char_vocab("\r\nabc"), n_layer=1, n_head=1, n_embd=8, block_size=16)
    probe = tmp_path / "probe.txt"
    probe.write_bytes(b"a\r\nb\rc\n")
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe-file", probe, "--out", tmp_path / "r", *FAST)
    assert code == 0, stderr
    trace = json.loads((tmp_path / "r" / "trace.json").read_text())
    assert trace["probe"] == "a\r\nb\rc\n" and len(trace["token_ids"]) == 7


@pytest.mark.parametrize("content,needle", [
    (b"\xff\xfeab", "not UTF-8"),
    (b"a" * (MAX_PROBE_BYTES + 1), "longer than"),
])
def test_probe_files_that_cannot_be_probes(tmp_path, model, content, needle):
    probe = tmp_path / "probe.txt"
    probe.write_bytes(content)
    refused(tmp_path, [*model, "--probe-file", probe, "--out", tmp_path / "r", *FAST], needle)


def test_an_endless_probe_file_is_read_only_up_to_the_cap(tmp_path, model):
    refused(tmp_path, [*model, "--probe-file", "/dev/zero", "--out", tmp_path / "r", *FAST], "longer than")


def test_an_oversize_probe_argument(tmp_path, model):
    refused(tmp_path, [*model, "--probe", "a" * (MAX_PROBE_BYTES + 10), "--out", tmp_path / "r", *FAST], "longer than")


def write_meta(path, stoi, itos, vocab_size=None):
    with open(path, "wb") as f:
        pickle.dump({"vocab_size": vocab_size or len(itos), "stoi": stoi, "itos": itos}, f)


@pytest.mark.parametrize("change,needle", [
    (lambda stoi, itos: stoi.update({"a": 999}), "itos has no id 999"),
    (lambda stoi, itos: stoi.update({"a": stoi["b"], "b": stoi["a"]}), "disagree"),
    (lambda stoi, itos: itos.update({-1: "z"}), "negative token id"),
    (lambda stoi, itos: stoi.pop("a"), "is not in stoi"),
])
def test_a_vocabulary_whose_stoi_and_itos_disagree(tmp_path, tiny_checkpoint, change, needle):
    ckpt, meta = tiny_checkpoint
    loaded = pickle.loads(meta.read_bytes())
    stoi, itos = dict(loaded["stoi"]), dict(loaded["itos"])
    change(stoi, itos)
    bad = tmp_path / "meta.pkl"
    write_meta(bad, stoi, itos, loaded["vocab_size"])
    line = refused(tmp_path, ["--checkpoint", ckpt, "--meta", bad, "--probe", "a b", "--out", tmp_path / "r", *FAST], needle)
    assert "meta.pkl" in line


def test_a_native_tokenizer_panic_is_one_line(tmp_path, model, monkeypatch):
    """pyo3's PanicException is a BaseException: caught at the tokenizer boundary."""
    from visualizer.model.tokenizer import CharTokenizer

    class PanicException(BaseException):
        pass

    def panic(self, text):
        raise PanicException("called `Result::unwrap()` on an `Err` value: regex too big")

    monkeypatch.setattr(CharTokenizer, "encode", panic)
    line = refused(tmp_path, [*model, "--probe", "a", "--out", tmp_path / "r", *FAST], "tokenizer failed")
    assert "PanicException" in line


def test_terminal_escapes_never_reach_the_terminal(tmp_path, model):
    store = tmp_path / "traces"
    tag = "\x1b]0;pwned\x07\x1b[2J\x9b31mred\nsecond line"
    code, _, stderr = run_cli(*model, "--probe", "a rose", "--out", tmp_path / "r", "--store", store, "--tag", tag,
                              "--category", tag, "--quiet", "--ig-steps", "0")
    assert code == 0, stderr
    for argv in (["traces", "list"], ["traces", "summary"], ["traces", "show", next(store.iterdir()).name],
                 ["traces", "list", "--json"]):
        code, stdout, stderr = run_cli(*argv, "--store", store)
        assert code == 0, stderr
        text = stdout + stderr
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, (argv, text)
        assert "second line" not in text.replace("\\nsecond line", "")  # the newline is shown as \n


def test_an_error_message_carrying_escape_codes_is_cleaned(tmp_path, model):
    line = refused(tmp_path, [*model, "--probe", "a", "--out", tmp_path / "r", "--meta", tmp_path / "m\x1b[31m.pkl",
                              *FAST], "not found")
    assert "\x1b" not in line and "\\x1b" not in line or "[31m" not in line
