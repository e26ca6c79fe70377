"""``severance mcp install``: each client's real config location and format, merged into what
is there, with absolute paths — and the written entry really starts a working server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

from severance import InvalidInputError, Store
from severance.cli import main
from severance.mcp_install import config_path, install, server_entry


@pytest.mark.parametrize(
    ("client", "scope", "platform", "expected"),
    [
        (
            "claude-desktop",
            "user",
            "darwin",
            "H/Library/Application Support/Claude/claude_desktop_config.json",
        ),
        ("claude-desktop", "user", "win32", "A/Claude/claude_desktop_config.json"),
        ("claude-desktop", "user", "linux", "X/Claude/claude_desktop_config.json"),
        ("claude-code", "user", "linux", "H/.claude.json"),
        ("claude-code", "project", "darwin", "P/.mcp.json"),
        ("cursor", "user", "win32", "H/.cursor/mcp.json"),
        ("cursor", "project", "linux", "P/.cursor/mcp.json"),
        ("vscode", "user", "darwin", "H/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "user", "win32", "A/Code/User/mcp.json"),
        ("vscode", "user", "linux", "X/Code/User/mcp.json"),
        ("vscode", "project", "win32", "P/.vscode/mcp.json"),
    ],
)
def test_config_locations(client: str, scope: Any, platform: str, expected: str) -> None:
    env = {"APPDATA": "A", "XDG_CONFIG_HOME": "X"}
    got = config_path(client, scope, home=Path("H"), cwd=Path("P"), platform=platform, env=env)
    assert got == Path(expected)


def test_config_location_errors() -> None:
    with pytest.raises(InvalidInputError):
        config_path("claude-desktop", "project")
    with pytest.raises(InvalidInputError):
        config_path("emacs")


def test_entries_follow_each_clients_format() -> None:
    cmd = ["/opt/venv/bin/severance"]
    assert server_entry("claude-desktop", "/s", command=cmd) == {
        "command": "/opt/venv/bin/severance",
        "args": ["--store", "/s", "serve", "--mcp"],
    }
    assert server_entry("vscode", "/s", key_file="/k", floor="office", command=cmd) == {
        "type": "stdio",
        "command": "/opt/venv/bin/severance",
        "args": ["--store", "/s", "--key-file", "/k", "serve", "--mcp", "--floor", "office"],
    }
    assert server_entry("claude-code", "/s", command=["/py", "-c", "x"])["args"][:2] == ["-c", "x"]


def test_install_merges_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "claude_desktop_config.json"
    entry = {"command": "/x/severance", "args": ["serve", "--mcp"]}
    first = install("claude-desktop", path, entry)
    assert not first.replaced and json.loads(path.read_text()) == {
        "mcpServers": {"severance": entry}
    }
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text(json.dumps({"theme": "dark", "mcpServers": {"other": {"command": "o"}}}))
    second = install("claude-desktop", path, entry)
    assert not second.replaced
    assert json.loads(path.read_text()) == {
        "theme": "dark",
        "mcpServers": {"other": {"command": "o"}, "severance": entry},
    }
    assert install("claude-desktop", path, entry).replaced
    for broken in ("{not json", "[1, 2]", '{"mcpServers": []}'):
        path.write_text(broken)
        with pytest.raises(InvalidInputError):
            install("claude-desktop", path, entry)
        assert path.read_text() == broken
    # Printing computes the document and writes nothing.
    fresh = tmp_path / "vscode" / "mcp.json"
    shown = install("vscode", fresh, entry, write=False)
    assert shown.document == {"servers": {"severance": entry}} and not fresh.exists()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def made(tmp_path: Path) -> tuple[str, Path]:
    location = str(tmp_path / "store")
    (tmp_path / "work" / "acme").mkdir(parents=True)
    with Store.init(location, key_file=tmp_path / "master.key") as s:
        s.add_persona("work")
        s.add_persona("home")
        s.add_floor("office", persona="work", paths=[str(tmp_path / "work") + "/**"])
        s.add_floor("desktop", persona="home", clients=["claude-ai"])
    return location, tmp_path


def test_print_shows_the_floor_and_writes_nothing(
    made: tuple[str, Path], capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    location, root = made
    key = str(root / "master.key")
    code, out, err = run(
        capsys,
        "--store",
        location,
        "--key-file",
        key,
        "mcp",
        "install",
        "claude-desktop",
        "--print",
    )
    assert code == 0, err
    assert err.startswith("claude-desktop anywhere would wake persona home (floor desktop: ")
    target = isolated_env / ".config" / "Claude" / "claude_desktop_config.json"
    assert out.splitlines()[0] == f"# {target}"
    shown = json.loads("\n".join(out.splitlines()[1:]))
    args = shown["mcpServers"]["severance"]["args"]
    assert args[args.index("--store") + 1] == str(Path(location).absolute())
    assert args[args.index("--key-file") + 1] == key
    assert Path(shown["mcpServers"]["severance"]["command"]).is_absolute()
    assert not target.exists()
    code, out, err = run(
        capsys,
        "--store",
        location,
        "mcp",
        "install",
        "cursor",
        "--workspace",
        str(root / "elsewhere"),
        "--print",
    )
    assert code == 0 and "matches no floor" in err


@pytest.mark.anyio
async def test_the_written_config_starts_a_server_that_wakes_the_shown_persona(
    made: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    location, root = made
    workspace = root / "work" / "acme"
    monkeypatch.chdir(workspace)
    code, out, err = run(
        capsys,
        "--store",
        location,
        "--key-file",
        str(root / "master.key"),
        "mcp",
        "install",
        "claude-code",
        "--scope",
        "project",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["wakes"]["persona"] == "work" and result["written"]
    config = json.loads((workspace / ".mcp.json").read_text())
    entry = config["mcpServers"]["severance"]
    assert entry["type"] == "stdio"
    # Start it as Claude Code would: from the project folder, with nothing but the entry.
    params = StdioServerParameters(
        command=entry["command"],
        args=entry["args"],
        cwd=workspace,
        env={"HOME": str(isolated_env), "PATH": "/usr/bin:/bin"},
    )
    info = Implementation(name="claude-code", version="1")
    async with Client(params, mode="legacy", client_info=info) as c:
        listed = await c.call_tool("list_memories", {})
    assert not listed.is_error, listed.content
    assert listed.structured_content is not None
    assert listed.structured_content["persona"] == "work"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_install_keeps_a_backup_follows_links_and_refuses_comments(tmp_path: Path) -> None:
    entry = {"command": "/x/severance", "args": ["serve", "--mcp"]}
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "claude.json"
    original = '{\n    "numStartups": 3,\n    "mcpServers": {"github": {"command": "gh"}}\n}\n'
    real.write_text(original)
    real.chmod(0o644)
    link = tmp_path / ".claude.json"
    link.symlink_to(real)
    done = install("claude-code", link, entry)
    assert link.is_symlink() and link.resolve() == real  # the link is kept, its file updated
    assert json.loads(real.read_text()) == {
        "numStartups": 3,
        "mcpServers": {"github": {"command": "gh"}, "severance": entry},
    }
    assert done.backup == dotfiles / "claude.json.bak"
    assert done.backup.read_text() == original  # the file as it was, layout and all
    assert real.stat().st_mode & 0o777 == 0o644
    # JSONC (VS Code, Cursor): refused with a way forward, not rewritten without its comments.
    vscode = tmp_path / "mcp.json"
    jsonc = '{\n  // mine\n  "servers": {"a": {"command": "a"},},\n}\n'
    vscode.write_text(jsonc)
    with pytest.raises(InvalidInputError, match=r"comments and trailing commas.*--print"):
        install("vscode", vscode, entry)
    assert vscode.read_text() == jsonc and not (tmp_path / "mcp.json.bak").exists()
    # An empty or blank file is an empty config; a blank name is refused.
    blank = tmp_path / "blank.json"
    blank.write_text("  \n")
    install("cursor", blank, entry)
    assert json.loads(blank.read_text()) == {"mcpServers": {"severance": entry}}
    for name in ("", "  ", "a\nb"):
        with pytest.raises(InvalidInputError, match="server name"):
            install("cursor", blank, entry, name=name)
