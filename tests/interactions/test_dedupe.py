"""The compact dedupe window (interactions/queue/dedupe.py): first id wins, exact expiry, hard cap, small entries."""

from __future__ import annotations

import gc
import random
import tracemalloc
import uuid

import pytest

from interactions.queue.dedupe import _COMPACT_AT, RECORD_SIZE, DedupeWindow, _pack_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_duplicate_returns_the_first_id():
    window = DedupeWindow(300, 1000, clock=Clock())
    first, second = ids(2)
    assert window.get("m:a") is None
    window.add("m:a", first)
    assert window.get("m:a") == first
    assert window.get("m:b") is None
    window.add("m:b", second)
    assert (window.get("m:a"), window.get("m:b")) == (first, second)
    assert len(window) == 2


def test_entry_expires_exactly_after_the_window():
    clock = Clock()
    window = DedupeWindow(300, 1000, clock=clock)
    window.add("m:a", ids(1)[0])
    clock.now += 299.999
    assert window.get("m:a") is not None
    clock.now += 0.001  # 300 s after it was added: gone (as TTLCache: live while now < added + ttl)
    assert window.get("m:a") is None
    assert len(window) == 0
    again = ids(1)[0]
    window.add("m:a", again)  # a new first sighting
    assert window.get("m:a") == again


def test_expiry_prunes_from_the_front_and_frees_the_buckets():
    clock = Clock()
    window = DedupeWindow(10, 100_000, clock=clock)
    first_ids = ids(5000)
    for i, interaction_id in enumerate(first_ids):
        window.add(f"m:{i}", interaction_id)
        clock.now += 0.001  # 5 s of traffic
    clock.now += 7  # the first 2000 (added before t+3 s) are older than 10 s now
    assert window.get("m:0") is None
    assert len(window) == 3000
    assert window.get("m:1999") is None and window.get("m:2000") == first_ids[2000]
    clock.now += 10
    assert window.get("m:4999") is None
    assert len(window) == 0
    assert sum(len(b) for b in window._buckets) == 0 and len(window._order) == 0


def test_cap_holds_and_drops_the_oldest_first():
    clock = Clock()
    window = DedupeWindow(300, 100, clock=clock)
    first_ids = ids(1000)
    for i, interaction_id in enumerate(first_ids):
        window.add(f"m:{i}", interaction_id)
        assert len(window) <= 100
    assert len(window) == 100
    assert sum(len(b) for b in window._buckets) == 100 * RECORD_SIZE
    assert window.get("m:899") is None
    assert [window.get(f"m:{i}") for i in range(900, 1000)] == first_ids[900:]


def test_ids_that_are_not_canonical_uuids_come_back_verbatim_and_leave_with_their_entry():
    clock = Clock()
    window = DedupeWindow(60, 1000, clock=clock)
    odd = ["plain-id", str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}", "0123456789abcdef" * 2 + "-" * 4,
           "ab cdef01-2345-6789-abcd-ef0123456789"[:36], ""]
    for i, interaction_id in enumerate(odd):
        window.add(f"m:{i}", interaction_id)
    canonical = ids(1)[0]
    window.add("m:canonical", canonical)
    assert [window.get(f"m:{i}") for i in range(len(odd))] == odd
    assert window.get("m:canonical") == canonical
    clock.now += 60
    assert window.get("m:0") is None
    assert window._odd == {}


def test_pack_id_accepts_only_the_canonical_form():
    value = uuid.uuid4()
    assert _pack_id(str(value)) == value.bytes
    assert _pack_id(str(value).upper()) is None
    assert _pack_id(value.hex) is None
    assert _pack_id(str(value)[:35] + "g") is None


def test_a_digest_found_inside_another_field_is_not_a_match():
    needle = (12345).to_bytes(8, "little", signed=True)
    bucket = bytearray(8) + bytearray(8) + needle + bytearray(8)  # the needle sits in a record's id
    assert DedupeWindow._find(bucket, needle) == -1
    bucket += needle + bytearray(24)
    assert DedupeWindow._find(bucket, needle) == RECORD_SIZE


def test_matches_a_reference_model_through_expiry_cap_and_compaction():
    rng = random.Random(7)
    clock = Clock()
    window_s, cap = 50.0, 3000
    window = DedupeWindow(window_s, cap, clock=clock)
    model: dict[str, tuple[str, float]] = {}  # key → (first id, added at), insertion ordered
    adds = 0
    for step in range(40_000):
        clock.now += rng.choice((0.0, 0.001, 0.01, 0.05))
        key = f"m:{rng.randrange(6000)}"
        for k in [k for k, (_, at) in model.items() if clock.now - at >= window_s]:
            del model[k]
        expected = model.get(key, (None, 0.0))[0]
        assert window.get(key) == expected, step
        if expected is None:
            if len(model) >= cap:
                del model[next(iter(model))]
            interaction_id = str(uuid.uuid4()) if step % 50 else f"odd-{step}"
            model[key] = (interaction_id, clock.now)
            window.add(key, interaction_id)
            adds += 1
        assert len(window) == len(model)
    assert adds > 3 * _COMPACT_AT  # the order array was compacted on the way


def test_bytes_per_entry_stay_small():
    clock = Clock()
    window = DedupeWindow(300, 200_000, clock=clock)
    keys = [f"m:{i}" for i in range(40_000)]
    id_values = ids(40_000)
    for key, interaction_id in zip(keys[:10_000], id_values):
        window.add(key, interaction_id)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, interaction_id in zip(keys[10_000:], id_values[10_000:]):
            window.add(key, interaction_id)
        gc.collect()
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / 30_000
    finally:
        tracemalloc.stop()
    assert per_entry < 48, per_entry  # 32-byte record, 2-byte order slot, bucket slack (TTLCache: ~370)


def test_rejects_a_window_that_keeps_nothing():
    with pytest.raises(ValueError):
        DedupeWindow(0, 10)
    with pytest.raises(ValueError):
        DedupeWindow(10, 0)


def test_adding_a_key_already_in_the_window_keeps_the_first_id():
    clock = Clock()
    window = DedupeWindow(300, 1000, clock=clock)
    first, second = "odd-first", ids(1)[0]
    window.add("m:a", first)
    window.add("m:a", second)
    assert window.get("m:a") == first and len(window) == 1
    clock.now += 300
    assert window.get("m:a") is None and window._odd == {}
