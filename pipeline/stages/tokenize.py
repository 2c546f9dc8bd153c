"""tokenize: token ids for the training cluster, as Parquet rows and/or Megatron-LM .bin/.idx.

Any Hugging Face `tokenizers` JSON or SentencePiece model (pipeline/tokenizer_models.py). Each row
is a document, or a piece of one longer than `tokenize.max_tokens_per_piece` split on line
boundaries (tokenize_pieces.py), with BOS/EOS by policy. Every row carries its token range in the
shard's stream and the rights columns a training job filters on (tokenize_output.py). The manifest
of every included document records where its tokens start: shard, row (its first piece) and
num_tokens (all its pieces).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.io import atomic_write_bytes
from manifests.layout import done_shards, stage_dir
from pipeline.config import ConfigError
from pipeline.shards import input_shards
from pipeline.stage import ShardResult, ShardSpec, Stage, transform
from pipeline.stages import tokenize_output as out
from pipeline.stages.tokenize_manifest import ArrowRows, read_aligned, record_tokens
from pipeline.stages.tokenize_pieces import split_pieces
from pipeline.tokenizer_models import TokenizerError, load_tokenizer

PLAN_FILE = "plan.json"


class TokenizeStage(Stage):
    name = "tokenize"
    input_stage = "quality"

    def setup(self) -> None:
        cfg = self.config.tokenize
        path = self.config.resolve_path(cfg.tokenizer_path)
        self.tokenizer = load_tokenizer(path, cfg.tokenizer_sha256)
        self.tokenizer.use_threads(cfg.threads_per_worker)
        self.eos_id = self._special_id("eos_token", cfg.eos_token) if cfg.append_eos else None
        self.bos_id = self._special_id("bos_token", cfg.bos_token) if cfg.prepend_bos else None
        self.dtype = self.tokenizer.fitting_dtype(cfg.token_dtype)

    def _special_id(self, key: str, token: str) -> int:
        token_id = self.tokenizer.token_id(token)
        if token_id is None:
            raise TokenizerError(
                f"tokenize.{key}: {token!r} is not in the vocabulary of {self.tokenizer.path}"
            )
        return token_id

    def plan(self) -> list[ShardSpec]:
        cfg = self.config.tokenize
        if cfg.shard_target_tokens or cfg.shard_target_bytes:
            shards = self._grouped_plan()
        else:
            shards = input_shards(self.ctx.run_dir, self.input_stage)
        done = set(done_shards(self.ctx.run_dir, self.name))
        if any(s.name not in done for s in shards):
            self._setup_on_driver()
        return shards

    def _setup_on_driver(self) -> None:
        # Before any shard starts: a missing tokenizer, a wrong SHA-256 or an unknown special
        # token stops the stage with exit code 2, not with one failed shard per worker.
        if hasattr(self, "tokenizer"):
            return
        try:
            self.setup()
        except TokenizerError as exc:
            raise ConfigError(str(exc)) from None

    def _grouped_plan(self) -> list[ShardSpec]:
        """Input shards grouped to the target size, decided once and kept in plan.json, so that a
        rerun resumes the same output shards without estimating again."""
        from pipeline.stages.tokenize_plan import grouped_shards, read_plan, shard_specs, write_plan

        path = f"{stage_dir(self.ctx.run_dir, self.name)}/{PLAN_FILE}"
        groups = read_plan(path)
        if groups is None:
            cfg = self.config.tokenize
            self._setup_on_driver()
            target = cfg.shard_target_tokens or max(
                1, cfg.shard_target_bytes // np.dtype(out.NUMPY_DTYPES[self.dtype]).itemsize
            )
            groups, ratio = grouped_shards(self.ctx.run_dir, self.input_stage, target, self.tokenizer)
            write_plan(path, groups, target, ratio)
        return shard_specs(self.ctx.run_dir, self.input_stage, groups)

    def _encode(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The ids of every row (piece) end to end, and each row's length, document and piece
        number; and the ids the documents encoded to whole (tokens in)."""
        size = self.config.tokenize.batch_size
        limit = self.config.tokenize.max_tokens_per_piece
        limit = None if limit is None else limit - (self.bos_id is not None) - (self.eos_id is not None)
        ids, lengths = [np.empty(0, np.int32)], [np.empty(0, np.int64)]
        doc_of, piece_no, tokens_in = [np.empty(0, np.int64)], [np.empty(0, np.int32)], 0
        for start in range(0, len(texts), size):
            batch_ids, counts = self.tokenizer.encode_arrow(texts.slice(start, size))
            tokens_in += len(batch_ids)
            bounds = np.zeros(len(counts) + 1, np.int64)  # document k's ids: bounds[k]:bounds[k + 1]
            np.cumsum(counts, out=bounds[1:])
            long = np.flatnonzero(counts > limit).tolist() if limit is not None else []
            done = 0
            for j in [*long, len(counts)]:
                # The whole documents before the next long one, as slices of the batch's arrays.
                ids.append(batch_ids[bounds[done] : bounds[j]])
                lengths.append(counts[done:j])
                doc_of.append(np.arange(start + done, start + j))
                piece_no.append(np.zeros(j - done, np.int32))
                if j < len(counts):
                    text = texts[start + j].as_py()
                    parts = [p for _, p in split_pieces(text, limit, self.tokenizer.encode_batch)]
                    ids += [np.asarray(p, np.int32) for p in parts]
                    lengths.append(np.array([len(p) for p in parts], np.int64))
                    doc_of.append(np.full(len(parts), start + j))
                    piece_no.append(np.arange(len(parts), dtype=np.int32))
                done = j + 1
        join = np.concatenate
        return join(ids), join(lengths), join(doc_of), join(piece_no), tokens_in

    def process(self, shard: ShardSpec) -> ShardResult:
        if not hasattr(self, "tokenizer"):  # called without a worker (tests, benchmarks)
            self.setup()
        cfg = self.config.tokenize
        docs, manifest = read_aligned(shard.inputs.get("parts") or [shard.inputs])
        content, lengths, doc_of, piece_no, tokens_in = self._encode(docs.column("text").combine_chunks())
        stream, offsets = out.with_special_tokens(content, lengths, self.bos_id, self.eos_id, self.dtype)
        gather = None if len(doc_of) == docs.num_rows else pa.array(doc_of)

        def per_row(column: pa.ChunkedArray) -> pa.Array:
            # A document's value on each of its rows: a gather only when some document was split.
            return (column if gather is None else column.take(gather)).combine_chunks()

        table = out.rows_table(
            per_row(docs.column("doc_id")),
            piece_no,
            stream,
            offsets,
            {c: per_row(manifest.column(c)) for c in out.RIGHTS_COLUMNS},
            "parquet" in cfg.formats,
            self._metadata(),
        )
        if "megatron" in cfg.formats:
            out.write_megatron(f"{stage_dir(self.ctx.run_dir, self.name)}/{shard.name}", stream, offsets)
        # Pieces follow their document, so a document's first row is where its index first appears.
        first_row = np.searchsorted(doc_of, np.arange(docs.num_rows))
        tokens = np.bincount(doc_of, weights=np.diff(offsets), minlength=docs.num_rows).astype(np.int64)
        manifest = record_tokens(
            manifest, self._transform(), f"{self.name}/{shard.name}.parquet", first_row, tokens
        )
        return ShardResult(
            kept=table,
            rejected=[],
            manifest=ArrowRows(manifest),
            manifest_table=manifest,
            bytes_in=docs.nbytes,
            characters_in=int(pc.sum(pc.utf8_length(docs.column("text"))).as_py() or 0),
            documents_out=docs.num_rows,
            counts=_counts(tokens_in, tokens, piece_no, manifest),
            write_kept=partial(_write_rows, row_group_tokens=cfg.row_group_tokens),
        )

    def _metadata(self) -> dict[str, Any]:
        """What a reader needs to use the ids: kept in every shard's Parquet schema metadata."""
        t, cfg = self.tokenizer, self.config.tokenize
        return {
            "kind": t.kind,
            "name": t.name,
            "sha256": t.sha256,
            "vocab_size": t.vocab_size,
            "token_dtype": self.dtype,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "max_tokens_per_piece": cfg.max_tokens_per_piece,
        }

    def _transform(self) -> dict[str, Any]:
        # The tokenizer is named by its hash in the readable version, not only inside the params hash.
        t = self.tokenizer
        return transform(
            self.name,
            f"{t.kind}:{t.name}",
            f"{t.library_version}+sha256:{t.sha256[:16]}",
            self._metadata() | {"tokenizer_sha256": t.sha256, "formats": self.config.tokenize.formats},
        )


def _write_rows(path: str, table: pa.Table, row_group_tokens: int) -> None:
    atomic_write_bytes(path, out.parquet_bytes(table, row_group_tokens))


def _counts(tokens_in: int, tokens: np.ndarray, piece_no: np.ndarray, manifest: pa.Table) -> dict[str, Any]:
    """Additive counts for stats.json: tokens in (the documents encoded whole) and out (the rows,
    BOS/EOS included), rows, documents split, and tokens and documents per source and licence.
    `tokens` are each document's tokens out, `manifest` its rows in the same order."""
    counts: dict[str, Any] = {
        "tokens_in": tokens_in,
        "tokens_out": int(tokens.sum()),
        "rows": len(piece_no),
        "documents_split": int(np.count_nonzero(piece_no == 1)),
    }
    for column in ("source", "license"):
        # Per document, so a sum per value: by the values' dictionary codes, not a group-by of rows.
        codes = pc.dictionary_encode(manifest.column(column).combine_chunks(), null_encoding="encode")
        index = codes.indices.to_numpy()
        keys = [str(k) for k in codes.dictionary.to_pylist()]
        sums = np.bincount(index, weights=tokens, minlength=len(keys)).astype(np.int64)
        documents = np.bincount(index, minlength=len(keys))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        counts[f"tokens_by_{column}"] = {keys[k]: int(sums[k]) for k in order}
        counts[f"documents_by_{column}"] = {keys[k]: int(documents[k]) for k in order}
    return counts
