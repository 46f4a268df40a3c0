"""The one rich console every command prints through, and the error wrapper that turns OreoError into one line.

Messages are rich markup, so user text in them (paths, env names, actions, error messages that quote them) goes through
:func:`escape`: ``--env 'foo[/]'`` must not raise ``MarkupError`` and ``runs/[old]`` must print as written.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print library :class:`~oreo_agents.errors.OreoError` as one red line (exit 2) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from oreo_agents.errors import OreoError

        try:
            return func(*args, **kwargs)
        except OreoError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: completed work is saved; rerun the same command to resume.")
            sys.exit(130)

    return wrapper


def is_interactive() -> bool:
    """Live displays only on a real terminal; CI logs and pipes get plain lines."""
    return console.is_terminal and not console.is_dumb_terminal


__all__ = ["console", "err_console", "escape", "user_errors", "is_interactive"]
