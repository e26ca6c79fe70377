"""Workspace paths as floors compare them: symlinks resolved, case folded where the disk does.

A floor's ``--path ~/work/**`` and the directory a client runs in must be compared as the file
system sees them. When ``~/work`` is a symlink to ``/data/work``, a shell started there reports
either spelling, so both the pattern (its literal, glob-free leading part) and the workspace are
resolved with :func:`os.path.realpath` before matching. Where the file system ignores case
(macOS and Windows disks by default, case-folding ext4 directories), ``~/Work/acme`` is the same
directory as ``~/work/acme`` and must match the same floors: :func:`case_insensitive` finds out
by asking the file system (is ``X`` the same file as ``x``?), never by the operating system's
name, and remembers the answer per device.

Pattern syntax: ``*`` stays within one path segment, ``**`` crosses segments (``a/**/b``
also matches ``a/b``: zero or more folders), ``?`` is one character; a pattern that starts
with ``**`` matches anywhere (``**/acme`` is any folder named ``acme``); ``[`` has no special
meaning. A pattern matches a path when it matches the path *or any of its ancestors*, so ``/``
matches every path.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache

__all__ = [
    "case_insensitive",
    "is_anchored",
    "literal_prefix",
    "path_matches",
    "resolve_path",
    "resolve_pattern",
]

# Only ``*`` and ``?`` are wildcards: ``[`` is literal, as the matcher below treats it.
_GLOB = re.compile(r"[*?]")
_by_device: dict[int, bool] = {}
_device_lock = threading.Lock()


def _expand(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def resolve_path(path: str) -> str:
    """A workspace path made absolute, ``~`` expanded and every symlink resolved.

    Parts that do not exist are kept as given (a client may name a folder not yet created).
    """
    return os.path.realpath(_expand(path))


def literal_prefix(pattern: str) -> str:
    """The part of an expanded pattern before its first glob, cut at a path separator."""
    m = _GLOB.search(pattern)
    if m is None:
        return pattern
    cut = pattern.rfind("/", 0, m.start())
    return pattern[:cut] if cut > 0 else "/"


def is_anchored(pattern: str) -> bool:
    """Whether a path pattern means the same from every directory: absolute, ``~``-based or
    starting with ``**`` (anywhere). A relative one would follow the matcher's working
    directory, which differs between the CLI, a server and each client, so floors refuse it."""
    p = pattern.strip()
    return p.startswith(("~", "**")) or os.path.isabs(p)


def resolve_pattern(pattern: str) -> str:
    """A path pattern with ``~`` expanded and the symlinks of its literal prefix resolved."""
    if pattern.startswith("**"):
        # Anywhere: never relative to the working directory of whoever is matching.
        return "/" + pattern.lstrip("/") if not pattern.startswith("/") else pattern
    expanded = _expand(pattern)
    prefix = literal_prefix(expanded)
    rest = expanded[len(prefix) :]
    resolved = os.path.realpath(prefix)
    if resolved == "/" and rest.startswith("/"):
        return rest
    return resolved + rest


@lru_cache(maxsize=512)
def _path_regex(resolved: str, fold: bool) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(resolved):
        c = resolved[i]
        if resolved.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole folders
            i += 3
            continue
        if resolved.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    # A match of the pattern covers every descendant of the matched directory ("/" included).
    if not resolved.endswith("**"):
        body = body.removesuffix("/") + r"(?:/.*)?\Z"
    return re.compile(body, re.IGNORECASE if fold else 0)


def _existing_ancestor(path: str) -> str:
    p = path
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _probe(path: str) -> bool:
    # Walk up to a component with a cased letter, swap its case and ask whether the swapped
    # name is the same file: that is the file system's own answer.
    p = path
    while True:
        head, tail = os.path.split(p)
        swapped = tail.swapcase()
        if tail and swapped != tail:
            try:
                return os.path.samefile(p, os.path.join(head, swapped))
            except OSError:
                return False  # the other spelling does not exist: case matters here
        if head == p or not tail:
            return False  # nothing to test with: assume case matters (the strict reading)
        p = head


def case_insensitive(path: str) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing ancestor) ignores case."""
    existing = _existing_ancestor(path)
    try:
        device = os.stat(existing).st_dev
    except OSError:
        return False
    with _device_lock:
        known = _by_device.get(device)
    if known is None:
        known = _probe(existing)
        with _device_lock:
            _by_device[device] = known
    return known


def path_matches(pattern: str, path: str, *, fold: bool | None = None) -> bool:
    """Whether a floor's path pattern covers workspace ``path``.

    Both sides are resolved (``~``, relative parts, symlinks). ``fold`` forces the comparison
    to ignore case (True) or not (False); by default it follows the workspace's file system.
    """
    target = resolve_path(path)
    if fold is None:
        fold = case_insensitive(target)
    regex = _path_regex(resolve_pattern(pattern), fold)
    return bool(regex.match(target)) or bool(regex.match(target + "/"))


def logical_cwd() -> str:
    """The current directory as the user's shell spells it (``$PWD``, symlinks kept) when that
    is really where we are, else :func:`os.getcwd` (symlinks resolved). Floors resolve both
    spellings alike; the logical one is what the user recognises in audit entries."""
    pwd = os.environ.get("PWD")
    if pwd and os.path.isabs(pwd):
        try:
            if os.path.samefile(pwd, "."):
                return pwd
        except OSError:
            pass
    return os.getcwd()
