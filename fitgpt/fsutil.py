"""Crash-safe file writing, shared by shard, meta.json and checkpoint writers; one process per
folder (a run's out_dir, a dataset being prepared); free space, and paths that must be files."""

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import sys
from collections.abc import Callable
from typing import IO

from fitgpt.errors import ConfigError
from fitgpt.formatting import size_text

LOCK_FILE = ".lock"


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
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write names no file: name it
            raise OSError(e.errno, e.strerror, path) from None
        raise
    fsync_folder(os.path.dirname(os.path.abspath(path)))  # make the rename itself durable


def fsync_folder(folder: str) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def free_bytes(folder: str) -> int:
    return shutil.disk_usage(folder).free


def hold_folder(folder: str, setting: str) -> IO:
    """Make folder if need be and lock it for this process: an exclusive flock on folder/.lock,
    which the kernel releases when the file is closed or the process dies, however it dies (no
    stale lock to clear by hand). The holder's PID and host are written in the file, for the
    one-line refusal another process gets (setting: the option that named the folder). Returns
    the open lock file: close it to release the folder."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"{setting} {folder} is a file, not a folder; choose another {setting}")
    try:
        os.makedirs(folder, exist_ok=True)
        lock = open(os.path.join(folder, LOCK_FILE), "a+", encoding="utf-8")
    except OSError as e:
        raise unwritable(folder, setting, e) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "a process that has not written its name yet"
        lock.close()
        raise ConfigError(
            f"{setting} {folder} is in use by {holder}; wait for it to end, or choose another {setting}"
        ) from None
    except OSError as e:  # a filesystem without locks (some network mounts): go on, and say so
        print(f"WARNING: {setting} {folder}: cannot lock it ({e.strerror}); make sure no other process uses it")
    try:
        lock.seek(0)
        lock.truncate()
        lock.write(f"PID {os.getpid()} on host {socket.gethostname()} ({os.path.basename(sys.argv[0])})\n")
        lock.flush()
    except OSError as e:
        with contextlib.suppress(OSError):  # closing flushes again, and fails again
            lock.close()
        raise unwritable(folder, setting, e) from None
    return lock


def unwritable(folder: str, setting: str, error: OSError) -> ConfigError:
    if error.errno == errno.ENOSPC:
        free = size_text(free_bytes(folder))
        return ConfigError(
            f"{setting} {folder}: no space left on device ({free} free); free disk space or choose another {setting}"
        )
    return ConfigError(f"{setting} {folder} is not a writable folder ({error.strerror}); choose another {setting}")


def file_problem(path: str) -> str | None:
    """Why path cannot be read as a file ('no such file', 'is a directory, not a file'), or None."""
    if os.path.isdir(path):
        return "is a directory, not a file"
    if not os.path.exists(path):
        return "no such file"
    return None
