"""A compact, exact set of object ids for walks over a whole store (fsck, gc's mark phase).

A Python set of 64-character hex ids costs ~150 bytes per id (~100 as 32-byte digests), so gc of
a million-object store held 150 MB in its mark set alone. `IdSet` keeps each id's 32 bytes
once: its first 8 as an integer in a sorted array (one array per first byte, searched in C by
`bisect`) and the other 24 beside it, ~35 bytes per id all told.

Ids are added first and asked after `freeze` (which sorts and drops repeats), which is how a
mark phase goes: every id gathered, then every stored object asked about.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

_BUCKETS = 256
_TAIL = 24


def _split(oid: str) -> tuple[int, bytes] | None:
    """An id's first 8 bytes as an integer and its other 24; None for a string that is not an id
    (it names no stored object)."""
    if len(oid) != 64:
        return None
    try:
        digest = bytes.fromhex(oid)
    except ValueError:
        return None
    if len(digest) != 32:  # fromhex passes over spaces
        return None
    return int.from_bytes(digest[:8], "big"), digest[8:]


class _Bucket:
    __slots__ = ("heads", "tails")

    def __init__(self) -> None:
        self.heads = array("Q")
        self.tails = bytearray()


class IdSet:
    """Ids added, then `freeze`, then `oid in ids` (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets = [_Bucket() for _ in range(_BUCKETS)]
        self._frozen = False

    def add(self, oid: str) -> None:
        assert not self._frozen, "an IdSet takes no ids once frozen"
        if (split := _split(oid)) is not None:
            head, tail = split
            bucket = self._buckets[head >> 56]
            bucket.heads.append(head)
            bucket.tails += tail

    def freeze(self) -> IdSet:
        """Sort each bucket by id and drop repeats (an object named by several trees)."""
        for bucket in self._buckets:
            heads, tails = bucket.heads, bucket.tails
            ids = sorted({(heads[i], bytes(tails[i * _TAIL : (i + 1) * _TAIL])) for i in range(len(heads))})
            bucket.heads = array("Q", (head for head, _ in ids))
            bucket.tails = bytearray(b"".join(tail for _, tail in ids))
        self._frozen = True
        return self

    def __contains__(self, oid: object) -> bool:
        assert self._frozen, "an IdSet is asked only once frozen"
        if not isinstance(oid, str) or (split := _split(oid)) is None:
            return False
        head, tail = split
        bucket = self._buckets[head >> 56]
        heads = bucket.heads
        i = bisect_left(heads, head)
        while i < len(heads) and heads[i] == head:  # more than one only if 64 bits collide
            if bucket.tails[i * _TAIL : (i + 1) * _TAIL] == tail:
                return True
            i += 1
        return False

    def __len__(self) -> int:
        return sum(len(bucket.heads) for bucket in self._buckets)
