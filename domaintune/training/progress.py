"""A rich progress bar with ETA and the live loss/metric; plain lines when not on a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Progress over optimizer steps, shown by the main process only."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        """Create the bar at ``start`` of ``total`` steps (nothing is shown if not ``enabled``)."""
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.status = ""
        self.progress: Progress | None = None
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self.task_id = self.progress.add_task("train", total=total, completed=start, status="")
            self.progress.start()

    def step(self, loss: float | None = None) -> None:
        """Advance one optimizer step, showing the latest loss."""
        if self.progress is not None:
            if loss is not None:
                self.status = f"loss {loss:.4f}"
            self.progress.update(self.task_id, advance=1, status=self.status)

    def note(self, text: str, fields: dict[str, Any] | None = None) -> None:
        """Print a line (evaluation results) above the bar, or plainly when not on a terminal."""
        if not self.enabled:
            return
        if fields:
            self.status = " ".join(f"{k} {v:.4f}" for k, v in fields.items())
        self.console.print(text, highlight=False)

    def close(self) -> None:
        """Stop the bar."""
        if self.progress is not None:
            self.progress.stop()
