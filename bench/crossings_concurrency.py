"""A move of N memories alone, then with another process writing to the same store throughout.

    python bench/crossings_concurrency.py [N] [--postgres URL]

Reports the move's wall time in both runs (and their ratio), how many writes the other process
had acknowledged during the move, and the longest single write it waited (the move holds the
store's writer lock only for its final, planned transaction). A SQLite store in a temporary
directory by default; figures are for comparing runs on one machine, not absolute targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import severance

WRITER = textwrap.dedent(
    """
    import sys, time
    import severance
    store = severance.Store.open(sys.argv[1])
    s = store.enter(floor="house")
    print("ready", flush=True)
    longest = 0.0
    n = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        t = time.perf_counter()
        s.remember(f"concurrent note {n}")
        longest = max(longest, time.perf_counter() - t)
        n += 1
    print(n, longest, flush=True)
    """
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2000
    url = sys.argv[sys.argv.index("--postgres") + 1] if "--postgres" in sys.argv else None
    home = tempfile.mkdtemp()
    os.environ["XDG_CONFIG_HOME"] = home
    location = url or str(Path(home) / "store")
    store = severance.Store.init(location)
    for persona, floor in (("work", "office"), ("home", "house"), ("side", "studio")):
        store.add_persona(persona)
        store.add_floor(floor, persona=persona)
    texts = [f"memory {i} about project {i % 97} and item {i * 7}" for i in range(n)]
    with store.enter(floor="office") as s:
        s.remember_many(texts)

    t = time.perf_counter()
    store.reintegrate("work", "side", mode="move")
    alone = time.perf_counter() - t

    with subprocess.Popen(
        [sys.executable, "-c", WRITER, location, str(alone * 3 + 2)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        t = time.perf_counter()
        store.reintegrate("side", "work", mode="move")
        contended = time.perf_counter() - t
        writes, longest = proc.stdout.readline().split()
    store.close()
    print(
        f"move of {n} memories: alone {alone:.2f} s, under a concurrent writer"
        f" {contended:.2f} s (x{contended / alone:.2f}); the writer made {writes} acknowledged"
        f" writes, longest single write {float(longest) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
