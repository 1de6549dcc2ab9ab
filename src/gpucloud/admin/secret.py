"""The key that signs admin session cookies: generated once into DATA_DIR/admin-secret
(mode 0600) and read by every process sharing that data dir."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

FILE_NAME = "admin-secret"


def load_or_create(data_dir: Path) -> bytes:
    """Read the secret, or create it atomically (a link cannot replace an existing file, so
    processes starting together end up with the same one)."""
    path = Path(data_dir) / FILE_NAME
    for _ in range(50):
        if path.is_file():
            value = path.read_text().strip()
            if value:
                return value.encode()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(temp, path)
            except FileExistsError:
                pass
            finally:
                temp.unlink()
            continue
        time.sleep(0.1)
    raise RuntimeError(f"{path} is empty; delete it to have a new admin secret generated")
