"""The activations writer lays out exactly the bytes of safetensors' own save_file, tensor by tensor."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from visualizer.artefacts.tensor_file import write_tensors


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=g)
    return {
        "blocks.1.hook_resid_pre": base,
        "blocks.0.hook_resid_post": base,  # the same storage twice, as the cache holds it
        "blocks.0.attn.hook_q": torch.randn(2, 3, 5, generator=g).transpose(0, 1),  # not contiguous
        "scores": torch.full((2, 2), float("-inf")),
        "ids": torch.arange(5),
        "half": torch.randn(3, generator=g).half(),
        "flags": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
        "näme </script>": torch.randn(1, generator=g),
    }


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.float16])
def test_same_bytes_as_save_file(tmp_path, dtype):
    source = tensors()
    if dtype is not None:
        source = {k: v for k, v in source.items() if v.is_floating_point()}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    write_tensors(ours, source, dtype, metadata={"writer": "test"})
    save_file({k: (v if dtype is None else v.to(dtype)).contiguous().clone() for k, v in source.items()}, str(theirs),
              metadata={"writer": "test"})
    assert ours.read_bytes() == theirs.read_bytes()
    back = load_file(str(ours))
    for name, t in source.items():
        assert torch.equal(back[name], t if dtype is None else t.to(dtype))


def test_unknown_dtype_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="complex64"):
        write_tensors(tmp_path / "x.safetensors", {"c": torch.zeros(2, dtype=torch.complex64)})
    assert not (tmp_path / "x.safetensors").exists()
