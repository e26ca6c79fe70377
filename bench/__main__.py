"""``python -m bench``: run the benchmarks and render ``docs/benchmarks.md``.

python -m bench run                  # every section, full size
python -m bench run --only locomo    # one section
python -m bench run --quick          # a few-minute subset, written to bench/results/quick/
python -m bench render               # re-render the document from the JSON results
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.sections import SECTIONS

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results"
DEFAULT_DOCS = REPO_ROOT / "docs" / "benchmarks.md"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="measure, write JSON results, render the document")
    r.add_argument("--quick", action="store_true", help="small subset, finishes in minutes")
    r.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable)",
    )
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results directory (default {DEFAULT_OUT.relative_to(REPO_ROOT)}, "
        "or its quick/ subdirectory with --quick)",
    )
    r.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="Markdown to render (default docs/benchmarks.md, or <out>/benchmarks.md with --quick)",
    )
    r.add_argument("--no-docs", action="store_true", help="write JSON only")
    for section in SECTIONS.values():
        section.add_arguments(r)

    d = sub.add_parser("render", help="render the document from existing JSON results")
    d.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    d.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="Markdown file to write")
    return p


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _render(out: Path, docs: Path) -> None:
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(report.render_document(out, docs_path=docs), encoding="utf-8")
    print(f"wrote {docs}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.cmd == "render":
        _render(args.out, args.docs)
        return 0

    args.out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    args.command_line = "python -m bench " + shlex.join(argv)
    wanted = args.only or list(SECTIONS)
    ok = True
    for section in SECTIONS.values():
        if section.name not in wanted:
            continue
        print(f"== {section.title}")
        result, section_ok = section.run(args)
        ok = ok and section_ok
        # A section may name another file (the speed section's scale run: speed_scale.json).
        path = args.out / str(result.get("result_file", f"{section.name}.json"))
        _write_json(path, result)
        print(f"wrote {path}")
    if not args.no_docs:
        docs = args.docs or (args.out / "benchmarks.md" if args.quick else DEFAULT_DOCS)
        _render(args.out, docs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
