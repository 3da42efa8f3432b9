"""Build tiny Hugging Face model folders for the test-suite, offline: a config, random weights
(fixed seed, every 1-D parameter moved off its init so a loader that dropped one would show), and
a tokenizer trained here with the `tokenizers` library, saved beside the model as
`save_pretrained` writes them.

  make_gpt2_folder(dir, ...)     GPT-2: byte-level BPE (`Ġ`, `Ċ`), <|endoftext|> as bos/eos/unk
  make_llama_folder(dir, ...)    Llama: metaspace `▁` BPE with byte fallback (`<0x0A>`), <s> prepended
  make_mistral_folder(dir, ...)  Mistral: Llama's tokenizer; a sliding window (default 6 keys)
  make_qwen2_folder(dir, ...)    Qwen2: byte-level BPE with <|im_start|>/<|im_end|>, no BOS; q/k/v biases
  make_qwen3_folder(dir, ...)    Qwen3: Qwen2's tokenizer; per-head q/k RMSNorm, its own head_dim
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! A new line follows.\nAnd then another one.",
    "the fox and the dog and the cat, the end",
    "Tokens & <tags> \"quoted\" 'single' = 1 + 2",
]


def _perturb(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=generator) * scale)


def byte_level_bpe(special_tokens: list[str]):
    """A byte-level BPE (GPT-2's scheme) learned from CORPUS, the special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def gpt2_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(["<|endoftext|>"]),
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
    )


def qwen_tokenizer():
    """Qwen's scheme: byte-level BPE, no BOS, <|endoftext|> as eos and pad, chat markers as specials."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]),
        eos_token="<|endoftext|>", pad_token="<|endoftext|>",
    )


def llama_tokenizer(corpus: list[str] = CORPUS, learned: int = 140):
    """Llama's scheme: '▁' for spaces (prepended to the first word), byte-fallback tokens
    <0x00>..<0xFF> for anything the merges miss, <unk> <s> </s> as ids 0 1 2, <s> prepended;
    up to `learned` tokens learned from `corpus` after those."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = metaspace
    # no newline in what it learns from, so "\n" must come out as the byte-fallback token <0x0A>
    trained.train_from_iterator([s.replace("\n", " ") for s in corpus], trainers.BpeTrainer(vocab_size=learned))
    model = json.loads(trained.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = metaspace
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def make_gpt2_folder(folder: Path, n_layer: int = 2, n_head: int = 4, n_embd: int = 32, n_positions: int = 64,
                     extra_vocab: int = 4, n_inner: int | None = None, seed: int = 0, weights: str = "safetensors") -> Path:
    """A GPT-2 folder; the model's vocabulary is the tokenizer's plus `extra_vocab` padding rows."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder)
    tokenizer = gpt2_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer) + extra_vocab, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, n_inner=n_inner, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return _write(GPT2LMHeadModel, config, tokenizer, folder, seed, weights)


def rotary_shape(tokenizer, n_layer: int, n_head: int, n_kv_head: int, hidden: int, intermediate: int, tie: bool,
                 n_positions: int) -> dict:
    """The config fields Llama, Mistral, Qwen2 and Qwen3 share, as keyword arguments."""
    return dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=n_layer,
        num_attention_heads=n_head, num_key_value_heads=n_kv_head, max_position_embeddings=n_positions,
        tie_word_embeddings=tie,
    )


def make_llama_folder(folder: Path, n_layer: int = 2, n_head: int = 4, n_kv_head: int = 2, hidden: int = 32,
                      intermediate: int = 48, head_dim: int | None = None, attention_bias: bool = False,
                      tie: bool = False, n_positions: int = 64, seed: int = 0, weights: str = "safetensors") -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = llama_tokenizer()
    config = LlamaConfig(
        **rotary_shape(tokenizer, n_layer, n_head, n_kv_head, hidden, intermediate, tie, n_positions),
        head_dim=head_dim or hidden // n_head, attention_bias=attention_bias, bos_token_id=1, eos_token_id=2,
        rms_norm_eps=1e-5,
    )
    return _write(LlamaForCausalLM, config, tokenizer, folder, seed, weights)


def make_mistral_folder(folder: Path, n_layer: int = 2, n_head: int = 4, n_kv_head: int = 2, hidden: int = 32,
                        intermediate: int = 48, head_dim: int | None = None, sliding_window: int | None = 6,
                        tie: bool = False, n_positions: int = 64, seed: int = 0) -> Path:
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = llama_tokenizer()
    config = MistralConfig(
        **rotary_shape(tokenizer, n_layer, n_head, n_kv_head, hidden, intermediate, tie, n_positions),
        head_dim=head_dim or hidden // n_head, sliding_window=sliding_window, bos_token_id=1, eos_token_id=2,
        rms_norm_eps=1e-5,
    )
    return _write(MistralForCausalLM, config, tokenizer, Path(folder), seed, "safetensors")


def qwen_window(tokenizer, sliding_window: int | None, max_window_layers: int) -> dict:
    """Qwen's window fields (the config derives layer_types from them) and special token ids."""
    return dict(
        use_sliding_window=sliding_window is not None, sliding_window=sliding_window, max_window_layers=max_window_layers,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, rms_norm_eps=1e-6,
    )


def make_qwen2_folder(folder: Path, n_layer: int = 2, n_head: int = 4, n_kv_head: int = 2, hidden: int = 32,
                      intermediate: int = 48, sliding_window: int | None = None, max_window_layers: int = 0,
                      tie: bool = False, n_positions: int = 64, seed: int = 0) -> Path:
    """`sliding_window` set: the layers from `max_window_layers` on slide (Qwen2's layer_types)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = qwen_tokenizer()
    config = Qwen2Config(
        **rotary_shape(tokenizer, n_layer, n_head, n_kv_head, hidden, intermediate, tie, n_positions),
        **qwen_window(tokenizer, sliding_window, max_window_layers),
    )
    return _write(Qwen2ForCausalLM, config, tokenizer, Path(folder), seed, "safetensors")


def make_qwen3_folder(folder: Path, n_layer: int = 2, n_head: int = 4, n_kv_head: int = 2, hidden: int = 32,
                      intermediate: int = 48, head_dim: int = 12, attention_bias: bool = False,
                      sliding_window: int | None = None, max_window_layers: int = 0, tie: bool = True,
                      n_positions: int = 64, seed: int = 0) -> Path:
    """Qwen3 with head_dim != hidden / n_head by default (12 against 8), as Qwen3 models have."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    config = Qwen3Config(
        **rotary_shape(tokenizer, n_layer, n_head, n_kv_head, hidden, intermediate, tie, n_positions),
        **qwen_window(tokenizer, sliding_window, max_window_layers), head_dim=head_dim, attention_bias=attention_bias,
    )
    return _write(Qwen3ForCausalLM, config, tokenizer, Path(folder), seed, "safetensors")


def _write(model_class, config, tokenizer, folder: Path, seed: int, weights: str) -> Path:
    torch.manual_seed(seed)
    model = model_class(config).eval()
    _perturb(model, seed)
    model.save_pretrained(folder)
    if weights == "bin":  # the older format: a torch.save'd state dict, loaded with weights_only=True
        (folder / "model.safetensors").unlink()
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder
