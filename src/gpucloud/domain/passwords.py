"""SHA-512 crypt(3) (`$6$`), the hash a guest's /etc/shadow and cloud-init understand.

The root password a customer sends is turned into this hash at once and only the hash is
kept and handed to the guest. Python's `crypt` module is gone from 3.13, so the algorithm
(Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512") is written out here.
"""

from __future__ import annotations

import hashlib
import secrets

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROUNDS = 5000
# The order in which the 64 digest bytes are packed into the 86-character text.
_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
          (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
          (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41))


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def _encode(digest: bytes) -> str:
    out = []
    for b2, b1, b0 in _ORDER:
        word = digest[b2] << 16 | digest[b1] << 8 | digest[b0]
        out += [_ITOA64[(word >> (6 * i)) & 0x3F] for i in range(4)]
    out += [_ITOA64[(digest[63] >> (6 * i)) & 0x3F] for i in range(2)]
    return "".join(out)


def sha512_crypt(password: str, salt: str | None = None) -> str:
    """`$6$<salt>$<hash>`; a random 16-character salt unless one is given (for tests)."""
    salt = (salt if salt is not None else "".join(secrets.choice(_ITOA64) for _ in range(16)))[:16]
    p, s = password.encode(), salt.encode()
    b = hashlib.sha512(p + s + p).digest()
    a = hashlib.sha512(p + s + _repeat(b, len(p)))
    n = len(p)
    while n:
        a.update(b if n & 1 else p)
        n >>= 1
    current = a.digest()
    p_seq = _repeat(hashlib.sha512(p * len(p)).digest(), len(p))
    s_seq = _repeat(hashlib.sha512(s * (16 + current[0])).digest(), len(s))
    for i in range(_ROUNDS):
        c = hashlib.sha512(p_seq if i & 1 else current)
        if i % 3:
            c.update(s_seq)
        if i % 7:
            c.update(p_seq)
        c.update(current if i & 1 else p_seq)
        current = c.digest()
    return f"$6${salt}${_encode(current)}"
