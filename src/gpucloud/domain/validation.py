"""Linode's rules for what customers may name and send, as pure checks.

Each check returns None when the value is fine, or the reason text for the field error.
Control characters (C0, DEL, C1) and lone surrogates are refused in every text a customer
sends: PostgreSQL cannot store NUL at all, the rest break logs, terminals and labels in
libvirt. The API applies `control_character_field` to every request body, query and
`X-Filter` (api/middleware.py); the per-field checks below refuse them too, for callers
that are not the API (CLI, admin).
"""

from __future__ import annotations

import base64
import binascii
import re

from zxcvbn import zxcvbn

# letters and numbers, single separators between them: starts and ends with a letter or number
_LABEL = re.compile(r"[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MIN_PASSWORD_SCORE = 3  # zxcvbn's "safely unguessable": about 10^8 guesses or more
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; a longer password is scored on its first 72 characters
_TAG_MAX = 50
_SSH_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def label_problem(label: str) -> str | None:
    if not isinstance(label, str):
        return "Label must be a string"
    if not 3 <= len(label) <= 64:
        return "Length must be 3-64 characters"
    if not _LABEL.fullmatch(label):
        return ("Label must begin and end with a letter or number, and may only contain letters, numbers, "
                "hyphens, underscores and periods, with no two of -, _ or . in a row")
    return None


def root_pass_problem(password: str) -> str | None:
    """7-128 characters (Linode's bounds) that a guesser would not find: zxcvbn scores the
    password against dictionaries, keyboard patterns, repeats and sequences; below
    MIN_PASSWORD_SCORE it is refused, as Linode refuses weak root passwords."""
    if not isinstance(password, str):
        return "root_pass must be a string"
    if not 7 <= len(password) <= 128:
        return "Password must be between 7 and 128 characters"
    if has_control_characters(password):
        return "Password must not contain control characters"
    if password_score(password) < MIN_PASSWORD_SCORE:
        return ("Password does not meet strength requirement: avoid words, names, dates, repeats and "
                "keyboard patterns; a few unrelated words or 12+ random characters pass")
    return None


def password_score(password: str) -> int:
    """zxcvbn's 0-4 strength score (the same rule for root passwords, console sign-up and
    anywhere else a customer picks a password)."""
    return int(zxcvbn(password[:_ZXCVBN_MAX])["score"])


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def control_character_field(value: object, path: str = "") -> str | None:
    """Where the first text holding a control character sits in a JSON value: a dotted path
    like `tags[1]` or `metadata.user_data` ('' for the value itself), or None when clean.
    Object keys count as text too (their object's path is named)."""
    if isinstance(value, str):
        return path if has_control_characters(value) else None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = control_character_field(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and has_control_characters(key):
                return path
            found = control_character_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    return None


def ssh_key_problem(key: str) -> str | None:
    if not isinstance(key, str):
        return "SSH keys must be strings"
    parts = key.strip().split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        return "SSH Key must be an OpenSSH public key (e.g. 'ssh-ed25519 AAAA... comment')"
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return "SSH Key body is not valid base64"
    name_length = int.from_bytes(blob[:4], "big")
    if blob[4 : 4 + name_length] != parts[0].encode():  # the blob names its own key type
        return "SSH Key type does not match its body"
    return None


USER_DATA_MAX = 65535  # characters of base64, as Linode's Metadata limits user data
CLOUD_CONFIG_HEADER = b"#cloud-config"


def decode_user_data(text: str) -> tuple[bytes | None, str | None]:
    """`metadata.user_data` (base64, at most USER_DATA_MAX characters) as bytes, or the reason it
    is refused. (Line breaks never get here: the API refuses control characters in every text.)"""
    if not isinstance(text, str):
        return None, "user_data must be a base64 string"
    if len(text) > USER_DATA_MAX:
        return None, f"user_data must be at most {USER_DATA_MAX} characters of base64"
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None, "user_data must be base64-encoded"
    if not data:
        return None, "user_data must not be empty"
    return data, None


def is_cloud_config(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf").startswith(CLOUD_CONFIG_HEADER)


def tag_problem(tag: str) -> str | None:
    if not isinstance(tag, str):
        return "Tags must be strings"
    if not 3 <= len(tag) <= _TAG_MAX:
        return f"Tag must be 3-{_TAG_MAX} characters"
    if has_control_characters(tag):
        return "Tags must not contain control characters"
    return None


def group_problem(group: str) -> str | None:
    if not isinstance(group, str):
        return "Group must be a string"
    if len(group) > 50:
        return "Group must be at most 50 characters"
    if has_control_characters(group):
        return "Group must not contain control characters"
    return None


def default_label(image: str | None, region: str, taken: set[str]) -> str:
    """Linode's habit: '<distribution>-<region>', numbered when taken ('debian12-us-east-2')."""
    base = (image.split("/")[-1] if image else "linode").replace(".", "")
    base = re.sub(r"[^a-zA-Z0-9-]", "-", f"{base}-{region}")[:60]
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"
