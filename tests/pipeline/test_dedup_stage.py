"""The dedup stage on real Japanese paragraphs: exact and near copies across shards, the survivor
policies, the Jaccard check, the distributed components against union-find, resume after a killed
phase, dedup against an earlier run's index, and two Ray workers against one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from filters.lsh_clusters import Member, choose_survivors
from filters.lsh_clusters import connected_components as union_find
from manifests.schema import doc_id
from pipeline.shards import run_shard, sum_stage_stats
from pipeline.stages.dedup import DedupStage, rank_members
from pipeline.stages.dedup_components import both_directions, connected_components
from pipeline.stages.dedup_files import parquet_files, write_sorted

SHARED = Path(os.environ.get("JCORPUS_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
PARAGRAPHS = SHARED / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"


@pytest.fixture
def new_maker(shards):
    """Makes a ShardMaker (tests/pipeline/conftest.py) for another run directory."""
    return type(shards)


def serial(fn, items):
    return [fn(item) for item in items]


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    if not PARAGRAPHS.is_file():
        pytest.skip(f"shared data not found at {PARAGRAPHS}")
    texts: list[str] = []
    with PARAGRAPHS.open(encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["context"].split(" [SEP] ", 1)[1]
            if len(text) >= 150 and text not in texts:
                texts.append(text)
            if len(texts) == 40:
                return texts
    raise AssertionError("fewer than 40 long paragraphs")


def edit(text: str, fraction: float) -> str:
    """Replace every k-th character (a fraction of them) with one that is not in the text."""
    step = max(1, round(1 / fraction))
    return "".join("〓" if i % step == step // 2 else c for i, c in enumerate(text))


def run_dedup(maker, shards: list, *overrides: str, pmap=serial) -> dict[str, dict]:
    """Run prepare and every shard; per upstream id: kept, reason, detail, cluster id and size."""
    stage = DedupStage(maker.context(*overrides))
    stage.prepare(shards, pmap)
    out = {}
    for shard in shards:
        result = stage.process(shard)
        rejected = {r["doc_id"]: r for r in result.rejected}
        for row in result.manifest:
            upstream = json.loads(row["locator"])["id"]
            r = rejected.get(row["doc_id"])
            out[upstream] = {
                "kept": r is None,
                "reason": r and r["reason"],
                "detail": r and r["detail"],
                "cluster": row["dedup_cluster_id"],
                "size": row["dedup_cluster_size"],
            }
    return out


def docs(prefix: str, texts: list[str], **extra) -> list[dict]:
    return [{"upstream_id": f"{prefix}{i}", "text": t, **extra} for i, t in enumerate(texts)]


def test_exact_and_near_copies_across_shards(shards, paragraphs):
    p = paragraphs
    first = shards.write("clean", 0, docs("a", p[:20]))
    second = shards.write(
        "clean",
        1,
        docs("b", p[20:30])
        + [
            {"upstream_id": "exact-of-a0", "text": p[0]},
            {"upstream_id": "near-of-a2", "text": edit(p[2], 0.01)},
            {"upstream_id": "far-of-a3", "text": edit(p[3], 0.3)},
            {"upstream_id": "short", "text": "梅雨"},
            {"upstream_id": "short-again", "text": "梅雨"},
            {"upstream_id": "empty", "text": ""},
        ],
    )
    out = run_dedup(shards, [first, second], "dedup.num_partitions=3")
    ids = {u: doc_id("local", u) for u in out}

    for copy, original, kind in [
        ("exact-of-a0", "a0", "exact copy of the normalised text"),
        ("near-of-a2", "a2", "near duplicate (MinHash LSH) in a cluster of 2"),
        ("short-again", "short", "exact copy of the normalised text"),
    ]:
        pair = [out[copy], out[original]]
        assert sorted(d["kept"] for d in pair) == [False, True], copy
        removed, kept = (copy, original) if not out[copy]["kept"] else (original, copy)
        assert out[removed]["reason"] == f"duplicate_of:{ids[kept]}"
        assert out[removed]["detail"] == kind
        assert out[copy]["cluster"] == out[original]["cluster"] == min(ids[copy], ids[original])
        assert out[copy]["size"] == out[original]["size"] == 2
    # 30% of characters changed: Jaccard of 5-grams far below the LSH threshold
    assert out["far-of-a3"]["kept"] and out["a3"]["kept"] and out["far-of-a3"]["size"] == 1
    assert out["empty"]["kept"] and out["empty"]["cluster"] == ids["empty"]
    removed = [u for u, d in out.items() if not d["kept"]]
    assert len(removed) == 3
    singles = [u for u, d in out.items() if d["size"] == 1]
    assert all(out[u]["cluster"] == ids[u] for u in singles)


def test_a_dakuten_makes_another_text_but_a_near_duplicate(shards, paragraphs, new_maker):
    text = next(p for p in paragraphs if "が" in p)
    shard = shards.write("clean", 0, docs("d", [text, text.replace("が", "か", 1)]))
    # the normaliser keeps dakuten (datatrove's dedup normaliser strips them): not an exact copy
    exact_only = run_dedup(shards, [shard], "dedup.near=false")
    assert exact_only["d0"]["kept"] and exact_only["d1"]["kept"]
    other = new_maker(Path(shards.run_dir) / "near")
    shard = other.write("clean", 0, docs("d", [text, text.replace("が", "か", 1)]))
    near = run_dedup(other, [shard])
    assert sorted(d["kept"] for d in near.values()) == [False, True]


@pytest.mark.parametrize("check", [[], ["dedup.jaccard_threshold=0.8"]])
def test_a_corpus_without_duplicates_keeps_everything(shards, paragraphs, check):
    out = run_dedup(
        shards, [shards.write("clean", i, docs(f"p{i}-", paragraphs[i::3])) for i in range(3)], *check
    )
    assert len(out) == len(paragraphs) and all(d["kept"] and d["size"] == 1 for d in out.values())


def test_ids_to_remove_lists_every_removed_document(shards, paragraphs):
    first = shards.write("clean", 0, docs("a", paragraphs[:5]))
    second = shards.write("clean", 1, docs("b", [paragraphs[0], edit(paragraphs[1], 0.01)]))
    out = run_dedup(shards, [first, second])
    table = pl.read_parquet(parquet_files(f"{shards.run_dir}/dedup/ids_to_remove"))
    removed = {doc_id("local", u): d for u, d in out.items() if not d["kept"]}
    assert set(table["doc_id"]) == set(removed)
    for row in table.iter_rows(named=True):
        assert removed[row["doc_id"]]["reason"] == f"duplicate_of:{row['duplicate_of']}"
        assert row["kind"] in ("exact", "near") and row["cluster_size"] == 2


@pytest.mark.parametrize(
    "policy, winner",
    [
        ("[newest]", "new"),
        ("[source_priority]", "law"),
        ("[source_priority, newest]", "law"),
        ("[quality]", "best"),
    ],
)
def test_survivor_policies(shards, paragraphs, policy, winner):
    text = paragraphs[5]
    copies = [
        {"upstream_id": "old", "text": text, "retrieved_at": "2023-01-01T00:00:00+00:00", "score": 0.5},
        {"upstream_id": "new", "text": text, "retrieved_at": "2025-06-01T00:00:00+00:00", "score": 0.1},
        {
            "upstream_id": "best",
            "text": edit(text, 0.01),
            "score": 0.9,
            "retrieved_at": "2024-01-01T00:00:00+00:00",
        },
        {"upstream_id": "law", "text": text, "source": "egov", "score": float("nan")},
    ]
    shard = shards.write("clean", 0, copies + docs("x", paragraphs[6:10], score=0.0))
    out = run_dedup(shards, [shard], f"dedup.policy={policy}", "dedup.quality_column=score")
    kept = [u for u in ("old", "new", "best", "law") if out[u]["kept"]]
    assert kept == [winner]
    assert {out[u]["size"] for u in ("old", "new", "best", "law")} == {4}


def test_ties_are_broken_by_the_smallest_doc_id(shards, paragraphs):
    shard = shards.write("clean", 0, docs("same", [paragraphs[7]] * 5))
    out = run_dedup(shards, [shard])
    ids = {u: doc_id("local", u) for u in out}
    assert [u for u in out if out[u]["kept"]] == [min(ids, key=ids.get)]


def test_policy_ranking_matches_choose_survivors():
    rng = np.random.default_rng(7)
    n = 400
    labels = rng.integers(0, 60, n)
    dates = [None if rng.random() < 0.1 else f"2024-0{rng.integers(1, 10)}-01" for _ in range(n)]
    quality = [None if rng.random() < 0.1 else float(rng.integers(0, 5)) for _ in range(n)]
    sources = rng.choice(["commoncrawl", "egov", "kokkai", "other"], n).tolist()
    ids = [f"d{rng.integers(0, 10**6):07d}-{i}" for i in range(n)]
    frame = pl.DataFrame(
        {
            "label": labels,
            "doc_id": ids,
            "source": sources,
            "retrieved_at": dates,
            "quality": quality,
            "prior": [2] * n,
        },
        schema_overrides={"quality": pl.Float64, "prior": pl.Int8},
    )
    priority = ["egov", "kokkai", "commoncrawl"]
    for policy in ("newest", "quality", "source_priority"):
        ranked = rank_members(frame, [policy], priority)
        keepers = set(ranked.group_by("label", maintain_order=True).first()["doc_id"])
        members = [
            Member(i, ids[i], dates[i], quality[i], priority.index(s) if s in priority else len(priority))
            for i, s in enumerate(sources)
        ]
        mask = choose_survivors(labels, members, policy)
        assert keepers == {ids[i] for i in np.flatnonzero(mask)}, policy


def test_jaccard_check_drops_candidates_below_the_threshold(shards, paragraphs, new_maker):
    # One row per band: two texts become candidates with probability 1 - (1 - J)**20, so a pair
    # with Jaccard about 0.3 is almost surely a candidate; the check must then drop it.
    text = paragraphs[8]
    shard = shards.write("clean", 0, docs("j", [text, edit(text, 0.12)]))
    loose = run_dedup(shards, [shard], "dedup.rows=1", "dedup.exact=false")
    assert loose["j0"]["size"] == 2
    checked = new_maker(Path(shards.run_dir) / "checked")
    shard = checked.write("clean", 0, docs("j", [text, edit(text, 0.12)]))
    strict = run_dedup(checked, [shard], "dedup.rows=1", "dedup.exact=false", "dedup.jaccard_threshold=0.7")
    assert strict["j0"]["size"] == strict["j1"]["size"] == 1


@pytest.mark.parametrize("partitions", [1, 4])
def test_distributed_components_equal_union_find(tmp_path, partitions):
    rng = np.random.default_rng(partitions)
    for trial in range(8):
        n = int(rng.integers(2, 300))
        if trial % 2:  # a long chain: the worst case for label propagation
            order = rng.permutation(n)
            edges = np.stack([order[:-1], order[1:]], axis=1)
        else:
            edges = rng.integers(0, n, size=(int(rng.integers(1, 2 * n)), 2))
            edges = edges[edges[:, 0] != edges[:, 1]]
        work = tmp_path / f"{partitions}-{trial}"
        frame = pl.DataFrame({"u": edges[:, 0].astype(np.int64), "v": edges[:, 1].astype(np.int64)})
        write_sorted(f"{work}/r000-in/part-00000.parquet", both_directions(frame, partitions), "part")
        labels = pl.read_parquet(parquet_files(connected_components(str(work), partitions, 24, serial)))
        got = dict(zip(labels["gid"].to_list(), labels["label"].to_list()))
        expected = union_find(n, edges)
        assert got == {int(x): int(expected[x]) for x in np.unique(edges)}


class Killed(Exception):
    pass


def test_resume_after_a_killed_phase_repeats_only_what_was_unfinished(shards, paragraphs, new_maker):
    first = shards.write("clean", 0, docs("a", paragraphs[:12]))
    second = shards.write(
        "clean", 1, docs("b", [paragraphs[0], edit(paragraphs[4], 0.01)] + paragraphs[12:16])
    )
    calls = []

    def dies_in_the_components(fn, items):
        results = []
        for item in items:
            if fn.__name__ == "_small_star" and len(calls) >= 1:
                raise Killed
            if fn.__name__ == "_small_star":
                calls.append(item)
            results.append(fn(item))
        return results

    stage = DedupStage(shards.context("dedup.num_partitions=3"))
    with pytest.raises(Killed):
        stage.prepare([first, second], dies_in_the_components)
    index = sorted(Path(shards.run_dir, "dedup", "index").rglob("*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in index}
    assert len(stamps) == 4

    resumed = run_dedup(shards, [first, second], "dedup.num_partitions=3")
    assert {p: p.stat().st_mtime_ns for p in index} == stamps  # phase 1 was not redone
    fresh = new_maker(Path(shards.run_dir) / "fresh")
    shards_again = [
        fresh.write("clean", 0, docs("a", paragraphs[:12])),
        fresh.write("clean", 1, docs("b", [paragraphs[0], edit(paragraphs[4], 0.01)] + paragraphs[12:16])),
    ]
    assert resumed == run_dedup(fresh, shards_again, "dedup.num_partitions=3")
    assert sum(not d["kept"] for d in resumed.values()) == 2


def finish(maker, shards: list, *overrides: str) -> None:
    stage = DedupStage(maker.context(*overrides))
    stage.prepare(shards, serial)
    for shard in shards:
        run_shard(stage, shard)
    sum_stage_stats(maker.run_dir, "dedup")


def test_a_new_crawl_is_deduplicated_against_an_earlier_runs_index(tmp_path, paragraphs, new_maker):
    earlier = new_maker(tmp_path / "earlier")
    old = docs("old", paragraphs[:10], retrieved_at="2023-01-01T00:00:00+00:00")
    # an older copy of old0, removed by the earlier run
    old.append({"upstream_id": "old10", "text": paragraphs[0], "retrieved_at": "2022-01-01T00:00:00+00:00"})
    finish(earlier, [earlier.write("clean", 0, old)])
    old_ids = {f"old{i}": doc_id("local", f"old{i}") for i in range(11)}
    index = sorted((tmp_path / "earlier" / "dedup" / "index").rglob("*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in index}

    later = new_maker(tmp_path / "later")
    new = later.write(
        "clean",
        0,
        [
            # newer than the earlier copies, yet they were released already: the new one goes
            {"upstream_id": "again-0", "text": paragraphs[0], "retrieved_at": "2025-01-01T00:00:00+00:00"},
            {"upstream_id": "near-3", "text": edit(paragraphs[3], 0.01)},
            {"upstream_id": "fresh", "text": paragraphs[20]},
        ],
    )
    out = run_dedup(later, [new], f"dedup.previous_runs=[{tmp_path / 'earlier'}]")
    # old0 survived the earlier run and old10 (its copy) did not: the new copy points at old0
    assert out["again-0"]["reason"] == f"duplicate_of:{old_ids['old0']}"
    assert out["again-0"]["size"] == 3
    assert out["near-3"]["reason"] == f"duplicate_of:{old_ids['old3']}"
    assert out["fresh"]["kept"] and out["fresh"]["size"] == 1
    assert {p: p.stat().st_mtime_ns for p in index} == stamps  # read, not recomputed


def test_previous_run_with_other_minhash_parameters_is_refused(tmp_path, paragraphs, new_maker):
    earlier = new_maker(tmp_path / "earlier")
    finish(earlier, [earlier.write("clean", 0, docs("old", paragraphs[:3]))], "dedup.bands=10")
    later = new_maker(tmp_path / "later")
    shard = later.write("clean", 0, docs("new", paragraphs[3:5]))
    with pytest.raises(ValueError, match="minhash2_char5_b10r10_h32_s1.*minhash2_char5_b20r10_h32_s1"):
        run_dedup(later, [shard], f"dedup.previous_runs=[{tmp_path / 'earlier'}]")


def test_two_ray_workers_find_the_same_clusters_as_one_process(tmp_path, paragraphs, new_maker):
    from pipeline.runtime import RayRuntime

    def corpus(maker) -> list:
        return [
            maker.write(
                "clean", i, docs(f"s{i}-", paragraphs[i * 8 : i * 8 + 8] + [edit(paragraphs[i], 0.01)])
            )
            for i in range(4)
        ]

    one = new_maker(tmp_path / "one")
    expected = run_dedup(one, corpus(one), "dedup.num_partitions=4")
    two = new_maker(tmp_path / "two")
    with RayRuntime(num_cpus=2) as runtime:
        got = run_dedup(two, corpus(two), "dedup.num_partitions=4", pmap=runtime.pmap)
    assert got == expected
    assert sum(not d["kept"] for d in got.values()) == 4
    for name in ("clusters", "ids_to_remove"):
        a = pl.read_parquet(parquet_files(f"{one.run_dir}/dedup/{name}"))
        b = pl.read_parquet(parquet_files(f"{two.run_dir}/dedup/{name}"))
        assert a.equals(b), name
