"""The shipped corpus loads offline, tokenizers round-trip, and batches are next-token pairs."""

import pytest
import torch

from nncourse.text import CORPORA, CharTokenizer, WordTokenizer, lm_batch, load_corpus, split_ids


def test_corpus_ships_with_its_source_and_licence() -> None:
    """Is Tiny Shakespeare inside the package, whole, with where it came from?"""
    text = load_corpus()
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:\nBefore we proceed any further")
    assert "public domain" in CORPORA["tinyshakespeare"].licence
    assert load_corpus(chars=100) == text[:100]


def test_corpus_errors_name_the_fix() -> None:
    """Do an unknown name and a bad length say what to pass?"""
    with pytest.raises(ValueError, match="ships 'tinyshakespeare'"):
        load_corpus("war-and-peace")
    with pytest.raises(ValueError, match="chars must be a whole number"):
        load_corpus(chars=0)


def test_char_tokenizer_round_trips_and_rejects_unseen_characters() -> None:
    """Does decode(encode(text)) give the text back, with ids dense and sorted?"""
    text = load_corpus(chars=5000)
    tok = CharTokenizer.fit(text)
    assert tok.vocab == sorted(set(text)) and tok.vocab_size == len(set(text))
    ids = tok.encode(text)
    assert tok.decode(ids) == text == tok.decode(torch.tensor(ids))
    assert max(ids) == tok.vocab_size - 1
    with pytest.raises(ValueError, match="'\\{' is not in the vocabulary"):
        tok.encode("{")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="decode each row"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))


def test_word_tokenizer_keeps_frequent_words_and_maps_the_rest_to_unk() -> None:
    """Are pad and unk ids 0 and 1, the vocabulary cut by frequency, punctuation kept?"""
    tok = WordTokenizer.fit("the cat sat. The cat ran! a dog", max_vocab=5)
    assert tok.vocab[:2] == ["<pad>", "<unk>"] and (tok.pad_id, tok.unk_id) == (0, 1)
    assert tok.vocab[2:] == ["cat", "the", "!"]
    assert tok.encode("The cat sat!") == [3, 2, 1, 4]
    assert tok.decode([3, 2, 1, 4, 0]) == "the cat <unk>!"
    cased = WordTokenizer.fit("Rome rome", lower=False)
    assert cased.vocab_size == 4


def test_split_is_at_a_fixed_point_and_refuses_bad_input() -> None:
    """Is validation the tail of the sequence, and do bad inputs explain themselves?"""
    train, val = split_ids(list(range(100)), val_fraction=0.2)
    assert train.tolist() == list(range(80)) and val.tolist() == list(range(80, 100))
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        split_ids(list(range(100)), val_fraction=1.0)
    with pytest.raises(ValueError, match="integer ids"):
        split_ids(torch.rand(10))
    with pytest.raises(ValueError, match="too few"):
        split_ids([1, 2, 3])


def test_lm_batch_targets_are_the_next_tokens_and_seeded() -> None:
    """Is y the window shifted by one, inside the sequence, and the same for the same seed?"""
    ids = torch.arange(50)
    x, y = lm_batch(ids, block_size=8, batch_size=16, generator=torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (16, 8)
    assert torch.equal(y, x + 1) and int(y.max()) <= 49
    again, _ = lm_batch(ids, 8, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match="smaller block_size"):
        lm_batch(ids, block_size=50, batch_size=1)
