"""Text for the sequence, attention and transformer units: a shipped corpus and tokenizers.

Everything here works offline. The corpus ships inside the package
(``nncourse/corpora/``); :data:`CORPORA` says where each came from and under
which licence. The tokenizers are deliberately small: a character-level one
and a word-level one, each a vocabulary plus ``encode``/``decode``, so that a
student can read all of it. Unit 16 shows a real subword (WordPiece)
tokenizer from a pretrained model for comparison.

Typical use::

    text = load_corpus(chars=200_000)
    tok = CharTokenizer.fit(text)
    ids = torch.tensor(tok.encode(text))
    train, val = split_ids(ids)
    x, y = lm_batch(train, block_size=64, batch_size=32, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import torch

from ._validate import positive_int

__all__ = [
    "CORPORA",
    "CharTokenizer",
    "Corpus",
    "WordTokenizer",
    "lm_batch",
    "load_corpus",
    "split_ids",
]


@dataclass(frozen=True)
class Corpus:
    """A text that ships with the package: where it lives and where it came from."""

    file: str
    description: str
    source: str
    licence: str


CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        file="tinyshakespeare.txt.gz",
        description="About 1.1 million characters of dialogue from Shakespeare's plays.",
        source="data/tinyshakespeare/input.txt of github.com/karpathy/char-rnn",
        licence="The plays are in the public domain; the repository that compiled them is MIT.",
    ),
}
"""The corpora that ship with ``nncourse``, by name."""


@cache
def _read_corpus(name: str) -> str:
    package_file = resources.files("nncourse") / "corpora" / CORPORA[name].file
    with package_file.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        return text.read()


def load_corpus(name: str = "tinyshakespeare", chars: int | None = None) -> str:
    """Return a shipped corpus as one string; ``chars`` keeps only its first characters.

    Use ``chars`` (for example ``pick(300_000, 30_000)``) to keep fast mode fast.
    """
    if name not in CORPORA:
        known = ", ".join(repr(n) for n in CORPORA)
        raise ValueError(f"load_corpus: no corpus named {name!r}; the package ships {known}.")
    text = _read_corpus(name)
    if chars is None:
        return text
    return text[: positive_int("load_corpus", "chars", chars)]


def _ids_list(ids: Iterable[int] | torch.Tensor) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() > 1:
            raise ValueError(
                f"decode expects one sequence of ids, got a tensor of shape {tuple(ids.shape)}; "
                "decode each row separately, e.g. [tok.decode(row) for row in batch]."
            )
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


class _Vocabulary:
    """A list of tokens and its inverse; subclasses say how text becomes tokens."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError(f"{type(self).__name__}: the vocabulary has repeated tokens.")
        self.vocab: list[str] = list(vocab)
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        """How many distinct ids ``encode`` can produce."""
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def _token(self, index: int) -> str:
        if not 0 <= index < len(self.vocab):
            raise ValueError(
                f"{type(self).__name__}.decode: id {index} is outside the vocabulary "
                f"(0 to {len(self.vocab) - 1}); was it produced by another tokenizer?"
            )
        return self.vocab[index]

    def __repr__(self) -> str:
        shown = ", ".join(repr(t) for t in self.vocab[:12])
        more = ", ..." if len(self.vocab) > 12 else ""
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, vocab=[{shown}{more}])"


class CharTokenizer(_Vocabulary):
    """One token per character; the vocabulary is the sorted set of characters seen."""

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from every distinct character of ``text``."""
        if not text:
            raise ValueError("CharTokenizer.fit: the text is empty; pass the training text.")
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        """Return one id per character of ``text``."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as error:
            raise ValueError(
                f"CharTokenizer.encode: the character {error.args[0]!r} is not in the "
                "vocabulary; fit the tokenizer on text that contains it."
            ) from None

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Return the text that ``ids`` stand for."""
        return "".join(self._token(i) for i in _ids_list(ids))


_WORD = re.compile(r"\w+|[^\w\s]")
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?')\]])")


class WordTokenizer(_Vocabulary):
    """Words and punctuation marks as tokens; rare or unseen words become ``<unk>``.

    Ids 0 and 1 are the special tokens ``<pad>`` and ``<unk>``; the rest are
    the most frequent tokens of the fitted text, most frequent first.
    """

    PAD = "<pad>"
    UNK = "<unk>"

    def __init__(self, vocab: Sequence[str], lower: bool = True) -> None:
        super().__init__(vocab)
        self.lower = lower

    @classmethod
    def split(cls, text: str, lower: bool = True) -> list[str]:
        """Split ``text`` into word and punctuation tokens."""
        return _WORD.findall(text.lower() if lower else text)

    @classmethod
    def fit(
        cls, text: str, max_vocab: int | None = None, min_count: int = 1, lower: bool = True
    ) -> WordTokenizer:
        """Keep tokens seen at least ``min_count`` times, at most ``max_vocab`` ids in all."""
        positive_int("WordTokenizer.fit", "min_count", min_count)
        counts = Counter(cls.split(text, lower))
        if not counts:
            raise ValueError("WordTokenizer.fit: the text has no words; pass the training text.")
        kept = sorted(
            (token for token, count in counts.items() if count >= min_count),
            key=lambda token: (-counts[token], token),
        )
        if max_vocab is not None:
            positive_int("WordTokenizer.fit", "max_vocab", max_vocab, minimum=3)
            kept = kept[: max_vocab - 2]
        return cls([cls.PAD, cls.UNK, *kept], lower=lower)

    @property
    def pad_id(self) -> int:
        """The id of ``<pad>`` (0)."""
        return self.stoi[self.PAD]

    @property
    def unk_id(self) -> int:
        """The id of ``<unk>`` (1)."""
        return self.stoi[self.UNK]

    def encode(self, text: str) -> list[int]:
        """Return one id per token of ``text``; unknown tokens get ``unk_id``."""
        unk = self.unk_id
        return [self.stoi.get(token, unk) for token in self.split(text, self.lower)]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Join the tokens with spaces, without a space before closing punctuation; skip pads."""
        tokens = [self._token(i) for i in _ids_list(ids)]
        joined = " ".join(token for token in tokens if token != self.PAD)
        return _NO_SPACE_BEFORE.sub(r"\1", joined)


def _long_ids(caller: str, ids: Any) -> torch.Tensor:
    tensor = torch.as_tensor(ids)
    if tensor.dim() != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise ValueError(
            f"{caller}: ids must be one sequence of integer ids, got dtype {tensor.dtype} and "
            f"shape {tuple(tensor.shape)}; pass torch.tensor(tokenizer.encode(text))."
        )
    return tensor.long()


def split_ids(ids: Any, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split one id sequence at a fixed point: the first part trains, the rest validates.

    A sequence is never shuffled before splitting: windows that straddle a
    random split would leak validation text into training.
    """
    tensor = _long_ids("split_ids", ids)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"split_ids: val_fraction must be between 0 and 1, got {val_fraction!r}; "
            "0.1 keeps the last tenth for validation."
        )
    cut = int(round(len(tensor) * (1.0 - val_fraction)))
    if cut < 2 or len(tensor) - cut < 2:
        raise ValueError(
            f"split_ids: {len(tensor)} ids are too few to split with val_fraction="
            f"{val_fraction}; pass more text."
        )
    return tensor[:cut], tensor[cut:]


def lm_batch(
    ids: Any,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``batch_size`` random windows of ``block_size`` ids and their next-token targets.

    ``x[b, t]`` is ``ids[s_b + t]`` and ``y[b, t]`` is ``ids[s_b + t + 1]``:
    at every position the target is the token that follows. Pass a seeded
    ``generator`` for a reproducible sequence of batches.
    """
    tensor = _long_ids("lm_batch", ids)
    positive_int("lm_batch", "block_size", block_size)
    positive_int("lm_batch", "batch_size", batch_size)
    if len(tensor) < block_size + 1:
        raise ValueError(
            f"lm_batch: {len(tensor)} ids cannot hold a window of block_size={block_size} plus "
            "its target; use a smaller block_size or more text."
        )
    starts = torch.randint(len(tensor) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    x = tensor[starts[:, None] + offsets]
    y = tensor[starts[:, None] + offsets + 1]
    return x, y
