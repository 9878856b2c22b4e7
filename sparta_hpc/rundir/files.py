"""Atomic file writes (a reader, or a resumed run, sees the whole file or none of it), clear
errors when the disk is full, and a free port."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from pathlib import Path

from ..errors import DiskFull

FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_disk_full(err: BaseException) -> bool:
    # h5py reports a failed write as a plain OSError whose text carries the errno
    text = str(err)
    return getattr(err, "errno", None) in FULL or "No space left on device" in text \
        or "Disk quota exceeded" in text or "errno = 28" in text


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return None


@contextlib.contextmanager
def disk_errors(path: Path):
    """Turn "no space left" / "quota exceeded" while writing `path` into a DiskFull naming it:
    nothing half-written is kept as done (writes are atomic), so freeing space and running the
    same command again resumes."""
    try:
        yield
    except DiskFull:
        raise
    except (OSError, RuntimeError) as err:  # h5py raises either, with the errno in its text
        if not _is_disk_full(err):
            raise
        free = _free_bytes(Path(path))
        left = f"{free / 2**20:.1f} MiB" if free is not None else "unknown space"
        cause = getattr(err, "strerror", None) or str(err).splitlines()[0][:200]
        raise DiskFull(errno.ENOSPC, f"no space left on device while writing {path} ({left} free there; {cause}). "
                                     "Free space (or raise the quota), then run the same command again: finished "
                                     "work is kept") from err


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    with disk_errors(path):
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


def no_world_write() -> int:
    """Add "others may not write" to this process's umask (and so to its jobs'); returns the umask."""
    mask = os.umask(0) | 0o002
    os.umask(mask)
    return mask


def private_run_dir(root: Path) -> None:
    """Create the run directory for its owner (and group, as the umask allows) only, and refuse one
    that others may write into: they could swap a shard or plant a link the jobs would follow."""
    mask = no_world_write()
    if not root.exists():
        root.mkdir(parents=True)
        os.chmod(root, 0o770 & ~(mask | 0o007))  # nobody else may even list it
    mode = root.stat().st_mode & 0o7777
    if mode & 0o002:
        raise PermissionError(f"{root}: others may write into this run directory (mode {mode:o}); run "
                              f"`chmod o-w {root}` or choose another run.dir")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
