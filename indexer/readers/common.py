"""Helpers every format reader shares: file paths in messages, reading bytes, titles, tags."""

from __future__ import annotations

import re
from pathlib import Path

from kb.documents import ReadError

MAX_TITLE_CHARS = 120


def _where(path: Path) -> str:
    """The absolute POSIX path used as `source_file` and at the start of every message."""
    return path.resolve().as_posix()


def _read_bytes(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ReadError(f"{where}: file not found") from exc
    except IsADirectoryError as exc:
        raise ReadError(f"{where}: is a folder, not a file") from exc
    except OSError as exc:
        raise ReadError(f"{where}: cannot open the file ({exc.strerror or exc})") from exc


def _empty_text_error(where: str, text: str) -> None:
    if not text.strip():
        raise ReadError(f"{where}: empty file")


def _unify_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_short_line(text: str) -> str | None:
    """The first non-empty line, if it is short enough to be a title."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= MAX_TITLE_CHARS else None
    return None


def _title_from_stem(path: Path) -> str:
    """`return_policy-2024.txt` -> "return policy 2024"."""
    return re.sub(r"[_\-\s]+", " ", path.stem).strip() or path.name


def _normalise_tags(value: object) -> list[str]:
    """Tags from a list or a "a; b, c | d" string: lower-case, trimmed, unique, in order."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else re.split(r"[;,|]", str(value))
    tags: list[str] = []
    for item in items:
        if item is None or isinstance(item, (list, dict)):
            continue
        tag = str(item).strip().lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags
