"""Lose nothing, ever: every bad model input (checkpoint, meta.pkl, nanochat meta json and tokenizer,
Hugging Face folder) is one `error:` line naming the file and the key, exit code 2, and nothing on
disk changes; a model whose weights hold NaN or infinities gets its report, with the verification
alarm, and exit code 3.

Each case builds its hostile input in tmp_path, runs the CLI in this process and checks the exit
code, the one `error:` line, and a checksum listing of tmp_path before and after (only the --out
folder a verification failure writes may appear).
"""

from __future__ import annotations

import json
import math
import pickle
import re

import pytest
import torch

from tests.support.cli import FAST, run_cli
from tests.support.faults import checksums, one_error_line, run_tool
from tests.support.nanogpt import make_checkpoint

PROBE = "a rose is a rose"


def refused(root, args, *needles, absent=()) -> str:
    """Run the CLI with `args`: exit 2, one `error:` line holding every needle (and none of
    `absent`), nothing below `root` changed. Returns the line."""
    before = checksums(root)
    code, _, stderr = run_cli(*args, "--out", root / "out", "--probe", PROBE, *FAST)
    assert code == 2, stderr
    line = one_error_line(stderr)
    for needle in needles:
        assert needle in line, line
    for needle in absent:
        assert needle not in line, line
    assert checksums(root) == before
    return line


def rewrite(ckpt, change) -> None:
    """Load a nanoGPT checkpoint, let `change(data)` edit it, save it back."""
    data = torch.load(ckpt, weights_only=True)
    change(data)
    torch.save(data, ckpt)


def set_in(*path_and_value):
    """A change setting data[k1][k2]... = value."""
    *path, value = path_and_value

    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.fixture
def nanogpt(tmp_path):
    """(tmp_path, ckpt.pt, meta.pkl) of a fresh small nanoGPT model: 2 layers, 32 wide, 64 positions."""
    ckpt, meta = make_checkpoint(tmp_path / "m", block_size=64)
    return tmp_path, ckpt, meta


# --- nanoGPT: fields of the wrong type -----------------------------------------------------------

WRONG_TYPES = [
    (set_in("model_args", "dropout", "x"), "model_args['dropout'] must be a number from 0 to 1, found 'x'"),
    (set_in("model_args", "dropout", 5.0), "model_args['dropout'] must be a number from 0 to 1, found 5.0"),
    (set_in("model_args", "bias", "False"), "model_args['bias'] must be True or False, found 'False'"),
    (set_in("model_args", "bias", 1), "model_args['bias'] must be True or False, found 1"),
    (set_in("model_args", "vocab_size", "39"), "model_args['vocab_size'] must be a positive integer, found '39'"),
    (set_in("model_args", "n_layer", True), "model_args['n_layer'] must be a positive integer, found True"),
    (set_in("model_args", "n_embd", 32.0), "model_args['n_embd'] must be a positive integer, found 32.0"),
    (set_in("model_args", "n_head", 0), "model_args['n_head'] must be a positive integer, found 0"),
    (set_in("model_args", "n_head", 3), "n_embd=32 is not a multiple of n_head=3"),
    (set_in("model_args", [1, 2]), "key 'model_args' is not a dict"),
    (set_in("best_val_loss", "abc"), "'best_val_loss' must be a number, found 'abc'"),
    (set_in("best_val_loss", torch.ones(2)), "'best_val_loss' must be a number, found a (2,) torch.float32 tensor"),
    (set_in("iter_num", "100"), "'iter_num' must be a non-negative integer, found '100'"),
    (set_in("iter_num", -1), "'iter_num' must be a non-negative integer, found -1"),
    (set_in("config", "shakespeare"), "'config' must be a dict (train.py's settings), found str"),
    (set_in("config", "dataset", 7), "config['dataset'] must be a string, found 7"),
    (set_in("model", [1, 2]), "key 'model' is not a state dict"),
    (set_in("model", "transformer.ln_f.weight", [1.0] * 32), "state-dict key 'transformer.ln_f.weight' is not a tensor"),
    (set_in("model", "transformer.ln_f.weight", torch.ones(32, dtype=torch.int64)),
     "'transformer.ln_f.weight' has dtype torch.int64, expected floats"),
]


@pytest.mark.parametrize("change, message", WRONG_TYPES, ids=[m[:40] for _, m in WRONG_TYPES])
def test_a_field_of_the_wrong_type_is_named(nanogpt, change, message):
    root, ckpt, meta = nanogpt
    rewrite(ckpt, change)
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "ckpt.pt: ", message)


def test_a_checkpoint_that_is_not_a_dict_is_named(nanogpt):
    root, ckpt, meta = nanogpt
    torch.save([torch.ones(2)], ckpt)
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "ckpt.pt: not a nanoGPT checkpoint (a list, expected a dict)")


# --- nanoGPT: declared sizes against the stored tensors, before anything is allocated -------------

DECLARED_SIZES = [
    ("n_layer", 2000, "model_args['n_layer'] is 2000 but the state dict holds blocks transformer.h.0 .. transformer.h.1"),
    ("n_layer", 1, "model_args['n_layer'] is 1 but the state dict holds blocks transformer.h.0 .. transformer.h.1"),
    ("n_embd", 2**20, "model_args['n_embd'] is 1048576 but state-dict key 'transformer.wte.weight' has shape (39, 32)"),
    ("block_size", 2**40, "model_args['block_size'] is 1099511627776 but state-dict key 'transformer.wpe.weight' has shape (64, 32)"),
    ("vocab_size", 50304, "model_args['vocab_size'] is 50304 but state-dict key 'transformer.wte.weight' has shape (39, 32)"),
]


@pytest.mark.parametrize("field, value, message", DECLARED_SIZES, ids=[f"{f}={v}" for f, v, _ in DECLARED_SIZES])
def test_declared_sizes_are_checked_against_the_weights_before_allocating(nanogpt, monkeypatch, field, value, message):
    root, ckpt, meta = nanogpt
    rewrite(ckpt, set_in("model_args", field, value))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was allocated before its sizes were checked")

    monkeypatch.setattr("visualizer.model.nanogpt.adapter.GPT", no_model)
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "ckpt.pt: ", message)


def test_a_state_dict_without_the_embedding_names_the_key(nanogpt):
    root, ckpt, meta = nanogpt

    def drop(data):
        for key in ("transformer.wte.weight", "lm_head.weight"):
            data["model"].pop(key, None)

    rewrite(ckpt, drop)
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "missing state-dict key 'transformer.wte.weight'",
            "model_args['vocab_size']")


# --- nanoGPT: meta.pkl ---------------------------------------------------------------------------

def write_meta(meta, **fields) -> None:
    with open(meta, "rb") as f:
        data = pickle.load(f)
    data.update(fields)
    with open(meta, "wb") as f:
        pickle.dump(data, f)


def test_a_meta_vocab_size_that_is_not_an_int_is_quoted(nanogpt):
    root, ckpt, meta = nanogpt
    write_meta(meta, vocab_size="39")
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "meta.pkl: 'vocab_size' must be an integer, found '39'")


def test_a_meta_found_beside_the_checkpoint_is_named_and_meta_is_not_blamed(nanogpt):
    root, ckpt, meta = nanogpt
    write_meta(meta, vocab_size=40)
    line = refused(root, ("--checkpoint", ckpt), str(meta), "the meta.pkl found for this checkpoint",
                   "vocab_size 40 does not match the checkpoint's vocab_size 39", absent=("--meta",))
    assert line.count("meta.pkl") == 2


def test_a_family_flag_on_the_demo_does_not_blame_meta(tmp_path):
    for family in ("nanochat", "hf"):
        line = refused(tmp_path, ("--family", family), "demo", absent=("--meta",))
        assert "ckpt.pt" in line


# --- torch.load: our words, not torch's advice -----------------------------------------------------

class Custom:
    """A class a plain tensor checkpoint never holds."""


LOAD_FAILURES = [
    ("namespace", lambda p: torch.save({"model": {}, "model_args": __import__("argparse").Namespace(n=1)}, p),
     "not a plain tensor checkpoint (it holds argparse.Namespace"),
    ("class", lambda p: torch.save({"model": Custom()}, p), "not a plain tensor checkpoint (it holds"),
    ("empty", lambda p: p.write_bytes(b""), "not a loadable torch checkpoint (the file is empty or ends too early)"),
    ("text", lambda p: p.write_text("hello\n"), "not a loadable torch checkpoint"),
    ("truncated", None, "not a loadable torch checkpoint"),
]


@pytest.mark.parametrize("name, write, message", LOAD_FAILURES, ids=[c[0] for c in LOAD_FAILURES])
def test_an_unloadable_checkpoint_is_told_in_our_words(nanogpt, name, write, message):
    root, ckpt, meta = nanogpt
    if write is None:
        ckpt.write_bytes(ckpt.read_bytes()[:3000])
    else:
        write(ckpt)
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "ckpt.pt: ", message, absent=("weights_only", "trust"))


@pytest.mark.parametrize("name", ["namespace", "truncated"])
def test_nothing_is_printed_before_the_error_line(nanogpt, name):
    """In a separate process, so that anything torch writes straight to the terminal shows."""
    root, ckpt, meta = nanogpt
    if name == "namespace":
        torch.save({"model": {}, "model_args": __import__("argparse").Namespace(n=1)}, ckpt, pickle_protocol=4)
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:3000])
    before = checksums(root)
    result = run_tool("--checkpoint", ckpt, "--meta", meta, "--probe", PROBE, "--out", root / "out", *FAST)
    assert result.returncode == 2 and result.stdout == ""
    assert "ckpt.pt" in one_error_line(result.stderr)
    assert checksums(root) == before


# --- non-finite weights: the report, with the alarm -----------------------------------------------

def strict_json(path):
    """A file's JSON, refusing NaN and Infinity (which JSON does not have)."""
    def refuse(name):
        raise AssertionError(f"{path.name}: {name} in JSON")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def alarmed(root, args, tensor: str) -> tuple[dict, str]:
    """Run the CLI with `args` on a model whose `tensor` holds NaN or inf: exit 3, the failed checks
    on stderr (nothing else), a whole report in root/out with the alarm, every JSON file strict,
    nothing else below `root` changed. Returns (trace.json, index.html)."""
    before = checksums(root)
    code, _, stderr = run_cli(*args, "--out", root / "out", "--probe", PROBE, "--no-store", "--quiet")
    assert code == 3, stderr
    lines = stderr.splitlines()
    assert lines and all(line.startswith("VERIFICATION FAILED: ") for line in lines), stderr
    assert any(line.startswith("VERIFICATION FAILED: every weight is finite") and tensor in line for line in lines)
    assert checksums(root, skip=("out",)) == before
    out = root / "out"
    for name in ("trace.json", "report_data.json", "analysis.json", "attribution.json"):
        strict_json(out / name)
    for script in (out / "data").glob("*.js"):
        assert not re.search(r'"-?(nan|inf)"', script.read_text(encoding="utf-8")), script.name  # numbers, not strings
    trace, html = strict_json(out / "trace.json"), (out / "index.html").read_text(encoding="utf-8")
    assert trace["verification_passed"] is False and tensor in trace["model"]["non_finite_weights"]
    assert "Verification failed." in html and f"every weight is finite: 1 " in html
    assert len(list((out / "figures").glob("*.png"))) > 20
    return trace, html


def poke(key: str, value: float, index: int = 0, shared: bool = False):
    """A change putting `value` at flat `index` of state-dict tensor `key` (in place: `shared`, so a
    tied matrix saved under two keys changes under both)."""
    def change(data):
        tensor = data["model"][key] if shared else data["model"][key].clone()
        tensor.view(-1)[index] = value
        data["model"][key] = tensor
    return change


NON_FINITE = [
    ("nan in an MLP", "transformer.h.0.mlp.c_fc.weight", math.nan, 0, False),
    ("inf in an MLP", "transformer.h.0.mlp.c_fc.weight", math.inf, 0, False),
    ("-inf in attention", "transformer.h.1.attn.c_attn.weight", -math.inf, 7, False),
    ("nan in one position", "transformer.wpe.weight", math.nan, 3 * 32 + 5, False),  # positions 0..2 stay finite
    ("nan in a position the probe never reaches", "transformer.wpe.weight", math.nan, 60 * 32, False),
    ("nan in the tied embedding", "transformer.wte.weight", math.nan, 3 * 32, True),
    ("inf in the final norm", "transformer.ln_f.weight", math.inf, 3, False),
]


@pytest.mark.parametrize("name, key, value, index, shared", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_non_finite_weights_get_a_report_with_the_alarm(nanogpt, name, key, value, index, shared):
    root, ckpt, meta = nanogpt
    rewrite(ckpt, poke(key, value, index, shared))
    trace, html = alarmed(root, ("--checkpoint", ckpt, "--meta", meta), key)
    if name == "nan in one position":
        assert "drawn in the missing-value grey" in html  # the figures say what grey means
    if name == "nan in an MLP":
        assert trace["next_tokens"] == [] and "no candidate" in html
        report_data = strict_json(root / "out" / "report_data.json")  # NaN logits: no entropy, never "0 bits"
        assert set(report_data["final"]["entropy_bits"]) == {"nan"}
        assert set(report_data["logit_lens"][0]["kl_to_final"]) == {"nan"}


def test_a_non_finite_report_renders_again_byte_for_byte(nanogpt, tmp_path_factory):
    root, ckpt, meta = nanogpt
    rewrite(ckpt, poke("transformer.wpe.weight", math.nan, 3 * 32 + 5))
    store = tmp_path_factory.mktemp("store")
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", PROBE, "--out", root / "out",
                              "--store", store, "--quiet")
    assert code == 3, stderr
    trace_id = next(p.name for p in store.iterdir() if not p.name.startswith("."))
    code, _, stderr = run_cli("render", trace_id, "--store", store, "--out", root / "again")
    assert code == 0, stderr
    assert checksums(root / "again") == checksums(root / "out")
    code, stdout, stderr = run_cli("compare", trace_id, trace_id, "--store", store, "--out", root / "compared")
    assert code == 0 and "mean next-token KL nan bits" in stdout, stderr  # NaN, never "0 bits"


def test_verification_fails_on_nan_and_inf():
    from visualizer.capture.verify import check

    x = torch.randn(4, 3)
    assert check(x, x.clone())["passed"]
    for bad in (math.nan, math.inf, -math.inf):
        broken = x.clone()
        broken[1, 2] = bad
        for actual, expected in ((broken, x), (x, broken), (broken, broken)):
            result = check(actual, expected)
            assert result["passed"] is False and not math.isfinite(result["max_abs_error"]), (bad, result)
    broken = x.clone()
    broken[0, 0] = math.inf  # the tolerance scales with the finite values of the reference only
    finite = broken[torch.isfinite(broken)].abs().max().item()
    assert check(x, broken)["tolerance"] == pytest.approx(1e-4 * max(1.0, finite))


def test_tied_copies_that_differ_by_an_infinity_are_said_to(nanogpt):
    root, ckpt, meta = nanogpt
    rewrite(ckpt, poke("lm_head.weight", math.inf))
    refused(root, ("--checkpoint", ckpt, "--meta", meta), "ckpt.pt: 'lm_head.weight' differs from 'transformer.wte.weight'",
            "at [0, 0] lm_head.weight holds inf", "the copies differ only where one holds a NaN or an infinity (1 entry)")


# --- nanochat: meta json and tokenizer.pkl -----------------------------------------------------------

@pytest.fixture
def nanochat(tmp_path):
    """(tmp_path, the tag folder, its meta json) of a fresh small nanochat model (3 layers, 32 wide)."""
    from tests.support.nanochat import make_nanochat

    folder = make_nanochat(tmp_path / "base")
    return tmp_path, folder, folder / "meta_000020.json"


NANOCHAT_SIZES = [
    ({"n_layer": 2000}, "model_config['n_layer'] is 2000 but model_000020.pt holds blocks transformer.h.0 .. transformer.h.2"),
    ({"n_embd": 2**20}, "model_config['n_embd'] is 1048576 but state-dict key 'transformer.wte.weight' in model_000020.pt"),
    ({"vocab_size": 2**30}, "model_config['vocab_size'] is 1073741824 but state-dict key 'transformer.wte.weight'"),
    ({"vocab_size": 200}, "model_config['vocab_size'] is 200 (256 rows, padded to 64) but"),
    ({"sequence_len": 2**40}, "model_config['sequence_len'] is 1099511627776, more than the 1,048,576 positions"),
    ({"n_kv_head": 4}, "model_config['n_kv_head'] is 4 (with n_head 4: 32 key rows) but state-dict key "
                       "'transformer.h.0.attn.c_k.weight' in model_000020.pt has shape (16, 32)"),
    ({"n_layer": "3"}, "model_config['n_layer'] must be a positive integer, found '3'"),
]


@pytest.mark.parametrize("change, message", NANOCHAT_SIZES, ids=[next(iter(c)) + "=" + str(next(iter(c.values())))
                                                                 for c, _ in NANOCHAT_SIZES])
def test_nanochat_declared_sizes_are_checked_before_allocating(nanochat, monkeypatch, change, message):
    from tests.support.nanochat import rewrite_meta

    root, folder, meta = nanochat
    rewrite_meta(meta, lambda m: m["model_config"].update(change))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was allocated before its sizes were checked")

    monkeypatch.setattr("visualizer.model.nanochat.adapter.GPT", no_model)
    refused(root, ("--checkpoint", folder), "meta_000020.json: ", message)


@pytest.mark.parametrize("text, message", [
    (b'{"model_config": \xff}', "not readable JSON (UnicodeDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, "not readable JSON (RecursionError"),
    (b"[]", "no 'model_config' object"),
], ids=["not utf-8", "nested too deep", "a list"])
def test_a_hostile_nanochat_meta_json_is_named(nanochat, text, message):
    root, folder, meta = nanochat
    meta.write_bytes(text)
    refused(root, ("--checkpoint", folder), "meta_000020.json: ", message)


def test_nanochat_with_a_nan_weight_gets_a_report_with_the_alarm(nanochat):
    from tests.support.nanochat import rewrite_state

    root, folder, _ = nanochat
    rewrite_state(folder / "model_000020.pt", lambda state: state["transformer.h.1.mlp.c_fc.weight"].view(-1).__setitem__(0, math.nan))
    alarmed(root, ("--checkpoint", folder), "transformer.h.1.mlp.c_fc.weight")


def test_a_tokenizer_pattern_that_panics_is_one_line_at_load(nanochat):
    """An empty split pattern compiles, then panics in tiktoken's Rust code on the first text it
    splits: at load, one line naming tokenizer.pkl, and nothing of the panic on the terminal."""
    import tiktoken

    from tests.support.nanochat import make_encoding

    root, folder, _ = nanochat
    state = make_encoding().__getstate__()
    hostile = tiktoken.Encoding(name="rustbpe", pat_str="", mergeable_ranks=state["mergeable_ranks"],
                                special_tokens=state["special_tokens"])
    with open(root / "base" / "tokenizer" / "tokenizer.pkl", "wb") as f:
        pickle.dump(hostile, f)
    before = checksums(root)
    result = run_tool("--checkpoint", folder, "--probe", PROBE, "--out", root / "out", *FAST)
    assert result.returncode == 2 and result.stdout == ""
    line = one_error_line(result.stderr)
    assert "tokenizer.pkl: the tokenizer failed on a trial text at load" in line and "PanicException" in line, line
    assert checksums(root) == before


def test_the_fixture_tokenizer_splits_250000_spaces_quickly():
    """nanochat's own tokenizer on a probe at the size cap: no panic, no hang."""
    import time

    from tests.support.cli import SHARED, need_fixture
    from visualizer.model.nanochat.tokenizer import NanochatTokenizer, read_encoding

    path = need_fixture(SHARED / "fixtures" / "nanochat-current" / "tokenizer" / "tokenizer.pkl")
    tokenizer = NanochatTokenizer(read_encoding(path), str(path))
    start = time.perf_counter()
    ids = tokenizer.encode("a" + " " * 250_000 + "b").ids
    assert len(ids) > 1 and time.perf_counter() - start < 20


# --- Hugging Face folders -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """A tiny GPT-2 and Llama folder, built once; tests copy them."""
    from tests.support.hf import make_gpt2_folder, make_llama_folder

    base = tmp_path_factory.mktemp("hf")
    return {"gpt2": make_gpt2_folder(base / "gpt2"), "llama": make_llama_folder(base / "llama")}


def hf_copy(hf_models, name, tmp_path):
    import shutil

    return shutil.copytree(hf_models[name], tmp_path / name)


def edit_config(folder, **fields) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


HF_SIZES = [
    ("gpt2", {"n_layer": 2000}, "config.json: n_layer is 2000 but model.safetensors holds blocks transformer.h.0 .. transformer.h.1"),
    ("gpt2", {"n_embd": 2**20}, "config.json: n_embd is 1048576 but 'transformer.wte.weight' in model.safetensors has shape"),
    ("gpt2", {"vocab_size": 2**30}, "config.json: vocab_size is 1073741824 but 'transformer.wte.weight'"),
    ("gpt2", {"n_positions": 2**40}, "weight 'transformer.wpe.weight' has shape (64, 32), config.json implies (1099511627776, 32)"),
    ("gpt2", {"n_inner": 2**30}, "weight 'transformer.h.0.mlp.c_fc.bias' has shape (128,), config.json implies (1073741824,)"),
    ("gpt2", {"n_layer": "2"}, "config.json: transformers refused it (Validation error for field 'n_layer'"),
    ("gpt2", {"n_head": 0}, "config.json: transformers cannot build a GPT2LMHeadModel from it"),
    ("llama", {"num_hidden_layers": 2000}, "config.json: num_hidden_layers is 2000 but model.safetensors holds blocks model.layers.0"),
    ("llama", {"intermediate_size": 2**30}, "weight 'model.layers.0.mlp.down_proj.weight' has shape (32, 48), config.json implies"),
    ("llama", {"head_dim": 2**20}, "weight 'model.layers.0.self_attn.k_proj.weight' has shape (16, 32), config.json implies"),
]


@pytest.mark.parametrize("name, change, message", HF_SIZES, ids=[f"{n}-{next(iter(c))}={next(iter(c.values()))}"
                                                                 for n, c, _ in HF_SIZES])
def test_config_json_sizes_are_checked_against_the_weights_before_allocating(hf_models, tmp_path, monkeypatch,
                                                                             name, change, message):
    import transformers

    folder = hf_copy(hf_models, name, tmp_path)
    edit_config(folder, **change)

    def no_model(*args, **kwargs):
        raise AssertionError("transformers allocated the model before its sizes were checked")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(no_model))
    refused(tmp_path, ("--checkpoint", folder), message)


HOSTILE_CONFIGS = [
    (b'{"model_type": "gpt2", \xff}', "config.json: not UTF-8 text (byte 23)"),
    (b'{"model_type": "gpt2", "layer_norm_epsilon": NaN}', "config.json: not valid JSON (ValueError: NaN is not a JSON value)"),
    (b'{"model_type": "gpt2", "n_layer": Infinity}', "config.json: not valid JSON (ValueError: Infinity is not a JSON value)"),
    (b"[" * 100_000 + b"]" * 100_000, "config.json: not valid JSON (RecursionError"),
    (b"[1, 2]", "config.json: not a JSON object (a list)"),
    (b'{"model_type": "gpt2",', "config.json: not valid JSON"),
]


@pytest.mark.parametrize("text, message", HOSTILE_CONFIGS, ids=["not utf-8", "nan", "infinity", "too deep", "a list", "cut"])
def test_a_hostile_config_json_is_named(hf_models, tmp_path, text, message):
    folder = hf_copy(hf_models, "gpt2", tmp_path)
    (folder / "config.json").write_bytes(text)
    refused(tmp_path, ("--checkpoint", folder, "--family", "hf"), message)


@pytest.mark.parametrize("stray", ["a.safetensors", "zz.safetensors", "model-00002-of-00002.safetensors"])
def test_a_stray_empty_safetensors_file_is_named(hf_models, tmp_path, stray):
    folder = hf_copy(hf_models, "gpt2", tmp_path)
    (folder / stray).write_bytes(b"")
    refused(tmp_path, ("--checkpoint", folder), f"{stray}: not a readable safetensors file")


def test_a_shard_index_naming_a_file_outside_the_folder_is_named(hf_models, tmp_path):
    folder = hf_copy(hf_models, "gpt2", tmp_path)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"transformer.wte.weight": "../x.safetensors"}}))
    refused(tmp_path, ("--checkpoint", folder), "model.safetensors.index.json: weight_map names '../x.safetensors'")


def test_a_tokenizer_json_regex_that_panics_is_one_line_at_load(hf_models, tmp_path):
    """A split pattern that backtracks past Oniguruma's limit panics in the tokenizers library."""
    folder = hf_copy(hf_models, "gpt2", tmp_path)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    split = {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False}
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, spec["pre_tokenizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    before = checksums(tmp_path)
    result = run_tool("--checkpoint", folder, "--probe", PROBE, "--out", tmp_path / "out", *FAST, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    line = one_error_line(result.stderr)
    assert "tokenizer.json: the tokenizer failed on a trial text at load (PanicException" in line, line
    assert checksums(tmp_path) == before


def test_a_hugging_face_model_with_an_inf_weight_gets_a_report_with_the_alarm(hf_models, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = hf_copy(hf_models, "llama", tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state["model.layers.0.mlp.down_proj.weight"][0, 0] = math.inf
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    alarmed(tmp_path, ("--checkpoint", folder), "model.layers.0.mlp.down_proj.weight")
