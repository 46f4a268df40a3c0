"""``value-report`` as a library function: what a trained value model says about recorded episodes (the value lens of
:mod:`oreo_agents.agent.value_report` over a dataset, with its config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oreo_agents.console import console
from oreo_agents.errors import OreoError


@dataclass
class ValueReportConfig:
    """Settings of ``value-report`` (YAML keys of ``--config`` and flags are these field names)."""

    value: str = field(default="", metadata={"help": "Value model folder saved by `train --algo oreo` (e.g. runs/oreo/value)."})
    policy: str = field(default="", metadata={"help": (
        "The policy folder the value model was trained with: adds the expert check on ALFWorld episodes (does V prefer "
        "the expert's action where the agent left it? the policy's preference is the baseline); default: none.")})
    data: list[str] = field(default_factory=list, metadata={"help": "Recorded episodes: Parquet files or folders, searched recursively (repeatable)."})
    split: str = field(default="", metadata={"help": "Only episodes of this split (default: all)."})
    out: str = field(default="runs/value-report", metadata={"help": "Folder for the report files."})
    bins: int = field(default=10, metadata={"help": "Bins of the reliability diagram (equal width over [0, 1])."})
    top: int = field(default=3, metadata={"help": "Decisive steps listed per episode (largest |A_t|)."})
    batch_size: int = field(default=8, metadata={"help": "Episodes per value forward."})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cpu or cuda."})

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise OreoError(f"--bins must be at least 1, got {self.bins}")
        if self.top < 0:
            raise OreoError(f"--top must be >= 0, got {self.top}")
        if self.batch_size < 1:
            raise OreoError(f"--batch-size must be at least 1, got {self.batch_size}")


def run_value_report(cfg: ValueReportConfig) -> dict[str, Any]:
    from oreo_agents.agent.evaluate import quiet_third_party_progress
    from oreo_agents.agent.value_report import headline, value_report_for
    from oreo_agents.recording.dataset import load_episode_rows as load_episodes

    if not cfg.value:
        raise OreoError("--value is required: a value model folder (e.g. runs/quickstart/round-1/oreo/value)")
    if not cfg.data:
        raise OreoError("--data is required: recorded episodes (a dataset folder or Parquet files)")
    quiet_third_party_progress()
    rows = load_episodes(cfg.data, split=cfg.split)
    title = f"{Path(cfg.value)} on {', '.join(cfg.data)}" + (f" ({cfg.split})" if cfg.split else "")
    summary = value_report_for(cfg.value, rows, Path(cfg.out), title=title, device=cfg.device, bins=cfg.bins,
                               top=cfg.top, batch_size=cfg.batch_size)
    console.print(f"[bold]value lens[/]: {headline(summary)}", soft_wrap=True)
    if cfg.policy:
        summary["expert_check"] = expert_check_for(cfg.policy, cfg.value, rows, Path(cfg.out), device=cfg.device)
    console.print(f"report: {Path(cfg.out) / 'value_report.md'} (plots, value_trace.html)", soft_wrap=True, markup=False)
    return summary


def expert_check_for(policy: str, value: str, rows: list[dict[str, Any]], out_dir: Path, *,
                     device: str | None = None) -> dict[str, Any] | None:
    """The expert check (:mod:`oreo_agents.agent.expert_check`) on the ALFWorld episodes of ``rows``, each replayed in
    an env built from its dataset's manifest (games root, task types, number of games, step limit): appended to
    ``value_report.md`` and written as ``expert_check.json``. None (and a note) when no episode is ALFWorld's."""
    import json

    from oreo_agents.agent.agent import Agent
    from oreo_agents.agent.expert_check import check_episodes, markdown, summarize_checks

    rows = [r for r in rows if str(r.get("env_id", "")).startswith("oreo_agents/ALFWorld")]
    if not rows:
        console.print("[dim]expert check: no ALFWorld episodes (it replays ALFWorld's expert)[/]")
        return None
    agent = Agent.load(policy, value=value, device=device)
    lm = getattr(agent.policy.backend, "model", None)
    if lm is None:
        raise OreoError(f"--policy {policy}: the expert check scores replies with a forward pass; it needs the hf backend")
    pad = agent.policy.tokenizer.pad_token_id or 0
    with console.status(f"expert check: replaying {len(rows)} episodes with the expert, scoring where the agent left it"):
        checks = check_episodes(agent.value, lm, agent.policy.tokenizer, rows, ReplayEnvs(), pad_id=pad)
    summary = summarize_checks(checks)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "expert_check.json").write_text(json.dumps(summary, indent=1))
    report = out_dir / "value_report.md"
    report.write_text((report.read_text() + "\n" if report.is_file() else "") + markdown(summary))
    v, pi = (("–" if x is None else f"{x:.0%}") for x in (summary["v_prefers_expert"], summary["policy_prefers_expert"]))
    console.print(f"[bold]expert check[/]: on {summary['states']} states where the agent left the expert's action, V "
                  f"prefers the expert's in {v}, the policy in {pi}", soft_wrap=True)
    return summary


class ReplayEnvs:
    """``env_for(row)``: an env with ``expert=True`` over the games ``row`` was played on, from the manifest of the
    dataset holding it (one env per dataset and split, reused)."""

    def __init__(self) -> None:
        self._envs: dict[tuple[str, str], Any] = {}

    def __call__(self, row: dict[str, Any]) -> Any:
        from oreo_agents.envs import options_of
        from oreo_agents.pipeline.options import ENV_OPTIONS, make_env
        from oreo_agents.recording.dataset import SOURCE_KEY
        from oreo_agents.recording.writer import read_manifest

        folder = Path(row[SOURCE_KEY]).parent.parent
        key = (str(folder), str(row.get("split")))
        if key not in self._envs:
            settings = (read_manifest(folder) or {}).get("settings") or {}
            if not settings:
                raise OreoError(f"{folder}: no manifest settings to rebuild the env its episodes were played in")
            accepted = options_of(row["env_id"]) or set(ENV_OPTIONS)  # a manifest's own keys ("source") are not env options
            kwargs = {k: settings[k] for k in ENV_OPTIONS if k in accepted and settings.get(k) not in (None, [])}
            kwargs.update(split=row["split"], expert=True)
            self._envs[key] = make_env(row["env_id"], kwargs)
        return self._envs[key]

