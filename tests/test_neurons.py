"""Neuron pages (analysis/neurons.py): the top neurons of each layer, their output weights read from
the model (nanoGPT's Linear, GPT-2's Conv1D), the direct effect on the vocabulary computed by hand
from the final norm's and the unembedding's own weights, and the page's data file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visualizer.analysis.neurons as neurons
from tests.support.nanogpt import make_checkpoint
from tests.support.site import CHAR_VOCAB
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model
from visualizer.site.report import neuron_data


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    ckpt, meta = make_checkpoint(tmp_path_factory.mktemp("neurons") / "m", vocab=CHAR_VOCAB, n_layer=2, n_head=2,
                                 n_embd=24, block_size=64, bias=True)
    loaded = load_model(ckpt, meta)
    probe = prepare_probe(loaded, "ROMEO: but soft, what light through yonder window breaks?")
    cache = capture(loaded, probe.ids)
    return loaded, cache, neurons.neuron_pages(loaded, cache.tensors)


def test_the_top_neurons_are_the_most_active_and_their_weights_the_models(char_run):
    loaded, cache, record = char_run
    assert record["check"]["passed"] and record["check"]["checked"] == 2
    for entry in record["layers"]:
        layer = entry["layer"]
        post = cache.tensors[f"blocks.{layer}.mlp.hook_post"]  # [T, d_mlp]
        peak = post.max(0).values
        ids = [n["neuron"] for n in entry["neurons"]]
        assert len(ids) == neurons.TOP_NEURONS
        assert sorted(peak.tolist(), reverse=True)[:neurons.TOP_NEURONS] == pytest.approx([n["max"] for n in entry["neurons"]])
        assert all(int(post[:, n["neuron"]].argmax()) == n["position"] for n in entry["neurons"])
        c_proj = loaded.model.transformer.h[layer].mlp.c_proj  # nn.Linear: weight [d_model, d_mlp]
        rows = neurons.output_rows(neurons.down_projection(loaded, layer), ids, post.shape[-1], loaded.device)
        assert torch.allclose(rows, c_proj.weight.T[ids], atol=1e-6)  # the bias cancels


def test_the_direct_effect_is_the_output_row_through_the_frozen_final_norm_and_the_unembedding(char_run):
    loaded, cache, record = char_run
    model = loaded.model
    ln_f, w_u = model.transformer.ln_f, model.lm_head.weight.detach()  # LayerNorm; [vocab, d_model]
    final = cache.tensors[f"blocks.{loaded.dims.n_layer - 1}.hook_resid_post"]  # [T, d_model]
    for entry in record["layers"]:
        c_proj = model.transformer.h[entry["layer"]].mlp.c_proj
        for n in entry["neurons"][:3]:
            row = c_proj.weight.detach()[:, n["neuron"]].double()  # [d_model]
            x = final[n["position"]].double()
            sigma = torch.sqrt(x.var(unbiased=False) + 1e-5)
            effect = ((row - row.mean()) / sigma * ln_f.weight.detach().double()) @ w_u.double().T  # [vocab]
            order = torch.argsort(-effect, stable=True)
            assert [r["id"] for r in n["promoted"]] == order[:neurons.TOP_TOKENS].tolist()
            assert [r["effect"] for r in n["promoted"]] == pytest.approx(effect[order[:neurons.TOP_TOKENS]].tolist(), abs=1e-5)
            low = torch.argsort(effect, stable=True)[:neurons.TOP_TOKENS]
            assert [r["id"] for r in n["suppressed"]] == low.tolist()
            assert [r["readable"] for r in n["promoted"]][0] in {CHAR_VOCAB[i] for i in range(len(CHAR_VOCAB))} | {"␣", "↵"}


def test_gpt2_conv1d_rows_and_the_data_file(tmp_path):
    from tests.support.hf import make_gpt2_folder

    loaded = load_model(make_gpt2_folder(tmp_path / "gpt2"), None)
    probe = prepare_probe(loaded, "hello world, hello there")
    cache = capture(loaded, probe.ids)
    record = neurons.neuron_pages(loaded, cache.tensors)
    assert record["check"]["passed"]
    n = record["layers"][1]["neurons"][0]
    c_proj = loaded.model.transformer.h[1].mlp.c_proj  # Conv1D: weight [d_mlp, d_model] (in, out)
    row = neurons.output_rows(neurons.down_projection(loaded, 1), [n["neuron"]], loaded.dims.d_mlp, loaded.device)[0]
    assert torch.allclose(row, c_proj.weight[n["neuron"]].float(), atol=1e-6)
    assert n["promoted"][0]["token"] == loaded.tokenizer.token_str(n["promoted"][0]["id"])  # the model's own vocabulary
    data = neuron_data(record, lambda l: cache.tensors[f"blocks.{l}.mlp.hook_post"].numpy())
    first = data["layers"][1]["neurons"][0]
    acts = np.frombuffer(__import__("base64").b64decode(first["acts"]), np.int8) * first["scale"] / 127
    expected = cache.tensors["blocks.1.mlp.hook_post"][:, n["neuron"]].numpy()
    assert np.abs(acts - expected).max() <= first["scale"] / 254 + 1e-6  # int8 codes: within half a step
    assert all(str(i) in data["vocab"] for i, _ in first["up"] + first["down"])
