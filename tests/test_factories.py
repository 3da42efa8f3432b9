"""The checkpoint factory writes files in nanoGPT's format that our GPT loads strictly."""

import pickle

import pytest
import torch

from tests.support.nanogpt import (
    DEFAULT_VOCAB,
    HOSTILE_VOCAB,
    WORD_VOCAB,
    char_vocab,
    make_checkpoint,
)
from visualizer.model.nanogpt.model import GPT, GPTConfig

PREFIX = "_orig_mod."


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def to_model(ckpt) -> GPT:
    """Strip the compile prefix, cast to float32, load strictly (the reference loading path)."""
    sd = {k.removeprefix(PREFIX): v.float() for k, v in ckpt["model"].items()}
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def test_default_checkpoint_has_train_py_layout(tmp_path):
    ckpt_path, meta_path = make_checkpoint(tmp_path)
    assert ckpt_path == tmp_path / "ckpt.pt" and meta_path == tmp_path / "meta.pkl"
    ckpt = load(ckpt_path)
    assert set(ckpt) == {"model", "model_args", "iter_num", "best_val_loss", "config"}
    assert ckpt["model_args"] == dict(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False,
                                      vocab_size=len(DEFAULT_VOCAB), dropout=0.0)
    assert ckpt["config"]["dataset"] == "testset"
    assert isinstance(ckpt["iter_num"], int)
    assert float(ckpt["best_val_loss"]) > 0


def test_meta_matches_vocab(tmp_path):
    _, meta_path = make_checkpoint(tmp_path, vocab=HOSTILE_VOCAB)
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    assert meta["vocab_size"] == len(HOSTILE_VOCAB)
    assert [meta["itos"][i] for i in range(meta["vocab_size"])] == HOSTILE_VOCAB
    assert all(meta["stoi"][t] == i for i, t in enumerate(HOSTILE_VOCAB))
    assert load(tmp_path / "ckpt.pt")["model_args"]["vocab_size"] == len(HOSTILE_VOCAB)


def test_no_meta(tmp_path):
    ckpt_path, meta_path = make_checkpoint(tmp_path, write_meta=False)
    assert meta_path is None and not (tmp_path / "meta.pkl").exists() and ckpt_path.exists()


@pytest.mark.parametrize("compiled", [False, True])
def test_compiled_prefix(tmp_path, compiled):
    ckpt = load(make_checkpoint(tmp_path, compiled=compiled)[0])
    keys = list(ckpt["model"])
    assert all(k.startswith(PREFIX) == compiled for k in keys)
    assert (PREFIX + "transformer.wte.weight" in keys) == compiled


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bias", [False, True])
def test_dtype_and_strict_load(tmp_path, dtype, bias):
    ckpt = load(make_checkpoint(tmp_path, dtype=dtype, bias=bias, compiled=True, n_layer=3)[0])
    assert {t.dtype for t in ckpt["model"].values()} == {dtype}
    model = to_model(ckpt)
    idx = torch.arange(8).unsqueeze(0) % ckpt["model_args"]["vocab_size"]
    logits, _ = model(idx)
    assert logits.shape == (1, 8, ckpt["model_args"]["vocab_size"])
    assert torch.isfinite(logits).all()


def test_tied_embedding_stays_tied_on_disk(tmp_path):
    ckpt = load(make_checkpoint(tmp_path, dtype=torch.bfloat16)[0])
    sd = ckpt["model"]
    assert torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"])


def test_layernorm_and_biases_are_perturbed(tmp_path):
    sd = load(make_checkpoint(tmp_path, bias=True)[0])["model"]
    for k, v in sd.items():
        if k.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            assert not torch.allclose(v, torch.ones_like(v)), k
            assert (v - 1).abs().max() < 1.0, k  # "a bit", not wild
        elif k.endswith("bias"):
            assert not torch.allclose(v, torch.zeros_like(v)), k


def test_seed_determines_weights(tmp_path):
    a = load(make_checkpoint(tmp_path / "a", seed=3)[0])["model"]
    b = load(make_checkpoint(tmp_path / "b", seed=3)[0])["model"]
    c = load(make_checkpoint(tmp_path / "c", seed=4)[0])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["transformer.h.0.attn.c_attn.weight"], c["transformer.h.0.attn.c_attn.weight"])


def test_optimizer_entry(tmp_path):
    ckpt = load(make_checkpoint(tmp_path, with_optimizer=True)[0])
    opt = ckpt["optimizer"]
    assert set(opt) == {"state", "param_groups"}
    assert len(opt["param_groups"]) == 2
    assert opt["state"] and all("exp_avg" in s for s in opt["state"].values())
    # the optimizer step (lr 0) must not have moved the weights away from an optimizer-free twin
    plain = load(make_checkpoint(tmp_path / "plain")[0])["model"]
    assert all(torch.equal(ckpt["model"][k], plain[k]) for k in plain)


def test_vocabularies():
    assert char_vocab("hello, world\n") == ["\n", " ", ",", "d", "e", "h", "l", "o", "r", "w"]
    for vocab in (DEFAULT_VOCAB, WORD_VOCAB, HOSTILE_VOCAB):
        assert len(set(vocab)) == len(vocab)
    assert "<unk>" in WORD_VOCAB and "\n" in WORD_VOCAB
    assert any(len(t) > 1 and t.isalpha() for t in WORD_VOCAB)
    for t in ("<", ">", "&", '"', "'", "😀", "<script>", "&amp;", "</details>", " ", "\n", "\t", "a"):
        assert t in HOSTILE_VOCAB, t


def test_duplicate_vocab_rejected(tmp_path):
    with pytest.raises(ValueError):
        make_checkpoint(tmp_path, vocab=["a", "b", "a"])
