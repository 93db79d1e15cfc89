"""What changed in a collection since it was last saved, so that a save writes only that.

Rows are appended and never rewritten: a save finds the new ones past the row count it
saved last. What does change in place is noted here, under the collection's lock: labels
that died (deleted or replaced) and labels whose mirrored scalar values were rewritten (an
UPDATE of other columns than the vector). Under the lock a save takes only these lists and
their lengths (appends leave that prefix as it is; see checkpoint.py), and removes the
prefix once the manifest that includes it is on disk.

``epoch`` changes whenever the labels are renumbered or replaced wholesale (a build's
compaction, ``clear``, another set of mirrored columns): the next save then writes the
whole collection again.
"""

from __future__ import annotations

from collections.abc import Iterable


class Journal:
    def __init__(self) -> None:
        self.epoch = 0
        self.died: list[int] = []
        self.touched: list[int] = []

    def restart(self) -> None:
        """Everything changed: the next save writes every row (new lists: a save in
        progress keeps reading the ones it has)."""
        self.epoch += 1
        self.died = []
        self.touched = []

    def note_touched(self, labels: Iterable[int], rows: int) -> None:
        self.touched.extend(labels)
        if len(self.touched) > max(rows, 1 << 16):
            self.restart()  # rewritten over and over without a save: save it all

    def consume(self, epoch: int, died: int, touched: int) -> None:
        """A save that saw the first ``died`` and ``touched`` entries is durable."""
        if epoch == self.epoch:
            del self.died[:died]
            del self.touched[:touched]
