"""The build's runs written by parallel processes: forked children share the parsed runs (no model is pickled), take
runs from a queue, largest first, and send back each run's summary."""

from __future__ import annotations

import multiprocessing
import os
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from exporter import pages
from exporter.inputs import RunInput
from exporter.render import SiteWriter
from trainer.errors import UserError


def auto_jobs(runs: list[RunInput], device: str) -> int:
    """Processes a build uses by default: one per core, at most one per run; one when the tables run on a GPU (a
    forked child cannot use CUDA) or where processes cannot be forked."""
    if device != "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(os.cpu_count() or 1, len(runs)))


def work(run: RunInput) -> float:
    """A run's rough cost, to start the largest first: its model's size, once and per circuit, and its node pages."""
    return (1 + len(run.circuits)) * max(1.0, run.dense_bytes / 4e6) + sum(len(c.node_ids) for c in run.circuits) / 200


def write_models(root: Path, runs: list[RunInput], samples: list[pages.Samples], options: Any, jobs: int,
                 bar: tqdm) -> list[dict[str, Any]]:
    """Every run's pages and files under root, by `jobs` processes; the runs' summaries in run order."""
    jobs = min(jobs, len(runs))
    if jobs <= 1:
        site = SiteWriter(root)
        return [pages.write_model(site, r, s, options, bar) for r, s in zip(runs, samples)]
    ctx = multiprocessing.get_context("fork")
    todo = ctx.SimpleQueue()
    for i in sorted(range(len(runs)), key=lambda i: (-work(runs[i]), i)):
        todo.put(i)
    for _ in range(jobs):
        todo.put(None)  # one stop sign per process
    threads = max(1, torch.get_num_threads() // jobs)
    procs: dict[Connection, multiprocessing.process.BaseProcess] = {}
    try:
        for _ in range(jobs):
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(root, runs, samples, options, threads, todo, writer), daemon=True)
            proc.start()
            writer.close()  # the child holds the only writer: its exit ends the parent's reads
            procs[reader] = proc
        return _collect(procs, runs, bar)
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _collect(procs: dict[Connection, Any], runs: list[RunInput], bar: tqdm) -> list[dict[str, Any]]:
    """Receive the summaries until every process has ended; re-raise the first error a process sent."""
    summaries: dict[int, dict[str, Any]] = {}
    live = dict(procs)
    while live:
        for reader in wait(list(live)):
            try:
                i, value = reader.recv()
            except EOFError:
                proc = live.pop(reader)
                proc.join()
                if proc.exitcode:
                    how = f"was killed by signal {-proc.exitcode}" if proc.exitcode < 0 else f"exited with {proc.exitcode}"
                    raise UserError(f"a build process {how} (out of memory?); the previous site is untouched; "
                                    "try fewer processes (--jobs 1)")
                continue
            if i is None:
                raise value
            summaries[i] = value
            bar.update(2 + len(runs[i].circuits))
    return [summaries[i] for i in range(len(runs))]


def _worker(root: Path, runs: list[RunInput], samples: list[pages.Samples], options: Any, threads: int,
            todo: Any, conn: Connection) -> None:
    """One build process: write runs taken from `todo` until its stop sign; send (index, summary) or (None, error)."""
    torch.set_num_threads(threads)
    site = SiteWriter(root)
    bar = tqdm(disable=True)  # the parent's bar counts the runs as they come back
    try:
        while (i := todo.get()) is not None:
            conn.send((i, pages.write_model(site, runs[i], samples[i], options, bar)))
    except BaseException as e:  # noqa: BLE001 - every failure goes to the parent, which raises it
        try:
            conn.send((None, e))  # a UserError travels as it is
        except Exception:  # noqa: BLE001 - an error the pipe cannot carry goes as its traceback's text
            conn.send((None, RuntimeError("".join(traceback.format_exception(e)))))
    finally:
        conn.close()
