"""Open what prediction runs on: a run folder (PyTorch) or an export folder (PyTorch or ONNX).

Every source becomes a :class:`Predictor`: the task (labels, CRF scores), the tokenizer, the data
options used in training (cleaning, ``max_length``) and a function from a padded batch to
logits. Encoding, decoding and formatting are the task's own, so every backend predicts alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domaintune.config.sections import DataConfig
from domaintune.data.knowledge import open_saved_knowledge
from domaintune.errors import ConfigError, RunError
from domaintune.models.load import quiet_libraries
from domaintune.runs import RunFolder, open_run_folder

if TYPE_CHECKING:
    import torch

RUN_FILE = "domaintune.json"  # final/domaintune.json: task, state, data and method of a run
ADAPTER_DIR = "adapter"  # final/adapter/: the adapter-only checkpoint of PEFT-style methods
ONNX_FILE = "model.onnx"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class LoadedRun:
    """A finished run's model, tokenizer and task, ready for evaluation or prediction."""

    run: RunFolder
    model: Any
    tokenizer: Any
    task: Any
    data: DataConfig
    eval_batch_size: int
    saved: dict[str, Any] = field(default_factory=dict)
    knowledge: Any = None  # data.knowledge.Injector over final/knowledge/, or None


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load the final model of a run folder (re-applying methods that cannot merge)."""
    from pydantic import TypeAdapter

    from domaintune.models.load import ModelSource, load_model, load_tokenizer

    quiet_libraries()
    run_folder = open_run_folder(Path(run_dir))
    saved = json.loads((run_folder.final / RUN_FILE).read_text(encoding="utf-8"))
    if saved["task"].get("name") == "multitask":
        raise RunError(
            f"{run_dir}: a multi-task run has one model per task → use its task folder, "
            f"{Path(run_dir) / 'tasks' / '<name>'}"
        )
    task = build_saved_task(saved)
    source = ModelSource(str(run_folder.final), True)
    tokenizer = load_tokenizer(source)
    model = load_model(source, task.auto_class())
    method = saved.get("method", {})
    if method.get("merged") is False:
        from domaintune.config.methods import MethodConfig
        from domaintune.methods import METHODS

        method_cfg: Any = TypeAdapter(MethodConfig).validate_python(method["config"])
        model = METHODS[method_cfg.name].load_adapter(
            model, run_folder.final / ADAPTER_DIR, method_cfg
        )
    task.bind(model.config.model_type, tokenizer)
    model.eval()
    return LoadedRun(
        run_folder,
        model,
        tokenizer,
        task,
        DataConfig.model_validate(saved["data"]),
        int(saved.get("eval_batch_size", 64)),
        saved,
        open_saved_knowledge(saved, run_folder.final),
    )


def build_saved_task(saved: dict[str, Any]) -> Any:
    """The task of a saved ``domaintune.json`` (labels, thresholds, CRF scores restored)."""
    from pydantic import TypeAdapter

    from domaintune.config.methods import MethodConfig
    from domaintune.config.multitask import TaskConfig
    from domaintune.methods import adapt_task
    from domaintune.tasks import build_task

    task_cfg: Any = TypeAdapter(TaskConfig).validate_python(saved["task"])
    task = build_task(task_cfg, saved["state"])
    method = saved.get("method", {}).get("config")
    if method is None:
        return task
    method_cfg: Any = TypeAdapter(MethodConfig).validate_python(method)
    return adapt_task(task, method_cfg, saved["state"])


@dataclass
class Predictor:
    """A task, its tokenizer and data options, and a padded batch → logits function."""

    task: Any
    tokenizer: Any
    data: DataConfig
    batch_size: int
    logits: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    backend: str
    source: Path
    saved: dict[str, Any]
    precision: str = "fp32"  # of the forward pass: fp32, bf16 (PyTorch autocast) or int8/fp32 ONNX
    knowledge: Any = None  # data.knowledge.Injector: the facts training attached, or None


def use_bf16(precision: str) -> bool:
    """Whether PyTorch prediction runs in bf16 autocast: ``auto`` = where the CPU has bf16 units.

    The same rule as ``train.precision: auto``, so a run predicts in the precision its own
    validation and test scores were computed in (measured on MiniLM: 2.2x the fp32 forward on
    an AVX512-BF16 CPU; ``bench/results/deploy.json`` has the label agreement and test metric).
    """
    from domaintune.training.precision import cpu_has_bf16

    if precision not in PRECISIONS:
        raise ConfigError(
            f"--precision: {precision!r}: unknown precision → use one of {', '.join(PRECISIONS)}"
        )
    if precision == "fp32":
        return False
    if not cpu_has_bf16():
        if precision == "bf16":
            raise ConfigError(
                "--precision: 'bf16': this CPU has no bf16 units (AVX512-BF16 or AMX); emulated "
                "bf16 is far slower → use fp32 or auto"
            )
        return False
    return True


def torch_logits(
    model: torch.nn.Module, bf16: bool = False
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Logits of a transformers model (emissions for a CRF run) for a padded batch.

    With ``bf16`` the forward runs in CPU bf16 autocast; logits come back as fp32.
    """
    import torch

    def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return model(**inputs).logits.float()

    return run


def onnx_logits(
    path: Path, threads: int | None = None
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Logits of an exported ONNX model through onnxruntime (CPU) for a padded batch.

    ``threads`` sets onnxruntime's intra-op threads (default: its own, one per physical core).
    """
    import torch

    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - an optional dependency
        raise ConfigError(
            "onnxruntime is not installed → pip install 'domaintune[deploy]'"
        ) from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {}
        for name in names:
            value = batch.get(name)
            if value is None:  # a model without segments given none: all zeros
                value = torch.zeros_like(batch["input_ids"])
            feed[name] = value.numpy().astype(np.int64)
        return torch.from_numpy(session.run(["logits"], feed)[0])

    return run


def from_run(loaded: LoadedRun, precision: str = "auto") -> Predictor:
    """A PyTorch predictor over a loaded run (``precision``: see :func:`use_bf16`).

    The model runs as the task wraps it in training (prompting scores its labels there; a CRF
    tagger's wrap gives the same emissions as the model).
    """
    bf16 = use_bf16(precision)
    return Predictor(
        loaded.task,
        loaded.tokenizer,
        loaded.data,
        loaded.eval_batch_size,
        torch_logits(loaded.task.wrap(loaded.model), bf16),
        "torch",
        loaded.run.root,
        loaded.saved,
        "bf16" if bf16 else "fp32",
        loaded.knowledge,
    )


def open_predictor(
    source: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
) -> Predictor:
    """Open a run folder or an export folder for prediction.

    Args:
        source: A finished run folder, or a folder written by ``domaintune export``.
        backend: ``torch``, ``onnx`` or ``auto`` (ONNX exports on onnxruntime, the rest on
            PyTorch).
        threads: onnxruntime intra-op threads (PyTorch keeps ``torch.set_num_threads``).
        precision: PyTorch only: ``auto`` (bf16 autocast where the CPU has bf16 units, as in
            training), ``fp32`` or ``bf16``.

    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: {backend!r}: unknown backend → use one of auto, torch, onnx")
    path = Path(source)
    if not (path / "final" / RUN_FILE).is_file() and not (path / RUN_FILE).is_file():
        raise RunError(
            f"{path}: not a finished run folder (no final/{RUN_FILE}) nor an export folder "
            f"(no {RUN_FILE}) → train it first, or pass the folder 'domaintune export' wrote"
        )
    if (path / "final" / RUN_FILE).is_file():
        if backend == "onnx":
            raise ConfigError(
                f"{path}: a run folder has no ONNX model → export it first "
                "('domaintune export RUN_DIR --format onnx') or use --backend torch"
            )
        return from_run(load_run(path), precision)
    return open_export(path, backend, threads, precision)


def open_export(
    path: Path, backend: str = "auto", threads: int | None = None, precision: str = "auto"
) -> Predictor:
    """A predictor over an export folder (``safetensors`` on PyTorch; ``onnx``/``int8`` on ORT)."""
    from domaintune.models.load import ModelSource, load_model, load_tokenizer

    quiet_libraries()
    saved = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    fmt = saved.get("format")
    if fmt is None:
        raise RunError(
            f"{path / RUN_FILE}: format: missing → pass a run folder or a 'domaintune export' "
            "folder"
        )
    task = build_saved_task(saved)
    tokenizer = load_tokenizer(ModelSource(str(path), True))
    onnx_file = path / ONNX_FILE
    if backend == "torch" and onnx_file.is_file():
        raise ConfigError(
            f"{path}: an {fmt} export holds no PyTorch weights → use --backend onnx or auto"
        )
    if backend == "onnx" and not onnx_file.is_file():
        raise ConfigError(
            f"{path}: a {fmt} export has no {ONNX_FILE} → use --backend torch or auto"
        )
    bf16 = False
    if onnx_file.is_file():
        logits, used = onnx_logits(onnx_file, threads), "onnx"
        task.bind(saved.get("model_type", ""), tokenizer)
    else:
        model = load_model(ModelSource(str(path), True), task.auto_class()).eval()
        task.bind(model.config.model_type, tokenizer)
        bf16 = use_bf16(precision)
        logits, used = torch_logits(model, bf16), "torch"
    return Predictor(
        task,
        tokenizer,
        DataConfig.model_validate(saved["data"]),
        int(saved.get("eval_batch_size", 64)),
        logits,
        used,
        path,
        saved,
        "int8" if fmt == "int8" else "bf16" if bf16 else "fp32",
        open_saved_knowledge(saved, path),
    )
