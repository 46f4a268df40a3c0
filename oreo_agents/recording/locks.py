"""Advisory locks on a dataset folder, so two collectors can never write the same planned episodes at once.

Two kinds of writer use a folder (``<out>/.locks/``):

- a *full* writer (one ``collect`` playing the whole plan) holds ``dataset.lock`` exclusively;
- a *share* writer (one of N cooperating collectors, each given a disjoint share of the plan's episode ids) holds
  ``dataset.lock`` shared and ``share-<name>.lock`` exclusively.

So any number of writers with different shares run together; a second writer of the same share, or a full writer
beside anyone else, is refused with one line naming the holder (pid, host, when it started). The locks are
``fcntl.flock`` locks: the kernel drops them when the holder dies (even ``kill -9``), so a crashed collector never
leaves a stale lock behind. Where ``flock`` is unavailable (Windows, some network filesystems) a lock is a file created
with ``O_EXCL`` holding the holder's pid and host; such a file whose pid is dead on this same host is stale and taken
over, one from another host is refused with its path so the user can remove it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from oreo_agents.errors import OreoError

LOCK_DIR = ".locks"

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def holder_info(share: str | None) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "share": share,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (it left no pid)"
    share = f" share {info['share']}" if info.get("share") else ""
    return f"pid {info.get('pid')} on {info.get('host')}{share} (since {info.get('started')})"


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Lock:
    """One lock file, held exclusively or shared (see the module docstring)."""

    def __init__(self, path: Path, *, shared: bool, info: dict[str, Any]) -> None:
        self.path, self.shared, self.info = path, shared, info
        self._fd: int | None = None
        self._sentinel: Path | None = None

    def acquire(self) -> str | None:
        """Take the lock; returns None, or a description of who holds it."""
        if fcntl is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return describe(_read_info(self.path))
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                return self._acquire_sentinel()  # a filesystem without flock
            self._fd = fd
            if not self.shared:  # the exclusive holder names itself (shared holders would overwrite each other)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(self.info).encode(), 0)
            return None
        return self._acquire_sentinel()

    def _acquire_sentinel(self) -> str | None:
        # Without flock a shared lock cannot be told apart from an exclusive one: every holder is exclusive then
        # (share writers of different shares still run together: each share has its own file).
        sentinel = self.path.with_suffix(".pid")
        for _ in range(2):
            try:
                fd = os.open(sentinel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read_info(sentinel)
                if self.shared and info and info.get("share") and self.info.get("share"):
                    return None  # two share writers: their own share locks keep them apart
                if info and info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
                    sentinel.unlink(missing_ok=True)  # stale: its process died on this host
                    continue
                return f"{describe(info)} (lock file {sentinel}; delete it if that process is gone)"
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(self.info))
            self._sentinel = sentinel
            return None
        return describe(_read_info(sentinel))

    def __del__(self) -> None:  # a writer dropped without close() (or its process ending) lets go of its lock
        try:
            self.release()
        except Exception:
            pass

    def release(self) -> None:
        if self._fd is not None:
            if not self.shared:
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._sentinel is not None:
            self._sentinel.unlink(missing_ok=True)
            self._sentinel = None


class DatasetLock:
    """The locks one writer holds on a dataset folder (``share=None``: the whole plan)."""

    def __init__(self, out: str | os.PathLike, share: str | None = None) -> None:
        if share is not None and (not share or "/" in share or share.startswith(".")):
            raise OreoError(f"share name {share!r} must be a non-empty name without '/' (e.g. '3-of-8')")
        self.out, self.share = Path(out), share
        self._held: list[_Lock] = []

    def acquire(self) -> "DatasetLock":
        folder = self.out / LOCK_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OreoError(f"cannot create lock folder {folder}: {exc.strerror}") from exc
        info = holder_info(self.share)
        locks = [_Lock(folder / "dataset.lock", shared=self.share is not None, info=info)]
        if self.share is not None:
            locks.append(_Lock(folder / f"share-{self.share}.lock", shared=False, info=info))
        for lock in locks:
            holder = lock.acquire()
            if holder is not None:
                self.release()
                raise OreoError(self._refusal(holder, lock))
            self._held.append(lock)
        return self

    def _refusal(self, holder: str, lock: _Lock) -> str:
        what = f"share {self.share} of " if self.share is not None and lock.path.name.startswith("share-") else ""
        if self.share is None and lock.path.name == "dataset.lock":
            sharers = [describe(_read_info(p)) for p in sorted((self.out / LOCK_DIR).glob("share-*.lock"))]
            sharers = [s for s in sharers if "left no pid" not in s]
            if sharers:
                holder = "; ".join(sharers)
        return (
            f"{self.out}: another collector is writing {what}this dataset: {holder}; "
            "wait for it to finish (or stop it), then rerun to resume"
        )

    def release(self) -> None:
        for lock in reversed(self._held):
            lock.release()
        self._held = []
