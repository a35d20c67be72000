"""The one flow: config → data → model → method → objectives → loop → evaluate → export.

The CLI and any other front end are thin callers of the functions here.
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domaintune.config import Recipe, dump_recipe, load_recipe
from domaintune.config.sections import TrainConfig
from domaintune.data.augment import augment_train
from domaintune.data.encode import encode_split, tokenizer_identity
from domaintune.data.knowledge import inject_knowledge
from domaintune.data.pipeline import RawSplits, example_texts, load_splits
from domaintune.data.replay import mix_replay
from domaintune.deploy.load import ADAPTER_DIR, RUN_FILE, LoadedRun, Predictor, load_run  # noqa: F401 (re-exported)
from domaintune.errors import ConfigError
from domaintune.runs import (
    RunFolder,
    check_run_folder,
    prepare_run_folder,
    stage_summary,
    write_run_state,
)
from domaintune.training.precision import cpu_has_bf16


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    test: dict[str, Any]
    validation: dict[str, Any]
    train_seconds: float
    train_samples_per_second: float
    steps: int
    best_step: int | None
    stopped_early: bool
    data: dict[str, Any] = field(default_factory=dict)


def default_output_dir(recipe_path: str | Path | None) -> Path:
    """``runs/<recipe file stem>`` (or ``runs/run`` for recipes built in Python)."""
    stem = Path(recipe_path).stem if recipe_path else "run"
    return Path("runs") / stem


def make_accelerator(cfg: TrainConfig, project_dir: Path | None = None) -> Any:
    """An Accelerator with the global batch split over processes and the right precision.

    With ``train.report_to``, Accelerate's trackers log into ``project_dir`` (the run folder).
    """
    from domaintune.training.accelerator import build_accelerator

    return build_accelerator(cfg, resolve_precision(cfg.precision), project_dir)


def resolve_precision(precision: str) -> str:
    """Map the recipe's precision to Accelerate's, refusing what the hardware cannot do."""
    import torch

    cuda = torch.cuda.is_available()
    # bf16 matrix products run 2.2-2.5x faster than fp32 on a CPU with AVX512-BF16 (measured),
    # but ~24x slower where bf16 is emulated (AVX2 only): bf16 only where it is native.
    native_bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    if precision == "auto":
        return "bf16" if native_bf16 else "no"
    if precision == "fp32":
        return "no"
    if precision == "bf16" and not native_bf16:
        raise ConfigError(
            "train.precision: 'bf16': this machine has no bf16 support (no bf16 "
            "GPU, no AVX512-BF16/AMX CPU; emulated bf16 is ~24x slower) → use fp32 "
            "or auto"
        )
    if precision == "fp16" and not cuda:
        raise ConfigError("train.precision: 'fp16': fp16 needs a CUDA GPU → use fp32 or auto")
    return precision


def prepare_data(recipe: Recipe) -> tuple[Any, RawSplits]:
    """Build the task and read, clean, split and label-check the recipe's data."""
    from domaintune.methods import adapt_task
    from domaintune.tasks import build_task

    task = adapt_task(build_task(recipe.task), recipe.method)  # prompting re-encodes the task
    own_data = getattr(task, "load_splits", None)  # multi-task: every task reads its own data
    if own_data is not None:
        raw = own_data()
    else:
        raw = mix_replay(load_splits(recipe.data, task.kind), recipe.data, task.kind)
    task.fit_labels(raw)
    raw = augment_train(raw, recipe.data, task.kind, recipe.model)  # train only, after labels
    inject_knowledge(raw, recipe.data, task.kind)  # facts (tasks) or mentions (LM masking)
    return task, raw


def run(
    recipe: Recipe | str | Path,
    overrides: list[str] | None = None,
    *,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> RunResult:
    """Train, evaluate and export one recipe; return the test metrics and the run folder.

    Args:
        recipe: A validated recipe or the path of a YAML recipe.
        overrides: Dotted ``key=value`` overrides (only with a path).
        output_dir: Run folder; default ``recipe.output_dir`` or ``runs/<recipe name>``.
        resume: Continue the run in ``output_dir`` from its latest checkpoint.
        overwrite: Replace an existing run folder.

    """
    recipe_path = None if isinstance(recipe, Recipe) else recipe
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    folder = Path(output_dir or recipe.output_dir or default_output_dir(recipe_path))
    if resume and (folder / "recipe.resolved.yaml").is_file():
        recipe = load_recipe(folder / "recipe.resolved.yaml")
    check_run_folder(folder, resume, overwrite)
    accelerator = make_accelerator(recipe.train, folder)
    accelerator.wait_for_everyone()
    run_folder = (
        prepare_run_folder(folder, resume, overwrite)
        if accelerator.is_main_process
        else RunFolder(folder)
    )
    accelerator.wait_for_everyone()
    return _train(recipe, run_folder, accelerator, resume)


def run_pipeline(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, RunResult]:
    """Run a pipeline's stages in order (e.g. DAPT → fine-tune), each into ``<output>/<stage>``.

    ``model.init_from: stage:<name>`` starts a stage from an earlier stage's final model. With
    ``resume``, finished stages are kept and an interrupted one continues from its checkpoint.
    A summary of every stage's test metrics (and forgetting) is written to ``pipeline.json``.
    """
    from domaintune.config.pipeline import load_pipeline, resolve_stages
    from domaintune.evaluation.continual import forgetting_summary

    pipeline, recipes = load_pipeline(path, overrides)
    folder = Path(output_dir or pipeline.output_dir or default_output_dir(path))
    if folder.exists() and not (resume or overwrite) and any(folder.iterdir()):
        from domaintune.errors import RunError

        raise RunError(
            f"{folder}: pipeline folder exists → pass --resume to continue it, --overwrite "
            "to replace it, or -o another folder"
        )
    results: dict[str, RunResult] = {}
    summary: dict[str, Any] = {"pipeline": str(path), "stages": {}}
    by_name = {stage.name: recipe for stage, recipe in zip(pipeline.stages, recipes, strict=True)}
    for stage, recipe in zip(pipeline.stages, recipes, strict=True):
        recipe = resolve_stages(recipe, folder, by_name)
        target = folder / stage.name
        if resume and (target / "results.json").is_file():
            done = json.loads((target / "results.json").read_text(encoding="utf-8"))
            summary["stages"][stage.name] = stage_summary(target, done)
            continue
        results[stage.name] = run(
            recipe,
            output_dir=target,
            resume=resume and target.exists(),
            overwrite=overwrite,
        )
        done = json.loads((target / "results.json").read_text(encoding="utf-8"))
        summary["stages"][stage.name] = stage_summary(target, done)
    if pipeline.evaluate_earlier:
        summary["forgetting"] = forgetting_summary(
            folder, [s.name for s in pipeline.stages], recipes
        )
    (folder / "pipeline.json").write_text(
        json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    return results


def _train(recipe: Recipe, run_folder: RunFolder, accelerator: Any, resume: bool) -> RunResult:
    from accelerate.utils import set_seed

    from domaintune.evaluation.final import final_scores, results_record
    from domaintune.evaluation.forgetting import (
        forgetting_report,
        perplexity,
        reference_split,
        reference_task,
    )
    from domaintune.evaluation.shift import domain_shift
    from domaintune.models.load import load_tokenizer, model_type, resolve_source
    from domaintune.models.vocab import expand_tokenizer
    from domaintune.objectives import OBJECTIVES
    from domaintune.objectives.protocol import ObjectiveContext
    from domaintune.tasks.label_growth import inherit_labels
    from domaintune.training.accelerator import cpu_fast_path
    from domaintune.training.loop import LoopData, train_loop
    from domaintune.training.model_setup import prepare_model
    from domaintune.training.optim import boost_parameters
    from domaintune.training.tracking import finish_trackers, start_trackers

    # data
    set_seed(recipe.train.seed)
    task, raw = prepare_data(recipe)
    previous_labels = inherit_labels(task, recipe.model.init_from, raw)  # union tag head
    source = resolve_source(recipe.model)
    tokenizer = load_tokenizer(source)
    train_texts = example_texts(raw.splits["train"])
    shift = domain_shift(recipe.data, task, train_texts, raw, tokenizer)
    vocabulary = None
    if recipe.model.expand_vocab is not None:
        expanded, added, vocab_report = expand_tokenizer(
            tokenizer, train_texts, recipe.model.expand_vocab
        )
        vocabulary, tokenizer = (tokenizer, added, vocab_report), expanded
    task.bind(model_type(source), tokenizer)
    tok_id = tokenizer_identity(tokenizer)
    encoded = {
        name: encode_split(task, examples, tokenizer, tok_id, recipe.data, split=name)
        for name, examples in raw.splits.items()
    }
    scorer = reference_task(task, model_type(source), tokenizer)  # general-text perplexity
    reference = reference_split(recipe.data, scorer, tokenizer, tok_id)

    # model and method
    set_seed(recipe.train.seed)
    prepared = prepare_model(recipe, task, source, tokenizer, previous_labels, vocabulary)
    model, method, groups = prepared.model, prepared.method, prepared.groups

    # objectives
    objectives = [OBJECTIVES[o.name](o) for o in recipe.objectives]
    context = ObjectiveContext(
        model=model,
        pretrained=prepared.pretrained,
        task=task,
        tokenizer=tokenizer,
        accelerator=accelerator,
        train=encoded["train"],
        data=recipe.data,
        train_cfg=recipe.train,
        init_from=Path(recipe.model.init_from) if recipe.model.init_from else None,
        encode=lambda examples: task.encode(examples, tokenizer, recipe.data.max_length),
        extra={
            "run_dir": run_folder.root,
            "fresh": prepared.fresh,
            "grown": {n: len(previous_labels or []) for n in prepared.grown},
        },
    )
    for objective in objectives:
        objective.setup(context)
    if accelerator.is_main_process:
        run_folder.recipe.write_text(dump_recipe(recipe), encoding="utf-8")
    start_trackers(accelerator, recipe, run_folder.root)

    # loop
    metric = recipe.eval.metric or task.default_metric
    greater = recipe.eval.greater_is_better
    if greater is None:
        from domaintune.evaluation.metrics import greater_is_better

        greater = greater_is_better(metric)
    validation = encoded.get("validation") if raw.splits.get("validation") else None
    trained = task.wrap(model)
    crf = getattr(task, "crf", None)
    crf_multiplier = getattr(recipe.task, "crf_lr_multiplier", 1.0)
    if crf is not None and crf_multiplier != 1.0:
        groups = boost_parameters(
            trained, groups, list(crf.parameters()), crf_multiplier, recipe.train.lr
        )

    def lm_scores() -> dict[str, Any]:
        """Perplexity on the held-out domain text (LM runs) and the general reference text."""
        out = {}
        domain = encoded.get("test") if task.kind == "lm" else None
        for name, data in (("in_domain", domain), ("general", reference)):
            if data is not None and len(data):
                out[name] = perplexity(trained, scorer, data, recipe.train, tokenizer, accelerator)
        return out

    measures_forgetting = task.kind == "lm" or reference is not None
    before = lm_scores() if measures_forgetting and not resume else None
    before_scores = None
    if getattr(recipe.task, "evaluate_before", False) and not resume:
        from domaintune.evaluation.before import evaluate_before

        before_scores = evaluate_before(
            trained, model, task, encoded, raw, tokenizer, recipe, accelerator, run_folder.root
        )
    with cpu_fast_path(model, accelerator.device):
        result = train_loop(
            accelerator,
            trained,
            task,
            LoopData(
                encoded["train"], tokenizer.pad_token_id, validation, raw.splits.get("validation")
            ),
            recipe.train,
            metric,
            greater,
            run_folder,
            groups,
            objectives,
            resume,
            prepared.callbacks,
        )

    # evaluate the model as it is saved (merged where the method merges)
    # Counted on the wrapped module: a task's own head (the CRF) trains too.
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in trained.parameters())
    adapted = accelerator.unwrap_model(model)
    if hasattr(method, "save_adapter") and accelerator.is_main_process:
        method.save_adapter(adapted, run_folder.final / ADAPTER_DIR)  # before a merge changes it
    merged = method.export(adapted)
    final_module = task.wrap(merged if merged is not None else adapted)
    scores = final_scores(
        final_module,
        merged if merged is not None else adapted,
        task,
        encoded,
        raw,
        tokenizer,
        recipe,
        accelerator,
        run_folder.root,
    )
    # Objectives' own results (DANN's target-domain metrics), computed on every process.
    extra = {
        k: v
        for o in objectives
        if hasattr(o, "evaluate")
        for k, v in o.evaluate(final_module).items()
    }
    forgetting = None
    if measures_forgetting:
        trained = final_module
        forgetting = forgetting_report(before, lm_scores(), recipe.data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # export and record
    if accelerator.is_main_process:
        # Methods that cannot merge keep their base model here and the adapter beside it.
        final_model = merged if merged is not None else method.base_model(adapted)
        final_model.save_pretrained(str(run_folder.final))
        tokenizer.save_pretrained(str(run_folder.final))
        write_run_state(run_folder, recipe, task.state(), merged is not None)
        results = results_record(
            recipe,
            task,
            metric,
            scores,
            result.record(accelerator, trainable, total_params),
            raw,
            evaluations=result.evaluations,
            peak_rss_mib=peak,
            lm_train=(encoded["train"], result) if task.kind == "lm" else None,
            sections={
                "forgetting": forgetting,
                "before": before_scores,
                "vocabulary": vocabulary[2] if vocabulary is not None else None,
                "shift": shift,
            },
        )
        results.update(extra)
        if hasattr(task, "export_tasks"):  # multi-task: RUN/tasks/<name>, one run folder a task
            results["tasks"] = task.export_tasks(
                final_module, run_folder.root, recipe, tokenizer, scores
            )
        run_folder.results.write_text(
            json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        from domaintune.reports.html import write_report_safely

        write_report_safely(run_folder.root)
    if recipe.train.report_to:
        finish_trackers(accelerator, scores, result.steps)
    accelerator.wait_for_everyone()
    return RunResult(
        run_dir=run_folder.root,
        test=scores.get("test", {}),
        validation=scores.get("validation", {}),
        train_seconds=result.train_seconds,
        train_samples_per_second=result.samples_per_second,
        steps=result.steps,
        best_step=result.best_step,
        stopped_early=result.stopped_early,
        data=raw.stats,
    )


# ------------------------------------------------------------------------- finished runs
def report(run_dir: str | Path) -> Path:
    """(Re)build ``report.html`` of a finished run folder and return its path."""
    from domaintune.reports.html import write_report

    return write_report(run_dir)


def compare(run_dirs: list[str | Path]) -> Any:
    """Compare finished runs: differing recipe keys and main metrics (``reports.Comparison``)."""
    from domaintune.reports.compare import compare_runs

    return compare_runs(run_dirs)


def evaluate(run_dir: str | Path, data_file: str | Path) -> dict[str, Any]:
    """Metrics of a finished run on a labelled file; also saved as ``eval-<file>.json``.

    The run's PyTorch model predicts in fp32, so its own test file gives its test metrics.
    """
    from domaintune.evaluation.evaluate import evaluate_run

    return evaluate_run(run_dir, data_file)


def predict(
    source: str | Path,
    inputs: str | Path | list[str],
    *,
    backend: str = "auto",
    precision: str = "fp32",
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Predict labels (with probabilities) or entity spans (with character offsets).

    Args:
        source: A finished run folder or a ``domaintune export`` folder.
        inputs: A ``.jsonl``/``.csv``/``.txt``/``.conll`` file, or a list of texts.
        backend: ``auto`` (ONNX exports on onnxruntime, the rest on PyTorch), ``torch`` or
            ``onnx``.
        precision: PyTorch backend: ``fp32`` (default: the exact scores), ``auto`` (bf16
            autocast where the CPU has bf16 units, as ``predict_file``) or ``bf16``.
        threads: onnxruntime intra-op threads (default: onnxruntime's own).

    """
    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.predict import predict_inputs

    return predict_inputs(open_predictor(source, backend, threads, precision), inputs)


def predict_texts(predictor: Predictor | LoadedRun, texts: list[str]) -> list[dict[str, Any]]:
    """Predictions for raw texts (the rows ``predict`` returns for a list).

    ``predictor`` comes from ``domaintune.deploy.load.open_predictor``; a ``LoadedRun``
    predicts on PyTorch in fp32.
    """
    from domaintune.deploy.load import from_run
    from domaintune.deploy.predict import predict_examples

    if isinstance(predictor, LoadedRun):
        predictor = from_run(predictor, "fp32")
    return predict_examples(predictor, [{"text": t} for t in texts])


# ------------------------------------------------------------------------------- serving
def serving_app(
    source: str | Path,
    *,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
    max_batch_size: int = 32,
    max_text_length: int = 10_000,
    max_wait_ms: float = 0.0,
) -> Any:
    """The FastAPI app serving a run or export folder (``POST /predict``, ``/metadata``...).

    Args:
        source: A finished run folder or a ``domaintune export`` folder.
        backend: ``auto`` (ONNX exports on onnxruntime, the rest on PyTorch), ``torch`` or
            ``onnx``.
        threads: onnxruntime intra-op threads (default: onnxruntime's own).
        precision: PyTorch backend: ``auto`` (bf16 autocast where the CPU has bf16 units, as
            ``domaintune predict``), ``fp32`` or ``bf16``.
        max_batch_size: Most texts per request, and per batched model call.
        max_text_length: Most characters per text.
        max_wait_ms: How long a request waits for others to batch with.

    """
    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.service import predictor_app, serve_limits

    limits = serve_limits(max_batch_size, max_text_length, max_wait_ms)
    return predictor_app(open_predictor(source, backend, threads, precision), limits)


def serve(
    source: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
    max_batch_size: int = 32,
    max_text_length: int = 10_000,
    max_wait_ms: float = 0.0,
) -> None:
    """Serve a run or export folder over HTTP until interrupted (see :func:`serving_app`)."""
    from domaintune.deploy.serve import run_server

    app = serving_app(
        source,
        backend=backend,
        threads=threads,
        precision=precision,
        max_batch_size=max_batch_size,
        max_text_length=max_text_length,
        max_wait_ms=max_wait_ms,
    )
    run_server(app, host, port)


# ------------------------------------------------------------------------------ deployment
def export(
    run_dir: str | Path,
    format: str,
    out_dir: str | Path | None = None,
    *,
    overwrite: bool = False,
    sample: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Export a finished run as ``safetensors``, ``onnx`` or ``int8`` and verify the export.

    Args:
        run_dir: A finished run folder.
        format: A key of ``domaintune.deploy.EXPORTERS``.
        out_dir: The export folder; default ``RUN_DIR/export-<format>``.
        overwrite: Replace an existing export folder.
        sample: Texts to verify the export on (default: the run's test file).
        **options: Exporter options (``opset``, ``per_channel``).

    Returns:
        The export report, also written to ``export.json`` in the export folder.

    """
    from domaintune.deploy.export import export_run

    return export_run(run_dir, format, out_dir, overwrite=overwrite, sample=sample, **options)


def predict_file(
    source: str | Path,
    inputs: str | Path,
    output: str | Path,
    *,
    backend: str = "auto",
    fmt: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    precision: str = "auto",
) -> dict[str, Any]:
    """Stream ``inputs`` through a run or export folder into a JSONL or CSV file.

    Rows are those of :func:`predict`, in input order; the file is read in chunks.

    Args:
        source: A finished run folder or a ``domaintune export`` folder.
        inputs: ``.jsonl``/``.csv``/``.txt``/``.conll`` file.
        output: Output file (``.csv`` for CSV, else JSONL, unless ``fmt`` says).
        backend: ``auto``, ``torch`` or ``onnx``.
        fmt: ``jsonl`` or ``csv``.
        batch_size: Examples per model call (default: the run's ``eval_batch_size``).
        progress: Show a progress bar on a terminal.
        precision: PyTorch backend: ``auto`` (bf16 autocast where the CPU has bf16 units, as
            in training), ``fp32`` or ``bf16``.

    Returns:
        Counts, time, throughput and the backend used.

    """
    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.predict import predict_file as stream_predict

    predictor = open_predictor(source, backend, precision=precision)
    return stream_predict(
        predictor, inputs, output, fmt=fmt, batch_size=batch_size, progress=progress
    )
