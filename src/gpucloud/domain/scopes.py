"""OAuth scopes as Linode spells them: `linodes:read_write events:read_only`, or `*` for all.

read_write implies read_only; `resource:*` means read_write on that resource.
"""

from __future__ import annotations

import re

RESOURCES = (
    "account",
    "databases",
    "domains",
    "events",
    "firewall",
    "images",
    "ips",
    "linodes",
    "lke",
    "longview",
    "nodebalancers",
    "object_storage",
    "stackscripts",
    "volumes",
    "vpc",
)
LEVELS = {"read_only": 1, "read_write": 2}


class ScopeError(ValueError):
    pass


def parse_scopes(text: str) -> dict[str, int]:
    """'*' -> every resource read_write. Separators: space or comma (both clients' habits)."""
    items = [s for s in re.split(r"[\s,]+", (text or "").strip()) if s]
    if not items:
        raise ScopeError("scopes must not be empty")
    granted: dict[str, int] = {}
    for item in items:
        if item == "*":
            return {r: LEVELS["read_write"] for r in RESOURCES}
        resource, _, level = item.partition(":")
        if resource not in RESOURCES:
            raise ScopeError(f"unknown scope resource {resource!r}")
        if level == "*":
            level = "read_write"
        if level not in LEVELS:
            raise ScopeError(f"scope {item!r} must end in :read_only or :read_write")
        granted[resource] = max(granted.get(resource, 0), LEVELS[level])
    return granted


def format_scopes(granted: dict[str, int]) -> str:
    """The canonical text: '*' when everything is granted, else sorted 'resource:level' items."""
    if all(granted.get(r) == LEVELS["read_write"] for r in RESOURCES):
        return "*"
    names = {v: k for k, v in LEVELS.items()}
    return " ".join(f"{r}:{names[granted[r]]}" for r in sorted(granted))


def normalise_scopes(text: str) -> str:
    return format_scopes(parse_scopes(text))


def allows(granted_text: str, resource: str, level: str) -> bool:
    """Does a token with these scopes permit `level` access to `resource`?"""
    try:
        granted = parse_scopes(granted_text)
    except ScopeError:
        return False
    return granted.get(resource, 0) >= LEVELS[level]


def narrow(requested: str, acting: str) -> str:
    """A token may only create tokens with scopes it holds itself ('*' means: same as mine)."""
    if requested.strip() == "*":
        return normalise_scopes(acting)
    want, have = parse_scopes(requested), parse_scopes(acting)
    excess = [r for r, lvl in want.items() if have.get(r, 0) < lvl]
    if excess:
        raise ScopeError(f"cannot grant more than the acting token holds: {', '.join(sorted(excess))}")
    return format_scopes(want)
