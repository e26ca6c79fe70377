"""Markdown for the isolation benchmark: ``docs/isolation.md`` and its summary in
``docs/benchmarks.md``. Everything is rendered from the JSON result, never measured here."""

from __future__ import annotations

from typing import Any

from bench.isolation.tally import VECTORS

__all__ = ["cell", "leak_examples", "render_document", "render_summary", "summary_table"]

_SHOWN_LEAKS = 4  # per system and vector in the document; the JSON keeps every one

VECTOR_DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "1 search",
        "search for each victim memory's canary, tag, metadata value and topic, k = 1000 "
        "(every search mode and filter the system has)",
    ),
    ("2 ids", "get, history, update and delete with the victims' ids"),
    ("3 listing", "list / get_all / export, counts and pagination totals"),
    (
        "4 oracles",
        "does an answer (type, text, status) for a victim's id differ from one for an id that "
        "exists nowhere? plus a timing test on the id lookup",
    ),
    ("5 forgotten filter", "the same reads with the scope argument omitted or empty"),
    (
        "6 deletion residue",
        "victim memories deleted and the victim scope erased through its own handle, then every "
        "byte of the system's files scanned (while running, after close)",
    ),
    ("7 at rest", "victim canaries in the bytes of the system's files, while running and closed"),
    ("8 servers", "the system's REST / MCP server with scope A's credential"),
)


def cell(vector: dict[str, Any] | None) -> str:
    if vector is None:
        return "—"
    if vector["leaked"] is None:
        return "n/a" if vector.get("status") == "n/a" else "not run"
    n = vector["leaked"]
    return "**0**" if n == 0 else f"**{n}** ⚠"


def summary_table(result: dict[str, Any]) -> str:
    lines = [
        "| system | " + " | ".join(title for _k, title in VECTORS) + " |",
        "| --- | " + " | ".join("---:" for _ in VECTORS) + " |",
    ]
    for _name, sys_res in result.get("systems", {}).items():
        vectors = sys_res["vectors"]
        cells = [cell(vectors.get(k)) for k, _ in VECTORS]
        lines.append(f"| {sys_res['label']} | " + " | ".join(cells) + " |")
    for name, why in {**result.get("skipped", {}), **result.get("failed", {})}.items():
        lines.append(f"| {name} | " + " | ".join("—" for _ in VECTORS) + f" |  <!-- {why} -->")
    return "\n".join(lines)


#: Why a leak happens, by (system, vector): the API facts behind a number, shown next to it
#: only when the run found that leak.
WHY: dict[tuple[str, str], str] = {
    ("mem0", "ids"): "`get`, `update`, `delete` and `history` take a memory id and nothing else; "
    "no `user_id` is checked, so any id reads, overwrites or deletes another user's memory",
    ("mem0", "oracles"): "`get` answers `null` for an unknown id and the memory for a known "
    "one, and answers faster for an unknown id",
    ("mem0", "at_rest"): "memory text and metadata are stored in plaintext (Qdrant's local "
    "storage, `history.db`)",
    ("mem0", "residue"): "`history.db` keeps the text of every version, deleted memories "
    "included, after `delete` and `delete_all`",
    ("chroma-filter", "ids"): "`Collection.update(ids=...)` takes no `where=`: a caller scoped "
    "by its `user_id` filter overwrites another user's document by id",
    ("chroma-filter", "forgotten"): "`query`, `get` and `peek` without `where=` return every "
    "user's documents",
    ("chroma-filter", "at_rest"): "documents, metadata and ids are stored in plaintext",
    ("chroma-filter", "residue"): "deleted documents remain readable in the files",
    ("chroma-collections", "at_rest"): "documents, metadata and ids are stored in plaintext",
    ("chroma-collections", "residue"): "after `delete` and `delete_collection`, the documents "
    "remain readable in the files",
    ("mcp-memory", "at_rest"): "each scope's JSONL file holds its observations in plaintext",
}

SEVERANCE_WHY = (
    "Why Severance's cells are zero: a session is bound to one persona for its whole life and "
    "no read call takes a persona; another persona's id is simply not found, with the same "
    "error as an id that never existed; text, tags, metadata and (SQLite) vectors are "
    "encrypted with the persona's own AES-256-GCM key, so no file holds a canary in "
    "plaintext; clean slate destroys the persona's key and rewrites the freed pages "
    "(docs/security.md); the HTTP API and MCP over HTTP take a pass that pins one floor, and "
    "refuse requests without one."
)


def why_notes(result: dict[str, Any]) -> list[str]:
    """The explanations of the leaks this run found, one line each."""
    out = []
    titles = dict(VECTORS)
    for name, sys_res in result.get("systems", {}).items():
        for key, _t in VECTORS:
            if sys_res["vectors"][key].get("leaked") and (name, key) in WHY:
                out.append(f"- **{sys_res['label']}**, {titles[key]}: {WHY[name, key]}.")
    return out


def _severance_clean(result: dict[str, Any]) -> bool:
    rows = [r for n, r in result.get("systems", {}).items() if n.startswith("severance")]
    return bool(rows) and all(v["leaked"] == 0 for r in rows for v in r["vectors"].values())


def leak_examples(result: dict[str, Any]) -> str:
    """One row per leaking (system, vector): the count and the first call that leaked."""
    rows = [
        "| system | vector | victim memories | first call that leaked |",
        "| --- | --- | ---: | --- |",
    ]
    titles = dict(VECTORS)
    for sys_res in result.get("systems", {}).values():
        for key, _t in VECTORS:
            v = sys_res["vectors"][key]
            if v.get("leaked") and v.get("leaks"):
                first = v["leaks"][0]
                call = first["call"]
                if key in ("at_rest", "residue"):
                    call = f"{call}: {first['evidence']}"
                call = call.replace("|", "\\|")
                if len(call) > 180:
                    call = call[:177] + "..."
                rows.append(f"| {sys_res['label']} | {titles[key]} | {v['leaked']} | `{call}` |")
    return "\n".join(rows) if len(rows) > 2 else "No leak was found in any system."


def _victims(result: dict[str, Any]) -> int:
    sizes = result.get("sizes", {})
    return int(sizes.get("memories_per_scope", 0)) * (len(sizes.get("scopes", [])) - 1)


def render_summary(result: dict[str, Any]) -> str:
    return (
        f"Cross-scope leakage, in victim memories reached (of {_victims(result)}) by the holder "
        "of one scope's handle; **0** everywhere is the goal, n/a where a design has no scope "
        "for that vector. Definitions, configurations, every leak's exact call: "
        "[isolation.md](isolation.md).\n\n" + summary_table(result)
    )


def _machine(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    return (
        f"{m.get('cpus')} CPU cores ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"{m.get('platform')}, Python {m.get('python')}; 1-minute load average "
        f"{result.get('load_average')} at the start"
    )


def _system_section(name: str, sys_res: dict[str, Any]) -> list[str]:
    out = [f"### {sys_res['label']}", ""]
    info = sys_res.get("info", {})
    for key, value in info.items():
        out.append(f"- **{key}**: {value}")
    check = sys_res.get("self_check")
    out.append(f"- **run time**: {sys_res.get('seconds')} s; self-check {check}")
    out.append("")
    for key, title in VECTORS:
        v = sys_res["vectors"][key]
        head = f"- **{title}**: {cell(v)} ({v['probes']} calls)"
        out.append(head)
        for note in v.get("notes", []):
            out.append(f"  - {note}")
        calls = v.get("calls") or {}
        if calls:
            shown = "; ".join(f"`{c}`" + (f" ×{n}" if n > 1 else "") for c, n in calls.items())
            out.append(f"  - calls made (ids, canaries: <…>; topic sentences: <topic>): {shown}")
        leaks = v.get("leaks", [])
        for leak in leaks[:_SHOWN_LEAKS]:
            items = f"{len(leak['items'])} victim memories" if leak["items"] else "a count"
            out.append(f"  - leak ({items}): `{leak['call']}` → {leak['evidence'][:240]!r}")
        if len(leaks) > _SHOWN_LEAKS:
            out.append(
                f"  - … and {len(leaks) - _SHOWN_LEAKS} more leaking calls (every one in "
                f"`bench/results/isolation.json`, systems.{name}.vectors.{key}.leaks)"
            )
    out.append("")
    return out


def render_document(result: dict[str, Any]) -> str:
    sizes = result.get("sizes", {})
    scopes = sizes.get("scopes", [])
    parts = [
        "# Isolation benchmark: cross-scope leakage in memory layers",
        "",
        "<!-- Generated by bench/isolation/report.py from bench/results/isolation.json. -->",
        "",
        "Every memory layer says it keeps users, agents or projects apart. This measures it: "
        f"one person, {len(scopes)} scopes ({', '.join(f'`{s}`' for s in scopes)}), "
        f"{sizes.get('memories_per_scope')} memories in each. Every memory carries a canary "
        "(`cnry` + 12 random hex digits, new every run) in its text, a tag, a metadata value "
        "and, where the caller picks ids, its id. The caller holds the handle the system's own "
        f"docs give for scope `{scopes[0] if scopes else 'A'}` and tries to reach the other "
        "scopes through every public operation. A cell counts **victim memories** (of "
        f"{_victims(result)}) that the operation read, changed, deleted, counted or revealed; "
        "a memory reached by many calls counts once. **n/a** means the design has no scope "
        "for that vector (not a zero). A leak is counted only through public API used as "
        "documented, or in the files the system itself writes.",
        "",
        "## Results",
        "",
        summary_table(result),
        "",
        "### Leaks found (the first call of each; every call is in the JSON)",
        "",
        leak_examples(result),
        "",
        *(["### Why", "", *why_notes(result), ""] if why_notes(result) else []),
        *([SEVERANCE_WHY, ""] if _severance_clean(result) else []),
        "## The vectors",
        "",
        *[f"- **{t}**: {d}." for t, d in VECTOR_DEFINITIONS],
        "",
        "Before any probe, a self-check: scope A's handle must find its own memory by canary and "
        "list all its own memories, so a zero is never an adapter that returns nothing. The "
        "timing oracle times the id lookup on a victim's id and on an absent id in "
        f"{sizes.get('timing_reps')} interleaved pairs (random order within each pair, after a "
        "warm-up) and applies a two-sided Mann-Whitney U test; it counts as a leak only at "
        "p < 0.001 *and* medians at least 1.10x apart.",
        "",
        "## Reproduce",
        "",
        "```sh",
        "python -m venv .venv && .venv/bin/pip install -e '.[test,bench]'",
        "(cd bench/isolation/node && npm ci)   # the reference MCP memory server, pinned",
        f"{result.get('command')}",
        "```",
        "",
        f"Measured {result.get('measured_at')} on {_machine(result)}; run time "
        f"{result.get('run_seconds')} s.",
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in result.get("packages", {}).items() if v)
        + ".",
        "",
    ]
    skipped = {
        **result.get("not_included", {}),
        **result.get("skipped", {}),
        **result.get("failed", {}),
    }
    if skipped:
        parts += ["Not run:", ""]
        parts += [f"- **{k}**: {v}" for k, v in skipped.items()]
        parts.append("")
    parts += ["## Systems: configuration, calls and every leak", ""]
    for name, sys_res in result.get("systems", {}).items():
        parts += _system_section(name, sys_res)
    return "\n".join(parts).rstrip() + "\n"
