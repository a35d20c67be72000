"""``safetensors`` export: the run's final model, adapters merged, for plain transformers.

Methods that merge (full, freeze, BitFit, LoRA, AdaLoRA, IA³) already save a merged ``final/``;
it is written again with the tokenizer, the label map (``config.id2label``) and
``domaintune.json``. Methods whose modules cannot be folded into the base weights (prefix,
prompt_tuning, adapter) are refused with a pointer to ``--format onnx``, which traces the adapted
model, or to the run folder itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domaintune.deploy.bundle import FP32_TOLERANCE, folder_size, verify_and_report, write_bundle
from domaintune.deploy.load import load_run, open_export
from domaintune.errors import ModelError


def export(
    run_dir: str | Path, out_dir: str | Path, *, sample: str | Path | None = None, **_: Any
) -> dict[str, Any]:
    """Write the merged model as safetensors and verify it against the run's model.

    Args:
        run_dir: A finished run folder.
        out_dir: The export folder (created).
        sample: Texts to verify on (default: the run's test file).

    Returns:
        The export report (also ``export.json``).

    """
    loaded = load_run(run_dir)
    method = loaded.saved.get("method", {})
    if method.get("merged") is False:
        name = method.get("config", {}).get("name")
        raise ModelError(
            f"{run_dir}: method: {name!r} cannot be merged into the base weights → export "
            "--format onnx (it traces the adapted model) or predict from the run folder"
        )
    out = Path(out_dir)
    write_bundle(loaded, out, "safetensors")
    loaded.model.save_pretrained(str(out), safe_serialization=True)
    exported = open_export(out, "torch", precision="fp32")
    return verify_and_report(
        loaded, exported, out, "safetensors", sample, FP32_TOLERANCE, {"bytes": folder_size(out)}
    )
