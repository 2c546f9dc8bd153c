"""Progress: a live line on a terminal, plain lines otherwise, one summary line per stage."""

import io

from pipeline.progress import StageProgress
from pipeline.stats import ShardStats


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = StageProgress("clean", total=4, skipped=1, stream=out)
    progress.shard_done(120)
    progress.shard_done(80)
    stats = ShardStats(
        documents_in=200,
        documents_out=150,
        documents_rejected=50,
        rejected_by_reason={"too_short": 20, "language_score_below_min": 30},
    )
    progress.finish(stats.summary())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[clean] shards 2/4  120 docs") and "docs/s" in lines[0] and "ETA" in lines[0]
    assert lines[1].startswith("[clean] shards 3/4  200 docs")
    assert lines[2] == (
        "[clean] 200 documents in, 150 kept, 50 rejected "
        "(language_score_below_min 30, too_short 20), 1 shards skipped (already done)"
    )
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_one_rewritten_line():
    out = FakeTerminal()
    progress = StageProgress("dedup", total=2, skipped=0, stream=out)
    progress.shard_done(10)
    progress.shard_done(10)
    progress.finish("20 documents in, 20 kept, 0 rejected (none)")
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith(
        "\n[dedup] 20 documents in, 20 kept, 0 rejected (none)\n"
    )
    assert "ETA -" in text  # nothing left to estimate once every shard is done


def test_stats_add_up():
    a = ShardStats(shards=1, documents_in=3, rejected_by_reason={"too_short": 1}, seconds=0.5)
    b = ShardStats(shards=1, documents_in=4, rejected_by_reason={"too_short": 2, "not_html": 1}, seconds=0.25)
    total = a + b
    assert (total.shards, total.documents_in, total.seconds) == (2, 7, 0.75)
    assert total.rejected_by_reason == {"not_html": 1, "too_short": 3}
    assert ShardStats.from_dict(total.to_dict()) == total
