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
from severance import floors as floors_module
from severance.floors import HoursWindow, path_matches, resolve

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
