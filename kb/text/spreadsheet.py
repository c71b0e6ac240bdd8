"""Text bound for spreadsheets: a cell a spreadsheet would run as a formula is written as text.

A partner's logged search such as `=HYPERLINK("http://evil.example", "click")`
ends up in the audit export; opened in Excel or LibreOffice, a cell starting
with = + - @ (or a tab or carriage return before one) is evaluated. A leading
apostrophe makes every spreadsheet show it as the text it is.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: object) -> object:
    """`value` as a spreadsheet shows it literally: text that could start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
