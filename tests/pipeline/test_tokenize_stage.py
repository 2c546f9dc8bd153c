"""The tokenize stage on shards of real Japanese text (Wikipedia paragraphs, 行政手続法, Diet
speeches), called directly without Ray: both LLM-jp tokenizers, decoding back to the text, pieces
of long documents on line boundaries, BOS/EOS policy, per-source and per-licence totals, output
shards grouped (or input shards cut) to a target size, and clear errors for bad tokenizers and settings."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from japanese_texts import LAW, SPEECHES, WIKI

from manifests.io import ManifestError, manifest_table, read_manifest, write_manifest
from manifests.layout import manifest_path, shard_stats_path
from pipeline.config import ConfigError, load_config
from pipeline.shards import run_shard, sum_stage_stats
from pipeline.stage import decision, transform
from pipeline.stages.tokenize import TokenizeStage
from pipeline.stages.tokenize_pieces import split_pieces
from pipeline.tokenizer_models import TokenizerError, load_tokenizer

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("JCORPUS_SHARED_DATA", REPO.parent / "shared" / "data"))
V22 = REPO / "sample" / "tokenizer_llm_jp_v2.2" / "tokenizer.json"
V31 = SHARED / "tokenizer_llm_jp" / "models__ver3.1__llm-jp-tokenizer-100k.ver3.1.model"
# Japanese Wikipedia paragraphs (CC BY-SA 4.0), 行政手続法 (e-Gov), Diet speeches: all bundled.
LICENSES = {
    "local": "CC-BY-SA-4.0",
    "egov": "LicenseRef-JP-Copyright-Art13-NonCopyrightable",
    "kokkai": "LicenseRef-Kokkai-SpeakerCopyright",
}
# The settings of each LLM-jp tokenizer: v2.2 ends documents with <EOD|LLM-jp>, v3.1 (LLM-jp-3)
# with </s> and may open them with <s>.
TOKENIZERS = {
    "v2.2": [f"tokenize.tokenizer_path={V22}"],
    "v3.1": [f"tokenize.tokenizer_path={V31}", "tokenize.eos_token=</s>", "tokenize.bos_token=<s>"],
}


def needs(name: str) -> None:
    if name == "v3.1" and not V31.is_file():
        pytest.skip(f"the LLM-jp v3.1 SentencePiece model is not at {V31}")


def real_docs() -> list[dict]:
    texts = [("local", t) for t in WIKI] + [("egov", LAW)] + [("kokkai", s) for s in SPEECHES]
    return [{"upstream_id": f"{src}-{i}", "text": t, "source": src} for i, (src, t) in enumerate(texts)]


def write_input(shards, index: int, docs: list[dict]):
    """A quality shard of `docs`, each with its source's licence in the manifest."""
    spec = shards.write("quality", index, docs)
    path = manifest_path(shards.run_dir, "quality", f"part-{index:05d}")
    table = read_manifest(path)
    licences = [LICENSES[s] for s in table.column("source").to_pylist()]
    write_manifest(
        path, table.set_column(table.schema.get_field_index("license"), "license", pa.array(licences))
    )
    return spec


def rows_by_doc(table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(row["doc_id"], []).append(row)
    return out


# tokenizers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kind, vocab", [("v2.2", "tokenizers", 48586), ("v3.1", "sentencepiece", 98452)]
)
def test_both_llm_jp_tokenizers_load_from_a_path_and_an_fsspec_url(name, kind, vocab):
    needs(name)
    path = V22 if name == "v2.2" else V31
    local = load_tokenizer(str(path))
    with fsspec.open(f"memory://tokenizers/{name}/{path.name}", "wb") as f:
        f.write(path.read_bytes())
    remote = load_tokenizer(f"memory://tokenizers/{name}/{path.name}")
    assert (local.kind, local.vocab_size) == (remote.kind, remote.vocab_size) == (kind, vocab)
    assert local.sha256 == remote.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    text = "吾輩は猫である。名前はまだ無い。\n　どこで生れたかとんと見当がつかぬ。ｶﾀｶﾅ①"
    ids = remote.encode_batch([text])[0]
    assert ids == local.encode_batch([text])[0] and remote.decode(ids) == text


def test_a_directory_holding_tokenizer_json_loads():
    assert load_tokenizer(str(V22.parent)).name == "tokenizer.json"


def test_a_file_that_is_no_tokenizer_is_refused_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("梅雨の時期です。")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(
        TokenizerError, match=r"notes\.txt: neither a tokenizers JSON file nor a SentencePiece"
    ):
        load_tokenizer(str(tmp_path / "notes.txt"))
    with pytest.raises(TokenizerError, match=r"config\.json: a JSON file but not a tokenizers tokenizer"):
        load_tokenizer(str(tmp_path / "config.json"))
    with pytest.raises(TokenizerError, match="missing.model does not exist"):
        load_tokenizer(str(tmp_path / "missing.model"))
    with pytest.raises(TokenizerError, match="tokenize.tokenizer_sha256: .*tokenizer.json has SHA-256"):
        load_tokenizer(str(V22), expected_sha256="0" * 64)


def test_the_driver_stops_the_stage_before_any_shard_on_a_bad_tokenizer(shards, tmp_path):
    write_input(shards, 0, real_docs()[:2])
    (tmp_path / "broken.model").write_bytes(b"\x00\x01 not a model")
    stage = TokenizeStage(shards.context(f"tokenize.tokenizer_path={tmp_path / 'broken.model'}"))
    with pytest.raises(ConfigError, match="broken.model: neither"):
        stage.plan()
    stage = TokenizeStage(shards.context(f"tokenize.tokenizer_path={V22}", "tokenize.eos_token=</s>"))
    with pytest.raises(ConfigError, match="tokenize.eos_token: '</s>' is not in the vocabulary"):
        stage.plan()


@pytest.mark.parametrize(
    "override, message",
    [
        ("tokenize.formats=[arrow]", "tokenize.formats: one or both of parquet, megatron"),
        ("tokenize.token_dtype=int8", "tokenize.token_dtype: must be one of"),
        ("tokenize.max_tokens_per_piece=2", "tokenize.max_tokens_per_piece: must be at least 8"),
        ("tokenize.training.model_type=wordpiece", "tokenize.training.model_type: must be unigram or bpe"),
        ("tokenize.training.character_coverage=1.5", "tokenize.training.character_coverage"),
    ],
)
def test_bad_tokenize_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_megatron_refuses_uint32_and_uint16_refuses_a_large_vocabulary(shards):
    with pytest.raises(ConfigError, match="Megatron's index has no uint32"):
        load_config(None, ["tokenize.formats=[megatron]", "tokenize.token_dtype=uint32"])
    needs("v3.1")
    stage = TokenizeStage(shards.context(*TOKENIZERS["v3.1"], "tokenize.token_dtype=uint16"))
    with pytest.raises(TokenizerError, match="uint16 cannot hold id 98451"):
        stage.setup()


# decoding, pieces, special tokens --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v2.2", "v3.1"])
def test_every_document_decodes_back_to_its_text_from_its_pieces(shards, name):
    needs(name)
    docs = real_docs()
    spec = write_input(shards, 3, docs)
    stage = TokenizeStage(
        shards.context(*TOKENIZERS[name], "tokenize.prepend_bos=true", "tokenize.max_tokens_per_piece=512")
    )
    result = stage.process(spec)
    by_doc = rows_by_doc(result.kept)
    bos, eos = stage.bos_id, stage.eos_id
    assert bos is not None and eos is not None
    for doc, row in zip(docs, result.manifest):
        pieces = by_doc[row["doc_id"]]
        assert [p["piece"] for p in pieces] == list(range(len(pieces)))
        assert all(p["input_ids"][0] == bos and p["input_ids"][-1] == eos for p in pieces)
        assert all(p["num_tokens"] == len(p["input_ids"]) <= 512 for p in pieces)
        texts = [stage.tokenizer.decode(p["input_ids"][1:-1]) for p in pieces]
        assert "".join(texts) == doc["text"]
        # Pieces end at line ends: 行政手続法 has no line over 512 tokens.
        assert all(t.endswith("\n") for t in texts[:-1])
        assert result.kept.column("doc_id").to_pylist()[row["row"]] == row["doc_id"]
        assert row["num_tokens"] == sum(p["num_tokens"] for p in pieces)
        assert row["shard"] == "tokenize/part-00003.parquet"
    law = by_doc[result.manifest[len(WIKI)]["doc_id"]]
    assert len(law) > 10 and {p["license"] for p in law} == {LICENSES["egov"]}
    # Rows lie end to end in the shard's token stream.
    starts, ends = result.kept.column("token_start").to_pylist(), result.kept.column("token_end").to_pylist()
    assert starts[0] == 0 and starts[1:] == ends[:-1]


def test_a_line_longer_than_the_maximum_is_cut_inside_it_and_still_decodes():
    tok = load_tokenizer(str(V22))
    line = "".join(WIKI[:4]).replace("\n", "")  # one line of about 2,000 characters
    pieces = split_pieces(line, 64, tok.encode_batch)
    assert len(pieces) > 10 and all(len(ids) <= 64 for _, ids in pieces)
    assert "".join(text for text, _ in pieces) == line
    assert "".join(tok.decode(ids) for _, ids in pieces) == line


def test_without_a_maximum_or_eos_a_row_is_the_whole_document(shards):
    spec = write_input(shards, 0, real_docs())
    stage = TokenizeStage(shards.context("tokenize.max_tokens_per_piece=null", "tokenize.append_eos=false"))
    result = stage.process(spec)
    assert result.kept.num_rows == len(real_docs()) and set(result.kept.column("piece").to_pylist()) == {0}
    law = result.kept.to_pylist()[len(WIKI)]
    assert law["num_tokens"] > 10000 and stage.tokenizer.decode(law["input_ids"]) == LAW


# manifest rows -------------------------------------------------------------------------------------


def test_manifest_rows_come_through_whole_with_the_tokenizer_and_token_position_added(shards):
    """The stage reads the manifest's repeated strings as dictionaries (tokenize_manifest.py): every
    other column of every row, nulls included, must come out as it went in."""
    docs = real_docs()
    spec = write_input(shards, 2, docs)
    path = manifest_path(shards.run_dir, "quality", "part-00002")
    before = read_manifest(path).to_pylist()
    for i, row in enumerate(before):  # earlier stages' records, as after the quality stage
        row["transforms"] = [transform("clean", f"filters.rule{k}", "1.0", {"k": k}) for k in range(i % 4)]
        row["decisions"] = [
            decision("clean", "language_score_lid176_v1:ja", 0.98, True),
            decision("extract", "optout", None, True),
            decision("quality", "hiragana_fraction_v1", i / len(before), True),
        ]
        row["attribution"] = "出典：国会会議録検索システム" if row["source"] == "kokkai" else None
        row["legal_basis"] = ["JP-Copyright-Art30-4", "JP-Copyright-Art40-1"][: 1 + i % 2]
    # Rows in another order than the documents: the stage aligns them by doc_id.
    write_manifest(path, manifest_table(before[::-1]))
    stage = TokenizeStage(shards.context())
    run_shard(stage, spec)
    after = read_manifest(manifest_path(shards.run_dir, "tokenize", "part-00002")).to_pylist()
    assert [r["doc_id"] for r in after] == [r["doc_id"] for r in before]
    added = {"transforms", "shard", "row", "num_tokens"}
    for old, new in zip(before, after):
        assert {k: v for k, v in new.items() if k not in added} == {
            k: v for k, v in old.items() if k not in added
        }
        assert new["transforms"][:-1] == old["transforms"]
        assert new["transforms"][-1]["stage"] == "tokenize"
        assert new["transforms"][-1]["tool"] == "tokenizers:tokenizer.json"
        assert new["shard"] == "tokenize/part-00002.parquet" and new["num_tokens"] > 0


def test_an_input_manifest_of_another_major_version_or_lacking_a_column_is_refused_naming_it(shards):
    spec = write_input(shards, 0, real_docs()[:3])
    path = manifest_path(shards.run_dir, "quality", "part-00000")
    table = read_manifest(path)
    pq.write_table(table.replace_schema_metadata({b"manifest_version": b"2.0"}), path)
    with pytest.raises(ManifestError, match=r"part-00000.manifest.parquet: manifest schema version 2.0"):
        TokenizeStage(shards.context()).process(spec)
    pq.write_table(table.drop_columns(["license"]), path)
    with pytest.raises(ManifestError, match=r"part-00000.manifest.parquet: manifest lacks columns"):
        TokenizeStage(shards.context()).process(spec)


# statistics and shard sizes -------------------------------------------------------------------------


def test_stats_count_tokens_in_and_out_per_source_and_licence(shards):
    docs = real_docs()
    specs = [write_input(shards, 0, docs[:30]), write_input(shards, 1, docs[30:])]
    stage = TokenizeStage(shards.context("tokenize.max_tokens_per_piece=1024"))
    for spec in specs:
        run_shard(stage, spec)
    shard1 = json.loads(Path(shard_stats_path(shards.run_dir, "tokenize", "part-00001")).read_text())
    assert shard1["documents_in"] == shard1["documents_out"] == len(docs) - 30
    assert shard1["counts"]["rows"] > shard1["documents_out"]  # the law is in pieces
    total = sum_stage_stats(shards.run_dir, "tokenize").to_dict()
    counts = total["counts"]
    assert counts["documents_by_source"] == {"egov": 1, "kokkai": len(SPEECHES), "local": len(WIKI)}
    assert counts["documents_by_license"] == {
        LICENSES[s]: n for s, n in counts["documents_by_source"].items()
    }
    assert (
        sum(counts["tokens_by_source"].values())
        == sum(counts["tokens_by_license"].values())
        == counts["tokens_out"]
    )
    # Out: every row's EOS on top of what the documents encoded to (pieces may differ by a few ids).
    assert abs(counts["tokens_out"] - counts["rows"] - counts["tokens_in"]) < counts["rows"]
    assert 1 <= counts["documents_split"] < counts["rows"] - len(docs) and total["documents_out"] == len(docs)
    tables = [pq.read_table(Path(shards.run_dir) / "tokenize" / f"part-0000{i}.parquet") for i in (0, 1)]
    assert sum(t.column("num_tokens").to_numpy().sum() for t in tables) == counts["tokens_out"]


def test_small_input_shards_are_grouped_into_output_shards_of_the_target_size(shards):
    docs = real_docs()
    wiki = docs[: len(WIKI)]
    for i in range(6):  # six input shards of seven Wikipedia paragraphs, about 2,500 tokens each
        write_input(shards, i, wiki[i * 7 : (i + 1) * 7])
        stats = {"characters_out": sum(len(d["text"]) for d in wiki[i * 7 : (i + 1) * 7])}
        Path(shard_stats_path(shards.run_dir, "quality", f"part-{i:05d}")).write_text(json.dumps(stats))
    stage = TokenizeStage(shards.context("tokenize.shard_target_tokens=5000"))
    plan = stage.plan()
    groups = [[Path(p["docs"]).name for p in s.inputs["parts"]] for s in plan]
    assert sorted(n for g in groups for n in g) == [f"part-{i:05d}.parquet" for i in range(6)]
    assert 2 <= len(plan) <= 4 and [s.index for s in plan] == list(range(len(plan)))
    saved = json.loads((Path(shards.run_dir) / "tokenize" / "plan.json").read_text())
    assert list(saved["input_shards"]) == [s.name for s in plan]
    tokens = []
    for spec in plan:
        result = stage.process(spec)
        tokens.append(sum(result.kept.column("num_tokens").to_pylist()))
        assert result.documents_out == len(result.manifest) == sum(7 for _ in spec.inputs["parts"])
    assert all(t < 5000 * 1.5 for t in tokens) and sum(tokens) > 5000 * 2
    # A rerun reads plan.json: the same shards even without the tokenizer.
    again = TokenizeStage(
        shards.context("tokenize.shard_target_tokens=5000", "tokenize.tokenizer_path=gone.json")
    )
    for spec in plan:
        (Path(shards.run_dir) / "tokenize" / f"{spec.name}.manifest.parquet").write_bytes(b"done")
    assert again.plan() == plan


def test_a_byte_target_counts_bytes_of_token_ids(shards):
    for i in range(4):
        write_input(shards, i, real_docs()[i * 7 : (i + 1) * 7])
        stats = {"characters_out": sum(len(d["text"]) for d in real_docs()[i * 7 : (i + 1) * 7])}
        Path(shard_stats_path(shards.run_dir, "quality", f"part-{i:05d}")).write_text(json.dumps(stats))
    by_tokens = TokenizeStage(shards.context("tokenize.shard_target_tokens=5000")).plan()
    (Path(shards.run_dir) / "tokenize" / "plan.json").unlink()
    by_bytes = TokenizeStage(shards.context("tokenize.shard_target_bytes=20000")).plan()  # int32: 5,000 ids
    assert by_bytes == by_tokens and len(by_bytes) > 1


def test_an_input_shard_larger_than_the_target_is_cut_between_documents(shards):
    docs = real_docs()  # 42 Wikipedia paragraphs, 行政手続法 (one document above the target), speeches
    specs = []
    for i, part in enumerate([docs[:7], docs[7:]]):  # about 2,500 tokens; then many times the target
        specs.append(write_input(shards, i, part))
        stats = {"characters_out": sum(len(d["text"]) for d in part)}
        Path(shard_stats_path(shards.run_dir, "quality", f"part-{i:05d}")).write_text(json.dumps(stats))
    stage = TokenizeStage(shards.context("tokenize.shard_target_tokens=5000"))
    plan = stage.plan()
    parts = [p for spec in plan for p in spec.inputs["parts"]]
    # The small shard whole, then the large one's rows in consecutive runs, the first filling the open shard.
    assert "rows" not in parts[0] and plan[0].inputs["parts"][1]["rows"][0] == 0
    runs = [p["rows"] for p in parts[1:]]
    assert runs[-1][1] == len(docs) - 7 and all(a[1] == b[0] < b[1] for a, b in zip(runs, runs[1:]))
    assert len(plan) >= 5 and all(len(spec.inputs["parts"]) == 1 for spec in plan[1:])
    for spec in plan:
        run_shard(stage, spec)
    out = Path(shards.run_dir) / "tokenize"
    rows, manifest_ids = [], []
    for spec in plan:
        table = pq.read_table(out / f"{spec.name}.parquet")
        ids = table.column("doc_id").to_pylist()
        assert sum(table.column("num_tokens").to_pylist()) <= 5000 * 1.5 or len(set(ids)) == 1
        for m in read_manifest(str(out / f"{spec.name}.manifest.parquet")).to_pylist():
            # Each document's manifest row names this shard and its first row there, and counts its tokens.
            assert m["shard"] == f"tokenize/{spec.name}.parquet" and m["row"] == ids.index(m["doc_id"])
            assert m["num_tokens"] == sum(
                n for d, n in zip(ids, table.column("num_tokens").to_pylist()) if d == m["doc_id"]
            )
            manifest_ids.append(m["doc_id"])
        rows += table.select(["doc_id", "piece", "input_ids"]).to_pylist()
    # The rows of one output shard per input shard, in the same order: cutting moves rows, nothing else.
    plain = TokenizeStage(shards.context())
    expected = [
        r
        for spec in specs
        for r in plain.process(spec).kept.select(["doc_id", "piece", "input_ids"]).to_pylist()
    ]
    assert rows == expected and manifest_ids == [r["doc_id"] for r in expected if r["piece"] == 0]
    # plan.json names the input shards of each output shard (what the audit reads) and, apart, the rows.
    saved = json.loads((out / "plan.json").read_text())
    assert saved["input_shards"]["part-00000"] == ["part-00000", "part-00001"]
    assert saved["input_rows"]["part-00000"] == [None, runs[0]]
    # A rerun reads it back (no tokenizer needed); without it, the cut is decided again the same way.
    rerun = shards.context("tokenize.shard_target_tokens=5000", "tokenize.tokenizer_path=gone.json")
    assert TokenizeStage(rerun).plan() == plan
    (out / "plan.json").unlink()
    assert TokenizeStage(shards.context("tokenize.shard_target_tokens=5000")).plan() == plan
