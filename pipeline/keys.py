"""Redis key formats (SPEC §7.1): the one place they are spelled; the downstream API reads these keys."""

from __future__ import annotations


def _flag(value: bool) -> str:
    return "true" if value else "false"


def statistics_key(prefix: str, category: str, grouped: bool) -> str:
    """``{prefix}:stats:{category}:grouped={true|false}``"""
    return f"{prefix}:stats:{category}:grouped={_flag(grouped)}"


def deletion_risk_key(prefix: str, category: str, grouped: bool, variations: bool = False) -> str:
    """``{prefix}:deletion_risk:{category}:grouped={..}``, plus ``:variations=true`` for that view."""
    key = f"{prefix}:deletion_risk:{category}:grouped={_flag(grouped)}"
    return key + ":variations=true" if variations else key


def last_run_key(prefix: str) -> str:
    """What the last published run was."""
    return f"{prefix}:analytics:last_run"


def audit_key(prefix: str, category: str) -> str:
    """``{prefix}:analytics:audit:{category}``: the latest run's reference audit of a category (SPEC §11)."""
    return f"{prefix}:analytics:audit:{category}"


def changes_key(prefix: str, category: str) -> str:
    """The latest run's changes of ``category`` against the previous committed run (SPEC §10)."""
    return f"{prefix}:analytics:changes:{category}"


def published_keys_key(prefix: str) -> str:
    """The set of keys the last run published (so a run can retire keys it no longer writes)."""
    return f"{prefix}:analytics:published_keys"


def invalidate_channel(prefix: str) -> str:
    """Pub/sub channel whose messages name a category whose data changed."""
    return f"{prefix}:analytics:invalidate"


def lock_key(prefix: str) -> str:
    """The one-run-at-a-time lock."""
    return f"{prefix}:analytics:lock"


def category_of(prefix: str, key: str) -> str | None:
    """The category a statistics or deletion-risk key belongs to, else None."""
    for kind in ("stats", "deletion_risk"):
        head = f"{prefix}:{kind}:"
        if key.startswith(head):
            return key[len(head) :].split(":", 1)[0]
    return None
