"""Routing as a hostile reviewer meets it: odd paths and names, false shadow warnings, proxies,
races against a floor's hours, pinned servers and passes, notices that must not tell one
persona about another. Each test failed before the fix it names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, ListRootsResult, Root

import severance
from server_process import server_env, serving
from severance import floors as floors_module
from severance.clients import family_of, pattern_matches
from severance.errors import InvalidFloorError
from severance.floors import Context, Floor, resolve, shadows
from severance.mcp import create_mcp_server, file_uri_to_path
from severance.notice_text import describe
from severance.passes import Passes
from severance.workspace import path_matches

ENTRY = "from severance.cli import main; main()"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    return user


# -- path patterns -----------------------------------------------------------------------------
def test_the_root_pattern_covers_every_path(home: Path) -> None:
    # "/" matches itself and, by the ancestor rule, everything below it.
    assert path_matches("/", str(home / "work" / "x"))
    assert path_matches("/", "/")


def test_double_star_slash_matches_zero_or_more_folders(home: Path) -> None:
    assert path_matches("~/**/acme", str(home / "acme"))
    assert path_matches("~/**/acme", str(home / "a" / "b" / "acme" / "src"))
    assert not path_matches("~/**/acme", str(home / "acmex"))


def test_a_leading_double_star_means_anywhere_not_here(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cwd in (home, tmp_path):
        monkeypatch.chdir(cwd)
        assert path_matches("**/acme/**", "/srv/clients/acme/src")
        assert not path_matches("**/acme/**", "/srv/clients/beta")


@pytest.mark.parametrize("pattern", ["work/**", "./work", "acme", "../x/*"])
def test_a_relative_path_pattern_is_refused_and_changes_nothing(
    store: severance.Store, pattern: str
) -> None:
    # It used to match against the working directory of whoever matched: the CLI's, a
    # server's, each one different.
    before = (store.floors(), len(store.audit()))
    with pytest.raises(InvalidFloorError, match="relative path"):
        store.add_floor("rel", persona="work", paths=[pattern])
    assert (store.floors(), len(store.audit())) == before


def test_a_bracket_is_literal_so_a_symlinked_folder_with_one_resolves(home: Path) -> None:
    real = home.parent / "disk" / "proj"
    (real / "src").mkdir(parents=True)
    (home / "proj[1]").symlink_to(real, target_is_directory=True)
    assert path_matches("~/proj[1]/**", str(real / "src"))
    assert path_matches(str(real), str(home / "proj[1]" / "src"))


# -- what a context may carry --------------------------------------------------------------------
@pytest.mark.parametrize(
    "context",
    [
        {"client": "x" * 100_000},
        {"client": "cursor-vscode\x1b[2J"},
        {"client": "claude-code\nforged line"},
        {"host": "h\x00"},
        {"path": "/tmp/a\x00b"},
        {"path": "/" + "a" * 5000},
        {"paths": [f"/tmp/{i}" for i in range(1000)]},
    ],
)
def test_bad_contexts_are_refused_and_write_nothing(
    store: severance.Store, context: dict[str, Any]
) -> None:
    before = len(store.audit())
    with pytest.raises(InvalidFloorError):
        store.enter(context)
    with pytest.raises(InvalidFloorError):
        store.resolve(context)
    assert len(store.audit()) == before


def test_unicode_names_and_paths_are_fine(home: Path) -> None:
    folder = home / "trabajo ñ 仕事"
    folder.mkdir()
    floors = [Floor("f", "work", clients=["Éditeur*"], paths=["~/trabajo ñ 仕事/**"])]
    ctx = Context.from_mapping({"client": "éditeur-été", "path": str(folder / "x")})
    assert resolve(floors, ctx).floor.name == "f"


def test_a_relative_path_is_recorded_absolute(
    store: severance.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store.add_floor("any", persona="work", clients=["terminal"])
    with store.enter(client="severance-cli", path="."):
        pass
    entry = [e for e in store.audit() if e.event == "enter"][-1]
    assert entry.detail["paths"] == [str(tmp_path)]


# -- MCP roots -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///home/u/my%20work/a%C3%B1o", "/home/u/my work/año"),
        ("file:///home/u/100%2525", "/home/u/100%25"),  # decoded once, not twice
        ("file://localhost/home/u/work/", "/home/u/work/"),
        ("file://fileserver/share/work", None),  # another machine's file is no workspace here
        ("https://example.com/x", None),
    ],
)
def test_file_uris_become_local_paths(uri: str, path: str | None) -> None:
    if os.name == "nt":
        pytest.skip("POSIX spellings")
    assert file_uri_to_path(uri) == path


# -- client names --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "family"),
    [
        ("claude-ai (via mcp-remote 0.1.37)", "claude-desktop"),
        ("cursor-vscode (via mcp-remote 0.1.18)", "cursor"),
        ("dev.warp.Warp-Stable", "warp"),
        ("dev.warp.Warp-Preview", "warp"),
        ("antigravity-client", "antigravity"),
    ],
)
def test_proxied_and_newer_clients_find_their_family(sent: str, family: str) -> None:
    assert family_of(sent) == family
    assert pattern_matches(family, sent)


def test_a_proxy_annotation_alone_claims_nothing() -> None:
    assert family_of("(via mcp-remote 0.1.37)") is None
    assert not pattern_matches("claude-desktop", "evil (via claude-ai)")


# -- shadowing: no false warnings ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        # "laptop-?" does not match "laptop-12", which "laptop-*" does: not shadowed.
        (Floor("a", "w", hosts=["laptop-?"]), Floor("b", "h", hosts=["laptop-*"]), False),
        (Floor("a", "w", clients=["ab?"]), Floor("b", "h", clients=["ab*"]), False),
        (Floor("a", "w", clients=["my-[ab]*"]), Floor("b", "h", clients=["my-*"]), False),
        # ...while the provable cases still warn.
        (Floor("a", "w", hosts=["laptop-*"]), Floor("b", "h", hosts=["laptop-?"]), True),
        (Floor("a", "w", clients=["*"]), Floor("b", "h", clients=["cursor"]), True),
        (Floor("a", "w", clients=["bot-*"]), Floor("b", "h", clients=["bot-x*"]), True),
        (Floor("a", "w", paths=["/"]), Floor("b", "h", paths=["/srv/x/**"]), True),
    ],
)
def test_shadow_warnings_are_never_false(earlier: Floor, later: Floor, shadowed: bool) -> None:
    assert bool(shadows([earlier, later])) is shadowed


# -- hours across midnight and DST, in the floor's zone --------------------------------------------
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 3, 30, 22, 59, tzinfo=UTC), False),  # Sat 22:59 GMT
        (datetime(2024, 3, 30, 23, 0, tzinfo=UTC), True),  # Sat 23:00 GMT
        (datetime(2024, 3, 31, 0, 59, tzinfo=UTC), True),  # Sun 00:59 GMT, past midnight
        # 01:00 GMT became 02:00 BST: the window closed then, by the clock on the wall.
        (datetime(2024, 3, 31, 1, 0, tzinfo=UTC), False),  # Sun 02:00 BST
        (datetime(2024, 3, 31, 1, 30, tzinfo=UTC), False),  # Sun 02:30 BST
        (datetime(2024, 10, 27, 0, 30, tzinfo=UTC), True),  # Sun 01:30 BST, first time
        (datetime(2024, 10, 27, 1, 30, tzinfo=UTC), True),  # Sun 01:30 GMT, second time
        (datetime(2024, 10, 27, 2, 0, tzinfo=UTC), False),  # Sun 02:00 GMT: the end
    ],
)
def test_a_window_wrapping_midnight_on_dst_nights(moment: datetime, expected: bool) -> None:
    night = Floor("night", "w", hours=["sat 23:00-02:00"], timezone="Europe/London")
    assert night.check(Context(at=moment)).matched is expected


# -- floor add / move: unknown names are typed errors that change nothing --------------------------
def _cli(location: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = server_env(str(cwd), {})
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "--store", location, *args],
        cwd=cwd,
        env={**env, "PWD": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_store(tmp_path: Path) -> Iterator[str]:
    location = str(tmp_path / "store")
    with severance.Store.init(location) as s:
        s.add_persona("work")
        s.add_persona("home")
        s.add_floor("office", persona="work", paths=["~/work/**"])
        s.add_floor("house", persona="home", default=True)
    yield location


def _state(location: str) -> tuple[list[dict[str, Any]], int]:
    with severance.Store.open(location) as s:
        return [f.to_dict() for f in s.floors()], len(s.audit())


@pytest.mark.parametrize(
    "args",
    [
        ("floor", "add", "x", "--persona", "work", "--client", "zed", "--before", "nosuch"),
        ("floor", "add", "x", "--persona", "work", "--client", "zed", "--after", "Bad Name"),
        ("floor", "add", "x", "--persona", "nobody", "--client", "zed"),
        ("floor", "add", "x", "--persona", "work", "--before", "office", "--after", "house"),
        ("floor", "add", "office", "--persona", "work", "--client", "zed"),
        ("floor", "add", "x", "--persona", "work", "--path", "relative/**"),
        ("floor", "move", "nosuch", "--before", "office"),
        ("floor", "move", "house", "--before", "nosuch"),
        ("floor", "move", "house", "--after", "house"),
        ("floor", "move", "house"),
        ("floor", "remove", "nosuch"),
        ("floor", "test", "--floor", "nosuch"),
    ],
)
def test_bad_floor_commands_say_one_line_and_change_nothing(
    cli_store: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    before = _state(cli_store)
    r = _cli(cli_store, tmp_path, *args)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _state(cli_store) == before


def test_a_floor_without_conditions_warns_it_wakes_only_by_name(
    cli_store: str, tmp_path: Path
) -> None:
    r = _cli(cli_store, tmp_path, "floor", "add", "spare", "--persona", "work")
    assert r.returncode == 0, r.stderr
    assert "has no conditions: it wakes only by name" in r.stderr


# -- MCP: one time per call, pinned servers, strict ----------------------------------------------
def _roots(path: Path) -> Any:
    async def list_roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=path.as_uri())])  # type: ignore[arg-type]

    return list_roots


def _error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.anyio
async def test_a_call_is_routed_at_one_moment(
    store_location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first read of the clock says 23:58 (the late floor, allowed); every later one says
    # 00:00 (the default, not allowed). The checks and the wake must agree on one moment.
    reads: list[datetime] = []

    def clock() -> datetime:
        late, after = datetime(2024, 6, 3, 23, 58, tzinfo=UTC), datetime(2024, 6, 4, tzinfo=UTC)
        reads.append(late if not reads else after)
        return reads[-1]

    with severance.Store.init(store_location) as s:
        s.add_persona("side")
        s.add_persona("home")
        s.add_floor("late", persona="side", clients=["goose"], hours=["daily 22:00-23:59"])
        s.add_floor("house", persona="home", default=True)
        monkeypatch.setattr(floors_module, "clock", clock)
        server = create_mcp_server(s, allowed_floors=["late"])
        async with Client(server, client_info=Implementation(name="goose", version="1")) as c:
            result = await c.call_tool("remember", {"text": "late thought"})
        monkeypatch.setattr(floors_module, "clock", lambda: datetime(2024, 6, 3, 12, tzinfo=UTC))
        with s.enter(floor="house") as home:
            assert home.count() == 0  # never written where the server may not go
        if not result.is_error:
            assert result.structured_content is not None
            assert result.structured_content["persona"] == "side"


@pytest.mark.anyio
async def test_strict_mcp_refuses_an_unknown_context_and_writes_nothing(
    store: severance.Store, tmp_path: Path
) -> None:
    store.add_floor("fallback", persona="home", default=True)
    store.set_strict(True)
    before = len(store.audit())
    server = create_mcp_server(store)
    async with Client(
        server,
        client_info=Implementation(name="some-new-editor", version="1"),
        list_roots_callback=_roots(tmp_path),
    ) as c:
        for tool, args in (("remember", {"text": "nowhere"}), ("status", {}), ("notices", {})):
            text = _error(await c.call_tool(tool, args))
            assert "strict mode" in text and "nothing was read or stored" in text
    assert len(store.audit()) == before


@pytest.mark.anyio
async def test_a_pinned_http_server_refuses_a_pass_for_another_floor(
    tmp_path: Path,
) -> None:
    location, key = str(tmp_path / "store"), tmp_path / "master.key"
    with severance.Store.init(location, key_file=key) as s:
        s.add_persona("work")
        s.add_persona("home")
        s.add_floor("office", persona="work", clients=["cursor"])
        s.add_floor("house", persona="home", default=True)
        other = Passes(s).issue("house").token
        own = Passes(s).issue("office").token
    env = server_env(str(tmp_path), {"SEVERANCE_KEY_FILE": str(key)})
    with serving(location, "--mcp-http", "127.0.0.1:0", "--floor", "office", env=env) as served:

        async def call(token: str | None) -> CallToolResult:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(
                    streamable_http_client(served.mcp, http_client=http),
                    mode="legacy",
                    client_info=Implementation(name="cursor-vscode", version="1"),
                ) as c,
            ):
                return await c.call_tool("remember", {"text": "pinned"})

        text = _error(await call(other))
        assert "serves only floor 'office'" in text and "house" not in text
        assert "needs a pass" in _error(await call(None))
        ok = await call(own)
        assert not ok.is_error and ok.structured_content is not None
        assert ok.structured_content["persona"] == "work"
    with severance.Store.open(location, key_file=key) as s, s.enter(floor="house") as home:
        assert home.count() == 0


# -- notices never name another persona ----------------------------------------------------------
def test_notices_of_a_reintegration_do_not_name_the_other_persona(store: severance.Store) -> None:
    store.add_persona("acme-secret")
    store.add_floor("acme", persona="acme-secret", clients=["zed"])
    with store.enter(floor="acme") as s:
        s.remember("Acme's merger closes on Friday")
    store.reintegrate("acme-secret", "home")
    with store.enter(floor="house") as home:
        into = [describe("home", n) for n in home.notices()]
    with store.enter(floor="acme") as acme:
        out = [describe("acme-secret", n) for n in acme.notices()]
    assert into and out
    for line in into:
        assert "acme" not in line.lower() and "merger" not in line.lower(), line
    for line in out:
        assert "home" not in line, line


def test_floor_test_explains_every_floor_when_nothing_wakes(cli_store: str, tmp_path: Path) -> None:
    r = _cli(cli_store, tmp_path, "floor", "test", "--client", "zed", "--strict")
    assert r.returncode != 0
    assert "Every floor, in order:" in r.stdout and "1. office (work): no match" in r.stdout
    assert "matches none of '~/work/**'" in r.stdout
    assert "strict mode does not fall back" in r.stderr and "Traceback" not in r.stderr
    r = _cli(cli_store, tmp_path, "floor", "test", "--client", "zed", "--strict", "--json")
    assert r.returncode != 0
    shown = json.loads(r.stdout)
    assert shown["persona"] is None and "strict mode" in shown["refused"]
    assert [f["floor"] for f in shown["floors"]] == ["office", "house"]


def test_import_with_strict_refuses_and_writes_nothing(cli_store: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Acme\n\nThe Acme merger closes on Friday.\n", encoding="utf-8")
    before = _state(cli_store)
    r = _cli(cli_store, tmp_path, "import", "markdown", str(notes), "--strict", "--client", "zed")
    assert r.returncode != 0 and "strict mode does not fall back" in r.stderr, r.stderr
    assert _state(cli_store) == before
    with severance.Store.open(cli_store) as s, s.enter(floor="house") as home:
        assert home.count() == 0
