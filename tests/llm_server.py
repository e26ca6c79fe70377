"""A working OpenAI-compatible (and Ollama-native) chat server on 127.0.0.1 for the tests.

Not a mock: a real HTTP server in a thread that answers ``POST /v1/chat/completions`` and
``POST /api/chat`` by deterministic rules over the prompt Severance sends, so the real client,
prompt and validation run end to end.

Rules, over the numbered turns and the "Existing memories" lines of the prompt:

* every sentence of a *user* turn of the form "X is Y" is a fact "X is Y";
* if a shown memory reads "X is Z": the same value -> nothing; "X is now Y" -> ``update`` of
  that memory; another value -> ``add`` of the new fact and ``supersede`` of the old one;
* markers in a turn make it misbehave: ``#malformed`` (not JSON, every time),
  ``#malformed-once`` (not JSON the first time this prompt is seen), ``#schema`` (JSON out of
  the schema), ``#blank`` (an ``add`` of blank text), ``#http500``, ``#redirect`` (a 307
  elsewhere), ``#body`` (HTTP 200 with a body that is not JSON), ``#sleep`` (waits until the
  test releases it — past any client timeout), ``#foreign=ID`` (an update of memory ID),
  ``#gate`` (waits until two requests are in flight at once; 500 if not within 10 s),
  ``#endless`` (HTTP 200 whose body streams on, up to 64 MiB, until the client hangs up),
  ``#flood`` (5,000 valid ``add`` operations), ``#echo-key`` (HTTP 401 quoting the
  Authorization header it was sent, as some gateways do).

Every request is recorded (path, JSON body, Authorization header) for privacy checks. A test
may set ``before_answer``: called (in the server's thread) before each request is answered, so
another writer can change the store between the prompt and the apply, deterministically.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MEMORY = re.compile(r"^- (?P<id>\S+): (?P<text>.*)$")
_TURN = re.compile(r"^\[(?P<n>\d+)\] (?P<speaker>\S+) \([^)]*\): (?P<text>.*)$")
_FACT = re.compile(r"^(?P<subject>[A-Za-z][\w' ]*?) is (?P<now>now )?(?P<value>[\w' -]+)$")


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    authorization: str | None

    def prompt(self) -> str:
        """Every message's text, as sent."""
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


@dataclass
class FakeLLM:
    """The server's state: what it received, and the switches a test can pull."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    gate: threading.Barrier = field(default_factory=lambda: threading.Barrier(2))
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    before_answer: Callable[[], None] | None = None

    def spec(self, protocol: str = "openai", **options: object) -> str:
        base = f"{self.url}/v1" if protocol == "openai" else self.url
        extra = "".join(f"&{k}={v}" for k, v in options.items())
        return f"{protocol}:{base}#model=rules-1{extra}"

    def prompts(self) -> list[str]:
        return [r.prompt() for r in self.requests]

    # -- the rules ----------------------------------------------------------------------------
    def answer(self, body: dict[str, Any]) -> tuple[int, str]:
        """(status, assistant content or error body) for one request."""
        messages = body.get("messages") or []
        user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        memories: dict[str, str] = {}
        turns: list[tuple[int, str, str]] = []
        for line in user.splitlines():
            if m := _MEMORY.match(line):
                memories[m["id"]] = m["text"]
            elif t := _TURN.match(line):
                turns.append((int(t["n"]), t["speaker"], t["text"]))
        text = " ".join(t for _, _, t in turns)
        if "#gate" in text:
            try:
                self.gate.wait(timeout=10)
            except threading.BrokenBarrierError:
                return 500, json.dumps({"error": {"message": "gate: no second request"}})
        if "#sleep" in text:
            self.release.wait(timeout=60)
        if "#flood" in text:
            ops = [{"op": "add", "text": f"Fact {n}", "turns": [turns[0][0]]} for n in range(5000)]
            return 200, json.dumps({"operations": ops})
        if "#redirect" in text:
            return 307, json.dumps({"error": {"message": "moved"}})
        if "#http500" in text:
            return 500, json.dumps({"error": {"message": "model overloaded"}})
        if "#malformed-once" in text:
            with self.lock:
                first = user not in self.seen
                self.seen.add(user)
            if first:
                return 200, "Sure! Here are the facts: {operations: ["
        elif "#malformed" in text:
            return 200, "Sure! Here are the facts: {operations: ["
        if "#blank" in text:
            return 200, json.dumps({"operations": [{"op": "add", "text": "  ", "turns": [0]}]})
        if "#schema" in text:
            return 200, json.dumps({"operations": [{"op": "delete", "id": "m_x", "turns": [0]}]})
        if foreign := re.search(r"#foreign=(\S+)", text):
            op = {"op": "update", "id": foreign[1], "text": "taken over", "turns": [turns[0][0]]}
            return 200, json.dumps({"operations": [op]})
        latest: dict[str, tuple[int, str, bool, str]] = {}
        for number, speaker, turn in turns:
            if speaker != "user":
                continue
            for sentence in re.split(r"[.!?;]\s*", turn):
                if f := _FACT.match(sentence.strip()):
                    subject = f["subject"].strip()
                    latest[subject.lower()] = (number, subject, bool(f["now"]), f["value"].strip())
        operations: list[dict[str, Any]] = []
        for number, subject, now, value in latest.values():
            fact = f"{subject[0].upper()}{subject[1:]} is {value}"
            known = next(
                (
                    (mid, t)
                    for mid, t in memories.items()
                    if t.lower().startswith(f"{subject.lower()} is ")
                ),
                None,
            )
            if known is None:
                operations.append({"op": "add", "text": fact, "kind": "fact", "turns": [number]})
            elif known[1].lower() == fact.lower():
                operations.append({"op": "none"})
            elif now:
                operations.append({"op": "update", "id": known[0], "text": fact, "turns": [number]})
            else:
                operations.append({"op": "add", "text": fact, "kind": "fact", "turns": [number]})
                by = len(operations) - 1
                operations.append({"op": "supersede", "id": known[0], "by": by, "turns": [number]})
        return 200, json.dumps({"operations": operations or [{"op": "none"}]})


def _handler(state: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                state.requests.append(Recorded(self.path, body, self.headers.get("Authorization")))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.before_answer is not None:
                    state.before_answer()
                self._answer(body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self, body: dict[str, Any]) -> None:
            if self.path not in ("/v1/chat/completions", "/api/chat"):
                self._send(404, json.dumps({"error": {"message": "no such route"}}))
                return
            text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
            if "#echo-key" in text:
                quoted = self.headers.get("Authorization", "")
                message = f"Incorrect API key provided: {quoted}. Check it and retry."
                self._send(401, json.dumps({"error": {"message": message}}))
                return
            if "#endless" in text:
                self._endless()
                return
            status, content = state.answer(body)
            if status != 200:
                self._send(status, content)
                return
            text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
            if "#body" in text:
                self._send(200, "<html>gateway page</html>")
                return
            prompt_tokens, completion_tokens = len(text.split()), len(content.split())
            if self.path == "/api/chat":
                reply: dict[str, Any] = {
                    "model": body.get("model"),
                    "message": {"role": "assistant", "content": content},
                    "done": True,
                    "prompt_eval_count": prompt_tokens,
                    "eval_count": completion_tokens,
                }
            else:
                reply = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
            self._send(200, json.dumps(reply))

        def _endless(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b'{"operations": [' + b" " * 65_530
            try:
                for _ in range(1024):  # 64 MiB at most
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client hung up, as it should

        def _send(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            if status == 307:
                self.send_header("Location", "http://198.51.100.1/v1/chat/completions")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve() -> Iterator[FakeLLM]:
    """Run a server on an ephemeral loopback port until the generator is closed."""
    state = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        state.gate.abort()
        server.shutdown()
        server.server_close()
        thread.join()
