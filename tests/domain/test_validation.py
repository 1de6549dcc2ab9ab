"""Linode's input rules, and the SHA-512 crypt that turns a root password into a hash."""

import base64
import subprocess

import pytest

from gpucloud.domain import validation as v
from gpucloud.domain.passwords import sha512_crypt


@pytest.mark.parametrize("label, ok", [
    ("gpu-1", True), ("a.b_c-d", True), ("ab", False), ("x" * 65, False), ("-gpu", False),
    ("gpu--1", False), ("gpu__1", False), ("gpu..1", False), ("gpu 1", False), ("GPU1", True),
])
def test_labels(label, ok):
    assert (v.label_problem(label) is None) is ok


@pytest.mark.parametrize("password, ok", [
    ("aComplex@Password123", True), ("Ab1defg", True), ("short", False), ("alllowercaseletters", True),
    ("lowercase123", False), ("x" * 129, False),
])
def test_root_pass_strength(password, ok):
    assert (v.root_pass_problem(password) is None) is ok


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
