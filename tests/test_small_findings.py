"""Issue 9, item 10: small findings, each with the test that would have caught it.

A zero-byte ``store.db``, an export to a missing directory, a plaintext export readable by
others, ``--min-similarity`` out of range or NaN, a one-character passphrase, a dry run that
decrypts without an audit entry, and a wake that reads the persona's whole audit history.
"""

from __future__ import annotations

import io
import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import severance
from severance import InvalidInputError, StorePathError
from severance.backends import open_backend
from severance.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    store_location: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    def run(*args: str, location: str | None = None) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        try:
            main(["--store", location or store_location, *args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def one_line_error(r: Result) -> str:
    assert r.code not in (0, 1), r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("severance: error: "), r.err
    assert "Traceback" not in r.err
    return lines[0]


def test_a_zero_byte_store_db_is_a_typed_error(tmp_path: Path, cli: Any) -> None:
    location = tmp_path / "store"
    location.mkdir()
    (location / "store.db").touch()
    with pytest.raises(StorePathError, match="empty"):
        severance.Store.open(location)
    assert (location / "store.db").stat().st_size == 0  # nothing was built inside it
    assert "empty" in one_line_error(cli("memories", location=str(location)))


def test_export_to_a_missing_directory_is_a_typed_error(
    store: severance.Store, cli: Any, tmp_path: Path
) -> None:
    with store.enter(floor="office") as s:
        s.remember("Quarterly numbers are due")
    exports_before = len([e for e in store.audit("work") if e.event == "export"])
    line = one_line_error(cli("export", "--floor", "office", "-o", str(tmp_path / "no" / "x")))
    assert "cannot write" in line
    # Refused before anything was decrypted: no export is recorded.
    assert len([e for e in store.audit("work") if e.event == "export"]) == exports_before


def test_an_export_file_is_private_and_complete(
    store: severance.Store, cli: Any, tmp_path: Path
) -> None:
    with store.enter(floor="office") as s:
        s.remember_many([f"note {i}" for i in range(5)])
    target = tmp_path / "work.jsonl"
    target.write_text("old contents\n")
    target.chmod(0o644)
    r = cli("export", "--floor", "office", "-o", str(target))
    assert r.code == 0, r.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    lines = target.read_text().splitlines()
    assert sorted(json.loads(line)["text"] for line in lines) == [f"note {i}" for i in range(5)]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize("value", ["5", "nan", "-1.5", "inf"])
def test_min_similarity_out_of_range_is_refused(
    store: severance.Store, cli: Any, value: str
) -> None:
    line = one_line_error(cli("recall", "--floor", "office", "x", "--min-similarity", value))
    assert "min_similarity" in line
    with store.enter(floor="office") as s, pytest.raises(InvalidInputError):
        s.recall("x", min_similarity=float(value))


@pytest.mark.parametrize("passphrase", ["x", "       ", "short"])
def test_a_weak_passphrase_is_refused_at_init_and_rotation(
    tmp_path: Path, store: severance.Store, passphrase: str
) -> None:
    with pytest.raises(InvalidInputError, match="at least"):
        severance.Store.init(tmp_path / "new", passphrase=passphrase)
    assert not (tmp_path / "new").exists()
    with pytest.raises(InvalidInputError, match="at least"):
        store.rotate_key(passphrase=passphrase)
    with store.enter(floor="office") as s:  # the old key still opens everything
        s.count()


def test_a_wake_reads_only_the_audit_since_the_last_normal_wake(
    store: severance.Store, store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notices come from the entries after the persona's last normal wake, read newest first
    in pages: a persona with a long history does not decode all of it on every wake."""
    for _ in range(300):
        with store.enter(floor="office") as s:
            s.count()
    with store.override("work", reason="on call", minutes=5) as s:
        s.count()
    read: list[int] = []
    probe = open_backend(store_location)
    backend_type = type(probe)
    probe.close()
    original = backend_type.audit_page

    def counting(self: Any, persona_id: str, before: int | None, limit: int) -> Any:
        rows = original(self, persona_id, before, limit)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(backend_type, "audit_page", counting)
    with store.enter(floor="office") as s:
        assert [n.event for n in s.notices()] == ["override"]
    assert sum(read) < 100  # not the ~600 entries of its history
    with store.enter(floor="office") as s:
        assert s.notices() == []
