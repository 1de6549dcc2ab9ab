"""Linode's rules for what customers may name and send, as pure checks.

Each check returns None when the value is fine, or the reason text for the field error.
"""

from __future__ import annotations

import base64
import binascii
import re

_LABEL = re.compile(r"^[a-zA-Z0-9]((?!--|__|\.\.)[a-zA-Z0-9-_.])+$")
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
    if not _LABEL.match(label):
        return ("Label must begin and end with a letter or number, and may only contain letters, numbers, "
                "hyphens, dashes, underscores and periods, with no two of -, _ or . in a row")
    return None


def root_pass_problem(password: str) -> str | None:
    """At least 7 characters (Linode's minimum) mixing three kinds of characters, or 16+ of any."""
    if not isinstance(password, str):
        return "root_pass must be a string"
    if not 7 <= len(password) <= 128:
        return "Password must be between 7 and 128 characters"
    kinds = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]"))
    if kinds < 3 and len(password) < 16:
        return ("Password does not meet strength requirement: use 16 or more characters, or mix three of "
                "lower case, upper case, digits and symbols")
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


def tag_problem(tag: str) -> str | None:
    if not isinstance(tag, str):
        return "Tags must be strings"
    if not 3 <= len(tag) <= _TAG_MAX:
        return f"Tag must be 3-{_TAG_MAX} characters"
    return None


def group_problem(group: str) -> str | None:
    if not isinstance(group, str):
        return "Group must be a string"
    if len(group) > 50:
        return "Group must be at most 50 characters"
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
