"""Redis key formats (SPEC §7.1): the one place they are spelled; the downstream API reads these keys."""

from __future__ import annotations

from typing import Final


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


# Input-hash keys (the manifest's and last_run's ``input_hashes``): what each input's sha256 is filed under.
_RECORDS_HASH: Final = "records:"


def records_hash_key(category: str) -> str:
    """``records:{category}``: the sha256 of a category's reference file."""
    return _RECORDS_HASH + category


def horde_hash_key(model_type: str, kind: str) -> str:
    """``horde:{type}:{kind}``: the sha256 of one Horde payload (status, usage, workers)."""
    return f"horde:{model_type}:{kind}"


def category_of_hash_key(key: str) -> str | None:
    """The category a records input-hash key names, else None (a Horde key)."""
    return key[len(_RECORDS_HASH) :] if key.startswith(_RECORDS_HASH) else None
