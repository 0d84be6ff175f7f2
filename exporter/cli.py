"""The `circexport` command line: a thin Click shell; each command parses options and calls one function."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a trainer.errors.UserError (or Ctrl-C) as one line and exit non-zero (130 after Ctrl-C), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from trainer.errors import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            error = click.ClickException(str(e))
            error.exit_code = e.exit_code  # 130 after Ctrl-C, as a shell reports SIGINT
            raise error from None
        except KeyboardInterrupt:
            error = click.ClickException("interrupted")
            error.exit_code = 130
            raise error from None
        except OSError as e:  # a destination that turned read-only or full while writing: files are written
            if e.filename is None:  # atomically, so what was there is kept
                raise
            raise click.ClickException(f"{e.filename}: {e.strerror}; free space or choose a writable destination") from None

    return wrapper


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """A float option's value, refused when NaN (a FloatRange lets NaN through: it compares false with both ends)."""
    if math.isnan(value):
        raise click.BadParameter("nan is not a number")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circexport")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train weight-sparse transformers, prune them into circuits, publish the circuits as a static site."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--config", "config", help="Shipped config name (tiny, demo, demo-dense, demo-dense-topk, frontier, paper-1x) or a TOML file.")
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Run directory (default runs/<config name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. train.steps=100.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train (auto: CUDA when there is one; torchrun: one GPU per process).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def train(config: str | None, out: Path | None, overrides: tuple[str, ...], resume: bool, device: str, quiet: bool) -> None:
    """Train a sparse or dense GPT on the standard-library corpus (torchrun for many processes)."""
    from trainer.train import run_training

    path = run_training(config, out, overrides, resume=resume, device=device, quiet=quiet)
    click.echo(f"run written to {path}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Directory of the new run.")
@click.option("--step", type=click.IntRange(1), help="Take the weights kept at this step.")
@click.option("--match", "match_run", type=click.Path(path_type=Path),
              help="Take the step whose validation loss is closest to this run's final one.")
@_user_errors
def snapshot(run_dir: Path, out: Path, step: int | None, match_run: Path | None) -> None:
    """Make the weights RUN_DIR kept at one step (train.snapshot_every) a run of their own, e.g. a loss-matched baseline."""
    from trainer.snapshot import final_val_loss, matching_step, take_snapshot, val_losses

    if (step is None) == (match_run is None):
        raise click.UsageError("give exactly one of --step and --match")
    if match_run is not None:
        target = final_val_loss(match_run)
        step = matching_step(run_dir, target)
        click.echo(f"{match_run} ends at val loss {target:.4f}; {run_dir} at step {step}: {val_losses(run_dir)[step]:.4f}")
    click.echo(f"run written to {take_snapshot(run_dir, step, out)}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--task", "tasks", multiple=True, default=["all"], show_default=True, help="Task name (repeatable) or 'all'.")
@click.option("--target-loss", type=float, default=0.15, show_default=True, help="Task loss the circuit must reach.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="Tasks pruned in parallel processes.")
@click.option("--mean-tokens", type=click.IntRange(1, 1 << 40), default=1 << 20, show_default=True,
              help="Pretraining tokens behind the means (fewer is faster; the circuit file states the error bar).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the model, the means and the pruning run (auto: CUDA when there is one).")
@click.option("--faithful-only", is_flag=True,
              help="Write only circuits that pass every check on the test split; the table lists the others.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def prune(run_dir: Path, tasks: tuple[str, ...], target_loss: float, jobs: int, mean_tokens: int, device: str,
          faithful_only: bool, quiet: bool) -> None:
    """Find each learned task's smallest circuit; write RUN_DIR/circuits/<task>.json."""
    from trainer.jobs import job_config, prune_run, summary_table

    cfg = job_config(target_loss=target_loss, jobs=jobs, mean_tokens=mean_tokens, device=device,
                     faithful_only=faithful_only, quiet=quiet)
    click.echo(summary_table(prune_run(run_dir, list(tasks), cfg), target_loss))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option("--target-loss", type=float, default=0.15, show_default=True, help="Loss at which a task counts as learned.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def tasks(run_dir: Path | None, target_loss: float, quiet: bool) -> None:
    """List the tasks; with RUN_DIR, the unpruned model's loss and accuracy on each."""
    from trainer.jobs import job_config, list_tasks, summary_table

    click.echo(summary_table(list_tasks(run_dir, job_config(target_loss=target_loss, quiet=quiet)), target_loss))


@main.group()
def corpus() -> None:
    """The training text a config reads."""


@corpus.command("stats")
@click.option("--config", "config", default="demo", show_default=True, help="Shipped config name or a TOML file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. data.tinypython=0.8.")
@click.option("--mb", type=click.FloatRange(0.01, 1000), default=4.0, show_default=True, callback=_finite,
              help="MB of each component's text to scan.")
@_user_errors
def corpus_stats(config: str, overrides: tuple[str, ...], mb: float) -> None:
    """How often the training text shows each task's decisive pattern, per component; flags what it never shows."""
    from trainer.config import load_config
    from trainer.corpusstats import component_texts, pattern_counts, stats_table

    cfg = load_config(config, overrides)
    texts = component_texts(cfg.data, int(mb * 1e6))
    rows = pattern_counts(texts)
    click.echo(stats_table(rows, list(texts)))
    unseen = [r.task for r in rows if r.unseen]
    if unseen:
        click.echo(f"warning: the training text never shows {', '.join(unseen)}: a model trained on it cannot learn "
                   "them", err=True)


@main.command("import-openai")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path), help="Folder with vocab.bpe and encoder.json (default: SRC).")
@_user_errors
def import_openai(src: Path, out: Path, tokenizer_dir: Path | None) -> None:
    """Convert an openai/circuit_sparsity model (beeg_config.json, final_model.pt, tinypython_2k) into the run OUT."""
    from trainer.openai_import import import_openai as convert_model

    imported = convert_model(src, out, tokenizer_dir)
    for note in imported.notes:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"run written to {imported.path}")


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True, help="Site folder (replaced whole).")
@click.option("--sample-tokens", type=click.IntRange(64, 1 << 24), default=32768, show_default=True,
              help="Pretraining tokens behind the activation tables.")
@click.option("--examples", type=click.IntRange(1, 64), default=8, show_default=True, help="Activation examples per node at each end.")
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX models (and their parity check).")
@click.option("--standalone", is_flag=True, help="Also one self-contained HTML graph per circuit (needs circexport[d3graph]).")
@click.option("--site-url", default="", help="URL the site will be published at, for permalinks and BibTeX.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the activation tables are computed (auto: CUDA when there is one).")
@click.option("--live-budget", type=click.IntRange(1), default=256, show_default=True, metavar="MB",
              help="Largest model (MB of weights once rebuilt) the live panel runs in the page; larger ones show build-time numbers.")
@click.option("--pages", is_flag=True, help="Fail (not just warn) when a file exceeds 100 MB or the site 1 GB (GitHub Pages' limits).")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, show_default=True,
              help="Processes writing runs in parallel (0: one per core, at most one per run; 1 with a GPU).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def build(run_dirs: tuple[Path, ...], out: Path, sample_tokens: int, examples: int, no_onnx: bool, standalone: bool,
          site_url: str, device: str, live_budget: int, pages: bool, jobs: int, quiet: bool) -> None:
    """Build the static circuit site of RUN_DIRs (default: the demo runs shipped in the package)."""
    from exporter.build import BuildOptions, build as build_site
    from exporter.tables import TableConfig
    from trainer.jobs import resolve_device

    options = BuildOptions(tables=TableConfig(tokens=sample_tokens, examples=examples), onnx=not no_onnx,
                           standalone=standalone, site_url=site_url, device=str(resolve_device(device)),
                           live_budget=live_budget * 10**6, pages=pages, jobs=jobs, quiet=quiet)
    report = build_site(list(run_dirs), out, options)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(report.summary())


@main.command()
@click.argument("site_dir", type=click.Path(path_type=Path), default=Path("site"))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port on 127.0.0.1 (0: any free one).")
@_user_errors
def serve(site_dir: Path, port: int) -> None:
    """Preview a built site over http on 127.0.0.1 (the site also opens from disk)."""
    from exporter.serve import serve as serve_site

    serve_site(site_dir, port)


if __name__ == "__main__":
    main()
