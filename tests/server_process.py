"""A real ``severance serve`` in a subprocess, on 127.0.0.1 with ports the OS picks.

The server binds port 0 and prints ``… listening on http://127.0.0.1:PORT`` on stderr once it
accepts connections; :func:`serving` waits for those lines, yields the URLs, then stops the
server with SIGTERM and checks that it exited cleanly, without a traceback.

The benchmarks start their servers with this module too (``bench/isolation/severance_servers.py``,
``bench/load_http.py``; bench runs from the repository root, where ``tests`` is importable): one
way to run a real server for the suite and the benchmarks alike.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

_LISTENING = re.compile(r"severance: (.+?) listening on (http://\S+)")
_ENTRY = "from severance.cli import main; main()"


def server_command(store: str, *args: str) -> list[str]:
    """The command line of ``severance --store STORE ARGS`` in this interpreter (the same one
    whatever ``severance`` is on PATH)."""
    return [sys.executable, "-c", _ENTRY, "--store", store, *args]


@dataclass
class Served:
    """A running server: its process, URLs by name ("HTTP API", "MCP server"), its stderr."""

    process: subprocess.Popen[str]
    urls: dict[str, str]
    stderr: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return self.urls["HTTP API"]

    @property
    def mcp(self) -> str:
        return self.urls["MCP server"]


def server_env(home: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server: a private HOME and config dir, no SEVERANCE_* leaking."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEVERANCE_")}
    env.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"), PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


@contextmanager
def serving(
    store: str,
    *args: str,
    env: Mapping[str, str],
    expect: int = 1,
    timeout: float = 90.0,
    check_exit: bool = True,
    check_output: bool = True,
) -> Iterator[Served]:
    """Run ``severance --store STORE serve ARGS`` until the block ends.

    Afterwards the server's stderr must hold no traceback (``check_output``) and its exit code
    must be 0 (``check_exit``).
    """
    command = server_command(store, "serve", *args)
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )
    assert process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    served = Served(process, {})

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            served.stderr.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while len(served.urls) < expect:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"server did not start in {timeout} s: {''.join(served.stderr)}"
                ) from None
            if line is None:
                raise AssertionError(f"server exited early: {''.join(served.stderr)}")
            if m := _LISTENING.search(line):
                served.urls[m[1]] = m[2]
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
        process.stderr.close()
    output = "".join(served.stderr)
    if check_output:
        assert "Traceback" not in output, output
    if check_exit:
        assert process.returncode == 0, output
