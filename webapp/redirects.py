"""Where a form may send the browser next: one check for every `next` field and parameter.

Browsers drop tabs and newlines from addresses and read a backslash as a
slash, so `/<TAB>/evil.example` and `/\\evil.example` lead off-site although
they start with one slash. Only a plain path on this site passes.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def local_path(value: str | None) -> str | None:
    """`value` if it is a path on this site (no scheme, host, backslash, control character or space), else None."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value.rstrip("?")
