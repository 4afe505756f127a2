"""A live progress bar with current throughput, shown only on a terminal.

Thread-safe `advance(nbytes)`; a no-op object when stdout is not a TTY (plain output)
or when JSON goes to stdout.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)


class ByteProgress:
    def __init__(self, label: str, total_bytes: int | None, enabled: bool | None = None) -> None:
        con = Console(stderr=True)
        if enabled is None:  # under MPI only rank 0 draws
            from iobench.dist import world

            enabled = con.is_terminal and world().is_root
        self.enabled = enabled
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(), TimeElapsedColumn(), console=con, transient=True,
            )
            self._task = self._progress.add_task(label, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress.advance(self._task, nbytes)  # type: ignore[arg-type]

    def set_label(self, label: str) -> None:
        """Change the description (e.g. to show files done / total)."""
        if self._progress is not None:
            with self._lock:
                self._progress.update(self._task, description=label)  # type: ignore[arg-type]

    def __enter__(self) -> ByteProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
