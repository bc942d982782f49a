"""The public API is the curated list in tvpower/__init__.py."""

from __future__ import annotations

import tvpower


def test_all_is_sorted_and_every_name_exists() -> None:
    assert tvpower.__all__ == sorted(tvpower.__all__)
    for name in tvpower.__all__:
        assert getattr(tvpower, name) is not None, name


def test_every_public_name_imported_is_listed() -> None:
    public = {
        name
        for name, value in vars(tvpower).items()
        if not name.startswith("_") and not isinstance(value, type(tvpower))
    }
    assert public == set(tvpower.__all__)
