"""The one exception every source raises for bad input or a failed fetch.

Callers (the fetch stage, the audit) catch a single type and can print its message as is:
the message always starts with the input (path or URL) and then says what is wrong and where.

>>> raise SourceError("sample/x.warc.gz", "truncated gzip member at byte 18374")
Traceback (most recent call last):
...
sources.errors.SourceError: sample/x.warc.gz: truncated gzip member at byte 18374
"""

from __future__ import annotations


class SourceError(Exception):
    """Bad input or a failed fetch; ``str(err)`` is ``"<uri>: <problem>"``.

    ``uri`` and ``problem`` stay available as attributes so that a caller can put them in
    separate columns (e.g. a rejected-shard reason) without parsing the message.
    """

    def __init__(self, uri: str, problem: str) -> None:
        super().__init__(f"{uri}: {problem}")
        self.uri = uri
        self.problem = problem

    def __reduce__(self):
        # Exception pickles as cls(*self.args), which would pass one argument; Ray and
        # multiprocessing pickle exceptions raised in workers, so keep both parts.
        return (type(self), (self.uri, self.problem))
