"""How fast the clean stage's rule set runs per core, beside HojiChar and datatrove on the same text.

    python benchmarks/clean_speed.py [--target-mb 0] [--limit N] [--source commoncrawl | --by-source]
                                     [--skip hojichar datatrove] [--repeat 1] [--profile 10]

One process, so every figure is per core. Every contender gets the same list of real Japanese texts:
benchmarks/clean_dev/texts.jsonl (314 pages, feeds, Wikipedia, Aozora, statutes, speeches), the
2,000 Diet speeches of /work/shared/data/kokkai_speeches and the 1,145 Wikipedia paragraphs of
/work/shared/data/wikipedia_paragraphs_jsquad (the "title [SEP] " prefix removed); ``--target-mb``
repeats that list until it reaches the size. Each contender first runs on a few documents (warm-up:
fastText, dictionaries, spaCy and Sudachi load) and that time is not counted.

Contenders:
  ours           pipeline.stages.clean.clean_documents with the config's defaults on the whole
                 list, as the stage does with a shard: normalise, trims, the rules cheapest first
                 (composition, sentences, compression, duplicate lines, NG words, ads, character
                 n-grams, fastText language id), stopping at the first failed rule
                 (clean.measure_all: false), PII masking of kept documents. The normalisation
                 runs once for all the texts, and the composition, the n-grams and the language
                 id once for all the documents that reach them.
  ours-one-by-one  the same outcomes by clean_document, one call per document (each document its
                 own n-gram and language-id call).
  ours-all       as ours with clean.measure_all: true, every rule measured on every document.
  hojichar       a hojichar.Compose of the filters closest to ours (see hojichar_filters()); Compose
                 skips the remaining filters once a document is rejected.
  hojichar-all   the same filters, each one's apply() on every document (the rejection flag is reset
                 before each filter, the text carries on through the normaliser and the masker).
  datatrove-all  GopherRepetitionFilter, GopherQualityFilter and FineWebQualityFilter with
                 language="jpn_Jpan" (word segmentation by spaCy + SudachiPy), their filter() on
                 every document, one document at a time (as a datatrove pipeline feeds them, so the
                 three share one segmentation through datatrove's lru_cache). Thresholds are
                 datatrove's defaults: only the word tokenizer is Japanese.

HojiChar and datatrove are not project dependencies: a contender whose package is missing is
skipped with a message (pip install hojichar; datatrove also needs spacy and sudachipy).

Per core means per CPU second: docs/s is documents over the process CPU time of the pass
(single-threaded contenders, so the same as wall time on an idle machine, and less disturbed
by other work on a shared one). ``--repeat N`` runs N rounds, each contender once per round in
turn, and keeps each contender's median pass, so a burst of other work hits every row alike.
``--profile N`` then runs clean_documents under cProfile on the corpus and prints the top N functions
by cumulative time. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.metadata
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from clean_quality import PIPELINE_SOURCE  # noqa: E402  (benchmarks/ is this script's directory)

DEV_TEXTS = REPO / "benchmarks" / "clean_dev" / "texts.jsonl"
SHARED = REPO.parent / "shared" / "data"  # ../shared beside the repository
KOKKAI = SHARED / "kokkai_speeches" / "speeches_sample2000.jsonl"
WIKIPEDIA = SHARED / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
WARMUP_DOCS = 20


@dataclass
class Text:
    text: str
    url: str | None
    source: str  # the pipeline source (which picks our rule profile with --by-source)


@dataclass
class Result:
    name: str
    docs: int
    mb: float
    seconds: float
    cpu_seconds: float
    rejected: int
    notes: list[str] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:  # per CPU second: per core
        return self.docs / self.cpu_seconds if self.cpu_seconds else float("nan")

    @property
    def mb_per_s(self) -> float:
        return self.mb / self.cpu_seconds if self.cpu_seconds else float("nan")


def load_corpus(target_mb: float = 0.0, limit: int | None = None) -> list[Text]:
    texts: list[Text] = []
    if DEV_TEXTS.exists():
        for line in DEV_TEXTS.open(encoding="utf-8"):
            rec = json.loads(line)
            texts.append(Text(rec["text"], rec.get("url"), PIPELINE_SOURCE.get(rec["source"], "commoncrawl")))
    else:
        print(f"note: {DEV_TEXTS} not found, skipped")
    if KOKKAI.exists():
        for line in KOKKAI.open(encoding="utf-8"):
            rec = json.loads(line)
            texts.append(Text(rec["speech"], rec.get("speech_url"), "kokkai"))
    else:
        print(f"note: {KOKKAI} not found, skipped")
    if WIKIPEDIA.exists():
        for line in WIKIPEDIA.open(encoding="utf-8"):
            context = json.loads(line)["context"]
            texts.append(Text(context.split(" [SEP] ", 1)[-1], None, "local"))
    else:
        print(f"note: {WIKIPEDIA} not found, skipped")
    if not texts:
        raise SystemExit("no input texts found")
    if limit:
        texts = texts[:limit]
    if target_mb > 0:
        base, size = list(texts), corpus_mb(texts)
        while corpus_mb(texts) < target_mb:
            texts += base
            if size == 0:
                break
    return texts


def corpus_mb(texts: list[Text]) -> float:
    return sum(len(t.text.encode("utf-8")) for t in texts) / 1e6


def timed(
    runners: dict[str, Callable[[list[Text]], int]], texts: list[Text], repeat: int = 1
) -> list[Result]:
    """Warm each contender up on the first documents, then time passes over all of them:
    ``repeat`` rounds, every contender once per round, keeping each one's median pass (CPU
    seconds; wall seconds the median too)."""
    for run in runners.values():
        run(texts[:WARMUP_DOCS])
    passes: dict[str, list[tuple[float, float, int]]] = {name: [] for name in runners}
    for _ in range(max(repeat, 1)):
        for name, run in runners.items():
            cpu, wall = time.process_time(), time.perf_counter()
            rejected = run(texts)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            passes[name].append((cpu, wall, rejected))
    mb = corpus_mb(texts)
    return [
        Result(
            name,
            len(texts),
            mb,
            statistics.median(w for _, w, _ in runs),
            statistics.median(c for c, _, _ in runs),
            runs[-1][2],
        )
        for name, runs in passes.items()
    ]


# ---------------------------------------------------------------- ours


def ours_runner(
    fixed_source: str | None, measure_all: bool | None = None, one_at_a_time: bool = False
) -> Callable[[list[Text]], int]:
    import dataclasses

    from pipeline.config import load_config
    from pipeline.stages.clean import clean_document, clean_documents

    config = load_config()
    clean = (
        config.clean if measure_all is None else dataclasses.replace(config.clean, measure_all=measure_all)
    )
    resolve = config.resolve_path

    def run(texts: list[Text]) -> int:
        if one_at_a_time:
            outcomes = [
                clean_document(
                    t.text, url=t.url, source=fixed_source or t.source, config=clean, resolve=resolve
                )
                for t in texts
            ]
        else:  # as the stage does with a shard
            items = [(t.text, t.url, fixed_source or t.source) for t in texts]
            outcomes = clean_documents(items, config=clean, resolve=resolve)
        return sum(outcome.reason is not None for outcome in outcomes)

    return run


# ---------------------------------------------------------------- HojiChar


_warned: list[bool] = []


def hojichar_filters() -> list:
    """HojiChar's filters closest to our rules, thresholds ours where the measure is the same.

    Ours without a HojiChar counterpart: fastText language id, hiragana / katakana / Japanese
    fractions, sentence lengths, zlib compression ratio, duplicate lines / sentences / n-grams
    (Gopher), TLD. HojiChar's WordRepetitionRatioFilter and DiscardTooManyNouns need MeCab
    (fugashi, `hojichar[all]`) and are left out.
    """
    from hojichar import document_filters as hf

    filters = [
        hf.DocumentNormalizer(),  # NFKC and more (ours: normalize_japanese)
        hf.AcceptJapanese(),  # kana among the first 50 characters (ours: require_kana_start)
        hf.DocumentLengthFilter(min_doc_len=400),  # ours: min_letters 400
        hf.DiscardRareKuten(max_average_sentence_length=250),  # ours: max_chars_per_kuten 250
        hf.DiscardTooManyEndingEllipsis(threshold=0.2),  # ours: max_ellipsis_fraction 0.2
        hf.DiscardAds(max_allowed_num=10),  # ours: max_ad_hits 10
        hf.DiscardBBSComments(),  # ours: bbs_score (measured, rule off by default)
        hf.DiscardAdultContentJa(),  # NG words, HojiChar's bundled dictionaries
        hf.DiscardDiscriminationContentJa(),
        hf.DiscardViolenceContentJa(),
        hf.CharRepetitionRatioFilter(),  # character 5-gram repetition (BigScience)
        hf.SingleCharacterRepetitionFilter(),
    ]
    try:  # symbol ratio (ours: letters / Japanese fraction); needs `emoji` (hojichar[all])
        filters.append(hf.DiscardTooManySpecialToken())
    except NameError:
        if not _warned:
            print("note: HojiChar's DiscardTooManySpecialToken needs the emoji package: left out")
            _warned.append(True)
    filters.append(hf.MaskPersonalInformation())  # ours: mask_pii (of kept documents)
    return filters


def hojichar_compose_runner() -> Callable[[list[Text]], int]:
    from hojichar import Compose, Document

    compose = Compose(hojichar_filters())

    def run(texts: list[Text]) -> int:
        rejected = 0
        for t in texts:
            rejected += compose.apply(Document(t.text)).is_rejected
        return rejected

    return run


def hojichar_all_runner(rejections: Counter) -> Callable[[list[Text]], int]:
    from hojichar import Document

    filters = hojichar_filters()

    def run(texts: list[Text]) -> int:
        rejected = 0
        rejections.clear()
        for t in texts:
            doc, any_rejected = Document(t.text), False
            for f in filters:
                doc.is_rejected = False
                doc = f.apply(doc)
                if doc.is_rejected:
                    rejections[type(f).__name__] += 1
                    any_rejected = True
            rejected += any_rejected
        return rejected

    return run


# ---------------------------------------------------------------- datatrove


def datatrove_runner(rejections: Counter, first_rejections: Counter, per_filter: Counter):
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.utils.typeshelper import Languages

    language = Languages.japanese__jpan  # "jpn_Jpan"
    filters = [
        GopherRepetitionFilter(language=language),
        GopherQualityFilter(language=language),
        FineWebQualityFilter(language=language),
    ]
    clock = time.perf_counter

    def run(texts: list[Text]) -> int:
        rejected = 0
        for counter in (rejections, first_rejections, per_filter):
            counter.clear()
        for i, t in enumerate(texts):
            first = None
            for f in filters:
                doc = Document(text=t.text, id=str(i))
                started = clock()
                verdict = f.filter(doc)
                per_filter[f.name] += clock() - started
                kept = verdict if isinstance(verdict, bool) else verdict[0]
                if not kept:
                    reason = verdict[1] if isinstance(verdict, tuple) else f.name
                    rejections[reason] += 1
                    first = first or reason
            if first:
                rejected += 1
                first_rejections[first] += 1
        return rejected

    return run


# ---------------------------------------------------------------- report


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def missing(*modules: str) -> list[str]:
    out = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            out.append(module)
    return out


def print_table(results: list[Result]) -> None:
    ours = next((r for r in results if r.name == "ours"), None)
    header = "| contender | docs | MB | seconds | CPU s | docs/s | MB/s | ours÷theirs (docs/s) | rejected |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in results:
        ratio = f"{ours.docs_per_s / r.docs_per_s:.2f}" if ours and r is not ours else "1.00"
        print(
            f"| {r.name} | {r.docs:,} | {r.mb:.2f} | {r.seconds:.2f} | {r.cpu_seconds:.2f} "
            f"| {r.docs_per_s:,.0f} | {r.mb_per_s:.3f} | {ratio} | {r.rejected:,} |"
        )


def profile_ours(texts: list[Text], fixed_source: str | None, top: int) -> None:
    run = ours_runner(fixed_source)
    run(texts[:WARMUP_DOCS])
    profiler = cProfile.Profile()
    profiler.enable()
    run(texts)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        if func.startswith("<") or filename == __file__ or "cProfile" in filename:
            continue
        where = os.path.relpath(filename, REPO) if filename.startswith(str(REPO)) else Path(filename).name
        rows.append((cumtime, tottime, ncalls, f"{where}:{line}({func})"))
    rows.sort(reverse=True)
    total = max((r[0] for r in rows), default=0.0)
    print(f"\ncProfile of clean_documents over {len(texts):,} documents, top {top} by cumulative time")
    print("| cumulative s | % | own s | calls | function |")
    print("|---|---|---|---|---|")
    for cumtime, tottime, ncalls, name in rows[:top]:
        share = 100 * cumtime / total if total else 0.0
        print(f"| {cumtime:.2f} | {share:.0f} | {tottime:.2f} | {ncalls:,} | {name} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-mb", type=float, default=0.0, help="repeat the corpus to this size")
    parser.add_argument("--limit", type=int, help="only the first N texts (before --target-mb)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--source", default="commoncrawl", help="our row source for every text (profile)")
    group.add_argument("--by-source", action="store_true", help="each text's own pipeline source")
    parser.add_argument("--skip", nargs="*", default=[], choices=["ours", "hojichar", "datatrove"])
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="N timed rounds, report each contender's median"
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile ours, print top N")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    fixed_source = None if args.by_source else args.source
    texts = load_corpus(args.target_mb, args.limit)
    print(
        f"corpus: {len(texts):,} texts, {corpus_mb(texts):.2f} MB UTF-8, "
        f"{sum(len(t.text) for t in texts):,} characters; warm-up {WARMUP_DOCS} docs per contender"
    )
    print(
        f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {datetime.date.today().isoformat()}; "
        f"hojichar {version('hojichar')}, datatrove {version('datatrove')}, spacy {version('spacy')}, "
        f"sudachipy {version('SudachiPy')}"
    )
    print(f"our rule profile: {'each text’s own source' if args.by_source else f'source={fixed_source}'}\n")

    runners: dict[str, Callable[[list[Text]], int]] = {}
    notes: list[Callable[[], str]] = []  # read after the timing, from the last pass's counters
    if "ours" not in args.skip:
        runners["ours"] = ours_runner(fixed_source)
        runners["ours-one-by-one"] = ours_runner(fixed_source, one_at_a_time=True)
        runners["ours-all"] = ours_runner(fixed_source, measure_all=True)

    if "hojichar" not in args.skip:
        if missing("hojichar"):
            print("hojichar is not installed: skipped (pip install hojichar)")
        else:
            runners["hojichar (Compose)"] = hojichar_compose_runner()
            by_filter: Counter = Counter()
            runners["hojichar-all"] = hojichar_all_runner(by_filter)
            notes.append(
                lambda: (
                    "hojichar-all rejections per filter: "
                    + ", ".join(f"{k} {v}" for k, v in by_filter.most_common())
                )
            )

    if "datatrove" not in args.skip:
        gone = missing("datatrove", "spacy", "sudachipy")
        if gone:
            print(
                f"{', '.join(gone)} not installed: datatrove skipped (pip install datatrove spacy sudachipy)"
            )
        else:
            reasons, first, per_filter = Counter(), Counter(), Counter()
            runners["datatrove-all (jpn_Jpan)"] = datatrove_runner(reasons, first, per_filter)
            notes.append(
                lambda: (
                    "datatrove time per filter: "
                    + ", ".join(
                        f"{k} {v:.1f} s ({100 * v / (sum(per_filter.values()) or 1.0):.0f}%)"
                        for k, v in per_filter.items()
                    )
                )
            )
            notes.append(
                lambda: (
                    "datatrove rejections per rule: "
                    + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
                )
            )
            notes.append(
                lambda: (
                    "datatrove first failing rule (a pipeline's drop reason): "
                    + ", ".join(f"{k} {v}" for k, v in first.most_common())
                )
            )

    results = timed(runners, texts, args.repeat)
    print_table(results)
    print("\n(same input for every row, so the docs/s ratio is also the MB/s ratio; docs/s and MB/s are per")
    print(" CPU second, i.e. per core; 'seconds' is wall time; 'rejected' = documents that failed at least")
    print(f" one rule; median of {max(args.repeat, 1)} pass(es) per contender, taken in turns)")
    by_name = {r.name: r for r in results}
    for mine, theirs, how in (
        ("ours", "hojichar (Compose)", "both stop at a document's first failed rule"),
        ("ours-all", "hojichar-all", "both run every rule on every document"),
    ):
        if mine in by_name and theirs in by_name:
            ratio = by_name[mine].docs_per_s / by_name[theirs].docs_per_s
            print(f"{mine} ÷ {theirs} ({how}): {ratio:.2f}x per core")
    for note in notes:
        print(note())
    if args.profile:
        profile_ours(texts, fixed_source, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
