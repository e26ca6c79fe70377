"""``severance.Client`` against servers that misbehave, over real HTTP on 127.0.0.1: every
problem code back to its error class, Retry-After as seconds or as a date, answers that are
not Severance's (a proxy's page, wrong JSON), refused connections, a server that never
answers, and bad addresses or tokens (never echoed)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from severance import Client, errors
from severance.client import _error_classes

Answer = tuple[int, dict[str, str], bytes]


class _Server:
    """A real HTTP server answering whatever the test sets in ``answer``."""

    def __init__(self) -> None:
        self.answer: Answer = (200, {}, b"{}")
        self.release = threading.Event()
        self.hold = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if outer.hold:
                    outer.release.wait(10)
                status, headers, body = outer.answer
                self.send_response_only(status)  # no Date of its own: the test sets it
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    try:
        yield s
    finally:
        s.close()


def _problem(status: int, code: str, detail: str, **headers: str) -> Answer:
    body = json.dumps({"type": "about:blank", "status": status, "code": code, "detail": detail})
    return status, {"Content-Type": "application/problem+json", **headers}, body.encode()


@pytest.mark.parametrize("cls", sorted(set(_error_classes().values()), key=lambda c: c.code))
def test_every_problem_code_comes_back_as_its_class(
    server: _Server, cls: type[errors.SeveranceError]
) -> None:
    server.answer = _problem(400, cls.code, "no memory with id 'm_1'")
    with Client(server.url, token="t") as c, pytest.raises(errors.SeveranceError) as raised:
        c.get("m_1")
    assert type(raised.value) is cls
    if cls is errors.MemoryNotFoundError:
        assert raised.value.memory_id == "m_1"  # type: ignore[attr-defined]
    elif cls is not errors.RateLimitedError:
        assert str(raised.value) == "no memory with id 'm_1'"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        (
            {
                "Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT",
                "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            30.0,
        ),
        ({"Retry-After": "soon"}, 1.0),
        ({"Retry-After": "nan"}, 1.0),
        ({"Retry-After": "-5"}, 1.0),
        ({}, 1.0),
    ],
)
def test_retry_after_as_seconds_or_a_date(
    server: _Server, headers: dict[str, str], seconds: float
) -> None:
    server.answer = _problem(429, "rate_limited", "slow down", **headers)
    with Client(server.url, token="t") as c, pytest.raises(errors.RateLimitedError) as raised:
        c.count()
    assert f"retry in {seconds:.1f} s" in str(raised.value)


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"Content-Type": "text/html"}, b"<html>Sign in to the Wi-Fi</html>"),
        (200, {"Content-Type": "application/json"}, b'{"unexpected": true}'),
        (200, {"Content-Type": "application/json"}, b"[1, 2, 3]"),
        (200, {"Content-Type": "application/json"}, b'{"id": 5, "text": null}'),
        (502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"),
        (400, {"Content-Type": "application/json"}, b'{"code": ["x"]}'),
    ],
)
def test_an_answer_that_is_not_severances_is_a_storage_error(
    server: _Server, answer: Answer
) -> None:
    server.answer = answer
    with Client(server.url, token="secret-token-1234") as c:
        for call in (
            lambda: c.get("m_1"),
            lambda: c.remember("x"),
            lambda: c.memories(),
            lambda: c.recall("x"),
            lambda: c.history("m_1"),
            lambda: c.count(),
            lambda: c.audit(),
            lambda: c.notices(),
            lambda: c.remember_messages([{"role": "user", "content": "hi"}]),
        ):
            with pytest.raises(errors.StorageError) as raised:
                call()
            assert "secret-token-1234" not in str(raised.value)
        with pytest.raises(errors.StorageError):
            _ = c.persona
    # A wrong call stays the caller's mistake, not the server's.
    with Client(server.url, token="t") as c, pytest.raises(TypeError):
        c.get()  # type: ignore[call-arg]


def test_a_refused_connection_and_a_silent_server(server: _Server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        Client(f"http://127.0.0.1:{port}", token="t") as c,
        pytest.raises(errors.StorageError, match="cannot reach the server"),
    ):
        c.count()
    server.hold = True
    with (
        Client(server.url, token="t", timeout=0.3) as c,
        pytest.raises(errors.StorageError, match="did not answer in time"),
    ):
        c.count()


@pytest.mark.parametrize("url", ["http://[::1", "ftp://example.org", "127.0.0.1:8765", ""])
def test_a_bad_address_is_invalid_input(url: str) -> None:
    with pytest.raises(errors.InvalidInputError):
        Client(url, token="t")


@pytest.mark.parametrize("token", ["", "t\u00e9st-secret", "line\nbreak-secret"])
def test_a_bad_token_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(errors.PassError) as raised:
        Client("http://127.0.0.1:1", token=token)
    assert not token or token not in str(raised.value)
