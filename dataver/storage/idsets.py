"""A compact set of object ids for walks over a whole store (gc's mark phase).

A Python set of 64-character hex ids costs ~150 bytes per id, so gc of a million-object store
held ~150 MB in its mark set alone. `IdSet` keeps the first 64 bits of each id in sorted arrays,
one per first byte: ~9 bytes per id, and a lookup is a binary search in C.

Two ids sharing their first 64 bits are one member here, so membership may be a false positive
(a store of a million objects holds such a pair with a chance of about 3 in 10^8). That is only
safe where a false positive errs on the side of caution: gc keeps an object it could have freed.
Nothing that must not miss a member (fsck's checks) uses it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left


def _key(oid: str) -> int | None:
    """The first 64 bits of an id; None for a string that is not hex (it names no object)."""
    try:
        key = int(oid[:16], 16)
    except ValueError:
        return None
    return key if key >= 0 else None


class IdSet:
    """Ids added while marking, then `freeze`, then asked: `oid in ids` (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets = [array("Q") for _ in range(256)]
        self._frozen = False

    def add(self, oid: str) -> None:
        if (key := _key(oid)) is not None:
            self._buckets[key >> 56].append(key)

    def freeze(self) -> IdSet:
        """Sort each bucket and drop repeats (an id added from several trees); no more adds."""
        self._buckets = [array("Q", sorted(set(bucket))) for bucket in self._buckets]
        self._frozen = True
        return self

    def __contains__(self, oid: object) -> bool:
        assert self._frozen, "an IdSet is asked only once frozen"
        if not isinstance(oid, str) or (key := _key(oid)) is None:
            return False
        bucket = self._buckets[key >> 56]
        i = bisect_left(bucket, key)
        return i < len(bucket) and bucket[i] == key

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets)
