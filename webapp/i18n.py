"""The interface's languages: Thai, Simplified and Traditional Chinese, and English (Flask-Babel).

The locale comes from, in order: a `ui` parameter (the visible switch, which
also sets a cookie; a locale id such as zh_Hant or a language tag such as
zh-TW or th-TH), the cookie, the browser's Accept-Language, English.
Message catalogs are `translations/<locale>/LC_MESSAGES/messages.po`; their
compiled `.mo` files are made from them when missing or older (see
`compile_catalogs`), so the repository holds only the text people edit.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from babel.dates import get_date_format, get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.units import format_unit
from flask import Flask, request
from flask_babel import Babel, format_date, format_decimal, format_time, get_locale, to_user_timezone

from webapp import labels

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).parent / "translations"
# Locale id -> its own name, in the order the switch shows them.
LOCALES = {"th": "ไทย", "zh_Hans": "简体中文", "zh_Hant": "繁體中文", "en": "English"}
DEFAULT_LOCALE = "en"
COOKIE = "ui_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
# The language of the knowledge each locale reads ("only mine" searches it).
CONTENT_LANGUAGE = {"th": "th", "zh_Hans": "zh", "zh_Hant": "zh", "en": "en"}
# The value of <html lang> for each locale.
HTML_LANG = {"th": "th", "zh_Hans": "zh-Hans", "zh_Hant": "zh-Hant", "en": "en"}
_TRADITIONAL_REGIONS = ("tw", "hk", "mo", "hant")
# Thai dates count years in the Buddhist era (2568 = 2025), which Babel's Thai locale does not.
BUDDHIST_ERA_OFFSET = 543
BUDDHIST_ERA = "พ.ศ."


def locale_from_tag(tag: str) -> str | None:
    """Our locale for a language tag such as th-TH, zh-TW, zh-Hans-CN, en-GB; None if we have none."""
    tag = (tag or "").strip().lower().replace("_", "-")
    if tag in ("zh-hans", "zh-hant"):
        return "zh_Hans" if tag == "zh-hans" else "zh_Hant"
    parts = tag.split("-")
    if parts[0] == "zh":
        return "zh_Hant" if any(p in _TRADITIONAL_REGIONS for p in parts[1:]) else "zh_Hans"
    if parts[0] in ("th", "en"):
        return parts[0]
    return None


def chosen_locale(value: str | None) -> str | None:
    """Our locale for a `ui` value or cookie: a locale id (zh_Hant) or a language tag (zh-TW, th-TH, zh)."""
    if value in LOCALES:
        return value
    return locale_from_tag(value) if value else None


def select_locale() -> str:
    for candidate in (request.args.get("ui"), request.cookies.get(COOKIE)):
        found = chosen_locale(candidate)
        if found:
            return found
    for tag, _quality in request.accept_languages:
        found = locale_from_tag(tag)
        if found:
            return found
    return DEFAULT_LOCALE


def _as_date(value: dt.date | str) -> dt.date | None:
    """A date or datetime as given, or read from ISO text (stored notes and tokens keep text); None if it is not one."""
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
    except ValueError:
        return None


def buddhist_pattern(pattern: str, year: int) -> str:
    """A CLDR date pattern with its year (and era) fixed to the Buddhist-era year of `year`.

    "d MMM y" for 2025 becomes "d MMM '2568'"; "yy" keeps two digits; an era
    field G becomes พ.ศ. Quoted text is left as it is.
    """
    buddhist = year + BUDDHIST_ERA_OFFSET
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            end = len(pattern) - 1 if end < 0 else end
            out.append(pattern[i:end + 1])
            i = end + 1
            continue
        end = i
        while end < len(pattern) and pattern[end] == char:
            end += 1
        run = pattern[i:end]
        if char == "y":
            out.append(f"'{buddhist % 100:02d}'" if len(run) == 2 else f"'{buddhist}'")
        elif char == "G":
            out.append(f"'{BUDDHIST_ERA}'")
        else:
            out.append(run)
        i = end
    return "".join(out)


def _thai(locale) -> bool:
    return locale is not None and locale.language == "th"


def local_date(value: dt.date | str | None, format: str = "medium") -> str:
    """A date in the reader's locale (short, medium, long or full); Thai in the Buddhist era."""
    if value is None or value == "":
        return ""
    parsed = _as_date(value)
    if parsed is None:
        return str(value)  # text that is not a date is shown as written
    value = to_user_timezone(parsed) if isinstance(parsed, dt.datetime) else parsed
    locale = get_locale()
    if _thai(locale) and format in ("short", "medium", "long", "full"):
        format = buddhist_pattern(get_date_format(format, locale).pattern, value.year)
    return format_date(value, format, rebase=False)


def local_datetime(value: dt.datetime | str | None, format: str = "medium") -> str:
    """A moment in the reader's locale and time zone, its date as `local_date` writes it."""
    if value is None or value == "":
        return ""
    parsed = _as_date(value)
    if not isinstance(parsed, dt.datetime):
        return local_date(value, format)
    value = to_user_timezone(parsed)
    glue = get_datetime_format(format, get_locale()).replace("'", "")
    return glue.replace("{0}", format_time(value, format, rebase=False)).replace("{1}", local_date(value, format))


def local_number(value: float | int | None) -> str:
    """A number with the reader's locale's separators (1,234 / 1,234.5)."""
    return "" if value is None else format_decimal(value)


def file_size(size: int | None) -> str:
    """A file's size in the reader's locale (300 B, 12.3 kB, 1.5 MB), by Babel's unit names."""
    if size is None:
        return ""
    for unit, scale in (("digital-megabyte", 1_000_000), ("digital-kilobyte", 1_000)):
        if size >= scale:
            return format_unit(size / scale, unit, length="short", format="#,##0.#", locale=get_locale())
    return format_unit(size, "digital-byte", length="short", locale=get_locale())


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Write each catalog's `.mo` where it is missing or older than its `.po`; returns those written."""
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        try:
            with mo.open("wb") as fh:
                write_mo(fh, catalog)
            written.append(mo)
        except OSError as exc:  # a read-only install: the interface falls back to English
            log.warning("cannot write %s: %s", mo, exc)
    return written


def init_app(app: Flask) -> None:
    compile_catalogs()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)

    @app.after_request
    def remember_switch(response):
        chosen = chosen_locale(request.args.get("ui"))
        if chosen and request.cookies.get(COOKIE) != chosen:
            response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
        return response

    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(local_datetime, "local_datetime")
    app.add_template_filter(local_number, "number")
    app.add_template_filter(file_size, "file_size")
    labels.init_app(app)

    @app.context_processor
    def locale_context():
        locale = select_locale()
        return {"ui_locale": locale, "ui_locales": LOCALES, "html_lang": HTML_LANG[locale],
                "content_lang": CONTENT_LANGUAGE[locale]}
