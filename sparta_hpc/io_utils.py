"""Atomic file writes (a reader, or a resumed run, sees the whole file or none of it) and a free port."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data) -> None:
    import json

    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def read_json(path: Path):
    import json

    return json.loads(Path(path).read_text())


def mark_done(path: Path, note: str = "") -> None:
    """Write a completion marker; it is written last, so its existence means done."""
    atomic_write_text(path, note + "\n")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
