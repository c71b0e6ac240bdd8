"""The Flask portal and JSON API (see issue: the portal)."""
