"""Ascending id arrays changed in place of numpy's sorting set routines: the same answers."""

from __future__ import annotations

import numpy as np

from kb.index.ids import in_sorted, sorted_with


def test_in_sorted_and_sorted_with_agree_with_numpys_set_routines():
    rng = np.random.default_rng(7)
    for _ in range(300):
        held = np.unique(rng.integers(0, 60, rng.integers(0, 40)))
        add = rng.integers(0, 80, rng.integers(0, 10))
        remove = rng.integers(-5, 80, rng.integers(0, 10))
        assert np.array_equal(in_sorted(add, held), np.isin(add, held))
        expected = np.union1d(np.setdiff1d(held, remove), add)
        assert np.array_equal(sorted_with(held, add=add, remove=remove), expected)
        assert sorted_with(held, add=add, remove=remove).dtype == np.int64
