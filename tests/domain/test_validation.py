"""Linode's input rules, and the SHA-512 crypt that turns a root password into a hash."""

import base64
import subprocess

import pytest

from gpucloud.domain import validation as v
from gpucloud.domain.passwords import sha512_crypt


@pytest.mark.parametrize("label, ok", [
    ("gpu-1", True), ("a.b_c-d", True), ("ab", False), ("x" * 65, False), ("-gpu", False),
    ("gpu--1", False), ("gpu__1", False), ("gpu..1", False), ("gpu 1", False), ("GPU1", True),
    # issue 12 item 10: a full match, ending in a letter or number
    ("abc\n", False), ("ab-", False), ("ab_", False), ("ab.", False), ("gpu-1\x00", False), ("a-b", True),
])
def test_labels(label, ok):
    assert (v.label_problem(label) is None) is ok


@pytest.mark.parametrize("password, ok", [
    ("aComplex@Password123", True), ("short", False), ("lowercase123", False), ("x" * 129, False),
    # issue 12 item 10: scored like Linode does (zxcvbn), not by kinds of characters
    ("Passw0rd", False), ("a" * 16, False), ("Password123!", False), ("qwertyuiop123", False),
    ("a-Long-passw0rd", True), ("correct horse battery staple", True), ("vK7#pQ2zLm", True),
    ("a" * 72 + "vK7#pQ2zLm9!", False),  # scored on its first 72 characters
    ("vK7#pQ2z\x00Lm", False),
])
def test_root_pass_strength(password, ok):
    assert (v.root_pass_problem(password) is None) is ok


def test_tags_and_groups_refuse_control_characters():
    assert v.tag_problem("ml\x00x") == "Tags must not contain control characters"
    assert v.group_problem("a\x1fb") == "Group must not contain control characters"
    assert v.tag_problem("ml-team") is None and v.group_problem("") is None


@pytest.mark.parametrize("value, where", [
    ({"group": "a\x00b"}, "group"), ({"tags": ["ok", "x\x7fy"]}, "tags[1]"),
    ({"metadata": {"user_data": "\x85"}}, "metadata.user_data"), ("\ud800", ""),
    ({"a": [{"b": "\t"}]}, "a[0].b"), ({"k\x00": 1}, ""), ({"ok": "naïve 東京 ✓", "n": 1}, None),
])
def test_control_characters_are_found_with_their_field(value, where):
    assert v.control_character_field(value) == where


def _key(kind: str) -> str:
    blob = len(kind).to_bytes(4, "big") + kind.encode() + b"\x00" * 32
    return f"{kind} {base64.b64encode(blob).decode()} me@laptop"


def test_ssh_keys():
    assert v.ssh_key_problem(_key("ssh-ed25519")) is None
    assert v.ssh_key_problem("ssh-ed25519 not-base64!") == "SSH Key body is not valid base64"
    assert "does not match" in v.ssh_key_problem(_key("ssh-ed25519").replace("ssh-ed25519", "ssh-rsa", 1))
    assert "OpenSSH public key" in v.ssh_key_problem("hello")


def test_default_labels_are_numbered_when_taken():
    assert v.default_label("linode/ubuntu24.04", "us-east", set()) == "ubuntu2404-us-east"
    assert v.default_label(None, "us-east", {"linode-us-east"}) == "linode-us-east-2"
    assert v.label_problem(v.default_label("linode/debian12", "ap-south", set())) is None


@pytest.mark.parametrize("password, salt", [("aComplex@Password123", "abcdefgh12345678"), ("x", "s"),
                                             ("pässwörd", "0123456789abcdef"), ("p" * 100, "QQQQ")])
def test_sha512_crypt_matches_openssl(password, salt):
    reference = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, password], capture_output=True,
                               text=True, check=True).stdout.strip()
    assert sha512_crypt(password, salt) == reference


def test_sha512_crypt_salts_randomly():
    a, b = sha512_crypt("same"), sha512_crypt("same")
    assert a != b and a.startswith("$6$") and len(a.split("$")[2]) == 16
