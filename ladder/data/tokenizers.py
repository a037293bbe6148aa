"""Tokenizers behind one small interface: encode a batch of documents to id arrays, an EOS id, a vocabulary size.

- `bytes`: raw UTF-8 bytes, vocabulary 256. Id 0 (NUL, which corpora are checked not to contain) separates documents.
- `bpe`: a byte-level BPE trained with `tokenizers` on the training split, saved beside the shards.
- `hf`: any Hugging Face tokenizer by name (gpt2, EleutherAI/gpt-neox-20b, allenai/OLMo-2-1124-7B); needs the network
  the first time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ladder.errors import LadderError, require

KINDS = ("bytes", "bpe", "hf")
EOS_TEXT = "<|endoftext|>"
PIECE_CHARS = 1 << 18  # a longer document is encoded (and fed to BPE training) in pieces cut at line ends
GROUP_CHARS = 1 << 20  # text per encode call: the tokenizer's working memory stays flat however long a document


def pieces(text: str, size: int | None = None) -> Iterator[str]:
    """`text` cut after a newline into pieces of at most `size` characters (PIECE_CHARS; a longer line is cut where
    it reaches it), one at a time, so no document is ever tokenized (or copied) whole."""
    size = size or PIECE_CHARS
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


class ByteTokenizer:
    kind, vocab_size, eos_id = "bytes", 256, 0

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def encode_pieces(self, texts: list[str]) -> Iterator[tuple[int, np.ndarray]]:
        for i, text in enumerate(texts):
            yield i, np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if i != self.eos_id).decode("utf-8", errors="replace")

    def describe(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "eos_id": self.eos_id,
                "hash": hashlib.sha256(b"bytes-v1").hexdigest()}

    def save(self, directory: Path) -> None:
        pass


class FastTokenizer:
    """A `tokenizers.Tokenizer` (a trained BPE, or the backend of a Hugging Face tokenizer)."""

    def __init__(self, kind: str, tokenizer, eos_id: int, name: str | None = None):
        self.kind, self.tokenizer, self.eos_id, self.name = kind, tokenizer, int(eos_id), name
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's ids, whole (int64, as every caller indexes with them)."""
        out = [[] for _ in texts]
        for i, ids in self.encode_pieces(texts):
            out[i].append(ids)
        return [np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64) for parts in out]

    def encode_pieces(self, texts: list[str]) -> Iterator[tuple[int, np.ndarray]]:
        """(text index, ids) in order, a long text in several pieces, at most GROUP_CHARS of text per call to the
        tokenizer, whose per-token objects cost hundreds of bytes each (a 21 MB record whole needed 5.9 GB): a
        caller that writes each piece as it comes holds no document's ids whole."""
        group, size = [], 0
        for i, text in enumerate(texts):
            for piece in pieces(text):
                group.append((i, piece))
                size += len(piece)
                if size >= GROUP_CHARS:
                    yield from self._encode(group)
                    group, size = [], 0
        yield from self._encode(group)

    def _encode(self, group: list[tuple[int, str]]) -> list[tuple[int, np.ndarray]]:
        if not group:
            return []
        encodings = self.tokenizer.encode_batch_fast([text for _, text in group], add_special_tokens=False)
        return [(i, np.asarray(e.ids, dtype=np.uint32)) for (i, _), e in zip(group, encodings)]

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids if i != self.eos_id], skip_special_tokens=False)

    def describe(self) -> dict:
        serialised = self.tokenizer.to_str().encode()
        return {"kind": self.kind, "name": self.name, "vocab_size": self.vocab_size, "eos_id": self.eos_id,
                "hash": hashlib.sha256(serialised).hexdigest()}

    def save(self, directory: Path) -> None:
        from ladder.io import atomic_write_text
        atomic_write_text(directory / "tokenizer.json", self.tokenizer.to_str())


def train_bpe(texts: Iterable[str], vocab_size: int) -> FastTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    require(vocab_size > 257, f"data.tokenizer.vocab_size={vocab_size}: a byte-level BPE needs more than 257")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return FastTokenizer("bpe", tokenizer, tokenizer.token_to_id(EOS_TEXT))


def load_hf(name: str, revision: str | None = None, trust_remote_code: bool = False) -> FastTokenizer:
    """A hub (or local) tokenizer. Its own code runs only with data.tokenizer.trust_remote_code=true: transformers
    is told so either way, so it never asks on the terminal, and a tokenizer that needs its code is refused."""
    from transformers import AutoTokenizer

    from ladder.data.sources import HUB_HOST, hub_reachable

    trust = trust_remote_code is True

    def load(**options):
        try:
            return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust, **options)
        except ValueError as error:
            if "trust_remote_code" not in str(error):
                raise
            raise LadderError(f"data.tokenizer.name={name}: its tokenizer runs code of its own, which ladder never "
                              f"runs unasked; read that code, then set data.tokenizer.trust_remote_code=true") from None
    try:  # a cached copy works offline
        hf = load(local_files_only=True)
    except (OSError, ValueError):
        if not hub_reachable():
            raise LadderError(f"data.tokenizer.name={name}: not cached and {HUB_HOST} is unreachable; connect to the "
                              f"network, or use data.tokenizer.kind=bpe (trained offline) or bytes") from None
        try:
            hf = load()
        except (OSError, ValueError) as error:
            raise LadderError(f"data.tokenizer.name={name}: {str(error).splitlines()[0]}") from None
    require(getattr(hf, "backend_tokenizer", None) is not None, f"data.tokenizer.name={name}: not a fast tokenizer")
    eos = hf.eos_token_id if hf.eos_token_id is not None else hf.convert_tokens_to_ids(EOS_TEXT)
    require(eos is not None, f"data.tokenizer.name={name}: has no EOS token to separate documents")
    return FastTokenizer("hf", hf.backend_tokenizer, eos, name=name)


def load_saved(description: dict, directory: Path):
    """The tokenizer a manifest describes, from the shard directory (the exact one the shards were made with, a
    pinned hub revision too), else (a pretokenized corpus's stated tokenizer) from the hub cache."""
    if description["kind"] == "bytes":
        return ByteTokenizer()
    saved = Path(directory) / "tokenizer.json"
    if description["kind"] == "bpe" or saved.exists():
        from tokenizers import Tokenizer
        tokenizer = FastTokenizer(description["kind"], Tokenizer.from_file(str(saved)), description["eos_id"],
                                  name=description.get("name"))
        require(description.get("hash") in (None, tokenizer.describe()["hash"]),
                f"{saved}: not the tokenizer its manifest describes (hash differs); delete {directory} and run "
                f"`ladder prepare` again")
        return tokenizer
    require(description.get("name"), f"{directory}: a hub tokenizer with no name and no tokenizer.json; delete "
                                     f"{directory} and prepare again")
    return load_hf(description["name"])


def tokenizer_config_signature(cfg: dict) -> dict:
    kind = cfg.get("kind")
    require(kind in KINDS, f"data.tokenizer.kind={kind!r}: use one of {', '.join(KINDS)}")
    if kind == "bytes":
        return {"kind": kind}
    if kind == "bpe":  # pieces: a document longer than PIECE_CHARS is encoded piece by piece
        return {"kind": kind, "vocab_size": int(cfg["vocab_size"]), "train_bytes": int(float(cfg["train_bytes"])),
                "pieces": PIECE_CHARS}
    require(cfg.get("name"), "data.tokenizer.name: missing; name a Hugging Face tokenizer (e.g. gpt2)")
    return {"kind": kind, "name": cfg["name"], "revision": cfg.get("revision"), "pieces": PIECE_CHARS}


