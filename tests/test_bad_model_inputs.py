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

from tests.support.cli import run_cli
from tests.support.faults import checksums, one_error_line, run_tool
from tests.support.nanogpt import make_checkpoint

FAST = ("--no-store", "--quiet", "--ig-steps", "0")
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
