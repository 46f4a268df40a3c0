"""Content hashes of what decides a collection beyond its flags: the env's task data and the model's weights.

A resumed collection must play the same tasks with the same model. Flags alone cannot tell: ``$ALFWORLD_DATA`` may now
point at other games, and new weights may have been saved into the same ``--model`` folder. So the manifest records

- ``env_data_sha256``: a hash of the tasks the env will play, in plan order (ALFWorld: each game file's bytes; math:
  each problem; web shop: the catalog and instructions; any env: what its ``data_fingerprint()`` returns);
- ``model_weights_sha256`` (and ``value_weights_sha256``): a hash of every file at the top of the model folder
  (weights, config, tokenizer), each file's own sha256 combined in name order;
- ``base_weights_sha256``: for a LoRA adapter folder (``--policy runs/x/policy-adapter``), the same hash of its base
  model folder (``base_model_name_or_path``): the adapter alone does not decide the samples.

Hashing a 15 GB checkpoint takes a while, so per-file digests are cached in ``<out>/.locks/digests.json`` by
(path, size, mtime): an untouched folder is not read again on resume; any rewrite changes the mtime and is re-hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

FINGERPRINT_KEYS = ("env_data_sha256", "model_weights_sha256", "value_weights_sha256", "base_weights_sha256")
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DigestCache:
    """sha256 of files, remembered by (resolved path, size, mtime_ns) in a small JSON file (or only in memory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._table: dict[str, list[Any]] = {}
        if path is not None and path.is_file():
            try:
                table = json.loads(path.read_text())
                self._table = table if isinstance(table, dict) else {}
            except (OSError, ValueError):
                self._table = {}  # a damaged cache only costs re-hashing
        self.hashed = 0  # files actually read (for tests and the curious)

    def sha256(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        entry = self._table.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
            return str(entry[2])
        digest = file_sha256(file)
        self.hashed += 1
        self._table[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(self._table))
            os.replace(tmp, self.path)
        except OSError:
            pass  # only a cache


def _combine(parts: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for name, value in parts:
        digest.update(f"{name}\0{value}\n".encode())
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: str | os.PathLike, cache: DigestCache | None = None) -> str:
    """Hash of every regular file at the top of a model folder (weights, config, tokenizer), by name and content.

    Hidden files are left out. Nothing is loaded or unpickled: the bytes are hashed.
    """
    cache = cache or DigestCache()
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return _combine((p.name, cache.sha256(p)) for p in files)


def _value_digest(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def env_data_fingerprint(env: Any, cache: DigestCache | None = None) -> str | None:
    """Hash of the tasks an env plays, in order; None for an env whose data we cannot see (then nothing is checked)."""
    cache = cache or DigestCache()
    inner = getattr(env, "unwrapped", env)
    custom = getattr(inner, "data_fingerprint", None)
    if callable(custom):
        return str(custom())
    games = getattr(inner, "game_files", None)
    if games is not None:  # ALFWorld: the game files, by content (moving the data folder changes nothing)
        return _combine((str(i), cache.sha256(Path(g))) for i, g in enumerate(games))
    problems = getattr(inner, "problems", None)
    if problems is not None:  # math
        return _combine((str(i), _value_digest(p)) for i, p in enumerate(problems))
    catalog = getattr(inner, "catalog", None)
    if catalog is not None and hasattr(catalog, "products"):  # web shop
        tasks = getattr(catalog, "_by_task", {})
        return _combine(
            [(f"p{i}", _value_digest(p)) for i, p in enumerate(catalog.products)]
            + [(f"t{k}", _value_digest(v)) for k, v in sorted(tasks.items(), key=lambda kv: str(kv[0]))]
        )
    return None
