"""The benchmark sections ``python -m bench`` knows about.

A section is a module that provides

* ``add_arguments(parser: argparse.ArgumentParser) -> None`` — its own options;
* ``run(args: argparse.Namespace, log) -> tuple[dict, bool]`` — measure, return a JSON-ready
  result (with ``"section": <name>``) and whether everything asked for ran;

and a renderer ``render(result: dict) -> str`` giving the section's Markdown body for
``docs/benchmarks.md``. The result is written to ``<out>/<name>.json``. A section whose module
does not exist yet (``speed``) is listed in the document as not yet measured.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["SECTIONS", "Section", "by_name"]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    module: str
    renderer: str  # "module:function"

    def load(self) -> ModuleType | None:
        """The section's module, or ``None`` if it is not part of this checkout yet."""
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name == self.module:
                return None
            raise

    def render_function(self) -> Callable[[dict[str, Any]], str] | None:
        mod_name, func = self.renderer.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                return None
            raise
        fn: Callable[[dict[str, Any]], str] = getattr(mod, func)
        return fn


SECTIONS: tuple[Section, ...] = (
    Section(
        "locomo",
        "Retrieval quality: LoCoMo",
        "bench.locomo_bench",
        "bench.report:render_locomo",
    ),
    Section(
        "retrieval",
        "Retrieval quality: both development sets, ablation, LoCoMo test",
        "bench.retrieval_bench",
        "bench.retrieval_bench:render",
    ),
    Section("speed", "Speed and scale", "bench.speed", "bench.speed:render"),
    Section(
        "postgres",
        "Speed on PostgreSQL (sealed and indexed vectors)",
        "bench.speed_postgres",
        "bench.speed_postgres:render",
    ),
    Section(
        "isolation",
        "Isolation: cross-scope leakage",
        "bench.isolation.section",
        "bench.isolation.section:render",
    ),
)


def by_name(name: str) -> Section:
    for s in SECTIONS:
        if s.name == name:
            return s
    raise KeyError(name)
