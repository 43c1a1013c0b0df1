"""The one bounded cache every cache of the service is."""

from __future__ import annotations

import doctest

from api.usecases import common
from api.usecases.common import Lru


def test_the_examples_in_its_docstring_hold():
    failed, attempted = doctest.testmod(common)
    assert (failed, attempted > 0) == (0, True)


def test_entries_are_counted_by_default_and_the_least_recently_used_goes_first():
    cache = Lru[str, int](2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now b is the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_cost_bounds_the_bytes_and_an_entry_too_large_is_not_kept():
    cache = Lru[str, bytes](10, cost=lambda key, value: len(key) + len(value))
    cache.put("k", b"x" * 20)
    assert cache.get("k") is None and cache.size == 0
    cache.put("a", b"1234")
    cache.put("a", b"12")  # replaced: its cost is the new one
    assert cache.size == 3
    cache.put("b", b"12345678")
    assert cache.get("a") is None and cache.size == 9
    cache.clear()
    assert (cache.get("b"), cache.size) == (None, 0)
