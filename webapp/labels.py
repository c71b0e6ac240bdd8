"""What stored keys are called in the reader's language: statuses, channels, roles, topics and the like.

The database keeps the English key (`resolved`, `phone`, `crm-vision-leadership`)
so filters, the API and exports stay the same in every language; pages show
the label from here, translated when shown (lazy strings, one catalog). A key
with no label yet (a status an import brought, a new topic) is still shown
readably: a topic's dashes become spaces, anything else as it was written.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _

from kb.access import INTERNAL, PARTNER_VISIBLE
from kb.services import accounts, audit

# Case statuses: those of the bundled notes and the usual words for "closed".
STATUSES = {
    "resolved": _("Resolved"),
    "open": _("Open"),
    "pending": _("Pending"),
    "escalated": _("Escalated"),
    "closed": _("Closed"),
}

CHANNELS = {
    "phone": _("Phone"),
    "chat": _("Chat"),
    "email": _("Email"),
    "line": _("LINE"),
    "wechat": _("WeChat"),
    "store": _("In store"),
    "social": _("Social media"),
}

AUDIT_ACTIONS = {
    audit.SEARCH: _("Searched"),
    audit.VIEW: _("Viewed"),
    audit.EXPORT: _("Exported"),
    audit.SIMILAR: _("Looked for similar cases"),
    audit.ASK: _("Asked a question"),
    "login": _("Signed in"),
    "login_failed": _("Sign-in failed"),
    audit.USER_ADD: _("Created a user"),
    audit.USER_ROLE: _("Changed a role"),
    audit.USER_PASSWORD: _("Reset a password"),
    audit.USER_UNLOCK: _("Unlocked a user"),
    audit.USER_DISABLE: _("Disabled a user"),
    audit.USER_ENABLE: _("Enabled a user"),
}

ROLES = {
    accounts.ADMIN: _("Administrator"),
    accounts.TRAINER: _("Trainer"),
    accounts.AGENT: _("Support agent"),
    accounts.EMPLOYEE: _("Employee"),
    accounts.PARTNER: _("Partner"),
}

VISIBILITY = {
    INTERNAL: _("Everyone in the company"),
    PARTNER_VISIBLE: _("Everyone in the company and partners"),
}

KINDS = {"guidance": _("Guidance"), "note": _("Customer note")}

# Topics of the bundled guidance and of the customer notes; others get a readable name (see `topic_label`).
TOPICS = {
    "bpr": _("Business process reengineering"),
    "business-case": _("Business case"),
    "call-center": _("Call center"),
    "change-management": _("Change management"),
    "complaint-handling": _("Complaint handling"),
    "crm-vision-leadership": _("CRM vision and leadership"),
    "data-quality": _("Data quality"),
    "ethics-permission-marketing": _("Ethics and permission marketing"),
    "human-factors": _("Human factors"),
    "information-security": _("Information security"),
    "knowledge-management": _("Knowledge management"),
    "organizational-culture": _("Organizational culture"),
    "size-and-structure": _("Size and structure"),
    "success-factors": _("Success factors"),
    "technology-integration": _("Technology integration"),
    "value-chain": _("Value chain"),
    "workshops-training": _("Workshops and training"),
    # the customer notes' tags
    "account": _("Account"),
    "app": _("App"),
    "billing": _("Billing"),
    "contract": _("Contract"),
    "delivery": _("Delivery"),
    "device-fault": _("Device fault"),
    "installation": _("Installation"),
    "other": _("Other"),
    "outage": _("Outage"),
    "privacy": _("Privacy"),
    "refund": _("Refund"),
    "roaming": _("Roaming"),
    "slow-speed": _("Slow speed"),
    "staff-behaviour": _("Staff behaviour"),
    "wait-time": _("Wait time"),
}


def _lookup(labels: dict, key: str | None) -> str:
    """The label of `key` (compared without case or surrounding spaces), else the key as written."""
    if key is None:
        return ""
    found = labels.get(str(key).strip().casefold())
    return str(found) if found is not None else str(key)


def status_label(key: str | None) -> str:
    return _lookup(STATUSES, key)


def channel_label(key: str | None) -> str:
    return _lookup(CHANNELS, key)


def action_label(key: str | None) -> str:
    return _lookup(AUDIT_ACTIONS, key)


def role_label(key: str | None) -> str:
    return _lookup(ROLES, key)


def kind_label(key: str | None) -> str:
    return _lookup(KINDS, key)


def visibility_label(key: str | None) -> str:
    """internal / partner, or a list of roles ("agent,admin") as their names."""
    key = (key or INTERNAL).strip().casefold()
    if key in VISIBILITY:
        return str(VISIBILITY[key])
    return ", ".join(role_label(part) for part in key.split(",") if part.strip())


def topic_label(tag: str | None) -> str:
    """A topic's name: translated where we know it, else the tag made readable ("slow-speed" -> "Slow speed")."""
    if not tag:
        return ""
    found = TOPICS.get(tag.strip().casefold())
    if found is not None:
        return str(found)
    readable = tag.replace("-", " ")
    return readable[:1].upper() + readable[1:]


def init_app(app: Flask) -> None:
    """Each label as a template filter: `{{ case.status|status_label }}`."""
    for function in (status_label, channel_label, action_label, role_label, kind_label, visibility_label,
                     topic_label):
        app.add_template_filter(function, function.__name__)
