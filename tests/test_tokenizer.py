"""Tokenizers: character level, word level, GPT-2-style BPE, and readable token strings."""

from __future__ import annotations

import pytest
import tiktoken

from tests.support.nanogpt import HOSTILE_VOCAB, WORD_VOCAB
from visualizer.errors import VisualizerError
from visualizer.model.tokenizer import BpeTokenizer, CharTokenizer, WordTokenizer, from_meta, readable


def meta_for(vocab):
    return {"vocab_size": len(vocab), "stoi": {t: i for i, t in enumerate(vocab)}, "itos": dict(enumerate(vocab))}


def test_char_level_round_trip_and_unknown_character_position():
    tok = from_meta(meta_for(list("\n !abc")), "meta.pkl")
    assert isinstance(tok, CharTokenizer)
    assert tok.encode("ab c!\n").ids == [3, 4, 1, 5, 2, 0]
    with pytest.raises(VisualizerError, match=r"character 'z' \(U\+007A\) at position 3"):
        tok.encode("abcz")
    with pytest.raises(VisualizerError, match="literal backslash"):
        tok.encode("a\\n")


def test_word_level_longest_match_unk_and_warning():
    tok = from_meta(meta_for(WORD_VOCAB), "meta.pkl")
    assert isinstance(tok, WordTokenizer)
    encoded = tok.encode("ROMEO:\nthe king, the lord!")
    words = [tok.token_str(i) for i in encoded.ids]
    assert words == ["ROMEO", ":", "\n", "the", " ", "king", ",", " ", "the", " ", "lord", "!"]
    encoded = tok.encode("the dragon and thee")
    assert [tok.token_str(i) for i in encoded.ids] == ["the", " ", "<unk>", " ", "and", " ", "thee"]
    assert "'dragon'@4" in encoded.warnings[0]
    # a word that is only a prefix of the text's word is not taken ("the" inside "there")
    assert tok.token_str(tok.encode("there").ids[0]) == "<unk>"


def test_word_level_without_unk_names_the_word_and_position():
    vocab = ["hello", "world", "!"]
    tok = from_meta(meta_for(vocab), "meta.pkl")
    assert tok.encode("hello world!").ids == [0, 1, 2]  # spaces the vocabulary lacks separate words
    with pytest.raises(VisualizerError, match=r"word 'there' at position 6"):
        tok.encode("hello there")


def test_lowercase_vocabulary_lowercases_the_probe_with_a_warning():
    tok = from_meta(meta_for(["the", "king", " "]), "meta.pkl")
    encoded = tok.encode("The King")
    assert encoded.ids == [0, 2, 1] and "lower-cased" in encoded.warnings[0]


def test_hostile_vocabulary_matches_whole_tokens():
    tok = from_meta(meta_for(HOSTILE_VOCAB), "meta.pkl")
    pieces = [tok.token_str(i) for i in tok.encode("<script>alert(1)</script>&amp;😀").ids]
    assert pieces[0] == "<script>alert(1)</script>"
    assert pieces[1:] == ["&amp;", "😀"]


def test_bpe_tokenizer_over_a_constructed_encoding():
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"he"] = 256
    ranks[b" w"] = 257
    enc = tiktoken.Encoding(name="tiny", pat_str=r"""\s?\w+|\s+|[^\s\w]+""", mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 258})
    tok = BpeTokenizer(enc, allowed_special=frozenset({"<|endoftext|>"}))
    ids = tok.encode("he w<|endoftext|>").ids
    assert ids == [256, 257, 258]
    assert [tok.token_str(i) for i in ids] == ["he", " w", "<|endoftext|>"]
    assert tok.token_str(0xE2) == "\\xe2"  # a lone byte of a multi-byte character stays visible


def test_readable_makes_whitespace_and_controls_visible():
    assert readable(" \n\t") == "␣↵⇥"
    assert readable("\x00\x1b") == "\u2400\u241b"
    assert readable("") == "∅"
    assert readable("<b>") == "<b>"  # escaping is the template's job, not this function's


def test_meta_with_wrong_types_is_refused():
    with pytest.raises(VisualizerError, match="key 'stoi' has a non str->int entry"):
        from_meta({"stoi": {1: "a"}}, "meta.pkl")
    with pytest.raises(VisualizerError, match="missing key 'stoi'"):
        from_meta({"vocab_size": 3}, "meta.pkl")
