"""Export a finished run folder through the ``EXPORTERS`` registry (checks, then export)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domaintune.deploy.load import RUN_FILE
from domaintune.errors import ConfigError


def export_run(
    run_dir: str | Path,
    format: str,
    out_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    sample: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Check the run and the export folder, then export (see ``domaintune.api.export``)."""
    import shutil

    from domaintune.deploy import EXPORTERS
    from domaintune.errors import RunError
    from domaintune.runs import open_run_folder

    if format not in EXPORTERS:
        raise ConfigError(
            f"--format: {format!r}: unknown export format → use one of {', '.join(EXPORTERS)}"
        )
    run = open_run_folder(Path(run_dir))
    saved = json.loads((run.final / RUN_FILE).read_text(encoding="utf-8"))
    task = saved["task"]["name"]
    if saved.get("method", {}).get("config", {}).get("name") == "prompting":
        raise ConfigError(
            f"{run.root}: method: 'prompting': exports hold a plain model and lose the prompt "
            "→ predict and serve from the run folder itself"
        )
    if task not in {"classification", "token_classification"}:
        raise ConfigError(
            f"{run.root}: task: {task!r}: exports cover classification and token "
            "classification → use final/ as a transformers model folder"
        )
    out = Path(out_dir) if out_dir is not None else run.root / f"export-{format}"
    resolved, root = out.resolve(), run.root.resolve()
    if resolved == root or resolved in root.parents or resolved == run.final.resolve():
        raise RunError(f"{out}: holds the run folder → choose another export folder (-o)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise RunError(f"{out}: export folder exists → pass --overwrite or choose another -o")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    return dict(EXPORTERS[format].export(run.root, out, sample=sample, **options))
