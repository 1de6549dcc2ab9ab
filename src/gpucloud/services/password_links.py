"""One-time links that hand an instance's root password to its customer.

The operator who boots an instance for a customer gets its root password once; instead of
copying it into a mail, they give the customer a link that shows it once. The link's token
(256 random bits) is the only key: the database keeps its SHA-256 and the password sealed
with a keystream drawn from the token (HMAC-SHA256 in counter mode), so neither the
database nor its backups can show the password. Opening the link erases the sealed copy;
an unopened link lapses after `LIFETIME`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from gpucloud.clock import utcnow
from gpucloud.store import audit
from gpucloud.store import password_links as q
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance, PasswordLink

LIFETIME = timedelta(hours=72)
PATH = "/password/"  # + token: the page the customer opens (api.password_link)


@dataclass(frozen=True)
class Opened:
    instance_id: int
    label: str
    password: str | None  # None: opened before, lapsed, or never existed (the same answer)


def _keystream(token: str, length: int) -> bytes:
    key = token.encode()
    blocks = (hmac.new(key, n.to_bytes(4, "big"), hashlib.sha256).digest() for n in range(length // 32 + 1))
    return b"".join(blocks)[:length]


def _seal(token: str, password: str) -> str:
    raw = password.encode()
    return bytes(a ^ b for a, b in zip(raw, _keystream(token, len(raw)), strict=True)).hex()


def _unseal(token: str, sealed: str) -> str:
    raw = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(raw, _keystream(token, len(raw)), strict=True)).decode()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(db: Database, instance_id: int, password: str, *, actor: str) -> str:
    """A new link's token for the instance's root password (audited, without the password)."""
    token = secrets.token_urlsafe(32)
    with db.write() as s:
        link = PasswordLink(instance_id=instance_id, token_hash=_hash(token), sealed=_seal(token, password),
                            expires_at=utcnow() + LIFETIME)
        s.add(link)
        s.flush()
        audit.record(s, actor=actor, action="instance.password_link", target_type="instance",
                     target_id=instance_id, after={"link": link.id, "expires": link.expires_at.isoformat()})
    return token


def open_link(db: Database, token: str) -> Opened | None:
    """The password, once: the first opening erases it. None for a token no link has."""
    with db.write() as s:
        link = q.by_token_hash(s, _hash(token))
        if link is None:
            return None
        instance = s.get(Instance, link.instance_id)
        label = instance.label if instance else ""
        if link.sealed is None or link.expires_at < utcnow():
            link.sealed = None
            return Opened(link.instance_id, label, None)
        password = _unseal(token, link.sealed)
        link.sealed, link.opened_at = None, utcnow()
        return Opened(link.instance_id, label, password)
