"""The SSH keys a user keeps in their profile (`/profile/sshkeys`), and what `authorized_users`
on create and rebuild turns into: the keys of those users, for the guest's root account."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucloud.domain import validation
from gpucloud.errors import NotFound, ValidationErrors
from gpucloud.store import sshkeys as q
from gpucloud.store.db import Database
from gpucloud.store.tables import SshKey

LABEL_MAX = 64


def _label_problem(label: str) -> str | None:
    if len(label) > LABEL_MAX:
        return f"Label must be at most {LABEL_MAX} characters"
    if validation.has_control_characters(label):
        return "Label must not contain control characters"
    return None


def list_keys(db: Database, user_id: int) -> list[SshKey]:
    with db.read() as s:
        return q.keys_of_user(s, user_id)


def get_key(db: Database, user_id: int, key_id: int) -> SshKey:
    with db.read() as s:
        key = q.key_of_user(s, user_id, key_id)
    if key is None:
        raise NotFound()
    return key


def add_key(db: Database, user_id: int, ssh_key: str, label: str | None) -> SshKey:
    errors: list[tuple[str | None, str]] = []
    if problem := validation.ssh_key_problem(ssh_key):
        errors.append(("ssh_key", problem))
    if label is not None and (problem := _label_problem(label)):
        errors.append(("label", problem))
    if errors:
        raise ValidationErrors(errors)
    with db.write() as s:
        key = SshKey(user_id=user_id, ssh_key=ssh_key.strip(), label=label or "")
        s.add(key)
        s.flush()
        return key


def relabel_key(db: Database, user_id: int, key_id: int, label: str) -> SshKey:
    if problem := _label_problem(label):
        raise ValidationErrors([("label", problem)])
    with db.write() as s:
        key = q.key_of_user(s, user_id, key_id)
        if key is None:
            raise NotFound()
        key.label = label
        s.flush()
        return key


def delete_key(db: Database, user_id: int, key_id: int) -> None:
    with db.write() as s:
        key = q.key_of_user(s, user_id, key_id)
        if key is None:
            raise NotFound()
        s.delete(key)


def key_labels_by_username(db: Database, account_id: int) -> dict[str, list[str]]:
    """What GET /account/users shows as each user's `ssh_keys`: their keys' labels."""
    with db.read() as s:
        return {user: [k.label for k in keys] for user, keys in q.keys_by_username(s, account_id).items()}


def authorized_users_keys(s: Session, account_id: int, usernames: tuple[str, ...]) -> tuple[
        list[str], list[tuple[str | None, str]]]:
    """The public keys of `usernames` (users of this account), in order and without repeats, and
    the field errors for names that are no user here or have no key to give."""
    by_user = q.keys_by_username(s, account_id)
    keys: list[str] = []
    errors: list[tuple[str | None, str]] = []
    for name in usernames:
        if name not in by_user:
            errors.append(("authorized_users", f"Username {name} is not a user on this account"))
        elif not by_user[name]:
            errors.append(("authorized_users", f"User {name} has no SSH keys in their profile "
                                               "(add one with POST /profile/sshkeys)"))
        for key in by_user.get(name, []):
            if key.ssh_key not in keys:
                keys.append(key.ssh_key)
    return keys, errors
