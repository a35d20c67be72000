"""The ``domaintune`` command line: a thin caller of :mod:`domaintune.api`."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from domaintune.errors import DomaintuneError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Adapt pretrained language models to a domain, from YAML recipes.",
)
recipes_app = typer.Typer(no_args_is_help=True, help="List or copy the shipped recipes.")
app.add_typer(recipes_app, name="recipes")


def _fail(error: DomaintuneError) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


# --precision of predict and serve (the PyTorch backend; see deploy/load.use_bf16).
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="PyTorch backend: auto (bf16 autocast where the CPU has bf16 units, as in "
        "training), fp32 or bf16."
    ),
]


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe file.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. train.lr=1e-4")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run folder.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run folder from its last checkpoint.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    processes: Annotated[int | None, typer.Option(help="Data-parallel processes (DDP).")] = None,
) -> None:
    """Train, evaluate and export a recipe (or each stage of a pipeline) into a run folder."""
    from domaintune.config import load_recipe
    from domaintune.runs import check_run_folder

    try:
        extra = list(overrides or [])
        from domaintune.config.pipeline import is_pipeline

        if recipe.is_file() and is_pipeline(recipe):
            _train_pipeline(recipe, extra, output, resume, overwrite)
            return
        if processes is not None:
            extra.append(f"train.processes={processes}")
        cfg = load_recipe(recipe, extra)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.train.processes > 1 and world == 1:
            from domaintune.api import default_output_dir
            from domaintune.launch import launch

            folder = Path(output or cfg.output_dir or default_output_dir(recipe))
            check_run_folder(folder, resume, overwrite)
            argv = ["train", str(recipe), *extra, "--output", str(folder)]
            argv += ["--resume"] if resume else []
            argv += ["--overwrite"] if overwrite else []
            raise typer.Exit(launch(argv, cfg.train.processes, cfg.train.threads))
        from domaintune.api import run

        result = run(recipe, extra, output_dir=output, resume=resume, overwrite=overwrite)
    except DomaintuneError as error:
        _fail(error)
        return
    if int(os.environ.get("RANK", "0")) == 0:
        sizes = ", ".join(f"{k} {v}" for k, v in result.data.get("sizes", {}).items())
        dropped = result.data.get("duplicates_dropped")
        typer.echo(
            f"data: {sizes}" + (f" ({dropped} duplicates dropped from train)" if dropped else "")
        )
        _print_result(result.test, result.run_dir, result.train_seconds)


def _train_pipeline(
    recipe: Path, extra: list[str], output: Path | None, resume: bool, overwrite: bool
) -> None:
    from domaintune.api import run_pipeline

    results = run_pipeline(recipe, extra, output_dir=output, resume=resume, overwrite=overwrite)
    for name, result in results.items():
        typer.echo(f"stage {name}:")
        _print_result(result.test, result.run_dir, result.train_seconds)


def _print_result(test: dict[str, object], run_dir: Path, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="test metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in test.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(f"training took {seconds:.1f} s; run folder: {run_dir}")


@app.command()
def validate(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe file.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides.")] = None,
) -> None:
    """Check a recipe and report every problem at once (does not import torch)."""
    from domaintune.config import load_recipe
    from domaintune.config.pipeline import is_pipeline, load_pipeline

    try:
        if recipe.is_file() and is_pipeline(recipe):
            pipeline, _ = load_pipeline(recipe, list(overrides or []))
            typer.echo(f"{recipe}: ok ({len(pipeline.stages)} stages)")
            return
        load_recipe(recipe, list(overrides or []))
    except DomaintuneError as error:
        _fail(error)
    typer.echo(f"{recipe}: ok")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    data: Annotated[Path, typer.Option("--data", help="Labelled data file.")],
) -> None:
    """Evaluate a finished run on a labelled file."""
    from domaintune.api import evaluate as api_evaluate

    try:
        scores = api_evaluate(run_dir, data)
    except DomaintuneError as error:
        _fail(error)
        return
    _print_result(scores, run_dir, 0.0)


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(help="A finished run folder or an export folder.")],
    inputs: Annotated[Path, typer.Argument(help="Input file: .jsonl, .csv, .txt or .conll.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file: .jsonl, or .csv for CSV.")
    ],
    backend: Annotated[
        str, typer.Option(help="auto (ONNX exports on onnxruntime, else PyTorch), torch or onnx.")
    ] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Examples per batch (default: the run's).")
    ] = None,
    precision: PrecisionOption = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Predict labels (with probabilities) or entity spans (with character offsets).

    The input is streamed in chunks, sorted by length into batches, and written in input order.
    """
    from domaintune.api import predict_file
    from domaintune.errors import RunError

    try:
        if output.exists() and not overwrite:
            raise RunError(
                f"{output}: output file exists → pass --overwrite or choose another name"
            )
        stats = predict_file(
            source, inputs, output, backend=backend, batch_size=batch_size, precision=precision
        )
    except DomaintuneError as error:
        _fail(error)
        return
    typer.echo(
        f"wrote {stats['examples']} predictions to {output} ({stats['backend']} "
        f"{stats['precision']}, "
        f"{stats['examples_per_second']} examples/s)"
    )


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="safetensors, onnx or int8.")
    ] = "safetensors",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Export folder (default RUN_DIR/export-FORMAT)."),
    ] = None,
    sample: Annotated[
        Path | None, typer.Option(help="Texts to verify on (default: the run's test file).")
    ] = None,
    per_channel: Annotated[
        bool | None,
        typer.Option(
            "--per-channel/--per-tensor",
            help="int8: one weight scale per output channel or per tensor (default: per channel "
            "for token classification, per tensor for classification; docs/deploy.md).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export folder.")] = False,
) -> None:
    """Export a run (merged safetensors, ONNX or ONNX int8) and verify it against PyTorch."""
    from domaintune.api import export as api_export

    options = {"per_channel": per_channel} if format == "int8" and per_channel is not None else {}
    try:
        report = api_export(run_dir, format, output, overwrite=overwrite, sample=sample, **options)
    except DomaintuneError as error:
        _fail(error)
        return
    check = report["verification"]
    typer.echo(json.dumps(report, indent=1))
    typer.echo(
        f"exported {format} to {report['output']}: max abs logit difference "
        f"{check['max_abs_diff']:.3g}, {check['compared']} agreement "
        f"{check['label_agreement']:.4f} on {check['examples']} examples"
    )


@app.command()
def vocab(
    text_files: Annotated[
        list[Path],
        typer.Argument(help="Domain text: .txt (one document a line), .jsonl, .csv, .conll."),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Alias, model folder or hub id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="New model folder.")],
    min_count: Annotated[int, typer.Option(help="Only strings seen at least this often.")] = 2,
    max_new: Annotated[
        int | None, typer.Option(help="At most this many new strings (best first).")
    ] = None,
    min_pieces: Annotated[
        int, typer.Option(help="Add known-character words cut into at least this many pieces.")
    ] = 3,
    text_column: Annotated[str, typer.Option(help="Text column of .jsonl/.csv files.")] = "text",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
) -> None:
    """Add domain characters and words to a model's vocabulary (texts cleaned as in training)."""
    from pydantic import ValidationError

    from domaintune.config.sections import VocabExpansionConfig
    from domaintune.data.clean import clean_text
    from domaintune.data.readers import read_texts
    from domaintune.errors import ConfigError, DataError
    from domaintune.models.vocab import expand_model_folder

    try:
        try:
            cfg = VocabExpansionConfig(min_count=min_count, max_new=max_new, min_pieces=min_pieces)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                f"vocab: --{str(err['loc'][0]).replace('_', '-')}: {err['input']!r}: "
                f"{err['msg']} → pass a larger value"
            ) from None
        texts = [clean_text(t) for path in text_files for t in read_texts(path, text_column)]
        texts = [t for t in texts if t]
        if not texts:
            raise DataError(f"vocab: {text_files[0]}: no text in the files → pass domain text")
        report = expand_model_folder(model, texts, output, cfg, overwrite)
    except DomaintuneError as error:
        _fail(error)
        return
    before, after = report["before"], report["after"]
    typer.echo(
        f"unk rate {before['unk_rate']:.3%} → {after['unk_rate']:.3%}; pieces/word "
        f"{before['pieces_per_word']:.3f} → {after['pieces_per_word']:.3f}; "
        f"{len(report['added'])} tokens added ({report['init']['from_pieces']} from their pieces, "
        f"{report['init']['random']} random) in {report['seconds']:.1f} s; wrote {output}"
    )


def _shipped() -> dict[str, Path]:
    root = Path(str(resources.files("domaintune") / "recipes"))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


@recipes_app.command("list")
def recipes_list() -> None:
    """List the shipped recipes with their first comment line."""
    for name, path in _shipped().items():
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        typer.echo(f"{name:32s} {first}")


@recipes_app.command("copy")
def recipes_copy(
    name: Annotated[str, typer.Argument(help="Shipped recipe name (see 'recipes list').")],
    dest: Annotated[Path | None, typer.Argument(help="Where to write it.")] = None,
) -> None:
    """Copy a shipped recipe to edit it (never overwrites a file)."""
    from domaintune.errors import ConfigError

    shipped = _shipped()
    try:
        if name not in shipped:
            import difflib

            close = difflib.get_close_matches(name, list(shipped), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see 'domaintune recipes list'"
            raise ConfigError(f"recipes copy: {name!r}: no such recipe → {hint}")
        target = dest or Path(f"{name}.yaml")
        if target.exists():
            raise ConfigError(f"{target}: file exists → choose another destination")
    except DomaintuneError as error:
        _fail(error)
        return
    shutil.copyfile(shipped[name], target)
    typer.echo(f"copied {name} to {target}")


@app.command()
def analyse(
    domain: Annotated[
        Path, typer.Argument(help="Domain text: .txt (one document a line), .jsonl, .csv, .conll.")
    ],
    reference: Annotated[
        Path | None, typer.Option(help="General reference text to compare with (e.g. WikiText).")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Alias, model folder, .gguf or hub id.")
    ] = "minilm",
    task_data: Annotated[
        Path | None, typer.Option(help="Labelled task file (.jsonl/.csv with labels, .conll).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Text column of .jsonl/.csv files.")] = "text",
    label_column: Annotated[str, typer.Option(help="Label column of the task file.")] = "label",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the report as JSON.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    perplexity: Annotated[
        bool, typer.Option(help="Measure the model's perplexity on domain and reference text.")
    ] = True,
    max_ppl_tokens: Annotated[
        int, typer.Option(min=128, help="Perplexity: score about this many tokens per corpus.")
    ] = 20_000,
    max_docs: Annotated[
        int, typer.Option(min=1, help="Statistics on at most this many texts (seeded sample).")
    ] = 5_000,
) -> None:
    """Measure domain shift before training: vocabulary, tokenizer, perplexity, task data."""
    from domaintune.errors import RunError
    from domaintune.evaluation.shift import analyse_files, format_shift

    try:
        if output is not None and output.exists() and not overwrite:
            raise RunError(
                f"{output}: output file exists → pass --overwrite or choose another name"
            )
        report = analyse_files(
            domain,
            reference,
            model,
            task_data,
            text_column=text_column,
            label_column=label_column,
            perplexity=perplexity,
            max_ppl_tokens=max_ppl_tokens,
            max_docs=max_docs,
        )
    except DomaintuneError as error:
        _fail(error)
        return
    typer.echo(format_shift(report))
    if output is not None:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(output)
        typer.echo(f"wrote the report to {output}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
) -> None:
    """Rebuild report.html of a run folder (recipe, data, curves, errors, resources)."""
    from domaintune.api import report as api_report

    try:
        path = api_report(run_dir)
    except DomaintuneError as error:
        _fail(error)
        return
    typer.echo(f"wrote {path}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished run folders.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the comparison as HTML.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing HTML file.")] = False,
) -> None:
    """Compare runs: the recipe keys that differ and the main metrics."""
    from rich.console import Console

    from domaintune.api import compare as api_compare
    from domaintune.errors import RunError

    try:
        if html is not None and html.exists() and not overwrite:
            raise RunError(f"{html}: output file exists → pass --overwrite or choose another name")
        comparison = api_compare(list(run_dirs))
    except DomaintuneError as error:
        _fail(error)
        return
    from domaintune.reports.compare import comparison_html, comparison_tables

    console = Console()
    for table in comparison_tables(comparison):
        console.print(table)
    if html is not None:
        tmp = html.with_name(html.name + ".tmp")
        tmp.write_text(comparison_html(comparison), encoding="utf-8")
        tmp.replace(html)
        typer.echo(f"wrote {html}")


@app.command()
def serve(
    source: Annotated[
        Path, typer.Argument(help="A finished run folder or a 'domaintune export' folder.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    backend: Annotated[
        str, typer.Option(help="auto (ONNX exports on onnxruntime, else PyTorch), torch or onnx.")
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="onnxruntime intra-op threads (default: onnxruntime's own)."),
    ] = None,
    precision: PrecisionOption = "auto",
    max_batch_size: Annotated[
        int, typer.Option(help="Most texts per request, and per batched model call.")
    ] = 32,
    max_text_length: Annotated[int, typer.Option(help="Most characters per text.")] = 10_000,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            help="Extra wait (ms) for more requests after taking those queued while the model "
            "was busy; 0 = none (default: measured best, docs/reports.md)."
        ),
    ] = 0.0,
) -> None:
    """Serve predictions over HTTP: POST /predict, GET /health, GET /metadata, /docs."""
    from domaintune.api import serve as api_serve

    try:
        api_serve(
            source,
            host=host,
            port=port,
            backend=backend,
            threads=threads,
            precision=precision,
            max_batch_size=max_batch_size,
            max_text_length=max_text_length,
            max_wait_ms=max_wait_ms,
        )
    except DomaintuneError as error:
        _fail(error)


def main() -> None:
    """Entry point of the ``domaintune`` script."""
    app()


if __name__ == "__main__":
    main()
