"""The benchmark sections ``python -m bench`` knows about: a dict of name -> :class:`Section`.

A section is three callables:

* ``add_arguments(parser: argparse.ArgumentParser) -> None`` — its own options;
* ``run(args: argparse.Namespace) -> tuple[dict, bool]`` — measure, return a JSON-ready
  result (with ``"section": <name>``) and whether everything asked for ran;
* ``render(result: dict) -> str`` — the section's Markdown body for ``docs/benchmarks.md``.

The result is written to ``<out>/<name>.json``. Each callable imports its section's module
when called, not when this module is imported: listing the sections, ``--help`` and rendering
stay cheap, and a section's peer libraries (chromadb, mem0, psycopg...) are only imported by
the code that uses them, so a peer that is not installed only skips itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SECTIONS", "Section", "by_name"]

Result = dict[str, Any]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], tuple[Result, bool]]
    render: Callable[[Result], str]


# -- locomo -----------------------------------------------------------------------------------


def _locomo_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import locomo_bench

    locomo_bench.add_arguments(parser)


def _locomo_run(args: argparse.Namespace) -> tuple[Result, bool]:
    from bench import locomo_bench

    return locomo_bench.run(args)


def _locomo_render(result: Result) -> str:
    from bench import report

    return report.render_locomo(result)


# -- retrieval --------------------------------------------------------------------------------


def _retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import retrieval_bench

    retrieval_bench.add_arguments(parser)


def _retrieval_run(args: argparse.Namespace) -> tuple[Result, bool]:
    from bench import retrieval_bench

    return retrieval_bench.run(args)


def _retrieval_render(result: Result) -> str:
    from bench import retrieval_bench

    return retrieval_bench.render(result)


# -- speed ------------------------------------------------------------------------------------


def _speed_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import speed

    speed.add_arguments(parser)


def _speed_run(args: argparse.Namespace) -> tuple[Result, bool]:
    from bench import speed

    return speed.run(args)


def _speed_render(result: Result) -> str:
    from bench import speed_render

    return speed_render.render(result)


# -- postgres ---------------------------------------------------------------------------------


def _postgres_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import speed_postgres

    speed_postgres.add_arguments(parser)


def _postgres_run(args: argparse.Namespace) -> tuple[Result, bool]:
    from bench import speed_postgres

    return speed_postgres.run(args)


def _postgres_render(result: Result) -> str:
    from bench import speed_postgres

    return speed_postgres.render(result)


# -- isolation --------------------------------------------------------------------------------


def _isolation_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.isolation import section

    section.add_arguments(parser)


def _isolation_run(args: argparse.Namespace) -> tuple[Result, bool]:
    from bench.isolation import section

    return section.run(args)


def _isolation_render(result: Result) -> str:
    from bench.isolation import section

    return section.render(result)


#: Every section, in run and document order.
SECTIONS: dict[str, Section] = {
    s.name: s
    for s in (
        Section(
            "locomo",
            "Retrieval quality: LoCoMo",
            _locomo_arguments,
            _locomo_run,
            _locomo_render,
        ),
        Section(
            "retrieval",
            "Retrieval quality: both development sets, ablation, LoCoMo test",
            _retrieval_arguments,
            _retrieval_run,
            _retrieval_render,
        ),
        Section("speed", "Speed and scale", _speed_arguments, _speed_run, _speed_render),
        Section(
            "postgres",
            "Speed on PostgreSQL (sealed and indexed vectors)",
            _postgres_arguments,
            _postgres_run,
            _postgres_render,
        ),
        Section(
            "isolation",
            "Isolation: cross-scope leakage",
            _isolation_arguments,
            _isolation_run,
            _isolation_render,
        ),
    )
}


def by_name(name: str) -> Section:
    """The section called ``name``; :class:`KeyError` if there is none."""
    return SECTIONS[name]
