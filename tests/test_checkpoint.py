"""model/checkpoint.py: the state-dict reading nanoGPT and nanochat share (prefix stripping, key,
shape and dtype checks), messages naming the key as the file spells it; nanochat does not import
the nanoGPT adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.support.cli import REPO_ROOT
from tests.support.nanochat import make_nanochat, rewrite_state
from tests.support.nanogpt import make_checkpoint
from visualizer.errors import VisualizerError
from visualizer.model.checkpoint import StateDict, check_missing
from visualizer.model.registry import load_model


def test_prefixes_are_stripped_and_keys_named_as_spelled():
    state = StateDict("f.pt", {"_orig_mod._orig_mod.a": torch.zeros(2), "b": torch.ones(1, dtype=torch.bfloat16)})
    assert list(state.tensors) == ["a", "b"] and state.compiled
    assert state.dtype_counts() == {"bfloat16": 1, "float32": 1}
    assert all(t.dtype == torch.float32 for t in state.float32().values())
    expected = {"a": torch.zeros(2), "b": torch.zeros(1)}
    state.check_known(expected, "hint", "config implies")
    with pytest.raises(VisualizerError, match=r"f.pt: state-dict key '_orig_mod._orig_mod.a' has shape \(2,\), config implies \(3,\)"):
        state.check_known({**expected, "a": torch.zeros(3)}, "hint", "config implies")
    with pytest.raises(VisualizerError, match=r"unexpected state-dict key 'b' \(not ours\)"):
        state.check_known({"a": torch.zeros(2)}, "not ours", "config implies")
    with pytest.raises(VisualizerError, match=r"missing state-dict key 'c' \(and 1 more\)!"):
        check_missing("f.pt", state.tensors, {**expected, "c": None, "d": None}, "!")
    with pytest.raises(VisualizerError, match="key 'n' is not a tensor"):
        StateDict("f.pt", {"n": 3})
    with pytest.raises(VisualizerError, match="has dtype torch.int64, expected floats"):
        StateDict("f.pt", {"a": torch.zeros(2, dtype=torch.long)}).check_known(expected, "", "")


@pytest.mark.parametrize("family", ["nanogpt", "nanochat"])
def test_both_families_name_a_compiled_key_as_the_file_spells_it(tmp_path, family):
    if family == "nanogpt":
        ckpt, meta = make_checkpoint(tmp_path, compiled=True)
        data = torch.load(ckpt, weights_only=True)
        data["model"]["_orig_mod.extra.weight"] = torch.ones(2)
        torch.save(data, ckpt)
        args = (ckpt, meta)
    else:
        folder = make_nanochat(tmp_path, compiled=True)
        rewrite_state(folder / "model_000020.pt", lambda state: state.__setitem__("_orig_mod.extra.weight", torch.ones(2)))
        args = (folder, None)
    with pytest.raises(VisualizerError, match=r"unexpected state-dict key '_orig_mod.extra.weight'"):
        load_model(*args)


def test_nanochat_does_not_import_the_nanogpt_adapter():
    code = "import sys, visualizer.model.nanochat.adapter; print('visualizer.model.nanogpt.adapter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(REPO_ROOT))
    assert out.stdout.strip() == "False"
