"""tokenize: token ids with a Hugging Face `tokenizers` tokenizer, one Parquet row per document.

The manifest of every included document records where its tokens are: shard, row, num_tokens.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.stage import RowUpdate, ShardResult, ShardSpec, Stage, read_input, split_documents, transform

TOKENS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("num_tokens", pa.int64()),
        ("source", pa.string()),
        ("license", pa.string()),
        ("osaid_class", pa.string()),
        ("redistribution", pa.string()),
    ]
)


class TokenizeStage(Stage):
    name = "tokenize"
    input_stage = "quality"

    def setup(self) -> None:
        from tokenizers import Tokenizer

        from manifests.schema import sha256_hex

        cfg = self.config.tokenize
        path = self.config.resolve_path(cfg.tokenizer_path)
        with open(path, "rb") as f:
            data = f.read()
        self.tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        self.tokenizer_sha256 = sha256_hex(data)
        self.tokenizer_name = path.rsplit("/", 1)[-1]
        self.eos_id = None
        if cfg.append_eos:
            self.eos_id = self.tokenizer.token_to_id(cfg.eos_token)
            if self.eos_id is None:
                raise ValueError(f"tokenize.eos_token: {cfg.eos_token!r} is not in the vocabulary of {path}")

    def process(self, shard: ShardSpec) -> ShardResult:
        import tokenizers

        cfg = self.config.tokenize
        table, rows = read_input(shard)
        texts = table.column("text").to_pylist()
        ids: list[list[int]] = []
        for start in range(0, len(texts), cfg.batch_size):
            for enc in self.tokenizer.encode_batch(
                texts[start : start + cfg.batch_size], add_special_tokens=False
            ):
                ids.append(enc.ids + ([self.eos_id] if self.eos_id is not None else []))
        # The tokenizer file is identified by its hash, readable in the manifest, not only inside params.
        tool = transform(
            self.name,
            f"tokenizers:{self.tokenizer_name}",
            f"{tokenizers.__version__}+sha256:{self.tokenizer_sha256[:16]}",
            {
                "tokenizer_sha256": self.tokenizer_sha256,
                "append_eos": cfg.append_eos,
                "eos_token": cfg.eos_token,
            },
        )
        shard_file = f"{self.name}/{shard.name}.parquet"
        updates = [
            RowUpdate(transforms=[tool], fields={"shard": shard_file, "row": row, "num_tokens": len(tokens)})
            for row, tokens in enumerate(ids)
        ]
        out = pa.table(
            {
                "doc_id": table.column("doc_id"),
                "input_ids": pa.array(ids, pa.list_(pa.int32())),
                "num_tokens": pa.array([len(t) for t in ids], pa.int64()),
                "source": [r["source"] for r in rows],
                "license": [r["license"] for r in rows],
                "osaid_class": [r["osaid_class"] for r in rows],
                "redistribution": [r["redistribution"] for r in rows],
            },
            schema=TOKENS_SCHEMA,
        )
        result = split_documents(self.name, out, rows, updates)
        result.characters_in = sum(len(t) for t in texts)
        return result
