"""The progress of a long command (the purge, the KEK re-wrap) as it runs."""

from __future__ import annotations

from typing import Any


class ProgressPrinter:
    """A bar redrawn in place on a terminal; a plain line per tenth of the work otherwise
    (logs, pipes). A command calls :meth:`show` at each step and :meth:`done` at the end."""

    def __init__(self, stream: Any, width: int) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = width
        """Characters of the bar."""
        self.last_tenth = -1

    def show(self, share: float, beside_bar: str, line: str) -> None:
        """``share`` of the work done (0..1): the bar with ``beside_bar`` on a terminal, else
        ``line`` when a new tenth is reached."""
        if self.tty:
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {share:6.1%}  {beside_bar}")
            self.stream.flush()
            return
        tenth = int(share * 10)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(line, file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
