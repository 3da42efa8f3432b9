"""Record the (query, key, value) every attention call of a transformers model receives, through
transformers' own `AttentionInterface`.

q and k after rotary (and after Qwen3's q/k norms) exist only as arguments of the attention
function. We register, once, one private attention implementation per implementation we load
models with (`RECORDING`: "sdpa", the default, and "eager"), each recording its arguments and then
running that implementation's own attention function (for "eager", the one of the calling module's
modeling file, which transformers falls back to), with that implementation's mask format under
the same name, so masks are built exactly as without recording. `recording(model, ...)` sets the
model's attn_implementation to the recording twin of its own for the duration and back afterwards:
the recorded forward runs the same kernels as the plain forward, and is never copied or patched.

What this module does not do: compute anything from what it records (capture and step do), or
record attention code that bypasses the attention function (such configs are refused at load).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys

import torch

from visualizer.errors import VisualizerError

# the model's attn_implementation -> our recording twin of it, registered in transformers' interfaces
RECORDING = {"sdpa": "visualizer_recording_sdpa", "eager": "visualizer_recording"}

# (id(attention module) -> layer, store, layers seen) of the recording open in this context, or None
_active: contextvars.ContextVar[tuple[dict[int, int], dict, set] | None] = contextvars.ContextVar("hf_recording", default=None)


def eager_attention_of(module: torch.nn.Module):
    """The eager attention function of the module's modeling file (`eager_attention_forward`)."""
    function = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if function is None:
        raise VisualizerError(
            f"{type(module).__module__} has no eager_attention_forward: this transformers version is not supported"
        )
    return function


def attention_function(implementation: str, module: torch.nn.Module):
    """The attention function transformers runs for `implementation` in `module`."""
    if implementation == "eager":
        return eager_attention_of(module)
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[implementation]


def record_call(module, query, key, value) -> None:
    """Keep one attention call's q, k, v when a recording is open for its module.

    query [batch, n_head, T, d_head]; key, value [batch, n_kv_head, keys, d_head] (after any cache
    update, before any repeat for grouped-query attention)."""
    active = _active.get()
    if active is not None:
        layer_of, store, seen = active
        layer = layer_of.get(id(module))
        if layer is not None:
            b = f"blocks.{layer}.attn"
            store[f"{b}.hook_q"] = query[0].transpose(0, 1)  # [T, n_head, d_head]
            store[f"{b}.hook_k"] = key[0].transpose(0, 1)  # [keys, n_kv_head, d_head]
            store[f"{b}.hook_v"] = value[0].transpose(0, 1)  # [keys, n_kv_head, d_head]
            seen.add(layer)


def recording_twin(implementation: str):
    """What transformers calls as the attention function under RECORDING[implementation]: record,
    then `implementation`'s own attention."""

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        record_call(module, query, key, value)
        return attention_function(implementation, module)(module, query, key, value, attention_mask, **kwargs)

    return recording_attention


def register() -> None:
    """Register every RECORDING twin with transformers' attention and mask interfaces (idempotent)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    for implementation, name in RECORDING.items():
        AttentionInterface.register(name, recording_twin(implementation))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])


@contextlib.contextmanager
def recording(model, attention_modules: list[torch.nn.Module], store: dict[str, torch.Tensor]):
    """While open, the model's attention calls run through RECORDING and record, for the modules in
    `attention_modules` (layer order), q, k and v as blocks.{l}.attn.hook_q|hook_k|hook_v
    ([T, heads, d_head]; k and v with n_kv_head heads). Every layer must have been recorded."""
    register()
    layer_of = {id(module): layer for layer, module in enumerate(attention_modules)}
    seen: set[int] = set()
    previous = model.config._attn_implementation
    if previous not in RECORDING:
        raise VisualizerError(f"attn_implementation {previous!r}: the capture records only {', '.join(sorted(RECORDING))}")
    token = _active.set((layer_of, store, seen))
    model.set_attn_implementation(RECORDING[previous])
    try:
        yield store
    finally:
        model.set_attn_implementation(previous)
        _active.reset(token)
    missing = sorted(set(layer_of.values()) - seen)
    if missing:
        raise VisualizerError(
            f"transformers did not call its attention function for layer {missing[0]}: this transformers "
            "version is not supported by the capture (q and k after rotary cannot be recorded)"
        )
