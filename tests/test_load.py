"""Loading checkpoints and vocabularies safely, and refusing bad ones with a clear message."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch

from tests.support.nanogpt import make_checkpoint
from tests.support.cli import REPO_ROOT
from visualizer.errors import VisualizerError
from visualizer.model.nanogpt.model import GPT, GPTConfig
from visualizer.model.registry import load_model
from visualizer.model.safe_pickle import load_restricted


def test_compiled_prefix_and_dtypes_are_reported_in_the_card(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, compiled=True, dtype=torch.bfloat16, with_optimizer=True)
    loaded = load_model(ckpt, meta)
    assert loaded.card["compiled_prefix"] is True
    assert loaded.card["weights_dtype"] == "bfloat16"
    assert loaded.card["has_optimizer_state"] is True
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert loaded.card["iter_num"] == 100 and loaded.card["dataset"] == "testset"


def test_weights_equal_the_checkpoint(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, bias=True, compiled=True)
    state = torch.load(ckpt, weights_only=True)["model"]
    loaded = load_model(ckpt, meta)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, state["_orig_mod." + name]), name


def test_old_torch_causal_mask_buffers_are_accepted(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, block_size=8)
    data = torch.load(ckpt, weights_only=True)
    for layer in range(2):
        data["model"][f"transformer.h.{layer}.attn.bias"] = torch.ones(8, 8).tril().view(1, 1, 8, 8)
    torch.save(data, ckpt)
    assert load_model(ckpt, meta).dims.n_layer == 2


def expect_error(match: str, fn, *args):
    with pytest.raises(VisualizerError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_and_corrupt_checkpoints(tmp_path):
    expect_error("ckpt.pt: checkpoint not found", load_model, tmp_path / "ckpt.pt", None)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(256))
    expect_error("bad.pt: not a loadable torch checkpoint", load_model, bad, None)
    ckpt, meta = make_checkpoint(tmp_path / "t")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    expect_error("truncated.pt: not a loadable torch checkpoint", load_model, truncated, meta)


def test_not_a_nanogpt_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    expect_error("missing key 'model'", load_model, path, None)
    torch.save({"model": {}, "model_args": {"n_layer": 2}}, path)
    expect_error(r"model_args\['n_head'\] must be a positive integer", load_model, path, None)


def test_unknown_missing_and_misshapen_keys_are_named(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path)
    data = torch.load(ckpt, weights_only=True)
    data["model"]["transformer.h.0.attn.rotary.inv_freq"] = torch.ones(4)
    torch.save(data, ckpt)
    expect_error("unexpected state-dict key 'transformer.h.0.attn.rotary.inv_freq'", load_model, ckpt, meta)
    del data["model"]["transformer.h.0.attn.rotary.inv_freq"]
    del data["model"]["transformer.h.1.mlp.c_fc.weight"]
    torch.save(data, ckpt)
    expect_error("missing state-dict key 'transformer.h.1.mlp.c_fc.weight'", load_model, ckpt, meta)
    data["model"]["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(3, 3)
    torch.save(data, ckpt)
    expect_error(r"'transformer.h.1.mlp.c_fc.weight' has shape \(3, 3\)", load_model, ckpt, meta)


def test_meta_vocab_size_must_match(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, vocab=list("abcdef"))
    with open(meta, "wb") as f:
        pickle.dump({"vocab_size": 5, "stoi": {c: i for i, c in enumerate("abcde")}, "itos": dict(enumerate("abcde"))}, f)
    expect_error("meta.pkl: vocab_size 5 does not match the checkpoint's vocab_size 6", load_model, ckpt, meta)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_meta_pickle_with_code_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt, meta = make_checkpoint(tmp_path / "m")
    with open(meta, "wb") as f:
        pickle.dump({"vocab_size": 1, "stoi": Exploit()}, f)
    message = expect_error(r"refused to unpickle '(posix|os|nt)\.system'", load_model, ckpt, meta)
    assert "meta.pkl" in message
    assert not (tmp_path / "PWNED").exists()


def test_restricted_unpickler_admits_plain_data(tmp_path):
    path = tmp_path / "plain.pkl"
    value = {"a": [1, 2.5, None, True, "x", b"y"], "b": (1, 2), "c": {3, 4}, "d": frozenset({5})}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        assert load_restricted(path) == value


def test_meta_found_beside_then_in_dataset_folder(tmp_path, monkeypatch):
    ckpt, meta = make_checkpoint(tmp_path / "out-x", dataset="mydata", vocab=list("xyz\n "))
    assert load_model(ckpt, None).card["meta_file"] == "meta.pkl"
    (tmp_path / "data" / "mydata").mkdir(parents=True)
    meta.rename(tmp_path / "data" / "mydata" / "meta.pkl")
    monkeypatch.chdir(tmp_path)
    loaded = load_model(ckpt, None)
    assert loaded.tokenizer.encode("xyz").ids == [0, 1, 2]
    assert loaded.card["meta_file"] == "meta.pkl"


def test_no_meta_and_no_offline_gpt2_files_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("GPT2_BPE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    ckpt, _ = make_checkpoint(tmp_path / "run", write_meta=False)
    expect_error("pass --meta PATH", load_model, ckpt, None)


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ckpt, meta = make_checkpoint(tmp_path)
    expect_error("CUDA is not available", load_model, ckpt, meta, "cuda")


def test_module_tree_matches_nanogpt_parameter_names():
    names = set(GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, block_size=4, vocab_size=5, bias=True)).state_dict())
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.bias",
            "transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_proj.bias",
            "transformer.ln_f.weight", "lm_head.weight"} <= names


def test_loading_never_imports_code_beside_the_checkpoint(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path)
    (tmp_path / "model.py").write_text("open('IMPORTED', 'w').write('x')\n")
    (tmp_path / "configurator.py").write_text("open('IMPORTED', 'w').write('x')\n")
    code = (
        "import sys; from visualizer.model.registry import load_model; "
        f"load_model({str(ckpt)!r}, {str(meta)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert not (tmp_path / "IMPORTED").exists()
