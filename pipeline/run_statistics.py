"""Statistics of a finished run for researchers, read lazily with polars (issue 11).

`open_run(RUN_DIR)` scans the stage manifests, the document shards and the rejected files of a run
directory (a local path or any fsspec URL) without loading them: every method builds a polars query
that reads only the columns it needs, and returns a small DataFrame.

    stats = open_run("runs/sample")       # or "s3://bucket/run", "file:///data/run"
    stats.totals("source")                # source, documents, tokens, characters
    stats.manifests("dedup").filter(...)  # any polars query over the run's files

Which documents each figure is about:
- totals (documents, tokens, characters per source, licence or OSAID class): the documents of the last
  finished stage (the tokenized ones after a whole run);
- rejects and the funnel: every stage's manifest (each stage's manifest has one row per document that
  entered it; a rejected row says `<stage>:<reason>`);
- length and score distributions: the documents kept by the last stage that still holds text (quality
  after a whole run), so they describe what goes into training;
- duplicate clusters: the dedup manifest's `dedup_cluster_id` and `dedup_cluster_size`.
"""

from __future__ import annotations

from functools import cached_property

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from manifests.io import check_version, filesystem
from manifests.layout import STAGE_ORDER, docs_path, done_shards, manifest_path, rejected_path, stage_dir

# The per-document length column the clean stage measures on the text it emits. Dedup and quality do
# not change the text, so it is the length of the final text, and reading it avoids the text column.
LENGTH_COLUMN = "clean_chars"
LANGUAGE_SCORE_PREFIX = "language_score_"
QUALITY_SCORE_PREFIX = "quality_"
TOTALS_BY = ("source", "license", "osaid_class")
SAMPLE_COLUMNS = ("stage", "reason", "doc_id", "source", "detail", "text")


class RunStatsError(Exception):
    """A run directory that cannot be read as one; the message names it and says what is wrong."""


def open_run(run_dir: str) -> RunStatistics:
    """Open a run directory (local path, `file://` or any fsspec URL) for statistics."""
    return RunStatistics(str(run_dir))


class RunStatistics:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir.rstrip("/")
        self._fs, root = filesystem(self.run_dir)
        if not self._fs.isdir(root):
            what = "not a directory" if self._fs.exists(root) else "no such run directory"
            raise RunStatsError(f"{run_dir}: {what}")
        self._local = "file" in _protocols(self._fs)
        # The finished shards (those whose manifest exists) of each stage, by name (`part-NNNNN`).
        self.shards = {s: tuple(done_shards(self.run_dir, s)) for s in STAGE_ORDER}
        self.stages = tuple(s for s in STAGE_ORDER if self.shards[s])
        if not self.stages:
            raise RunStatsError(
                f"{run_dir}: not a run directory (no stage has a finished shard: no "
                f"<stage>/part-NNNNN.manifest.parquet under it)"
            )
        # Readers refuse an unknown major version (DESIGN.md); one manifest per stage is checked,
        # because a run is written by one pipeline version and a footer read per shard costs a
        # request per shard on an object store.
        for stage in self.stages:
            path = manifest_path(self.run_dir, stage, self.shards[stage][0])
            try:
                schema = pq.read_schema(self._fs_path(path), filesystem=self._fs)
            except (pa.ArrowInvalid, OSError) as exc:
                raise RunStatsError(f"{path}: not a readable Parquet manifest ({exc})") from None
            check_version(path, schema)

    # -- lazy frames over the run's files -------------------------------------------------------

    def manifests(self, stage: str) -> pl.LazyFrame:
        """The provenance manifest rows of every finished shard of `stage`."""
        return self._scan([manifest_path(self.run_dir, stage, n) for n in self._names(stage)])

    def documents(self, stage: str) -> pl.LazyFrame:
        """The documents `stage` kept (its `part-NNNNN.parquet` shards)."""
        return self._scan([docs_path(self.run_dir, stage, n) for n in self._names(stage)])

    def rejected(self, stage: str) -> pl.LazyFrame:
        """The documents `stage` rejected: doc_id, source, reason, detail, text."""
        paths = [rejected_path(self.run_dir, stage, n) for n in self._names(stage)]
        directory = self._fs_path(f"{stage_dir(self.run_dir, stage)}/rejected")
        # One listing, not an existence check per shard (a request each on an object store).
        present = set(self._fs.ls(directory, detail=False)) if self._fs.isdir(directory) else set()
        return self._scan([p for p in paths if self._fs_path(p) in present])

    def _names(self, stage: str) -> tuple[str, ...]:
        if stage not in STAGE_ORDER:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_ORDER)}")
        return self.shards[stage]

    def _fs_path(self, path: str) -> str:
        return filesystem(path)[1]

    def _scan(self, paths: list[str]) -> pl.LazyFrame:
        if not paths:
            return pl.LazyFrame()
        if self._local:
            # A column missing from some files (a manifest of schema 1.0 has no `attribution`) reads as null.
            return pl.scan_parquet([self._fs_path(p) for p in paths], missing_columns="insert")
        # Other fsspec filesystems go through a pyarrow dataset on the same fsspec filesystem, so a
        # run on an object store is read with the credentials and options the pipeline writes it with
        # (polars' own object-store readers know only some protocols, `memory://` not at all). It
        # stays lazy: polars pushes the projection and filters down to the dataset scanner.
        dataset = pads.dataset([self._fs_path(p) for p in paths], filesystem=self._fs, format="parquet")
        return pl.scan_pyarrow_dataset(dataset)

    # -- which stage holds what -----------------------------------------------------------------

    @property
    def final_stage(self) -> str:
        return self.stages[-1]

    @cached_property
    def text_stage(self) -> str | None:
        """The last finished stage whose document shards hold text (quality after a whole run)."""
        for stage in reversed(self.stages):
            if "text" in self.documents(stage).collect_schema().names():
                return stage
        return None

    @cached_property
    def score_columns(self) -> list[str]:
        """The language score and every `quality_*` score column of the text stage, in that order."""
        if self.text_stage is None:
            return []
        names = self.documents(self.text_stage).collect_schema().names()
        language = sorted(n for n in names if n.startswith(LANGUAGE_SCORE_PREFIX))
        quality = sorted(n for n in names if n.startswith(QUALITY_SCORE_PREFIX))
        return language + quality

    def _kept_lengths(self) -> pl.LazyFrame:
        """doc_id, source and length in characters of the documents the text stage kept."""
        docs = self.documents(self.text_stage)
        length = (
            pl.col(LENGTH_COLUMN).cast(pl.Int64)
            if LENGTH_COLUMN in docs.collect_schema().names()
            else pl.col("text").str.len_chars().cast(pl.Int64)
        )
        return docs.select("doc_id", "source", length.alias("characters"))

    # -- the figures ----------------------------------------------------------------------------

    def totals(self, by: str = "source") -> pl.DataFrame:
        """Documents, tokens and characters of the final documents per `by` (source, license or
        osaid_class), largest token count first. Tokens are null before the tokenize stage."""
        if by not in TOTALS_BY:
            raise ValueError(f"totals by {by!r}: choose one of {', '.join(TOTALS_BY)}")
        tokenized = self.final_stage == "tokenize"
        final = self.manifests(self.final_stage).filter(pl.col("included")).select("doc_id", by, "num_tokens")
        if self.text_stage is not None:
            final = final.join(self._kept_lengths().select("doc_id", "characters"), on="doc_id", how="left")
        else:
            final = final.with_columns(characters=pl.lit(None, pl.Int64))
        return (
            final.group_by(by)
            .agg(
                documents=pl.len(),
                tokens=pl.col("num_tokens").sum() if tokenized else pl.lit(None, pl.Int64),
                characters=pl.col("characters").sum(),
            )
            .sort(["tokens", "documents", by], descending=[True, True, False], nulls_last=True)
            .collect()
        )

    def rejects(self) -> pl.DataFrame:
        """Rejected documents per stage and reason kind (`duplicate_of:<id>` counts as duplicate_of)."""
        frames = []
        for stage in self.stages:
            reason = pl.col("exclusion_reason").str.strip_prefix(f"{stage}:")
            frames.append(
                self.manifests(stage)
                .filter(~pl.col("included"))
                .select(
                    stage=pl.lit(stage),
                    reason=reason.str.split(":").list.first(),
                )
            )
        return (
            pl.concat(frames)
            .group_by("stage", "reason")
            .agg(documents=pl.len())
            .with_columns(order=pl.col("stage").replace_strict(STAGE_ORDER, list(range(len(STAGE_ORDER)))))
            .sort(["order", "documents", "reason"], descending=[False, True, False])
            .drop("order")
            .collect()
        )

    def funnel(self) -> pl.DataFrame:
        """Per stage: documents in, kept and rejected. The first row's `documents_in` is the
        number fetched; each stage's `kept` is the next stage's `documents_in`."""
        frames = [
            self.manifests(stage).select(
                stage=pl.lit(stage),
                documents_in=pl.len(),
                kept=pl.col("included").sum(),
            )
            for stage in self.stages
        ]
        # One query for every stage, so polars scans the manifests in parallel.
        out = pl.concat(pl.collect_all(frames))
        return out.with_columns(
            pl.col("documents_in").cast(pl.Int64),
            pl.col("kept").cast(pl.Int64),
            rejected=(pl.col("documents_in") - pl.col("kept")).cast(pl.Int64),
        )

    def histogram(self, column: str, bins: int = 20, log: bool = False) -> pl.DataFrame:
        """Counts of `column` per source in `bins` equal-width bins shared by every source (so the
        sources' bars line up), of the documents the text stage kept. `column` is a document column
        (`characters` for the length, or a score column). With `log`, bins are equal in log10 and
        values of 0 or less are left out. Returns source, bin_start, bin_end, documents."""
        if self.text_stage is None:
            return _empty_histogram()
        if column == "characters":
            frame = self._kept_lengths()
        else:
            frame = self.documents(self.text_stage)
        value = pl.col(column).cast(pl.Float64)
        frame = frame.select("source", value=value).drop_nulls("value").filter(pl.col("value").is_not_nan())
        if log:
            frame = frame.filter(pl.col("value") > 0).with_columns(pl.col("value").log10())
        lo, hi = frame.select(lo=pl.col("value").min(), hi=pl.col("value").max()).collect().row(0)
        if lo is None:
            return _empty_histogram()
        width = (hi - lo) / bins if hi > lo else 1.0
        # Hand-written binning rather than polars' `hist`: the same edges for every source are what
        # make the per-source histograms comparable, and `hist` does not group.
        counts = (
            frame.with_columns(bin=((pl.col("value") - lo) / width).floor().clip(0, bins - 1).cast(pl.Int32))
            .group_by("source", "bin")
            .agg(documents=pl.len())
            .sort("source", "bin")
            .collect()
        )
        start = pl.lit(lo) + pl.col("bin") * width
        edges = [start, start + width]
        if log:
            edges = [10**e for e in edges]
        return counts.select("source", bin_start=edges[0], bin_end=edges[1], documents="documents")

    def quantiles(self, column: str) -> pl.DataFrame:
        """Documents, min, median, 90th percentile and max of `column` per source, over the same
        documents as `histogram`."""
        if self.text_stage is None:
            return pl.DataFrame()
        frame = self._kept_lengths() if column == "characters" else self.documents(self.text_stage)
        value = pl.col(column).cast(pl.Float64)
        return (
            frame.group_by("source")
            .agg(
                documents=value.count(),
                min=value.min(),
                median=value.median(),
                p90=value.quantile(0.9, interpolation="linear"),
                max=value.max(),
            )
            .sort("source")
            .collect()
        )

    def cluster_sizes(self) -> pl.DataFrame:
        """How many duplicate clusters have each size (1: documents with no duplicate), from the
        dedup manifest. Empty when the dedup stage has not run."""
        if "dedup" not in self.stages:
            return pl.DataFrame(
                schema={"cluster_size": pl.Int32, "clusters": pl.UInt32, "documents": pl.Int64}
            )
        return (
            self.manifests("dedup")
            .select("dedup_cluster_id", "dedup_cluster_size")
            .drop_nulls()
            .unique("dedup_cluster_id")
            .group_by(cluster_size="dedup_cluster_size")
            .agg(clusters=pl.len())
            .with_columns(documents=pl.col("cluster_size").cast(pl.Int64) * pl.col("clusters"))
            .sort("cluster_size")
            .collect()
        )

    def shard_sizes(self, stage: str | None = None) -> pl.DataFrame:
        """Per shard of each stage (or of `stage`): rows and bytes of its document file, and for
        tokenized shards the tokens it holds. Rows come from the Parquet footer, not from a scan."""
        rows = []
        for name in self.stages if stage is None else (stage,):
            directory = self._fs_path(stage_dir(self.run_dir, name))
            # One listing per stage gives every file's size (one request, not one per shard).
            sizes = {i["name"].rsplit("/", 1)[-1]: i["size"] for i in self._fs.ls(directory, detail=True)}
            for shard in self._names(name):
                path = self._fs_path(docs_path(self.run_dir, name, shard))
                meta = pq.read_metadata(path, filesystem=self._fs)
                rows.append((name, shard, meta.num_rows, sizes.get(f"{shard}.parquet")))
        frame = pl.DataFrame(rows, schema=["stage", "shard", "rows", "bytes"], orient="row")
        tokens = self._tokens_per_shard()
        if tokens is None:
            return frame
        frame = frame.join(tokens, on=["stage", "shard"], how="left")
        # A tokenized shard with no documents holds 0 tokens; other stages' shards hold none (null).
        return frame.with_columns(
            tokens=pl.when(pl.col("stage") == "tokenize").then(pl.col("tokens").fill_null(0))
        )

    def _tokens_per_shard(self) -> pl.DataFrame | None:
        if "tokenize" not in self.stages:
            return None
        return (
            self.manifests("tokenize")
            .filter(pl.col("included") & pl.col("shard").is_not_null())
            .group_by(shard=pl.col("shard").str.extract(r"(part-\d+)\.parquet$"))
            .agg(tokens=pl.col("num_tokens").sum())
            .with_columns(stage=pl.lit("tokenize"))
            .collect()
        )

    def rejected_samples(self, per_reason: int = 3, max_chars: int = 200) -> pl.DataFrame:
        """Up to `per_reason` rejected documents per stage and reason kind (the smallest doc_ids, so
        the sample is the same on every call), with the first `max_chars` characters of their text."""
        chosen = []
        for stage in self.stages:
            rejected = self.rejected(stage)
            if not rejected.collect_schema().names():
                continue
            # First the ids (no text read), then the text of the chosen few only.
            ids = (
                rejected.select("doc_id", reason=pl.col("reason").str.split(":").list.first())
                .sort("doc_id")
                .group_by("reason", maintain_order=True)
                .head(per_reason)
                .collect()
            )
            if ids.height:
                chosen.append(
                    rejected.filter(pl.col("doc_id").is_in(ids["doc_id"].implode()))
                    .select(
                        stage=pl.lit(stage),
                        reason=pl.col("reason").str.split(":").list.first(),
                        doc_id="doc_id",
                        source="source",
                        detail="detail",
                        text=pl.col("text").str.slice(0, max_chars),
                    )
                    .collect()
                )
        if not chosen:
            return pl.DataFrame(schema=dict.fromkeys(SAMPLE_COLUMNS, pl.String))
        order = {s: i for i, s in enumerate(STAGE_ORDER)}
        out = pl.concat(chosen)
        return out.sort(pl.col("stage").replace_strict(order), "reason", "doc_id")


def _empty_histogram() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"source": pl.String, "bin_start": pl.Float64, "bin_end": pl.Float64, "documents": pl.UInt32}
    )


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
