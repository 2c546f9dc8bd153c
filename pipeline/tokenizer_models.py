"""Token ids from a Hugging Face `tokenizers` JSON file or a SentencePiece model, one interface for both.

Both LLM-jp tokenizers load: v2.2 (`tokenizer.json`, a tokenizers Unigram) and v3.1
(`llm-jp-tokenizer-100k.ver3.1.model`, SentencePiece, what LLM-jp-3 models use). The file is read
once as bytes, from a local path or any fsspec URL, so its SHA-256 is that of exactly what encodes
and a URL needs no local copy. The kind is told by the content, not the file name.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

# What a directory is searched for, in this order (a Hugging Face repository, a train-tokenizer output).
DIRECTORY_FILES = ("tokenizer.json", "tokenizer.model")
# Largest id that fits each token id type.
DTYPE_LIMITS = {"uint16": 2**16 - 1, "int32": 2**31 - 1, "uint32": 2**32 - 1}


class TokenizerError(ValueError):
    """A tokenizer that cannot be loaded or does not fit the config; the message names the file."""


@dataclass
class TokenizerModel:
    """A loaded tokenizer: batch encode without special tokens, decode, look up a token's id."""

    kind: str  # "tokenizers" or "sentencepiece"
    path: str
    sha256: str
    library_version: str
    impl: Any
    # Threads one encode_batch call may use (SentencePiece's -1: every core); see use_threads.
    threads: int = -1

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @cached_property
    def vocab_size(self) -> int:
        """One more than the largest id the tokenizer can produce (added tokens included)."""
        if self.kind == "sentencepiece":
            return self.impl.get_piece_size()
        return max(self.impl.get_vocab(with_added_tokens=True).values()) + 1

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # Special tokens are the stage's policy (tokenize.append_eos, prepend_bos), never the
        # tokenizer file's own post-processor: LLM-jp v2.2's appends <EOD|LLM-jp> by itself.
        if self.kind == "sentencepiece":
            return self.impl.encode(texts, num_threads=self.threads)
        return [e.ids for e in self.impl.encode_batch_fast(texts, add_special_tokens=False)]

    def encode_arrow(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """The ids of every text of an Arrow string array, end to end in one int32 array, and how
        many each text has: what the stage stores, with no Python int per token.

        SentencePiece reads the texts as UTF-8 bytes straight from Arrow and gives each text's ids
        as one buffer (`out_type="numpy"`): no Python str is built only to be encoded to UTF-8
        again, and no list of ints is built only to be copied into an array. Same ids as
        encode_batch. The tokenizers library takes str and gives lists, so it goes through them.
        """
        if self.kind == "sentencepiece":
            binary = pa.large_binary() if pa.types.is_large_string(texts.type) else pa.binary()
            arrays = self.impl.encode(
                texts.cast(binary).to_pylist(), num_threads=self.threads, out_type="numpy"
            )
        else:
            arrays = [np.asarray(ids, np.int32) for ids in self.encode_batch(texts.to_pylist())]
        lengths = np.fromiter(map(len, arrays), np.int64, len(arrays))
        return (np.concatenate(arrays) if arrays else np.empty(0, np.int32)), lengths

    def decode(self, ids: list[int]) -> str:
        if self.kind == "sentencepiece":
            return self.impl.decode([int(i) for i in ids])
        return self.impl.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_id(self, token: str) -> int | None:
        """The id of `token` as one vocabulary entry, or None if the vocabulary lacks it."""
        if self.kind == "sentencepiece":
            i = self.impl.piece_to_id(token)
            return i if self.impl.id_to_piece(i) == token else None
        return self.impl.token_to_id(token)

    def use_threads(self, threads: int) -> None:
        """Threads one encode_batch call may use. A Ray worker takes one CPU, so the stage asks for 1."""
        self.threads = threads
        if self.kind == "tokenizers":
            # tokenizers reads this at every batch call: "false" encodes on the calling thread. The
            # Rayon pool size can only be set before its first use, hence the environment variable.
            os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
            os.environ.setdefault("RAYON_NUM_THREADS", str(threads))

    def fitting_dtype(self, requested: str) -> str:
        """`auto`: uint16 when every id fits, else int32 (Megatron has no uint32; PyTorch barely does)."""
        largest = self.vocab_size - 1
        if requested == "auto":
            return "uint16" if largest <= DTYPE_LIMITS["uint16"] else "int32"
        if largest > DTYPE_LIMITS[requested]:
            raise TokenizerError(
                f"tokenize.token_dtype: {requested} cannot hold id {largest} of {self.path} "
                f"({self.vocab_size} ids); use int32 or auto"
            )
        return requested


def read_tokenizer_file(path: str) -> tuple[str, bytes]:
    """The file's resolved path and bytes; a directory is searched for DIRECTORY_FILES."""
    from manifests.io import filesystem

    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        raise TokenizerError(f"tokenize.tokenizer_path: {path} does not exist")
    if fs.isdir(fs_path):
        for name in DIRECTORY_FILES:
            if fs.exists(f"{fs_path.rstrip('/')}/{name}"):
                return read_tokenizer_file(f"{path.rstrip('/')}/{name}")
        raise TokenizerError(
            f"tokenize.tokenizer_path: directory {path} holds none of {', '.join(DIRECTORY_FILES)}"
        )
    with fs.open(fs_path, "rb") as f:
        return path, f.read()


def load_tokenizer(path: str, expected_sha256: str | None = None) -> TokenizerModel:
    """Load a tokenizers JSON file or a SentencePiece model by path or URL, checking its SHA-256."""
    path, data = read_tokenizer_file(path)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise TokenizerError(
            f"tokenize.tokenizer_sha256: {path} has SHA-256 {digest}, the config expects {expected_sha256}"
        )
    if data.lstrip()[:1] == b"{":
        import tokenizers

        try:
            impl = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise TokenizerError(f"{path}: a JSON file but not a tokenizers tokenizer ({exc})") from None
        return TokenizerModel("tokenizers", path, digest, tokenizers.__version__, impl)
    try:
        import sentencepiece
    except ImportError:
        raise TokenizerError(f"{path}: SentencePiece models need `pip install sentencepiece`") from None
    impl = sentencepiece.SentencePieceProcessor()
    try:
        impl.LoadFromSerializedProto(data)
    except (RuntimeError, OSError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizerError(
            f"{path}: neither a tokenizers JSON file nor a SentencePiece model ({first})"
        ) from None
    return TokenizerModel("sentencepiece", path, digest, sentencepiece.__version__, impl)
