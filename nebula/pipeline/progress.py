"""Progress display: rich on a terminal, an HTML bar in Jupyter, quiet lines otherwise."""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod


def _in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:  # noqa: BLE001
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_progress(label: str, total_bytes: int | None, mode: str = "auto", stream=None):
    """A progress reporter with ``update(rows=, rejected=, bytes=)`` and ``close()``.

    ``mode``: ``auto`` (rich on a TTY, HTML in Jupyter, plain lines otherwise), ``rich``,
    ``notebook``, ``plain`` or ``none``.
    """
    stream = stream or sys.stderr
    if mode == "auto":
        if _in_notebook():
            mode = "notebook"
        elif getattr(stream, "isatty", lambda: False)():
            mode = "rich"
        else:
            mode = "plain"
    if mode == "none":
        return None
    if mode == "rich":
        return _RichProgress(label, total_bytes, stream)
    if mode == "notebook":
        return _NotebookProgress(label, total_bytes)
    return _PlainProgress(label, total_bytes, stream)


class _Base(ABC):
    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total = label, total
        self.t0 = time.perf_counter()
        self.rows = self.rejected = self.bytes = 0

    def update(self, *, rows: int, rejected: int = 0, bytes: int = 0) -> None:  # noqa: A002
        self.rows, self.rejected, self.bytes = rows, rejected, bytes
        self._show(final=False)

    def close(self) -> None:
        self._show(final=True)

    def _line(self) -> str:
        el = max(time.perf_counter() - self.t0, 1e-9)
        mb = self.bytes / el / 1e6
        s = f"{self.label}: {self.rows:,} rows, {mb:,.1f} MB/s"
        if self.rejected:
            s += f", {self.rejected:,} rejected"
        if self.total and self.bytes:
            frac = min(self.bytes / self.total, 1.0)
            eta = el * (1 - frac) / frac if frac > 0 else 0
            s += f", {frac:.0%}, ETA {eta:,.0f}s"
        return s

    @abstractmethod
    def _show(self, final: bool) -> None:
        """Render the current state (``final`` on close)."""


class _PlainProgress(_Base):
    def __init__(self, label, total, stream, every: float = 5.0) -> None:
        super().__init__(label, total)
        self.stream, self.every, self.last = stream, every, time.perf_counter()

    def _show(self, final: bool) -> None:
        now = time.perf_counter()
        if not final and now - self.last >= self.every:
            self.last = now
            print(self._line(), file=self.stream, flush=True)


class _RichProgress(_Base):
    def __init__(self, label, total, stream) -> None:
        super().__init__(label, total)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TextColumn("{task.fields[rows]} rows"), TimeRemainingColumn(),
                          console=Console(file=stream), transient=True)
        self.task = self.p.add_task(label, total=total, rows="0")
        self.p.start()

    def _show(self, final: bool) -> None:
        self.p.update(self.task, completed=self.bytes, rows=f"{self.rows:,}")
        if final:
            self.p.stop()


class _NotebookProgress(_Base):
    def __init__(self, label, total) -> None:
        super().__init__(label, total)
        from IPython.display import HTML, display

        self._HTML = HTML
        self.handle = display(HTML(self._html()), display_id=True)
        self.last = 0.0

    def _html(self) -> str:
        frac = min(self.bytes / self.total, 1.0) if self.total else 0.0
        return (f"<div><progress value='{frac:.4f}' max='1' style='width:40%'></progress> "
                f"<code>{self._line()}</code></div>")

    def _show(self, final: bool) -> None:
        now = time.perf_counter()
        if final or now - self.last > 0.2:
            self.last = now
            self.handle.update(self._HTML(self._html()))
