"""The dedupe window of the in-memory queue: which keys were seen in the last `window_s`, and the
interaction id each one got first (§2).

Every id is kept for the whole window (300 s by default, up to 200,000 ids), so the per-entry cost
is what the service's memory grows with under load. A `TTLCache[str, str]` cost ~400 B per entry
(key and id strings, a linked-list node, a dict slot). Here an entry is one fixed 32-byte record and
a 2-byte queue slot, with no Python object per entry:

- a record is `<digest:int64><time:float64><id:16 bytes>`; the digest is Python's (per-process
  keyed SipHash) hash of a random per-window prefix + the dedupe key, so that even with a fixed
  PYTHONHASHSEED nobody outside can compute digests and aim a collision at a message; the id a canonical UUID string packed into its 16 bytes;
- records live in `buckets[digest & mask]`, one `bytearray` per bucket, oldest first, found with
  `bytearray.find` (C speed; a bucket holds a few dozen records at most);
- `order` lists the bucket of every record in insertion order (= time order), so expiry and the
  cap drop from the front: the oldest record of that bucket is its first one, removed with
  `del bucket[:32]` (O(1) in CPython: the buffer start moves).

Two different keys with the same 64-bit digest would be taken for one another: with 200,000 live
ids that is a chance of about 1 in 10^14 per message. Ids that are not canonical UUID strings
(never produced by `Interaction`, but allowed) are kept verbatim in a side map.
"""

from __future__ import annotations

import os
import struct
import time
from array import array
from typing import Callable

_RECORD = struct.Struct("<qd16s")
_DIGEST = struct.Struct("<q")
_TIME = struct.Struct("<d")
RECORD_SIZE = _RECORD.size  # 32
_TIME_AT = 8
_ID_AT = 16
_PER_BUCKET = 32  # records per bucket at the cap
_COMPACT_AT = 4096  # drop the consumed front of `order` once this many slots are dead
_NEVER = float("inf")


def _pack_id(interaction_id: str) -> bytes | None:
    """The 16 bytes of a canonical (lowercase, dashed) UUID string, or None for any other id."""
    if len(interaction_id) != 36 or interaction_id[8:24:5] != "----":
        return None
    hexits = interaction_id.replace("-", "")
    if len(hexits) != 32:
        return None
    try:
        packed = bytes.fromhex(hexits)
    except ValueError:
        return None
    return packed if packed.hex() == hexits else None


def _unpack_id(packed: bytes) -> str:
    h = packed.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class DedupeWindow:
    """Keys seen in the last `window_s` seconds (at most `max_keys`, oldest dropped first)."""

    def __init__(self, window_s: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0 or max_keys <= 0:
            raise ValueError("window_s and max_keys must be positive")
        self.window_s = float(window_s)
        self.max_keys = max_keys
        self._clock = clock
        n_buckets = 16
        while n_buckets * _PER_BUCKET < max_keys:
            n_buckets *= 2
        self._mask = n_buckets - 1
        self._buckets = [bytearray() for _ in range(n_buckets)]
        self._order = array("H" if n_buckets <= 1 << 16 else "I")
        self._head = 0  # order[head:] are the live records, oldest first
        self._expires_at = _NEVER  # when the oldest live record leaves the window
        self._odd: dict[int, str] = {}  # digest → id, for ids that are not canonical UUIDs
        self._prefix = os.urandom(8).hex()

    def __len__(self) -> int:
        return len(self._order) - self._head

    def get(self, key: str) -> str | None:
        """The id first given to `key` within the window, else None."""
        now = self._clock()
        if now >= self._expires_at:
            self._expire(now)
        digest = hash(self._prefix + key)
        bucket = self._buckets[digest & self._mask]
        at = self._find(bucket, _DIGEST.pack(digest))
        if at < 0:
            return None
        if self._odd:
            odd = self._odd.get(digest)
            if odd is not None:
                return odd
        return _unpack_id(bytes(bucket[at + _ID_AT:at + RECORD_SIZE]))

    def add(self, key: str, interaction_id: str) -> None:
        """Remember `key` → `interaction_id` from now on; a key already in the window keeps its first id."""
        now = self._clock()
        if now >= self._expires_at:
            self._expire(now)
        digest = hash(self._prefix + key)
        b = digest & self._mask
        if self._find(self._buckets[b], _DIGEST.pack(digest)) >= 0:
            return
        if len(self._order) - self._head >= self.max_keys:
            self._drop_oldest()
        packed = _pack_id(interaction_id)
        if packed is None:
            self._odd[digest] = interaction_id
            packed = bytes(16)
        self._buckets[b] += _RECORD.pack(digest, now, packed)
        self._order.append(b)
        if self._expires_at == _NEVER:
            self._expires_at = now + self.window_s

    @staticmethod
    def _find(bucket: bytearray, needle: bytes) -> int:
        at = bucket.find(needle)
        while at > 0 and at % RECORD_SIZE:  # matched inside another field: look further
            at = bucket.find(needle, at + 1)
        return at

    def _expire(self, now: float) -> None:
        """Drop every record that has been in the window for `window_s` or longer."""
        horizon = now - self.window_s
        order, buckets = self._order, self._buckets
        while self._head < len(order):
            at = _TIME.unpack_from(buckets[order[self._head]], _TIME_AT)[0]
            if at > horizon:
                self._expires_at = at + self.window_s
                return
            self._drop_oldest()
        self._expires_at = _NEVER

    def _drop_oldest(self) -> None:
        """Remove the oldest record. `_expires_at` may be left early (never late): `_expire` fixes it."""
        order = self._order
        bucket = self._buckets[order[self._head]]
        if self._odd:
            self._odd.pop(_DIGEST.unpack_from(bucket)[0], None)
        del bucket[:RECORD_SIZE]
        self._head += 1
        if self._head == len(order):
            del order[:]
            self._head = 0
            self._expires_at = _NEVER
        elif self._head >= _COMPACT_AT and self._head * 2 >= len(order):
            del order[:self._head]
            self._head = 0
