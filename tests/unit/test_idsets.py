"""IdSet: the compact set of object ids fsck and gc walk with is exact."""

from __future__ import annotations

import hashlib

import pytest

from dataver.storage.idsets import IdSet

pytestmark = pytest.mark.unit


def test_members_are_exactly_the_ids_added_even_when_their_first_64_bits_agree():
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    twin = ids[0][:16] + "0" * 48  # same first 8 bytes as ids[0], a different id
    found = IdSet()
    for oid in [*ids, *ids[:100], twin]:  # repeats are dropped at freeze
        found.add(oid)
    found.add("not an id")
    found.freeze()
    assert len(found) == 2001
    assert all(oid in found for oid in ids) and twin in found
    assert ids[0][:16] + "1" * 48 not in found
    assert hashlib.sha256(b"other").hexdigest() not in found
    assert "not an id" not in found and ids[0].upper() + " " not in found
