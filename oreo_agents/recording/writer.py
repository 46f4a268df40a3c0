"""Write episodes as a Parquet dataset, shard by shard, so a killed collection resumes without loss or duplicates.

Layout of a dataset folder::

    <out>/manifest.json                                   settings + their hash, schema version, status
    <out>/data/shard-20261203174500-3fa2c1-00000.parquet  completed episodes, one row each (recording/schema.py)
    <out>/data/shard-20261203174500-3fa2c1-00001.parquet  ... (older datasets: shard-00000.parquet; still read)
    <out>/.locks/                                         advisory locks of the running writers (recording/locks.py)

Why it is crash-safe: the manifest is written first (atomically), so a folder is a dataset from its first moment.
Episodes are buffered in memory only until ``shard_size`` of them (or ``flush_seconds``) have accumulated; a shard is
written to a hidden temp file, fsynced, then ``os.replace``d into place, so a shard is either all there or absent.
Reopening the folder reads the ``episode_id`` column of every shard (ids only) and skips those episodes, so rerunning
the same command neither loses committed episodes nor writes them twice; episodes still in the buffer when the process
died are simply collected again. Memory stays flat: only the buffer and the id set live in memory, never the dataset.

Why concurrent writers are safe: each writer names its shards with its own start time and random tag, so writers
never overwrite each other's files; and a writer holds a lock on the folder (the whole plan) or on its share of the
plan, so two writers that would play the same episodes cannot run at once (the second is refused, naming the first).

    >>> with ShardWriter("datasets/demo", settings={"env": "alfworld", "policy": "expert"}) as writer:  # doctest: +SKIP
    ...     writer.add(record)   # an EpisodeRecord; ignored if its episode_id is already committed
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Iterable

from oreo_agents.errors import OreoError
from oreo_agents.recording.locks import DatasetLock
from oreo_agents.recording.schema import SCHEMA_VERSION, EpisodeRecord

MANIFEST = "manifest.json"
DATA_DIR = "data"
MANIFEST_FORMAT = "oreo-agents episodes"
# Old datasets: shard-00000.parquet. Now each writer names its shards uniquely (see ShardWriter.shard_name).
_SHARD_RE = re.compile(r"^shard-(?:[\w.-]+-)?\d{5,}\.parquet$")


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable short hash of the settings that decide what the episodes contain."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def shard_paths(out: str | os.PathLike) -> list[Path]:
    """The committed shards of a dataset folder (every writer's), sorted by name: old datasets' ``shard-00000``
    first, then by the time each writer started."""
    data = Path(out) / DATA_DIR
    if not data.is_dir():
        return []
    return sorted((p for p in data.iterdir() if _SHARD_RE.match(p.name)), key=lambda p: p.name)


def read_manifest(out: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a dataset folder, None when there is none; a damaged one is one error naming the file."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise OreoError(f"{path} is not text (not UTF-8); the dataset folder is damaged") from None
    except json.JSONDecodeError as exc:
        raise OreoError(f"{path} is not valid JSON ({exc.msg}); the dataset folder is damaged") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings", {}), dict):
        kind = type(manifest).__name__ if not isinstance(manifest, dict) else "'settings' that is not an object"
        raise OreoError(f"{path} is not an oreo-agents manifest (a JSON {kind}); the dataset folder is damaged")
    return manifest


def _normal_path(value: Any) -> Any:
    # ./x/, x and /abs/x name the same folder: compare them resolved (relative to the current directory).
    if not isinstance(value, str) or not value:
        return value
    return str(Path(os.path.expandvars(value)).expanduser().resolve())


def settings_differences(old: dict[str, Any], new: dict[str, Any], *, path_keys: Iterable[str] = (),
                         unverified_keys: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(differences, unverified)`` between stored and current settings, each a ``key: old -> new`` text.

    Values of ``path_keys`` are compared as resolved paths. A key of ``unverified_keys`` (a fingerprint that older
    versions did not record) missing from ``old`` is not a difference: it is reported in ``unverified``.
    """
    path_keys, unverified_keys = set(path_keys), set(unverified_keys)
    diffs, unverified = [], []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key in path_keys:
            a, b = _normal_path(a), _normal_path(b)
        if key not in old and key in unverified_keys:
            unverified.append(key)
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            diffs.append(f"{key}: {_short(a)} -> {_short(b)}")
    return diffs, unverified


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ShardWriter:
    """Append episodes to a dataset folder in atomic Parquet shards (see the module docstring).

    Args:
        out: the dataset folder; created if missing.
        settings: what decided the episodes' content (env, policy, seed, sampling, data and weights fingerprints...).
            Stored in the manifest; reopening a folder whose settings differ is refused, naming the differing keys.
        resume: reopen a folder that already holds episodes and skip them. With False such a folder is refused.
        shard_size: episodes per shard.
        flush_seconds: also write a shard when the oldest buffered episode is this old (bounds what a kill can lose).
        share: None when this writer plays the whole plan (it then locks the folder for itself); a name (e.g.
            ``"3-of-8"``) when it is one of several cooperating writers, each given a disjoint share of the episode
            ids: writers of different shares run together, two of the same share cannot (see :mod:`.locks`).
        path_keys: settings keys whose values are paths (compared resolved, so ``./x/`` equals ``/abs/x``).
        unverified_keys: settings keys that older manifests lack (fingerprints); resuming such a dataset adds them
            and lists them in :attr:`unverified` instead of refusing.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        settings: dict[str, Any],
        *,
        resume: bool = True,
        shard_size: int = 50,
        flush_seconds: float = 60.0,
        share: str | None = None,
        path_keys: Iterable[str] = (),
        unverified_keys: Iterable[str] = (),
    ) -> None:
        if shard_size < 1:
            raise OreoError(f"shard_size must be at least 1, got {shard_size}")
        self.out = Path(out)
        self.settings = json.loads(json.dumps(settings, default=str))  # what the manifest will hold, exactly
        self.hash = settings_hash(self.settings)
        self.shard_size = shard_size
        self.flush_seconds = flush_seconds
        self.share = share
        self.unverified: list[str] = []
        self._buffer: list[dict[str, Any]] = []
        self._buffer_since = 0.0
        self.done_ids: set[str] = set()
        self.written = 0  # episodes committed by this writer
        # Unique per writer: cooperating writers never pick the same shard name (no counting of others' files).
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        self._tag = f"{share + '-' if share else ''}{stamp}-{secrets.token_hex(3)}"
        self._next_index = 0
        self._lock: DatasetLock | None = DatasetLock(self.out, share)
        self._open(resume, set(path_keys), set(unverified_keys))
        from oreo_agents.recording.schema import episode_features

        self._schema = episode_features().arrow_schema

    # --- opening ----------------------------------------------------------------------------------------------------
    def _open(self, resume: bool, path_keys: set[str], unverified_keys: set[str]) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OreoError(f"output path {out} is a file, not a folder; choose a folder for --out")
        if read_manifest(out) is None and out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise OreoError(
                f"output folder {out} is not empty and holds no {MANIFEST}: not a recorded dataset; "
                "choose a new or empty folder for --out"
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OreoError(f"cannot create output folder {out}: {exc.strerror}") from exc
        if not os.access(out, os.W_OK):
            raise OreoError(f"output folder {out} is not writable")
        lock = self._lock
        assert lock is not None
        lock.acquire()
        try:
            self._open_locked(resume, path_keys, unverified_keys)
        except BaseException:
            lock.release()
            self._lock = None
            raise

    def _open_locked(self, resume: bool, path_keys: set[str], unverified_keys: set[str]) -> None:
        out, data = self.out, self.out / DATA_DIR
        manifest = read_manifest(out)  # again: another writer may have created it meanwhile
        if manifest is None:
            # The manifest comes first, atomically: a collect killed at any later moment leaves a resumable folder.
            self._write_manifest(status="in_progress")
        else:
            diffs, self.unverified = settings_differences(
                manifest.get("settings", {}), self.settings, path_keys=path_keys, unverified_keys=unverified_keys
            )
            if diffs:
                raise OreoError(
                    f"{out} was collected with different settings ({'; '.join(diffs)}); "
                    "use the original settings to resume, or choose a new --out"
                )
            stored = manifest.get("settings", {})
            # Keep the stored spelling of paths that name the same folder (episode ids may be derived from it).
            self.settings.update({k: stored[k] for k in path_keys if k in stored and k in self.settings})
            self.hash = settings_hash(self.settings)
            if self.unverified or manifest.get("settings_hash") != self.hash:
                self._write_manifest(status=str(manifest.get("status", "in_progress")))  # record the fingerprints
        try:
            data.mkdir(exist_ok=True)
        except OSError as exc:
            raise OreoError(f"cannot create output folder {data}: {exc.strerror}") from exc
        mine = None if self.share is None else re.compile(rf"^\.shard-{re.escape(self.share)}-\d{{14}}-[0-9a-f]{{6}}-")
        for leftover in data.glob(".shard-*.tmp*"):  # a shard being written when its writer died
            if mine is None or mine.match(leftover.name):  # a share writer leaves other writers' files alone
                leftover.unlink(missing_ok=True)
        import pyarrow.parquet as pq

        for shard in shard_paths(out):
            try:
                ids = pq.read_table(shard, columns=["episode_id"]).column("episode_id").to_pylist()
            except Exception as exc:  # a shard we did not write, or a damaged file
                raise OreoError(f"cannot read episode ids from {shard}: {exc}") from exc
            self.done_ids.update(ids)
        if self.done_ids and not resume:
            raise OreoError(
                f"{out} already holds {len(self.done_ids)} episodes; rerun with --resume to continue it, "
                "or choose a new --out"
            )

    def _write_manifest(self, status: str) -> None:
        from oreo_agents import __version__

        manifest = {
            "format": MANIFEST_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "settings": self.settings,
            "settings_hash": self.hash,
            "status": status,
            "package_version": __version__,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_text(self.out / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    # --- writing ----------------------------------------------------------------------------------------------------
    def is_done(self, episode_id: str) -> bool:
        """Whether this episode is already committed (or buffered)."""
        return episode_id in self.done_ids

    def add(self, record: EpisodeRecord | dict[str, Any]) -> bool:
        """Buffer one finished episode; returns False (and drops it) if its id was already recorded."""
        row = record.to_row() if isinstance(record, EpisodeRecord) else record
        episode_id = row["episode_id"]
        if episode_id in self.done_ids:
            return False
        self.done_ids.add(episode_id)
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(row)
        if len(self._buffer) >= self.shard_size or time.monotonic() - self._buffer_since >= self.flush_seconds:
            self.flush()
        return True

    def flush(self) -> Path | None:
        """Write the buffered episodes as one shard (atomically); returns its path, or None if nothing was buffered."""
        if not self._buffer:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self._buffer, schema=self._schema)
        final = self.out / DATA_DIR / self.shard_name(self._next_index)
        tmp = final.with_name(f".{final.name}.tmp")
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._next_index += 1
        self.written += len(self._buffer)
        self._buffer = []
        return final

    def shard_name(self, index: int) -> str:
        """``shard-[<share>-]<UTC start time>-<6 random hex>-<index>.parquet``: unique to this writer."""
        return f"shard-{self._tag}-{index:05d}.parquet"

    def close(self, *, complete: bool = False) -> None:
        """Flush what is buffered, mark the manifest (``complete`` when the whole plan is done) and release the lock.

        A share writer leaves the status alone: its share being done says nothing about the others'."""
        if self._lock is None:
            return
        try:
            self.flush()
            if self.share is None:
                self._write_manifest(status="complete" if complete else "in_progress")
        finally:
            self._lock.release()
            self._lock = None

    @property
    def num_episodes(self) -> int:
        """Episodes committed or buffered so far (including those found on resume)."""
        return len(self.done_ids)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        # Even on an exception the buffered episodes are complete ones, so they are worth keeping.
        self.close()
