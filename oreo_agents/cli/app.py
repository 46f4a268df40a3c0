"""The ``oreo-agents`` command line.

Subcommands live in their own modules and are imported only when run (or when their own ``--help`` is asked for), so
``oreo-agents --help`` never imports torch, transformers or the game engine.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help shown by `oreo-agents --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "games": ("oreo_agents.cli.games", "games", "Generate, list and check ALFWorld game sets (embedded or real data)."),
    "collect": ("oreo_agents.cli.collect", "collect", "Record episodes from an env with a policy into a Parquet dataset."),
    "export": ("oreo_agents.cli.export", "export", "Export a recorded dataset as SFT / DPO / KTO views for other trainers."),
    "train": ("oreo_agents.cli.train", "train", "Train a policy (and value) with OREO, SFT, RFT or DPO."),
    "play": ("oreo_agents.cli.play", "play", "Play episodes live with a trace of candidates, values and rewards."),
    "eval": ("oreo_agents.cli.evaluate", "evaluate", "Success rate / accuracy by split and task type, with CIs."),
    "value-report": ("oreo_agents.cli.value_report", "value_report", "What a value model says about recorded episodes: AUC, ECE, A_t."),
    "quickstart": ("oreo_agents.cli.quickstart", "quickstart", "The embedded end-to-end run: games, SFT, OREO, eval."),
    "iterate": ("oreo_agents.cli.iterate", "iterate", "Iterative OREO: collect with the current policy, train, repeat."),
    "compare": ("oreo_agents.cli.compare", "compare", "The paper's comparison at small scale: SFT, RFT, DPO, OREO, several seeds."),
    "serve": ("oreo_agents.cli.serve", "serve", "Serve the web-shop env as HTML pages for a browser."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above, so listing commands imports none of them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in COMMANDS])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="oreo-agents")
def cli() -> None:
    """oreo-agents: offline RL (OREO) for LLM agents on ALFWorld, math and web-shop tasks.

    \b
    The loop:  games -> collect -> train -> eval / play  (-> collect again: iterate)
    Start with `oreo-agents quickstart` for the whole loop on embedded data.
    """


def main() -> None:
    cli(prog_name="oreo-agents")


if __name__ == "__main__":
    main()
