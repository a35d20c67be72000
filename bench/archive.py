"""Small result files of benchmark runs, kept in git so an interrupted benchmark resumes anywhere.

Run folders (``bench/work``, with their checkpoints) are not committed and are lost with the
machine. A benchmark that keeps a finished run's few JSON files here
(``bench/results/runs/<bench>/<run>/...``) finds them on any checkout and does not train that
run again. Only the JSON files its report reads are kept, never a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parent / "results" / "runs"


def keep(bench: str, work: Path, folder: Path, names: list[str]) -> None:
    """Copy ``folder``'s files ``names`` (paths inside it) into the archive."""
    target = ARCHIVE / bench / folder.relative_to(work)
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, target / name)


def restore(bench: str, work: Path, folder: Path, names: list[str]) -> bool:
    """Copy the archived files ``names`` back into ``folder``; False unless all are archived."""
    source = ARCHIVE / bench / folder.relative_to(work)
    if not all((source / name).is_file() for name in names):
        return False
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, folder / name)
    return True
