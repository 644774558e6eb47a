"""Many rows kept as their JSON texts, compressed: thousands of rows are a few buffers, not
thousands of dicts, and the JSON API can send them without building a dict per row."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

BLOCK = 64


def to_json(value: object) -> str:
    """Compact JSON, ASCII only (\\u escapes): one stray "°" would double the size of a whole buffer."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class JsonRows:
    """Rows in order, as JSON texts compressed in blocks of BLOCK rows (thousands of needs take
    a few hundred kilobytes); `append` them all, then `seal`. Reading in order unpacks each block
    once."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.count = 0
        self._open: list[str] = []
        self._last: tuple[int, list[str]] | None = None  # the block read last, unpacked

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last": None}

    def append(self, row: dict[str, Any]) -> None:
        self.append_text(to_json(row))

    def append_text(self, text: str) -> None:
        """A row already written as JSON text (on one line)."""
        self._open.append(text)
        self.count += 1
        if len(self._open) == BLOCK:
            self._close_block()

    def _close_block(self) -> None:
        # JSON texts hold no raw newline: it separates them.
        self.blocks.append(zlib.compress("\n".join(self._open).encode()))
        self._open = []

    def seal(self) -> JsonRows:
        if self._open:
            self._close_block()
        return self

    def __len__(self) -> int:
        return self.count

    def _block(self, b: int) -> list[str]:
        last = self._last
        if last is not None and last[0] == b:
            return last[1]
        texts = zlib.decompress(self.blocks[b]).decode().split("\n")
        self._last = (b, texts)
        return texts

    def text_of(self, i: int) -> str:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return self._block(i // BLOCK)[i % BLOCK]

    def row(self, i: int) -> dict[str, Any]:
        row: dict[str, Any] = json.loads(self.text_of(i))
        return row

    def rows(self, positions: Iterable[int]) -> Iterator[dict[str, Any]]:
        return (self.row(i) for i in positions)


class Picked:
    """Some rows of a `JsonRows`, read one by one as they are iterated (a page lists them)."""

    def __init__(self, rows: JsonRows, positions: list[int]) -> None:
        self.source = rows
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.source.rows(self.positions)
