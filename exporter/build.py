"""`circexport build`: read and validate every run and circuit, compute activation tables and ONNX models, render
the site into a temporary folder, then swap it in, so a failed build leaves the previous site untouched."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from exporter import pages, workers
from exporter.inputs import RunInput, demo_runs, read_runs
from exporter.render import ASSETS, SiteWriter, template_dir
from exporter.tables import TableConfig, sample_windows, task_sample
from trainer.cputune import return_freed_memory
from trainer.errors import UserError
from trainer.fileio import exchange_paths, overlaps, read_json
from trainer.mixture import load_text
from trainer.schema import MANIFEST_FORMAT, SITE_MANIFEST, read_manifest

try:
    import fcntl  # POSIX: one build at a time per output folder
except ImportError:  # Windows: no lock
    fcntl = None

PAGES_FILE_LIMIT = 100 * 10**6  # bytes: GitHub refuses larger files (and Pages publishes from git)
PAGES_SITE_LIMIT = 10**9  # bytes: the most a GitHub Pages site may publish
LARGE_MODEL_BYTES = 256 * 10**6  # a build with a model this large (dense fp32) returns freed memory to the OS at once


@dataclass(frozen=True)
class BuildOptions:
    """What `circexport build` does beyond reading its inputs."""

    tables: TableConfig = field(default_factory=TableConfig)
    onnx: bool = True  # export every model and circuit to ONNX and check it against PyTorch
    standalone: bool = False  # also one self-contained d3graph HTML file per circuit (extra circexport[d3graph])
    site_url: str = ""  # absolute URL the site will live at, for permalinks and BibTeX (else taken from the page)
    device: str = "cpu"  # where the activation tables are computed (the CLI resolves --device auto|cpu|cuda)
    live_budget: int = 256 * 10**6  # bytes of rebuilt weights one model may take in the page's live panel (else not run there)
    pages: bool = False  # GitHub Pages' limits on file and site size are errors (else warnings)
    jobs: int = 0  # processes writing runs in parallel; 0: one per core, at most one per run (workers.auto_jobs)
    quiet: bool = False


@dataclass(frozen=True)
class BuildReport:
    """What a build wrote."""

    out: Path
    models: int
    circuits: int
    node_pages: int
    files: int
    bytes: int
    largest: tuple[str, int]  # the largest file (site-relative path) and its size
    seconds: float
    warnings: tuple[str, ...] = ()  # GitHub Pages limits the site exceeds (errors with BuildOptions.pages), and
    # runs whose tables come from another corpus than the one they were trained on (see corpus_note)

    def summary(self) -> str:
        """The final line of `circexport build`."""
        return (f"built {self.out}: {self.models} models, {self.circuits} circuits, {self.node_pages} node pages; "
                f"{self.files} files, {self.bytes / 1e6:.1f} MB (largest {self.largest[0]}, {self.largest[1] / 1e6:.1f} MB) "
                f"in {self.seconds:.1f} s")


def build(run_dirs: list[Path], out: Path, options: BuildOptions = BuildOptions()) -> BuildReport:
    """Build the static site of the given runs (the shipped demo runs when none) into `out`."""
    t0 = time.perf_counter()
    check_options(options)
    runs = read_runs(list(run_dirs) or demo_runs())  # every input read and validated before any write
    out = Path(out)
    check_output(out, runs)
    if max((r.dense_bytes for r in runs), default=0) >= LARGE_MODEL_BYTES:
        return_freed_memory()  # peak memory over speed for large models (see trainer.cputune)
    template_dir()
    texts: dict = {}  # runs with the same corpus and tokenizer share their sample text
    samples = [prepare(r, options, texts) for r in runs]
    notes = [note for r, s in zip(runs, samples) if (note := corpus_note(r, s))]
    steps = sum(2 + len(r.circuits) for r in runs) + 1
    with tqdm(total=steps, desc="build", unit="step", disable=options.quiet) as bar, staging(out) as tmp:
        jobs = options.jobs or workers.auto_jobs(runs, options.device)
        summaries = workers.write_models(tmp, runs, samples, options, jobs, bar)
        site = SiteWriter(tmp)
        pages.write_home(site, summaries)
        site.copy_assets()
        site.write(".nojekyll", b"")
        write_manifest(tmp, runs)
        bar.update(1)
        sizes = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in tmp.rglob("*") if p.is_file()}
        warnings = pages_limits(sizes, out)
        if warnings and options.pages:
            raise UserError(f"{warnings[0]}: leave out runs, or their ONNX models (--no-onnx), to publish on GitHub Pages; "
                            "the previous site is untouched")
    largest = max(sorted(sizes.items()), key=lambda kv: kv[1])
    return BuildReport(out=out, models=len(runs), circuits=sum(len(r.circuits) for r in runs),
                       node_pages=sum(len(c.record["nodes"]) for r in runs for c in r.circuits),
                       files=len(sizes), bytes=sum(sizes.values()), largest=largest, seconds=time.perf_counter() - t0,
                       warnings=(*warnings, *notes))


def pages_limits(sizes: dict[str, int], out: Path) -> list[str]:
    """What in a site (site-relative path -> bytes) exceeds GitHub Pages' limits, one line each, naming the file."""
    lines = [f"{out / path} is {n / 1e6:.1f} MB, over GitHub's limit of {PAGES_FILE_LIMIT / 1e6:.0f} MB per file "
             "(git hosting refuses it)" for path, n in sorted(sizes.items()) if n > PAGES_FILE_LIMIT]
    total = sum(sizes.values())
    if total > PAGES_SITE_LIMIT:
        lines.append(f"{out} is {total / 1e6:.1f} MB, over GitHub Pages' limit of {PAGES_SITE_LIMIT / 1e6:.0f} MB per site")
    return lines


def prepare(run: RunInput, options: BuildOptions, texts: dict) -> pages.Samples:
    """Read the text each run's tables are computed on: corpus windows and each circuit's task pairs (`texts` keeps
    the windows and characters of each corpus and tokenizer already read in this build)."""
    key = (repr(run.run.cfg.data), run.tokenizer.to_str())
    if key not in texts:
        text = load_text(run.run.cfg.data, run.tokenizer, None, shards=False)
        texts[key] = (sample_windows(run, text, options.tables), text.chars(), text.record()["sha256"])
    windows, chars, corpus_sha = texts[key]
    tasks = {c.slug: task_sample(run, c, options.tables.task_pairs) for c in run.circuits}
    return pages.Samples(windows=windows, tasks=tasks, chars=chars if run.circuits else "", corpus_sha256=corpus_sha)


def corpus_note(run: RunInput, samples: pages.Samples) -> str | None:
    """Why this build's tables of a run differ from a build on the machine it was trained on, if they do: the
    standard library's source (the corpus) differs between Python versions, and the tables sample it."""
    recorded = run.run.provenance.get("corpus_sha256")
    if recorded is None or recorded == samples.corpus_sha256:
        return None
    return (f"{run.run.path}: its activation tables are sampled from this machine's corpus (sha256 "
            f"{samples.corpus_sha256[:12]}…, Python {platform.python_version()}), not the one the run was trained on "
            f"({str(recorded)[:12]}…, Python {run.run.provenance.get('python', '?')}): build on that Python version "
            "for the same site")


def check_options(options: BuildOptions) -> None:
    """Options that no build can use: a site URL that is not an http(s) address."""
    if options.site_url and not re.fullmatch(r"https?://[^\s\"'<>]+", options.site_url):
        raise UserError(f"--site-url {options.site_url!r}: give the http:// or https:// address the site will be "
                        "published at (or leave it out)")


def check_output(out: Path, runs: list[RunInput]) -> None:
    """The output must be a new or empty folder, or a site an earlier build wrote (it is replaced whole), and must
    neither hold nor lie inside an input run."""
    for r in runs:
        if overlaps(out, r.run.path):
            raise UserError(f"output {out} overlaps the input run {r.run.path} (a build replaces its output folder "
                            "whole); choose an -o outside every run")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} is a file, not a folder; choose another -o")
    if out.is_dir() and any(out.iterdir()):
        if not (out / SITE_MANIFEST).is_file():
            raise UserError(f"output {out} is a non-empty folder that is not a circexport site (no {SITE_MANIFEST}); "
                            "choose a new or empty folder, since a build replaces the whole folder")
        listed = set(read_manifest(read_json(out / SITE_MANIFEST), out / SITE_MANIFEST)["files"]) | {SITE_MANIFEST}
        files = (p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
        extra = sorted(f for f in files if f not in listed)
        if extra:
            raise UserError(f"output {out} holds {len(extra)} file(s) the build did not write ({extra[0]}), which "
                            "replacing the site would delete; move them out or choose another -o")


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temporary folder next to `out` that takes its place in one step when the block succeeds (the previous site
    stays at `out` up to that instant) and is deleted when it fails; one build at a time per output folder."""
    with output_lock(out):
        remove_stale(out)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        except OSError as e:
            raise UserError(f"cannot write the site to {out}: {e.strerror or e}; choose another -o") from None
        try:
            yield tmp
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; a site is for reading
            publish(tmp, out)
        except OSError as e:
            raise UserError(f"cannot write the site to {out}: {e.strerror or e}; the previous site is untouched") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after a swap, the previous site


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the lock file `.<name>.lock` next to `out` for the block; a UserError while another build holds it."""
    path = out.parent / f".{out.name}.lock"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot write the site to {out}: {e.strerror or e}; choose another -o") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another circexport build is writing {out} (it holds {path}); wait for it to end, "
                                "or choose another -o") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale(out: Path) -> None:
    """Clean what interrupted builds left next to `out` (the lock is held: no build is running): a previous site
    left aside by a build killed between two renames goes back to `out` if `out` is missing; the rest is deleted."""
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        if not out.exists() and (old / "site" / SITE_MANIFEST).is_file():
            os.replace(old / "site", out)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in out.parent.glob(f".{out.name}.building-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out: Path) -> None:
    """Put the built site at `out` in one step: swapped with the previous site (which lands in `tmp`), or renamed
    where there is none. Where the system cannot swap, two renames, and a kill between them leaves the previous site
    in `.<name>.old-*`, which the next build puts back."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if exchange_paths(tmp, out):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / "site")
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old / "site", out)  # put the previous site back
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(root: Path, runs: list[RunInput]) -> None:
    """manifest.json: every file of the site with its sha256 and size, and the inputs it was built from."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            files[p.relative_to(root).as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    inputs = {r.slug: {"model_sha256": r.model_sha, "circuits": {c.slug: hashlib.sha256(c.path.read_bytes()).hexdigest()
                                                               for c in r.circuits}} for r in runs}
    record = {"format_version": MANIFEST_FORMAT, "generator": "circexport", "files": files, "inputs": inputs,
              "vendored": [f"{ASSETS}/vendor/"]}
    (root / SITE_MANIFEST).write_text(json.dumps(record, sort_keys=True, indent=1) + "\n", encoding="utf-8")
