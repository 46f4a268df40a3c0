"""The option groups of pipeline/options.py: one definition per concept, composed into collect, eval and play."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from oreo_agents.agent.selection import SELECT_MODES, SelectMode
from oreo_agents.errors import OreoError
from oreo_agents.pipeline.collect import CollectConfig, content_settings
from oreo_agents.pipeline.evaluate import EvalConfig
from oreo_agents.pipeline.options import AgentOptions, EnvOptions, SamplingOptions, SelectChoice
from oreo_agents.pipeline.play import PlayConfig


def test_select_choices_are_the_select_modes_and_configs_hold_the_enum():
    assert typing.get_args(SelectChoice) == SELECT_MODES
    assert PlayConfig(select="value", value="v").select is SelectMode.VALUE
    assert CollectConfig().select is SelectMode.SAMPLE  # collect samples by default (training data)
    with pytest.raises(OreoError, match="--select nope"):
        PlayConfig(select="nope")


def test_each_shared_option_has_one_definition_help_and_default():
    """collect, eval and play take every field of the groups from the groups themselves, except the overrides named
    here (eval's repeatable options; collect's sampling default)."""
    overrides = {CollectConfig: {"select"}, EvalConfig: {"policy", "value", "select", "k", "split"}, PlayConfig: set()}
    groups = {f.name: f for g in (EnvOptions, AgentOptions, SamplingOptions) for f in dataclasses.fields(g)}
    for config, mine in overrides.items():
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name, group_field in groups.items():
            same = fields[name].metadata == group_field.metadata and fields[name].default == group_field.default
            assert same or name in mine, (config.__name__, name)


def test_one_policy_spelling_and_the_old_collect_spelling_records_the_same_settings(tmp_path):
    folder = tmp_path / "policy"
    folder.mkdir()
    new = CollectConfig(policy=str(folder), out="x")
    old = CollectConfig(policy="model", model=str(folder), out="x")  # accepted with a warning
    assert old.policy == new.policy == str(folder) and old.model is None
    settings = content_settings(new)
    assert settings == content_settings(old)
    assert settings["policy"] == "model" and settings["model"] == str(folder.resolve())  # the manifest as before
    with pytest.raises(OreoError, match="--policy model needs --model"):
        CollectConfig(policy="model")
    with pytest.raises(OreoError, match=f"--policy {folder}"):
        CollectConfig(policy="expert", model=str(folder))


def test_agent_options_build_every_scripted_policy_including_noisy_expert():
    assert AgentOptions(policy="expert").build(0).name == "expert"
    noisy = AgentOptions(policy="noisy-expert", eps=0.5).build(3)
    assert noisy.name == "noisy-expert" and noisy.metadata()["sampling"] == {"eps": 0.5, "seed": 3}
    with pytest.raises(OreoError, match="not expert, random, noisy-expert or a model directory"):
        AgentOptions(policy="no/such/folder").build(0)


def test_env_options_make_builds_the_env_with_a_split_override_and_its_expert():
    env = EnvOptions(env="math", num_tasks=3, max_steps=5).make(split="test", expert=True)
    try:
        _, info = env.reset(seed=0)
        assert env.unwrapped.split == "test" and env.unwrapped.max_steps == 5 and "expert_action" in info
    finally:
        env.close()
    with pytest.raises(OreoError, match="--games-root is not an option of env"):
        EnvOptions(env="math", games_root="x").make()


def test_an_adapter_policy_fingerprints_its_base_model_too(tmp_path):
    import json

    from oreo_agents.pipeline.collect import fingerprint_settings
    from oreo_agents.recording.fingerprints import DigestCache

    class NoData:  # an env whose data cannot be seen: only the weights are hashed
        def close(self):
            pass

    base, adapter = tmp_path / "base", tmp_path / "policy-adapter"
    base.mkdir()
    adapter.mkdir()
    (base / "config.json").write_text("{}")
    (base / "model.safetensors").write_bytes(b"base weights")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"lora weights")
    cfg = CollectConfig(env="math", policy=str(adapter))

    def fingerprint():
        return fingerprint_settings(cfg, {}, NoData, DigestCache(None))

    first = fingerprint()
    assert set(first) == {"model_weights_sha256", "base_weights_sha256"}
    (base / "model.safetensors").write_bytes(b"new base weights")  # the adapter is untouched
    second = fingerprint()
    assert second["model_weights_sha256"] == first["model_weights_sha256"]
    assert second["base_weights_sha256"] != first["base_weights_sha256"]
    cfg_full = CollectConfig(env="math", policy=str(base))  # a complete model folder: no base key
    assert set(fingerprint_settings(cfg_full, {}, NoData, DigestCache(None))) == {"model_weights_sha256"}
