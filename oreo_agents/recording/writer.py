"""Write episodes as a Parquet dataset, shard by shard, so a killed collection resumes without loss or duplicates.

Layout of a dataset folder::

    <out>/manifest.json              collection settings + their hash, schema version, status
    <out>/data/shard-00000.parquet   completed episodes, one row each (the Features of recording/schema.py)
    <out>/data/shard-00001.parquet   ...

Why it is crash-safe: episodes are buffered in memory only until ``shard_size`` of them (or ``flush_seconds``) have
accumulated; a shard is written to a hidden temp file, fsynced, then ``os.replace``d into place, so a shard is either
all there or absent. Reopening the folder reads the ``episode_id`` column of every shard (ids only) and skips those
episodes, so rerunning the same command neither loses committed episodes nor writes them twice; episodes still in
the buffer when the process died are simply collected again. Memory stays flat: only the buffer and the id set live
in memory, never the dataset.

    >>> with ShardWriter("datasets/demo", settings={"env": "alfworld", "policy": "expert"}) as writer:  # doctest: +SKIP
    ...     writer.add(record)   # an EpisodeRecord; ignored if its episode_id is already committed
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from oreo_agents.errors import OreoError
from oreo_agents.recording.schema import SCHEMA_VERSION, EpisodeRecord

MANIFEST = "manifest.json"
DATA_DIR = "data"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable short hash of the settings that decide what the episodes contain."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def shard_paths(out: str | os.PathLike) -> list[Path]:
    """The committed shards of a dataset folder, in write order."""
    data = Path(out) / DATA_DIR
    if not data.is_dir():
        return []
    return sorted((p for p in data.iterdir() if _SHARD_RE.match(p.name)), key=lambda p: p.name)


def read_manifest(out: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OreoError(f"{path} is not valid JSON ({exc.msg}); the dataset folder is damaged") from exc


class ShardWriter:
    """Append episodes to a dataset folder in atomic Parquet shards (see the module docstring).

    Args:
        out: the dataset folder; created if missing.
        settings: what decided the episodes' content (env, policy, seed, sampling...). Stored in the manifest; reopening
            a folder whose settings differ is refused, naming the differing keys.
        resume: reopen a folder that already holds episodes and skip them. With False such a folder is refused.
        shard_size: episodes per shard.
        flush_seconds: also write a shard when the oldest buffered episode is this old (bounds what a kill can lose).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        settings: dict[str, Any],
        *,
        resume: bool = True,
        shard_size: int = 50,
        flush_seconds: float = 60.0,
    ) -> None:
        if shard_size < 1:
            raise OreoError(f"shard_size must be at least 1, got {shard_size}")
        self.out = Path(out)
        self.settings = json.loads(json.dumps(settings, default=str))  # what the manifest will hold, exactly
        self.hash = settings_hash(self.settings)
        self.shard_size = shard_size
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._buffer_since = 0.0
        self.done_ids: set[str] = set()
        self.written = 0  # episodes committed by this writer
        self._open(resume)
        from oreo_agents.recording.schema import episode_features

        self._schema = episode_features().arrow_schema

    # --- opening ----------------------------------------------------------------------------------------------------
    def _open(self, resume: bool) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OreoError(f"output path {out} is a file, not a folder; choose a folder for --out")
        data = out / DATA_DIR
        manifest = read_manifest(out)
        if manifest is None:
            if out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".")):
                raise OreoError(
                    f"output folder {out} is not empty and holds no {MANIFEST}: not a recorded dataset; "
                    "choose a new or empty folder for --out"
                )
        else:
            old = manifest.get("settings", {})
            if manifest.get("settings_hash") != self.hash:
                keys = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
                diffs = ", ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in keys) or "schema"
                raise OreoError(
                    f"{out} was collected with different settings ({diffs}); "
                    "use the original settings to resume, or choose a new --out"
                )
        try:
            data.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OreoError(f"cannot create output folder {data}: {exc.strerror}") from exc
        if not os.access(data, os.W_OK):
            raise OreoError(f"output folder {data} is not writable")
        for leftover in data.glob(".shard-*.tmp*"):  # a shard being written when the process died
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
        if manifest is None:
            self._write_manifest(status="in_progress")

    def _write_manifest(self, status: str) -> None:
        from oreo_agents import __version__

        manifest = {
            "format": "oreo-agents episodes",
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
        existing = shard_paths(self.out)
        index = int(_SHARD_RE.match(existing[-1].name).group(1)) + 1 if existing else 0
        final = self.out / DATA_DIR / f"shard-{index:05d}.parquet"
        tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self.written += len(self._buffer)
        self._buffer = []
        return final

    def close(self, *, complete: bool = False) -> None:
        """Flush what is buffered; with ``complete`` mark the manifest as finished."""
        self.flush()
        self._write_manifest(status="complete" if complete else "in_progress")

    @property
    def num_episodes(self) -> int:
        """Episodes committed or buffered so far (including those found on resume)."""
        return len(self.done_ids)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        # Even on an exception the buffered episodes are complete ones, so they are worth keeping.
        self.close()
