"""Split a document longer than the token maximum into pieces on line boundaries.

Pieces are consecutive runs of whole lines, each encoded on its own, so the decoded pieces joined
give back the document (up to the tokenizer's normalisation) and no piece starts mid-line. A single
line longer than the maximum (a table flattened to one line, a minified script) is the one case
cut inside a line, at character positions, since no line boundary exists to cut at.
"""

from __future__ import annotations

from typing import Callable

Encode = Callable[[list[str]], list[list[int]]]


def lines_of(text: str) -> list[str]:
    """Lines with their "\\n" kept, so that joining them gives back the text.

    Only "\\n" counts: str.splitlines would also cut at U+2028, form feeds and the like.

    >>> lines_of("吾輩は猫である。\\n名前はまだ無い。\\n")
    ['吾輩は猫である。\\n', '名前はまだ無い。\\n']
    """
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return lines + [parts[-1]] if parts[-1] else lines


def split_pieces(text: str, max_tokens: int, encode: Encode) -> list[tuple[str, list[int]]]:
    """(text, ids) of each piece, in order, none with more than `max_tokens` ids."""
    units: list[tuple[str, int]] = []
    lines = lines_of(text)
    for line, ids in zip(lines, encode(lines)):
        units += _fit_line(line, len(ids), max_tokens, encode)
    pieces = _pack(units, max_tokens)
    out: list[tuple[str, list[int]]] = []
    while pieces:
        group = pieces.pop(0)
        piece_text = "".join(u for u, _ in group)
        ids = encode([piece_text])[0]
        if len(ids) > max_tokens and len(group) > 1:
            # Lines encoded together took more ids than apart (rare): halve the group and retry.
            half = len(group) // 2
            pieces[:0] = [group[:half], group[half:]]
            continue
        out.append((piece_text, ids))
    return out


def _fit_line(line: str, count: int, max_tokens: int, encode: Encode) -> list[tuple[str, int]]:
    """The line as one unit, or cut at characters into units of at most max_tokens ids each."""
    if count <= max_tokens:
        return [(line, count)]
    parts = -(-count // max_tokens) + 1  # a margin: ids are not spread evenly over characters
    size = max(1, -(-len(line) // parts))
    chunks = [line[i : i + size] for i in range(0, len(line), size)]
    units: list[tuple[str, int]] = []
    for chunk, ids in zip(chunks, encode(chunks)):
        if len(ids) > max_tokens and len(chunk) == 1:
            raise ValueError(f"one character encodes to {len(ids)} ids, more than the maximum {max_tokens}")
        units += _fit_line(chunk, len(ids), max_tokens, encode)
    return units


def _pack(units: list[tuple[str, int]], max_tokens: int) -> list[list[tuple[str, int]]]:
    """Consecutive units grouped greedily while their summed counts stay within max_tokens."""
    groups: list[list[tuple[str, int]]] = []
    total = max_tokens + 1
    for unit in units:
        if total + unit[1] > max_tokens:
            groups.append([])
            total = 0
        groups[-1].append(unit)
        total += unit[1]
    return groups
