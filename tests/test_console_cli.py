"""``severance console`` and ``severance serve --console`` as real processes, over real HTTP.

Each prints a one-time login URL on stderr; the URL logs in once (a cookie, then a redirect)
and never again. Addresses other than loopback are refused without TLS before anything is
unlocked.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import severance
from server_process import server_env, serving

_LOGIN = re.compile(r"console login: (http://\S+)")
_ENTRY = "from severance.cli import main; main()"


@pytest.fixture
def served_store(tmp_path: Path) -> tuple[str, dict[str, str]]:
    location = str(tmp_path / "store")
    key_file = str(tmp_path / "keys" / "master.key")
    with severance.Store.init(location, key_file=key_file) as store:
        store.add_persona("work")
        store.add_floor("office", "work")
        with store.enter(floor="office") as s:
            s.remember("Q3 launch moved to Oct 12")
    env = server_env(str(tmp_path / "home"), {"SEVERANCE_KEY_FILE": key_file})
    return location, env


def _log_in_once(url: str) -> None:
    origin = url.split("/login", 1)[0]
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        first = client.get(url)
        assert first.status_code == 200 and 'http-equiv="refresh"' in first.text, first.text
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get(origin + "/")
        assert page.status_code == 200 and "Wake work" in page.text
        assert "Q3 launch" not in page.text  # nothing of a persona before it is woken
    with httpx.Client(follow_redirects=False, timeout=30) as other:
        assert other.get(url).status_code == 403  # spent


def test_console_prints_a_login_url_that_works_once(served_store) -> None:
    location, env = served_store
    command = [
        sys.executable,
        "-c",
        _ENTRY,
        "--store",
        location,
        "console",
        "--listen",
        "127.0.0.1:0",
        "--no-browser",
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        url = None
        while url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            if m := _LOGIN.search(line):
                url = m[1]
        assert url.startswith("http://127.0.0.1:")
        _log_in_once(url)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        process.stderr.close()
    output = "".join(seen)
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_serve_console_runs_beside_the_other_servers(served_store) -> None:
    location, env = served_store
    with serving(
        location, "--http", "127.0.0.1:0", "--console", "127.0.0.1:0", env=env, expect=2
    ) as served:
        assert set(served.urls) == {"HTTP API", "console"}
        found = _LOGIN.search("".join(served.stderr))
        assert found is not None
        assert found[1].startswith(served.urls["console"])
        _log_in_once(found[1])


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _ENTRY, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("console", "--listen", "0.0.0.0:0", "--no-browser"),
        ("console", "--listen", "[::]:0", "--no-browser"),
        ("serve", "--console", "0.0.0.0:0"),
    ],
)
def test_a_non_loopback_console_without_tls_is_refused(served_store, args) -> None:
    location, env = served_store
    result = _run("--store", location, *args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("severance: error:"), result.stderr
    assert "loopback" in lines[0] or "plain HTTP" in lines[0]


def test_tls_needs_both_cert_and_key(served_store, tmp_path: Path) -> None:
    location, env = served_store
    cert = tmp_path / "cert.pem"
    cert.write_text("not really")
    result = _run("--store", location, "console", "--tls-cert", str(cert), "--no-browser", env=env)
    assert result.returncode == 2 and "--tls-key" in result.stderr
