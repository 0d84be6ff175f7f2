"""The `circexport` command line: a thin Click shell; each command parses options and calls one function."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show a trainer.errors.UserError (or Ctrl-C) as one line and exit non-zero, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from trainer.errors import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circexport")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train weight-sparse transformers, prune them into circuits, publish the circuits as a static site."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--config", "config", help="Shipped config name (tiny, demo, demo-dense, paper-1x) or a TOML file.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<config name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. train.steps=100.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_user_errors
def train(config: str | None, out: Path | None, overrides: tuple[str, ...], resume: bool, device: str, quiet: bool) -> None:
    """Train a sparse or dense GPT on the standard-library corpus (torchrun for many processes)."""
    from trainer.train import run_training

    path = run_training(config, out, overrides, resume=resume, device=device, quiet=quiet)
    click.echo(f"run written to {path}")


if __name__ == "__main__":
    main()
