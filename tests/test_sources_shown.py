"""Readers are shown where a document came from without the server's paths."""

from __future__ import annotations

import pytest

from kb.documents import short_source


@pytest.mark.parametrize(("source", "shown"), [
    ("/srv/kb/data/uploads/somchai/policies/refunds.md", "policies/refunds.md"),
    ("/srv/kb/data/uploads/_operator/refunds.md", "refunds.md"),
    ("/work/main/corpus/guidance/en/breaking-silos-sbu.md", "en/breaking-silos-sbu.md"),
    ("/tmp/pytest-7/notes/cases.csv#C-1042", "notes/cases.csv#C-1042"),
    ("pasted:4f1c2a", ""),
    ("relative.md", "relative.md"),
])
def test_a_source_is_shown_without_the_servers_folders(source, shown):
    assert short_source(source) == shown
