"""Content hashes for the manifest: a model folder's files, an env's task data, and the digest cache."""

from __future__ import annotations

import os

import gymnasium as gym

import oreo_agents.envs  # noqa: F401  (registers the envs)
from oreo_agents.recording.fingerprints import DigestCache, env_data_fingerprint, folder_fingerprint


def test_folder_fingerprint_follows_content_and_the_cache_skips_untouched_files(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights-1")
    (model / "config.json").write_text("{}")
    (model / ".hidden").write_text("ignored")
    cache = DigestCache(tmp_path / "digests.json")
    first = folder_fingerprint(model, cache)
    assert cache.hashed == 2
    cache.save()
    again = DigestCache(tmp_path / "digests.json")
    assert folder_fingerprint(model, again) == first and again.hashed == 0  # size + mtime unchanged: not re-read
    (model / ".hidden").write_text("still ignored")
    assert folder_fingerprint(model, again) == first
    (model / "model.safetensors").write_bytes(b"weights-2")  # same size, new bytes, new mtime
    st = (model / "model.safetensors").stat()
    os.utime(model / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert folder_fingerprint(model, again) != first and again.hashed == 1


def test_env_data_fingerprint_names_the_tasks_in_order():
    def fingerprint(**kwargs):
        env = gym.make("oreo_agents/Math-v0", **kwargs)
        try:
            return env_data_fingerprint(env)
        finally:
            env.close()

    assert fingerprint(num_tasks=5) == fingerprint(num_tasks=5)
    assert fingerprint(num_tasks=5) != fingerprint(num_tasks=6)

    class NoData(gym.Env):
        pass

    assert env_data_fingerprint(NoData()) is None
