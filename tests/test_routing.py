"""Routing end to end: the right persona wakes for what real clients send, from real places.

One table of (client name as sent, roots or cwd, host, time) -> expected persona, over the
documented client families, run three ways: through ``Store.resolve``; through the real MCP
server in process with the official SDK client (time injected through ``floors.clock``); and
through a real ``severance serve --mcp`` over stdio, started in the row's directory, for every
row that does not depend on the time of day. Then the CLI from real directories, one of them
reached through a symlink; strict mode; notices on every interface; HTTP naming the persona.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, ListRootsResult, Root

import severance
from server_process import server_env, serving
from severance import floors as floors_module
from severance.http import create_app
from severance.mcp import create_mcp_server
from severance.passes import Passes

HOST = socket.gethostname()
MONDAY_NOON = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
MONDAY_LATE = datetime(2024, 6, 3, 22, 30, tzinfo=UTC)
ENTRY = "from severance.cli import main; main()"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Row:
    client: str
    place: str  # key into the places fixture: where the client runs
    how: str  # "roots" (the client sends workspace roots) or "cwd" (it starts us there)
    expected: str
    at: datetime | None = None  # None: the row does not depend on the time of day
    #: Also through a real stdio server (a process each, so one or two rows per family).
    stdio: bool = True

    @property
    def id(self) -> str:
        return f"{self.client}@{self.place}/{self.how}"


# The floors (see `routed`): code editors and agents in ~/work wake work, acme's folder wakes
# client-acme for anyone (it comes first), Claude Desktop wakes home, Zed on this host wakes
# side, Goose after 22:00 UTC wakes side, everything else lands on the default, home.
ROWS = [
    Row("claude-code", "work", "roots", "work"),
    Row("Claude Code", "work", "cwd", "work"),
    Row("cursor-vscode", "work", "roots", "work", stdio=False),
    Row("cursor-vscode", "work-link", "cwd", "work"),  # ~/work is a symlink
    Row("Visual Studio Code", "work", "roots", "work", stdio=False),
    Row("Visual Studio Code - Insiders", "work", "cwd", "work"),
    Row("windsurf-client", "work", "roots", "work"),
    Row("codex-mcp-client", "work", "cwd", "work"),
    Row("Cline", "work", "roots", "work"),
    Row("continue-client", "work", "roots", "work"),
    Row("cursor-vscode", "acme", "roots", "client-acme", stdio=False),
    Row("claude-ai", "acme-link", "cwd", "client-acme"),
    Row("claude-ai", "home", "roots", "home"),
    Row("claude-ai", "work", "roots", "work-desktop", stdio=False),
    Row("Zed", "home", "roots", "side"),  # by host
    Row("cursor-vscode", "home", "roots", "home", stdio=False),  # the default
    Row("some-new-editor", "work", "roots", "home", stdio=False),  # unknown: the default
    Row("goose", "home", "roots", "side", at=MONDAY_LATE),
    Row("goose", "home", "roots", "home", at=MONDAY_NOON),
    Row("goose", "work", "roots", "work", at=MONDAY_LATE),  # the earlier floor wins
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("routing")
    real_work = root / "disk" / "work"
    (real_work / "acme" / "src").mkdir(parents=True)
    (real_work / "beta").mkdir()
    home = root / "user"
    (home / "personal").mkdir(parents=True)
    (home / "work").symlink_to(real_work, target_is_directory=True)
    return {
        "root": root,
        "user": home,
        "work": real_work / "beta",
        "work-link": home / "work" / "beta",
        "acme": real_work / "acme" / "src",
        "acme-link": home / "work" / "acme",
        "home": home / "personal",
    }


def make_floors(s: severance.Store, places: dict[str, Path]) -> None:
    for persona in ("work", "home", "side", "client-acme", "work-desktop"):
        s.add_persona(persona)
    # Written through the symlinked spelling, as a user would type it.
    link = str(places["user"] / "work")
    editors = ["claude-code", "cursor", "vscode", "windsurf", "codex", "cline", "continue", "goose"]
    s.add_floor("code", persona="work", clients=editors, paths=[f"{link}/**"])
    s.add_floor("desk-at-work", persona="work-desktop", clients=["claude-desktop"], paths=[link])
    s.add_floor("zed-here", persona="side", clients=["zed"], hosts=[HOST])
    s.add_floor("late-goose", persona="side", clients=["goose"], hours=["daily 22:00-23:59"])
    s.add_floor("desktop", persona="home", clients=["claude-desktop"])
    s.add_floor("house", persona="home", default=True)
    # Added last, so it is shadowed by "code" for editors...
    s.add_floor("acme", persona="client-acme", paths=[f"{link}/acme/**"])
    assert s.shadowed_floors() == []  # ...only partly ("acme" takes any client): no warning
    s.move_floor("acme", before="code")


@pytest.fixture(scope="module")
def routed(places: dict[str, Path]) -> Iterator[dict[str, Any]]:
    location = str(places["root"] / "store")
    key = places["root"] / "master.key"
    with severance.Store.init(location, key_file=key) as s:
        make_floors(s, places)
    env = server_env(str(places["user"]), {"SEVERANCE_KEY_FILE": str(key)})
    yield {"location": location, "key": key, "env": env}


def roots_of(path: Path) -> Callable[[Any], Awaitable[ListRootsResult]]:
    async def list_roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=path.as_uri())])  # type: ignore[arg-type]

    return list_roots


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_the_table_through_the_store(
    routed: dict[str, Any], places: dict[str, Path], row: Row
) -> None:
    with severance.Store.open(routed["location"], key_file=routed["key"]) as s:
        match = s.resolve(
            client=row.client,
            path=str(places[row.place]),
            host=HOST,
            at=row.at or MONDAY_NOON,
        )
    assert match.persona == row.expected, match.reasons


@pytest.mark.anyio
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
async def test_the_table_through_mcp_in_process(
    routed: dict[str, Any],
    places: dict[str, Path],
    row: Row,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(floors_module, "clock", lambda: row.at or MONDAY_NOON)
    monkeypatch.chdir(places[row.place])
    monkeypatch.setenv("PWD", str(places[row.place]))
    with severance.Store.open(routed["location"], key_file=routed["key"]) as s:
        server = create_mcp_server(s, cwd_fallback=row.how == "cwd")
        async with Client(
            server,
            client_info=Implementation(name=row.client, version="1"),
            list_roots_callback=roots_of(places[row.place]) if row.how == "roots" else None,
        ) as c:
            status = data(await c.call_tool("status", {}))
    assert status["persona"] == row.expected, status["why"]
    assert status["client"] == row.client
    assert status["workspace"] == [str(places[row.place])]


def stdio(routed: dict[str, Any], cwd: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-c", ENTRY, "--store", routed["location"], "serve", "--mcp", *args],
        env={**routed["env"], "PWD": str(cwd)},
        cwd=cwd,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("row", [r for r in ROWS if r.stdio and r.at is None], ids=lambda r: r.id)
async def test_the_table_through_a_real_stdio_server(
    routed: dict[str, Any], places: dict[str, Path], row: Row
) -> None:
    async with Client(
        stdio(routed, places[row.place]),
        client_info=Implementation(name=row.client, version="1"),
        list_roots_callback=roots_of(places[row.place]) if row.how == "roots" else None,
    ) as c:
        status = data(await c.call_tool("status", {}))
        written = data(await c.call_tool("remember", {"text": f"routed {row.id}"}))
    assert (status["persona"], written["persona"]) == (row.expected, row.expected)
    assert written["floor"] == status["floor"]
    with severance.Store.open(routed["location"], key_file=routed["key"]) as s:
        entry = next(
            e
            for e in reversed(s.audit())
            if e.event == "enter" and e.detail.get("client") == row.client
        )
        assert entry.persona == row.expected
        assert entry.detail["client_family"] == severance.clients.family_of(row.client)
        assert entry.detail["paths"] == [str(places[row.place])]
        seen = {i["client"]: i for i in s.clients_seen()}
        assert status["floor"] in seen[row.client]["floors"]


# -- the CLI from real directories -----------------------------------------------------------------
def cli(routed: dict[str, Any], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "--store", routed["location"], *args],
        cwd=cwd,
        env={**routed["env"], "PWD": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def terminal_floors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The README's floors: the terminal in ~/work (a symlink) wakes work; home by default."""
    root = tmp_path_factory.mktemp("terminal")
    real = root / "disk" / "work"
    (real / "acme").mkdir(parents=True)
    user = root / "user"
    (user / "notes").mkdir(parents=True)
    (user / "work").symlink_to(real, target_is_directory=True)
    key = root / "master.key"
    location = str(root / "store")
    with severance.Store.init(location, key_file=key) as s:
        s.add_persona("work")
        s.add_persona("home")
        s.add_floor("office", persona="work", paths=["~/work/**"], clients=["claude-code"])
        s.add_floor("desk", persona="work", paths=["~/work/**"], clients=["terminal"])
        s.add_floor("house", persona="home", default=True)
    env = server_env(str(user), {"SEVERANCE_KEY_FILE": str(key)})
    yield {"location": location, "key": key, "env": env, "user": user, "real": real}


@pytest.mark.parametrize("spelling", ["link", "real"])
def test_the_terminal_in_a_symlinked_work_folder_wakes_work(
    terminal_floors: dict[str, Any], spelling: str
) -> None:
    t = terminal_floors
    cwd = t["user"] / "work" / "acme" if spelling == "link" else t["real"] / "acme"
    r = cli(t, cwd, "floor", "test", "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert (shown["floor"], shown["persona"]) == ("desk", "work")
    assert shown["client"] == "severance-cli" and shown["client_family"] == "terminal"
    assert shown["resolved_paths"] == [str(t["real"] / "acme")]
    assert [f["matched"] for f in shown["floors"]] == [False, True, False]
    r = cli(t, cwd, "remember", f"written from the {spelling} spelling")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Remembered in work:")


def test_the_terminal_elsewhere_lands_on_the_default_and_says_so(
    terminal_floors: dict[str, Any],
) -> None:
    t = terminal_floors
    r = cli(t, t["user"] / "notes", "floor", "test")
    assert r.returncode == 0, r.stderr
    assert "floor house wakes persona home" in r.stdout
    assert "client 'severance-cli' (terminal) matches 'terminal'" in r.stdout
    assert "matches none of '~/work/**'" in r.stdout


def test_strict_mode_from_the_terminal_refuses_and_writes_nothing(
    terminal_floors: dict[str, Any],
) -> None:
    t = terminal_floors
    notes = t["user"] / "notes"
    with severance.Store.open(t["location"], key_file=t["key"]) as s:
        with s.enter(floor="house") as home:
            count = home.count()
        before = len(s.audit())
    r = cli(t, notes, "remember", "--strict", "should not land anywhere")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "strict mode" in r.stderr and "severance floor add" in r.stderr
    assert "--client terminal --path '~/notes/**'" in r.stderr
    assert cli(t, notes, "floor", "strict", "on").returncode == 0
    r = cli(t, notes, "remember", "should not land anywhere either")
    assert r.returncode != 0 and "strict mode" in r.stderr
    assert cli(t, notes, "floor", "strict", "off").returncode == 0
    with severance.Store.open(t["location"], key_file=t["key"]) as s:
        events = [e.event for e in s.audit()[before:]]
        assert events == ["floor_strict", "floor_strict"]  # nothing woke, nothing was written
        with s.enter(floor="house") as home:
            assert home.count() == count


def test_floor_add_warns_about_shadowing_and_floor_move_fixes_it(
    terminal_floors: dict[str, Any],
) -> None:
    t = terminal_floors
    here = t["user"] / "notes"
    r = cli(t, here, "floor", "add", "acme", "--persona", "work", "--path", "~/work/acme/**",
            "--client", "terminal")  # fmt: skip
    assert r.returncode == 0 and "at position 4" in r.stdout
    assert "floor 'acme' can never match by rule" in r.stderr
    assert "severance floor move acme --before desk" in r.stderr
    assert "[never matches: shadowed by desk]" in cli(t, here, "floor", "list").stdout
    r = cli(t, here, "floor", "move", "acme", "--before", "desk")
    assert r.returncode == 0 and r.stdout == "Moved floor acme to position 2.\n"
    assert r.stderr == ""
    r = cli(t, t["user"] / "work" / "acme", "floor", "test", "--json")
    assert json.loads(r.stdout)["floor"] == "acme"
    r = cli(t, here, "floor", "add", "typo", "--persona", "home", "--client", "cursr")
    assert "'cursr' is neither a known client family" in r.stderr
    for name in ("acme", "typo"):
        assert cli(t, here, "floor", "remove", name).returncode == 0


def test_floor_clients_and_audit_filters(terminal_floors: dict[str, Any]) -> None:
    t = terminal_floors
    cwd = t["user"] / "work" / "acme"
    assert cli(t, cwd, "memories").returncode == 0
    r = cli(t, cwd, "floor", "clients", "--json")
    seen = {i["client"]: i for i in json.loads(r.stdout)}
    assert seen["severance-cli"]["family"] == "terminal"
    assert seen["severance-cli"]["floors"]["desk"] == "work"
    r = cli(t, cwd, "audit", "show", "--event", "enter", "--persona", "work", "--json")
    entries = json.loads(r.stdout)
    assert entries and all(e["event"] == "enter" and e["persona"] == "work" for e in entries)
    assert entries[-1]["detail"]["paths"] == [str(cwd)]
    r = cli(t, cwd, "audit", "show", "--since", "2000-01-01", "--until", "2000-01-02", "--json")
    assert json.loads(r.stdout) == []
    r = cli(t, cwd, "audit", "show", "--since", "yesterday")
    assert r.returncode != 0 and "invalid --since" in r.stderr and "Traceback" not in r.stderr


# -- notices on every interface --------------------------------------------------------------------
@pytest.fixture
def noticed(store_location: str) -> Iterator[severance.Store]:
    s = severance.Store.init(store_location)
    s.add_persona("work")
    s.add_persona("home")
    s.add_floor("office", persona="work", clients=["cursor"])
    s.add_floor("house", persona="home", default=True)
    with s.enter(floor="office") as work:
        work.remember("The Q3 launch moved to October 12")
    with s.override("work", reason="covering for a colleague", minutes=5) as o:
        o.recall("launch")
    yield s
    s.close()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_mcp_shows_notices_on_the_first_result_and_by_tool(
    noticed: severance.Store, mode: str
) -> None:
    server = create_mcp_server(noticed)
    name = Implementation(name="cursor-vscode", version="1")
    async with Client(server, mode=mode, client_info=name) as c:
        first = data(await c.call_tool("list_memories", {}))
        assert first["persona"] == "work" and first["floor"] == "office"
        assert [n["event"] for n in first["notices"]] == ["override"]
        assert "covering for a colleague" in first["notices"][0]["text"]
        second = data(await c.call_tool("recall", {"query": "launch"}))
        # Told once per connection; the stateless 2026 protocol has no connection to remember
        # it by, so there every result carries them (more often than needed, never less).
        assert (second["notices"] is None) is (mode == "legacy")
        told = data(await c.call_tool("notices", {}))
        assert [n["event"] for n in told["notices"]] == ["override"]
        status = data(await c.call_tool("status", {}))
        assert status["why"] == ["client 'cursor-vscode' (cursor) matches 'cursor'"]
        assert status["client_family"] == "cursor" and len(status["notices"]) == 1


def test_cli_prints_notices_on_stderr(
    noticed: severance.Store, store_location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from severance.cli import main

    noticed.close()
    try:
        main(["--store", store_location, "memories", "--client", "cursor-vscode"])
    except SystemExit as e:
        assert e.code in (0, None)
    out, err = capsys.readouterr()
    assert "severance: notice: persona work was woken by an override" in err
    assert "covering for a colleague" in err
    assert "notice" not in out


@pytest.mark.anyio
async def test_http_names_the_persona_on_every_answer(store: severance.Store) -> None:
    token = Passes(store).issue("office").token  # the fixture's office floor wakes work
    h = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(store, rate=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://severance.test") as c:
        answers = [await c.post("/v1/memories", json={"text": "a"}, headers=h)]
        mid = answers[0].json()["id"]
        answers.append(await c.patch(f"/v1/memories/{mid}", json={"text": "b"}, headers=h))
        answers.append(await c.delete(f"/v1/memories/{mid}", headers=h))
        answers.append(await c.post("/v1/recall", json={"query": "b"}, headers=h))
    for r in answers:
        assert r.status_code < 300, r.text
        assert r.headers["severance-persona"] == "work"


def test_serve_refuses_an_unknown_floor_at_start(routed: dict[str, Any], tmp_path: Path) -> None:
    for args in (("--mcp", "--floor", "nosuch"), ("--mcp", "--allow-floor", "nosuch")):
        r = subprocess.run(
            [sys.executable, "-c", ENTRY, "--store", routed["location"], "serve", *args],
            env=routed["env"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode != 0 and "no floor named 'nosuch'" in r.stderr
        assert "Traceback" not in r.stderr and "listening" not in r.stderr


@pytest.mark.anyio
async def test_allowed_floors_restrict_what_a_context_may_wake(
    routed: dict[str, Any], places: dict[str, Path]
) -> None:
    with severance.Store.open(routed["location"], key_file=routed["key"]) as s:
        server = create_mcp_server(s, allowed_floors=["code"])
        async with Client(
            server,
            client_info=Implementation(name="claude-ai", version="1"),
            list_roots_callback=roots_of(places["home"]),
        ) as c:
            text = error_text(await c.call_tool("remember", {"text": "not here"}))
        assert "may not wake floor 'desktop'" in text and "nothing was read or stored" in text
        with s.enter(floor="desktop") as home:
            assert "not here" not in {m.text for m in home.memories(limit=100).items}


def test_documented_families_are_in_the_docs() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "concepts.md").read_text(encoding="utf-8")
    for family in severance.clients.FAMILIES:
        assert f"| `{family.name}` |" in docs, family.name
        for sent in family.sends:
            assert f"`{sent}`" in docs, sent
    assert os.path.exists(Path(__file__).parent.parent / "docs" / "servers.md")


# -- the docs' floors do what the docs say --------------------------------------------------------
def _doc_commands(path: Path, prefix: str) -> list[list[str]]:
    """The ``$ severance …`` commands of a doc's console blocks that start with ``prefix``."""
    commands, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = (pending + " " + line.strip()) if pending else line.strip()
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        if text.startswith(f"$ {prefix}"):
            argv = shlex.split(text[2:].split("#")[0])
            commands.append(argv[1:])
    return commands


@pytest.mark.parametrize("doc", ["README.md", "docs/servers.md"])
def test_the_documented_floors_route_each_documented_client(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from severance.cli import main

    home = Path(os.environ["HOME"])
    (home / "work" / "acme").mkdir(parents=True)
    (home / "projects" / "garden").mkdir(parents=True)
    store = str(tmp_path / "store")
    with severance.Store.init(store) as s:
        s.add_persona("work")
        s.add_persona("home")
    root = Path(__file__).parent.parent
    adds = _doc_commands(root / doc, "severance floor add")
    assert adds, doc
    for argv in adds:
        try:
            main(["--store", store, *argv])
        except SystemExit as e:
            assert e.code in (0, None), argv
    if doc == "README.md":  # the README's Claude Desktop floor comes with its CLI section
        assert any(a[2] == "desktop" for a in adds)
    expected = [
        ("claude-code", "~/work/acme", "work"),
        ("cursor-vscode", "~/work/acme", "work"),
        ("severance-cli", "~/work/acme", "work"),
        ("claude-ai", None, "home"),
        ("claude-code", "~/projects/garden", "home"),
    ]
    if doc == "docs/servers.md":
        expected.append(("Visual Studio Code", "~/work/acme", "work"))
    with severance.Store.open(store) as s:
        for client, path, persona in expected:
            match = s.resolve(client=client, path=path or str(home), at=MONDAY_NOON)
            assert match.persona == persona, (client, path, match.reasons)
        assert s.shadowed_floors() == []


@pytest.mark.anyio
async def test_a_pass_can_restrict_the_floors_a_client_may_claim(
    routed: dict[str, Any], places: dict[str, Path]
) -> None:
    with severance.Store.open(routed["location"], key_file=routed["key"]) as s:
        token = Passes(s).issue("code").token  # persona work
    args = ("--mcp-http", "127.0.0.1:0", "--pass-routing", "restrict")
    with serving(routed["location"], *args, env=routed["env"]) as served:

        async def call(name: str, place: str, tool: str) -> CallToolResult:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(
                    streamable_http_client(served.mcp, http_client=http),
                    mode="legacy",
                    client_info=Implementation(name=name, version="1"),
                    list_roots_callback=roots_of(places[place]),
                ) as c,
            ):
                return await c.call_tool(tool, {} if tool == "status" else {"text": "x"})

        status = data(await call("claude-code", "work", "status"))
        assert (status["persona"], status["floor"]) == ("work", "code")
        assert status["why"][0] == "a pass for floor 'code' allows its persona's floors"
        for name, place in [
            ("claude-ai", "home"),
            ("cursor-vscode", "acme"),
            ("claude-ai", "work"),
        ]:
            text = error_text(await call(name, place, "remember"))
            assert "may wake only its own persona's floors" in text
            assert not any(w in text for w in ("desktop", "acme", "home", "side"))
