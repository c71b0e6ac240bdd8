"""The interface's languages: Thai, Simplified and Traditional Chinese, and English (Flask-Babel).

The locale comes from, in order: a `ui` parameter (the visible switch, which
also sets a cookie), the cookie, the browser's Accept-Language, English.
Message catalogs are `translations/<locale>/LC_MESSAGES/messages.po`; their
compiled `.mo` files are made from them when missing or older (see
`compile_catalogs`), so the repository holds only the text people edit.
"""

from __future__ import annotations

import logging
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel

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


def select_locale() -> str:
    for candidate in (request.args.get("ui"), request.cookies.get(COOKIE)):
        if candidate in LOCALES:
            return candidate
    for tag, _quality in request.accept_languages:
        found = locale_from_tag(tag)
        if found:
            return found
    return DEFAULT_LOCALE


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
        chosen = request.args.get("ui")
        if chosen in LOCALES and request.cookies.get(COOKIE) != chosen:
            response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
        return response

    @app.context_processor
    def locale_context():
        locale = select_locale()
        return {"ui_locale": locale, "ui_locales": LOCALES, "html_lang": HTML_LANG[locale],
                "content_lang": CONTENT_LANGUAGE[locale]}
