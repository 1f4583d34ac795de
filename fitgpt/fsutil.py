"""Crash-safe file writing, shared by shard, meta.json and checkpoint writers."""

import os
from collections.abc import Callable


def atomic_write(path: str | os.PathLike, write_fn: Callable) -> None:
    """Write through write_fn(file) to a temporary name in the same folder, fsync, then rename:
    readers see either the old file or the complete new one, never a partial one."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
