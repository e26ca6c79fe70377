"""Floor matching (src/severance/floors.py) and ``Store.resolve``.

Times are always given with ``at=`` so nothing depends on when the suite runs. ``~`` is the
private HOME set by conftest's ``isolated_env``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import severance
from severance import (
    Context,
    Floor,
    FloorNotFoundError,
    InvalidFloorError,
    NoFloorError,
)
from severance import clients as client_table
from severance import floors as floors_module
from severance.floors import HoursWindow, Shadow, covers, path_matches, resolve, shadows
from severance.workspace import case_insensitive, resolve_path

# 2024-06-03 is a Monday.
MONDAY = datetime(2024, 6, 3, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, tz: timezone = UTC) -> datetime:
    """A fixed moment: ``day`` 0 = Monday 2024-06-03."""
    return (MONDAY + timedelta(days=day)).replace(hour=hour, minute=minute, tzinfo=tz)


@pytest.fixture(autouse=True)
def no_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any floor test that would read the wall clock (an hours floor without ``at=``) fails."""

    def refuse() -> datetime:
        raise AssertionError("this test reads the wall clock: give the context at=")

    monkeypatch.setattr(floors_module, "clock", refuse)


def floor(name: str = "f", persona: str = "p", **conditions: object) -> Floor:
    return Floor(name=name, persona=persona, **conditions)  # type: ignore[arg-type]


# -- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("~/work/**", "~/work/acme", True),
        ("~/work/**", "~/work/acme/deep/src", True),
        ("~/work/**", "~/work", True),
        ("~/work/**", "~/workshop", False),
        ("~/work/**", "~/home/work", False),
        ("~/work", "~/work", True),
        ("~/work", "~/work/acme/x", True),  # a pattern covers the descendants of a match
        ("~/work", "~/work-old", False),
        ("~/work", "~", False),  # an ancestor of the pattern is not covered
        ("~/work/*", "~/work/acme", True),
        ("~/work/*", "~/work/acme/deep", True),  # via the ancestor ~/work/acme
        ("~/work/*/src", "~/work/acme/src", True),
        ("~/work/*/src", "~/work/acme/src/pkg", True),
        ("~/work/*/src", "~/work/a/b/src", False),  # * stays within one segment
        ("~/work/**/src", "~/work/a/b/src", True),  # ** crosses segments
        ("~/work/acme-?", "~/work/acme-1", True),
        ("~/work/acme-?", "~/work/acme-12", False),
        ("~/work/a+b", "~/work/a+b", True),  # regex characters are literal
        ("~/work/a+b", "~/work/aab", False),
        ("/srv/projects/*", "/srv/projects/x", True),
        ("/srv/projects/*", "/srv/other/x", False),
    ],
)
def test_path_globs(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(pattern, path) is expected


def test_tilde_expands_to_home(isolated_env: Path) -> None:
    assert path_matches("~/work/**", str(isolated_env / "work" / "acme"))
    assert path_matches(str(isolated_env / "work"), "~/work/acme")


def test_home_is_read_when_matching_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: compiled patterns were cached on the unexpanded text, so a floor kept
    # matching the HOME of the first call.
    monkeypatch.setenv("HOME", str(tmp_path / "a"))
    assert path_matches("~/work/**", str(tmp_path / "a" / "work" / "x"))
    monkeypatch.setenv("HOME", str(tmp_path / "b"))
    assert path_matches("~/work/**", str(tmp_path / "b" / "work" / "x"))
    assert not path_matches("~/work/**", str(tmp_path / "a" / "work" / "x"))


def test_trailing_slashes_and_dots_are_normalised() -> None:
    assert path_matches("~/work/", "~/work/acme/")
    assert path_matches("~/work", "~/work/acme/../beta")
    assert not path_matches("~/work", "~/work/../home")


def test_any_of_several_workspace_paths_may_match() -> None:
    f = floor(paths=("~/work/**",))
    assert f.match(Context(paths=("~/home/notes", "~/work/acme"))) is not None
    assert f.match(Context(paths=("~/home/notes",))) is None
    assert f.match(Context()) is None  # no path at all cannot match a path condition


def test_any_of_several_patterns_may_match() -> None:
    f = floor(paths=("~/clients/**", "~/work/**"))
    reasons = f.match(Context(paths=("~/work/acme",)))
    assert reasons == ["path '~/work/acme' matches '~/work/**'"]


# -- clients and hosts ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "client", "expected"),
    [
        ("claude-code", "claude-code", True),
        ("claude-code", "Claude-Code", True),
        ("CLAUDE-CODE", "claude-code", True),
        ("cursor*", "Cursor-Nightly", True),
        ("cursor*", "my-cursor", False),
        ("claude-?ode", "claude-code", True),
        ("claude-code", "claude-code-2", False),
        ("claude-code", None, False),
        ("*", None, False),  # no client is not "any client"
        ("*", "anything", True),
    ],
)
def test_client_globs_are_case_insensitive(
    pattern: str, client: str | None, expected: bool
) -> None:
    f = floor(clients=(pattern,))
    assert (f.match(Context(client=client)) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("laptop-*", "LAPTOP-42", True),
        ("*.corp.example.com", "build1.Corp.Example.com", True),
        ("*.corp.example.com", "corp.example.com", False),
        ("laptop-*", None, False),
        ("desk", "desktop", False),
    ],
)
def test_host_globs_are_case_insensitive(pattern: str, host: str | None, expected: bool) -> None:
    f = floor(hosts=(pattern,))
    assert (f.match(Context(host=host)) is not None) is expected


def test_all_given_conditions_must_match() -> None:
    f = floor(
        clients=("claude-code",),
        paths=("~/work/**",),
        hosts=("laptop-*",),
        hours=("mon-fri 09:00-17:00",),
    )
    good = Context(client="claude-code", paths=("~/work/acme",), host="laptop-1", at=at(0, 10))
    reasons = f.match(good)
    assert reasons == [
        "client 'claude-code' matches 'claude-code'",
        "path '~/work/acme' matches '~/work/**'",
        "host 'laptop-1' matches 'laptop-*'",
        "time Mon 10:00 UTC is within 'mon-fri 09:00-17:00'",
    ]
    for change in (
        {"client": "claude-desktop"},
        {"paths": ("~/home",)},
        {"host": "desktop-1"},
        {"at": at(5, 10)},  # Saturday
        {"at": at(0, 17)},  # the end of a window is excluded
    ):
        ctx = Context(**{**good.__dict__, **change})  # type: ignore[arg-type]
        assert f.match(ctx) is None, change


def test_a_floor_without_conditions_never_matches_by_rule() -> None:
    f = floor()
    assert not f.has_conditions
    assert f.match(Context(client="x", paths=("~",), host="h", at=at(0, 12))) is None


# -- hours -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("window", "moment", "expected"),
    [
        ("mon-fri 09:00-17:30", at(0, 9), True),
        ("mon-fri 09:00-17:30", at(0, 8, 59), False),
        ("mon-fri 09:00-17:30", at(4, 17, 29), True),
        ("mon-fri 09:00-17:30", at(4, 17, 30), False),
        ("mon-fri 09:00-17:30", at(5, 12), False),
        ("weekdays 09:00-17:00", at(2, 12), True),
        ("weekends 10:00-14:00", at(6, 11), True),
        ("weekends 10:00-14:00", at(3, 11), False),
        ("sat,sun 10:00-14:00", at(5, 13, 59), True),
        ("mon,wed-thu 10:00-11:00", at(1, 10, 30), False),
        ("mon,wed-thu 10:00-11:00", at(3, 10, 30), True),
        ("fri-mon 10:00-11:00", at(6, 10, 30), True),  # a day range may wrap the week
        ("fri-mon 10:00-11:00", at(2, 10, 30), False),
        ("mon 22:00-24:00", at(0, 23, 59), True),
        # A window wrapping midnight: the late part belongs to the listed day, the early part
        # to the day after it.
        ("daily 22:00-02:00", at(2, 23), True),
        ("daily 22:00-02:00", at(2, 1, 59), True),
        ("daily 22:00-02:00", at(2, 2), False),
        ("daily 22:00-02:00", at(2, 12), False),
        ("fri 22:00-02:00", at(4, 23), True),
        ("fri 22:00-02:00", at(5, 1), True),  # Saturday 01:00 is Friday night
        ("fri 22:00-02:00", at(4, 1), False),  # Friday 01:00 is Thursday night
        ("fri 22:00-02:00", at(5, 23), False),
        ("sun 23:00-01:00", at(7, 0, 30), True),  # Sunday night spills into Monday
    ],
)
def test_hours_windows(window: str, moment: datetime, expected: bool) -> None:
    f = floor(hours=(window,))
    assert (f.match(Context(at=moment)) is not None) is expected


def test_hours_read_in_the_floor_time_zone_across_dst() -> None:
    # New York is UTC-4 in June (EDT) and UTC-5 in January (EST).
    f = floor(hours=("mon-fri 09:00-17:00",), timezone="America/New_York")
    summer_1330_utc = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)  # 09:30 EDT: inside
    winter_1330_utc = datetime(2024, 1, 8, 13, 30, tzinfo=UTC)  # 08:30 EST: outside
    winter_1430_utc = datetime(2024, 1, 8, 14, 30, tzinfo=UTC)  # 09:30 EST: inside
    assert f.match(Context(at=summer_1330_utc)) == [
        "time Mon 09:30 America/New_York is within 'mon-fri 09:00-17:00'"
    ]
    assert f.match(Context(at=winter_1330_utc)) is None
    assert f.match(Context(at=winter_1430_utc)) is not None


def test_hours_on_the_dst_switch_day() -> None:
    # 2024-03-10: New York jumps from 02:00 EST to 03:00 EDT.
    f = floor(hours=("sun 01:00-04:00",), timezone="America/New_York")
    assert f.match(Context(at=datetime(2024, 3, 10, 6, 30, tzinfo=UTC))) is not None  # 01:30 EST
    assert f.match(Context(at=datetime(2024, 3, 10, 7, 30, tzinfo=UTC))) is not None  # 03:30 EDT
    assert f.match(Context(at=datetime(2024, 3, 10, 8, 30, tzinfo=UTC))) is None  # 04:30 EDT


def test_a_time_zone_shifts_the_weekday() -> None:
    # Monday 23:30 UTC is already Tuesday 08:30 in Tokyo.
    f = floor(hours=("tue 08:00-09:00",), timezone="Asia/Tokyo")
    assert f.match(Context(at=at(0, 23, 30))) is not None
    assert floor(hours=("tue 08:00-09:00",)).match(Context(at=at(0, 23, 30))) is None


def test_an_aware_time_in_another_offset_is_converted() -> None:
    f = floor(hours=("mon 09:00-10:00",))  # UTC
    plus_two = timezone(timedelta(hours=2))
    assert f.match(Context(at=at(0, 11, 30, tz=plus_two))) is not None  # 09:30 UTC
    assert f.match(Context(at=at(0, 9, 30, tz=plus_two))) is None  # 07:30 UTC


@pytest.mark.parametrize(
    "window",
    [
        "09:00-17:00",
        "mon-fri 9-17",
        "mon-fri 09:00-09:00",
        "mon-fri 25:00-26:00",
        "mon-fri 09:60-10:00",
        "mon-fri 09:00-24:30",
        "funday 09:00-10:00",
        "mon-xyz 09:00-10:00",
        "",
    ],
)
def test_bad_hours_are_rejected(window: str) -> None:
    with pytest.raises(InvalidFloorError):
        HoursWindow.parse(window)
    with pytest.raises(InvalidFloorError):
        floor(hours=(window,))


def test_bad_time_zone_and_names_are_rejected() -> None:
    with pytest.raises(InvalidFloorError, match="time zone"):
        floor(hours=("mon 09:00-10:00",), timezone="Mars/Olympus_Mons")
    for name in ("Office", "", "-office", "of fice", "x" * 65, "office/2"):
        with pytest.raises(InvalidFloorError):
            floor(name=name)
    with pytest.raises(InvalidFloorError):
        floor(clients=("",))
    with pytest.raises(InvalidFloorError):
        floor(paths=("  ",))


# -- resolution ------------------------------------------------------------------------------------
FLOORS = [
    floor("office", "work", clients=("claude-code", "cursor*"), paths=("~/work/**",)),
    floor("late", "side", hours=("daily 22:00-02:00",), timezone="Europe/Berlin"),
    floor("anywhere-work", "work", paths=("~/work/**",)),
    floor("house", "home", default=True),
]


def test_first_match_wins() -> None:
    ctx = Context(client="claude-code", paths=("~/work/acme",), at=at(0, 23))
    match = resolve(FLOORS, ctx)
    assert (match.floor.name, match.persona) == ("office", "work")  # "late" matches too
    match = resolve(FLOORS, Context(client="vim", paths=("~/work/acme",), at=at(0, 23)))
    assert (match.floor.name, match.persona) == ("late", "side")  # 01:00 in Berlin
    match = resolve(FLOORS, Context(client="vim", paths=("~/work/acme",), at=at(0, 12)))
    assert (match.floor.name, match.persona) == ("anywhere-work", "work")


def test_default_floor_when_nothing_matches() -> None:
    match = resolve(FLOORS, Context(client="claude-desktop", paths=("~",), at=at(0, 12)))
    assert match.floor.name == "house"
    assert match.persona == "home"
    assert match.reasons == ("no floor matched; this is the default floor",)


def test_no_match_and_no_default_is_no_floor_error() -> None:
    with pytest.raises(NoFloorError):
        resolve(FLOORS[:3], Context(client="x", at=at(0, 12)))
    with pytest.raises(NoFloorError):
        resolve([], Context())


def test_explicit_floor_name_wins_over_every_rule() -> None:
    ctx = Context(floor="house", client="claude-code", paths=("~/work/acme",))
    match = resolve(FLOORS, ctx)
    assert match.floor.name == "house"
    assert match.reasons == ("floor 'house' named explicitly",)
    # A floor with conditions can be entered by name regardless of them.
    match = resolve(FLOORS, Context(floor="late", at=at(0, 12)))
    assert match.persona == "side"


def test_unknown_explicit_floor_is_not_found_even_with_a_default() -> None:
    with pytest.raises(FloorNotFoundError, match="no floor named 'attic'"):
        resolve(FLOORS, Context(floor="attic"))


def test_context_from_mapping() -> None:
    ctx = Context.from_mapping(
        {"path": "~/a", "paths": ["~/b"], "client": "c", "at": "2024-06-03T10:00:00+00:00"}
    )
    assert ctx.paths == ("~/a", "~/b")
    assert ctx.at == at(0, 10)
    with pytest.raises(InvalidFloorError, match="unknown context keys"):
        Context.from_mapping({"persona": "work"})
    with pytest.raises(InvalidFloorError):
        Context.from_mapping({"at": "not a time"})


# -- through the store -----------------------------------------------------------------------------
@pytest.fixture
def floored(store_location: str) -> severance.Store:
    s = severance.Store.init(store_location)
    s.add_persona("work")
    s.add_persona("home")
    s.add_floor("office", persona="work", paths=["~/work/**"], clients=["claude-code"])
    s.add_floor("evenings", persona="home", hours=["mon-fri 18:00-23:00"], timezone="Europe/Paris")
    s.add_floor("house", persona="home", default=True)
    yield s
    s.close()


def test_store_resolve_reasons(floored: severance.Store) -> None:
    match = floored.resolve(client="claude-code", path="~/work/acme")
    assert match.to_dict() == {
        "floor": "office",
        "persona": "work",
        "reasons": [
            "client 'claude-code' matches 'claude-code'",
            "path '~/work/acme' matches '~/work/**'",
        ],
    }
    match = floored.resolve({"client": "claude-desktop", "at": at(0, 19)})  # 21:00 in Paris
    assert match.floor.name == "evenings"
    assert match.reasons == ("time Mon 21:00 Europe/Paris is within 'mon-fri 18:00-23:00'",)
    match = floored.resolve(Context(client="claude-code", paths=("~/home",), at=at(0, 8)))
    assert match.floor.name == "house"
    assert match.reasons == ("no floor matched; this is the default floor",)
    assert floored.resolve(floor="office").reasons == ("floor 'office' named explicitly",)


def test_store_resolve_errors(floored: severance.Store) -> None:
    with pytest.raises(FloorNotFoundError):
        floored.resolve(floor="attic")
    with pytest.raises(severance.InvalidInputError):
        floored.resolve(Context(client="x"), client="y")
    floored.remove_floor("house")
    with pytest.raises(NoFloorError):
        floored.resolve(client="claude-desktop", at=at(0, 12))


def test_store_floors_keep_order_and_round_trip(floored: severance.Store) -> None:
    floors = floored.floors()
    assert [f.name for f in floors] == ["office", "evenings", "house"]
    assert floors[0] == Floor("office", "work", clients=("claude-code",), paths=("~/work/**",))
    assert floors[1].timezone == "Europe/Paris"
    assert floors[2].default
    floored.remove_floor("office")
    floored.add_floor("office", persona="work", paths=["~/work/**"])
    assert [f.name for f in floored.floors()] == ["evenings", "house", "office"]


def test_enter_wakes_the_resolved_persona(floored: severance.Store) -> None:
    with floored.enter(client="Claude-Code", path="~/work/acme/src", at=at(0, 19)) as s:
        assert (s.persona, s.floor) == ("work", "office")
    # Monday 08:00 UTC is 10:00 in Paris: outside "evenings", so the default wakes. (Without
    # at= this read the wall clock and failed on weekday evenings.)
    with floored.enter(client="claude-code", path="~/personal", at=at(0, 8)) as s:
        assert (s.persona, s.floor) == ("home", "house")
    with floored.enter({"floor": "evenings"}) as s:
        assert (s.persona, s.floor) == ("home", "evenings")


# -- client families -------------------------------------------------------------------------------

#: (name as the client sends it, family). Every name comes from the client's own source or a
#: captured ``initialize`` (see src/severance/clients.py).
SENT_NAMES = [
    ("claude-ai", "claude-desktop"),
    ("claude-code", "claude-code"),
    ("Claude Code", "claude-code"),
    ("cursor-vscode", "cursor"),
    ("Visual Studio Code", "vscode"),
    ("Visual Studio Code - Insiders", "vscode"),
    ("Visual-Studio-Code", "vscode"),
    ("windsurf-client", "windsurf"),
    ("Windsurf", "windsurf"),
    ("Zed", "zed"),
    ("codex-mcp-client", "codex"),
    ("Codex", "codex"),
    ("Cline", "cline"),
    ("continue-client", "continue"),
    ("continue-cli-client", "continue"),
    ("goose", "goose"),
    ("goose-cli", "goose"),
    ("Roo Code", "roo-code"),
    ("gemini-cli-mcp-client", "gemini-cli"),
    ("JetBrains-IU-copilot-intellij", "jetbrains"),
    ("mcp-inspector", "inspector"),
    ("mcp", "mcp-python-sdk"),
    ("severance-cli", "terminal"),
]


@pytest.mark.parametrize(("sent", "family"), SENT_NAMES)
def test_a_family_name_matches_what_the_client_really_sends(sent: str, family: str) -> None:
    assert client_table.family_of(sent) == family
    assert client_table.family_of(sent.upper()) == family  # case-insensitive
    f = floor(clients=(family,))
    assert f.match(Context(client=sent)) is not None
    # ... and no other family's floor takes it.
    for other in client_table.family_names():
        if other != family:
            assert floor(clients=(other,)).match(Context(client=sent)) is None, other


def test_the_family_table_is_unambiguous() -> None:
    exact = [
        s.casefold()
        for f in client_table.FAMILIES
        for s in f.sends
        if not any(c in s for c in "*?[")
    ]
    assert len(exact) == len(set(exact))
    for f in client_table.FAMILIES:
        for s in f.sends:
            if not any(c in s for c in "*?["):
                assert client_table.family_of(s) == f.name, s
    assert client_table.family_of("vim") is None
    assert client_table.family_of(None) is None


def test_exact_globs_still_work_beside_families() -> None:
    assert floor(clients=("cursor-vscode",)).match(Context(client="cursor-vscode")) is not None
    assert floor(clients=("cursor*",)).match(Context(client="cursor-vscode")) is not None
    assert floor(clients=("my-bot",)).match(Context(client="My-Bot")) is not None
    # A family name sent verbatim matches too (some tools send "cursor").
    assert floor(clients=("cursor",)).match(Context(client="cursor")) is not None


def test_excluded_clients() -> None:
    not_terminal = floor(clients=("!terminal",))
    assert not_terminal.match(Context(client="severance-cli")) is None
    assert not_terminal.match(Context(client="cursor-vscode")) is not None
    editors = floor(clients=("cursor", "vscode", "!Visual Studio Code - Insiders"))
    assert editors.match(Context(client="Visual Studio Code")) is not None
    assert editors.match(Context(client="Visual Studio Code - Insiders")) is None
    check = editors.check(Context(client="Visual Studio Code - Insiders"))
    assert check.reasons == (
        "client 'Visual Studio Code - Insiders' (vscode) is excluded by"
        " '!Visual Studio Code - Insiders'",
    )
    with pytest.raises(InvalidFloorError):
        floor(clients=("!",))
    with pytest.raises(InvalidFloorError, match="only client patterns"):
        floor(paths=("!~/work",))


def test_unknown_client_patterns_are_flagged() -> None:
    assert client_table.is_known("cursor") and client_table.is_known("cursor-vscode")
    assert client_table.is_known("cursor*") and client_table.is_known("!terminal")
    assert not client_table.is_known("cursr")


# -- symlinks and case -----------------------------------------------------------------------------
@pytest.fixture
def linked(tmp_path: Path) -> dict[str, Path]:
    """``tmp/home/work`` is a symlink to ``tmp/data/work``; ``acme`` lives inside."""
    real = tmp_path / "data" / "work"
    (real / "acme" / "src").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    link = tmp_path / "home" / "work"
    link.symlink_to(real, target_is_directory=True)
    return {"real": real, "link": link}


def test_symlinks_are_resolved_on_both_sides(linked: dict[str, Path]) -> None:
    real, link = str(linked["real"]), str(linked["link"])
    for pattern in (f"{link}/**", f"{real}/**", f"{link}/acme", f"{real}/*/src"):
        for path in (f"{link}/acme/src", f"{real}/acme/src"):
            assert path_matches(pattern, path), (pattern, path)
    assert not path_matches(f"{link}/other/**", f"{real}/acme")
    reasons = floor(paths=(f"{link}/**",)).match(Context(paths=(f"{real}/acme",)))
    assert reasons == [f"path {real + '/acme'!r} matches {link + '/**'!r}"]
    reasons = floor(paths=(f"{real}/**",)).match(Context(paths=(f"{link}/acme",)))
    assert reasons == [
        f"path {link + '/acme'!r} (resolved {real + '/acme'!r}) matches {real + '/**'!r}"
    ]
    assert resolve_path(f"{link}/acme") == f"{real}/acme"


def test_case_is_folded_only_where_the_file_system_folds_it(tmp_path: Path) -> None:
    (tmp_path / "Work").mkdir()
    folds = case_insensitive(str(tmp_path / "Work"))
    # Asked of the file system itself: "is Work the same file as wORK?"
    assert folds == (tmp_path / "wORK").exists()
    assert path_matches(str(tmp_path / "work"), str(tmp_path / "Work")) is folds
    assert path_matches(str(tmp_path / "work/**"), str(tmp_path / "WORK/x"), fold=True)
    assert not path_matches(str(tmp_path / "work/**"), str(tmp_path / "WORK/x"), fold=False)


# -- shadowing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        (floor("a", paths=("~/work/**",)), floor("b", paths=("~/work/acme/**",)), True),
        (floor("a", paths=("~/work",)), floor("b", paths=("~/work/acme",)), True),
        (floor("a", paths=("~/work/acme/**",)), floor("b", paths=("~/work/**",)), False),
        (floor("a", paths=("~/work/**",)), floor("b", paths=("~/workshop/**",)), False),
        (floor("a", paths=("~/*/acme",)), floor("b", paths=("~/work/acme/x/**",)), True),
        (
            floor("a", paths=("~/work/**",)),
            floor("b", paths=("~/work/acme/**",), clients=("cursor",)),
            True,
        ),
        (
            floor("a", paths=("~/work/**",), clients=("cursor",)),
            floor("b", paths=("~/work/acme/**",)),
            False,
        ),
        (floor("a", clients=("cursor",)), floor("b", clients=("cursor-vscode",)), True),
        (floor("a", clients=("cursor-vscode",)), floor("b", clients=("cursor",)), False),
        (floor("a", clients=("*",)), floor("b", clients=("cursor",)), True),
        (floor("a", clients=("cursor",)), floor("b", clients=("vscode",)), False),
        (floor("a", clients=("!terminal",)), floor("b", clients=("cursor",)), False),
        (floor("a", clients=("!terminal",)), floor("b", clients=("cursor", "!terminal")), True),
        (floor("a", hosts=("laptop-*",)), floor("b", hosts=("laptop-1",)), True),
        (
            floor("a", hours=("mon-fri 09:00-17:00",)),
            floor("b", hours=("mon-fri 09:00-17:00",), paths=("~/x",)),
            True,
        ),
        (
            floor("a", hours=("mon-fri 09:00-17:00",)),
            floor("b", hours=("mon-fri 09:00-17:00",), timezone="Europe/Paris"),
            False,
        ),
        (floor("a", hours=("mon-fri 09:00-17:00",)), floor("b", paths=("~/x",)), False),
        (floor("a"), floor("b", paths=("~/x",)), False),  # no conditions: matches nothing
    ],
)
def test_shadowing(earlier: Floor, later: Floor, shadowed: bool) -> None:
    assert covers(earlier, later) is shadowed
    assert shadows([earlier, later]) == ([Shadow("b", "a")] if shadowed else [])
    assert shadows([later, earlier]) == [] or covers(later, earlier)


def test_shadow_message_says_how_to_fix_it() -> None:
    message = Shadow("acme", "office").message
    assert "can never match" in message
    assert "severance floor move acme --before office" in message


def test_explain_says_for_every_floor_why() -> None:
    checks = floors_module.explain(FLOORS, Context(client="vim", paths=("~/x",), at=at(0, 12)))
    assert [(c.floor.name, c.matched) for c in checks] == [
        ("office", False),
        ("late", False),
        ("anywhere-work", False),
        ("house", False),
    ]
    assert checks[0].reasons == (
        "client 'vim' matches none of 'claude-code', 'cursor*'",
        "path '~/x' matches none of '~/work/**'",
    )
    assert checks[1].reasons == ("time Mon 14:00 Europe/Berlin is outside 'daily 22:00-02:00'",)
    # The default is not "only by name": it also wakes when nothing else matches.
    assert checks[3].reasons == (
        "it has no conditions: it wakes by name, or as the default when no floor matches",
    )
    spare = Floor("spare", "work")
    assert spare.check(Context()).reasons == ("it has no conditions: it wakes only by name",)


# -- strict ----------------------------------------------------------------------------------------
def test_strict_never_falls_back_to_the_default() -> None:
    ctx = Context(client="cursor-vscode", paths=("~/elsewhere",), at=at(0, 12))
    assert resolve(FLOORS, ctx).floor.name == "house"
    with pytest.raises(NoFloorError) as e:
        resolve(FLOORS, ctx, strict=True)
    assert "strict mode does not fall back to the default floor" in str(e.value)
    assert "--client cursor --path '~/elsewhere/**'" in str(e.value)
    with pytest.raises(NoFloorError, match="no default floor is set"):
        resolve(FLOORS[:3], Context(client="Zed", at=at(0, 12)))
    assert resolve(FLOORS, Context(client="x", paths=("~/work/a",), at=at(0, 12)), strict=True)
    strict_ctx = Context.from_mapping({"client": "x", "strict": True, "at": at(0, 12)})
    with pytest.raises(NoFloorError):
        resolve(FLOORS, strict_ctx)


# -- order, shadowing and strict through the store -------------------------------------------------
def test_add_before_and_after_and_move(floored: severance.Store) -> None:
    floored.add_floor("acme", persona="work", paths=["~/work/acme/**"], before="office")
    floored.add_floor("late", persona="home", hours=["daily 22:00-23:00"], after="evenings")
    assert [f.name for f in floored.floors()] == ["acme", "office", "evenings", "late", "house"]
    assert floored.move_floor("acme", after="late") == 4
    assert [f.name for f in floored.floors()] == ["office", "evenings", "late", "acme", "house"]
    assert floored.move_floor("house", before="office") == 1
    assert [f.name for f in floored.floors()] == ["house", "office", "evenings", "late", "acme"]
    with pytest.raises(FloorNotFoundError):
        floored.move_floor("attic", before="office")
    with pytest.raises(FloorNotFoundError):
        floored.move_floor("acme", before="attic")
    with pytest.raises(InvalidFloorError):
        floored.move_floor("acme")
    with pytest.raises(InvalidFloorError):
        floored.move_floor("acme", before="acme")
    with pytest.raises(FloorNotFoundError):
        floored.add_floor("x", persona="work", before="attic")
    assert "x" not in [f.name for f in floored.floors()]  # a refused add changes nothing
    # The order survives reopening.
    location = floored.location
    floored.close()
    with severance.Store.open(location) as again:
        assert [f.name for f in again.floors()] == ["house", "office", "evenings", "late", "acme"]


def test_a_floor_added_after_a_broader_one_is_reported_shadowed(floored: severance.Store) -> None:
    floored.add_floor("acme", persona="work", paths=["~/work/acme/**"], clients=["claude-code"])
    assert floored.shadowed_floors() == [Shadow("acme", "office")]
    with floored.enter(client="claude-code", path="~/work/acme", at=at(0, 8)) as s:
        assert s.floor == "office"  # what the warning said
    floored.move_floor("acme", before="office")
    assert floored.shadowed_floors() == []
    with floored.enter(client="claude-code", path="~/work/acme", at=at(0, 8)) as s:
        assert s.floor == "acme"


def test_strict_store_refuses_and_writes_nothing(floored: severance.Store) -> None:
    assert not floored.strict
    before = len(floored.audit())
    floored.set_strict(True)
    assert floored.strict
    with pytest.raises(NoFloorError, match="strict mode"):
        floored.enter(client="Zed", path="~/elsewhere", at=at(0, 8))
    with pytest.raises(NoFloorError):
        floored.resolve(client="Zed", path="~/elsewhere", at=at(0, 8))
    # Nothing was woken: the only new audit entry is the switch itself.
    assert [e.event for e in floored.audit()[before:]] == ["floor_strict"]
    with floored.enter(floor="house") as s:  # by name still works
        assert s.count() == 0
    floored.set_strict(False)
    with floored.enter(client="Zed", path="~/elsewhere", at=at(0, 8)) as s:
        assert s.floor == "house"


def test_enter_audit_records_who_and_where(floored: severance.Store) -> None:
    with floored.enter(client="cursor-vscode", path="~/work/acme", at=at(0, 8)):
        pass
    entry = next(e for e in reversed(floored.audit()) if e.event == "enter")
    assert entry.detail["client"] == "cursor-vscode"
    assert entry.detail["client_family"] == "cursor"
    assert entry.detail["paths"] == ["~/work/acme"]
    assert entry.detail["by"] == "default"
    with floored.enter(floor="office"):
        pass
    entry = next(e for e in reversed(floored.audit()) if e.event == "enter")
    assert "client" not in entry.detail and entry.detail["by"] == "name"
    seen = floored.clients_seen()
    assert [(i["client"], i["family"], i["floors"]) for i in seen] == [
        ("cursor-vscode", "cursor", {"house": "home"})
    ]
