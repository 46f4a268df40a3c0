"""``WebShopEnv``: WebShop's shopping task as a ``gymnasium.Env[str, str]`` (registered as ``oreo_agents/WebShop-v0``).

An episode: read an instruction, ``search[query]``, page through results, open an item, pick its options, ``click[buy
now]``. The purchase ends the episode with WebShop's reward in [0, 1]; ``won`` means reward 1.0. Anything else scores 0.
A malformed action, an unknown button or a search off the search page is an ordinary step: the page stays, and the
observation starts with one line saying why::

    >>> import gymnasium as gym, oreo_agents
    >>> env = gym.make("oreo_agents/WebShop-v0", expert=True, num_products=100)
    >>> obs, info = env.reset(seed=0)
    >>> while True:
    ...     obs, reward, terminated, truncated, info = env.step(info["expert_action"])
    ...     if terminated or truncated:
    ...         break
    >>> reward, info["won"]
    (1.0, True)

``info["admissible_commands"]`` lists ``click[...]`` for every clickable on the page. On the search page the query is
free text: the list holds one concrete suggestion, ``search[<the instruction without its price clause>]``, and any other
``search[...]`` is accepted too (policies that only pick from the list still work; generative policies write their own).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path
from typing import Any

import gymnasium as gym

from oreo_agents.envs.base import TextEnv
from oreo_agents.envs.core import (
    INFO_ADMISSIBLE,
    INFO_EXPERT,
    INFO_GOAL,
    INFO_SPLIT,
    INFO_TASK_ID,
    INFO_TASK_TYPE,
    INFO_WON,
    TEXT_CHARSET,
    TEXT_SPACE_MAX_LENGTH,
    sanitize_action,
    text_space,
)
from oreo_agents.envs.webshop.catalog import Catalog, Instruction
from oreo_agents.envs.webshop.expert import WebShopExpert, default_query
from oreo_agents.envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    DESCRIPTION,
    FEATURES,
    NEXT_PAGE,
    PREV_PAGE,
    Page,
)
from oreo_agents.envs.webshop.reward import get_reward
from oreo_agents.envs.webshop.search import SearchEngine
from oreo_agents.errors import OreoError

ACTION_RE = re.compile(r"^(search|click)\[(.*)\]$", re.IGNORECASE | re.DOTALL)
DEFAULT_MAX_STEPS = 20  # the expert needs 4-12 steps; WebShop agents are usually given 10-15 turns


def printable(text: str) -> str:
    """Observations stay inside the declared printable-ASCII space: accents folded ("Décor" -> "Decor"), rest dropped."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded if ch in TEXT_CHARSET)


@functools.lru_cache(maxsize=4)
def load_shop(
    data_path: str | None, num_products: int | None, seed: int, human_goals: bool
) -> tuple[Catalog, SearchEngine]:
    """The catalogue and its search index, cached so many envs in one process share one copy."""
    if data_path is None:
        from oreo_agents.envs.webshop.generator import generate_catalog

        catalog = generate_catalog(num_products=num_products or 1000, seed=seed)
    else:
        from oreo_agents.envs.webshop.realdata import load_webshop_data

        catalog = load_webshop_data(data_path, num_products=num_products, human_goals=human_goals, seed=seed)
    return catalog, SearchEngine(catalog.products)


class WebShopEnv(TextEnv):
    """The web shop (see the module docstring).

    Args:
        split: ``train`` or ``test`` (instructions are split, the catalogue is shared as in WebShop).
        max_steps: step limit; the step that reaches it without a purchase is ``truncated`` with reward 0.
        expert: put the expert's next action in ``info["expert_action"]``.
        data_path: folder with the real WebShop files (``items_shuffle*.json``, ``items_ins_v2*.json``,
            ``items_human_ins.json``); default: the embedded generated shop.
        num_tasks: play only the first N instructions of the split (default all).
        num_products: the shop's size, which is not a task count: products generated (default 1000; the generated
            shop writes one instruction per product, a fifth of them in ``test``), or real products loaded (default all).
        seed: the generated shop's seed / the real data's price and split seed (the episode seed goes to ``reset``).
        human_goals: real data only: use the human-written instructions (True) or WebShop's synthetic ones.
        catalog: an already built :class:`Catalog` (overrides the three above).
        render_mode: ``"ansi"`` returns the current page as text.

    ``reset(options={"task": i})`` picks instruction ``i`` of the split (or ``{"task": "<task_id>"}``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    renamed_options = {"data_dir": "data_path", "path": "data_path"}

    def __init__(
        self,
        split: str = "train",
        max_steps: int = DEFAULT_MAX_STEPS,
        expert: bool = False,
        data_path: str | Path | None = None,
        num_tasks: int | None = None,
        num_products: int | None = None,
        seed: int = 0,
        human_goals: bool = True,
        catalog: Catalog | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(max_steps=max_steps, render_mode=render_mode)
        if catalog is not None:
            self.catalog, self.engine = catalog, SearchEngine(catalog.products)
        else:
            self.catalog, self.engine = load_shop(
                None if data_path is None else str(data_path), num_products, int(seed), bool(human_goals)
            )
        self.split = split
        self.tasks: list[Instruction] = self.catalog.instructions(split)
        if not self.tasks:
            raise OreoError(f"the web shop ({self.catalog.source}) has no instructions in split '{split}'")
        if num_tasks is not None:
            if not 1 <= num_tasks <= len(self.tasks):
                raise OreoError(
                    f"num_tasks={num_tasks}: split '{split}' of the web shop ({self.catalog.source}) holds "
                    f"{len(self.tasks)} instructions (a bigger generated shop: num_products)"
                )
            self.tasks = self.tasks[:num_tasks]
        self.expert = bool(expert)
        self.observation_space = text_space(TEXT_SPACE_MAX_LENGTH)
        self.action_space = text_space(1_000)
        self._expert = WebShopExpert(self.catalog, self.engine) if self.expert else None
        self.instruction: Instruction | None = None
        self.page: Page | None = None
        self._done = False
        self._reward = 0.0
        self._feedback = ""

    @property
    def task_ids(self) -> list[str]:
        return [t.task_id for t in self.tasks]

    # -- the episode (TextEnv calls these from reset / step) -----------------------------------------------------------
    def _begin(self, task: Any) -> tuple[str, dict[str, Any]]:
        self.instruction = self._pick_task(task)
        self.page = Page(kind="search", instruction=self.instruction.text)
        self._done, self._reward, self._feedback = False, 0.0, ""
        return printable(self.page.to_text()), self._info()

    def _advance(self, action: Any) -> tuple[str, float, bool, dict[str, Any]]:
        command = sanitize_action(action)
        self._feedback = self._apply(command)
        reward = self._reward if self._done else 0.0
        obs = self.page.to_text()
        if self._feedback:
            obs = f"{self._feedback}\n{obs}"
        extra: dict[str, Any] = {"valid_action": not self._feedback}
        if self._done and self.page.reward is not None:
            extra["reward_details"] = self.page.reward.__dict__.copy()
        return printable(obs), reward, self._done, extra

    def render(self) -> str | None:
        if self.render_mode == "ansi" and self.page is not None:
            return printable(self.page.to_text()) + "\n"
        return None

    def html(self, base: str = "", message: str | None = None) -> str:
        """The current page as HTML (what ``oreo-agents serve`` shows); links point under ``base``.

        ``message`` replaces the last step's feedback line (the server says why a finished session ignores clicks).
        """
        if self.page is None:
            raise gym.error.ResetNeeded("WebShopEnv: call reset() before html()")
        steps = f"step {self.elapsed_steps} of {self.max_steps}."
        return self.page.to_html(base, message=self._feedback if message is None else message, steps=steps)

    # -- the shop's logic ----------------------------------------------------------------------------------------
    def _apply(self, command: str) -> str:
        """Move to the next page; return "" for a valid action, else the one-line reason nothing happened."""
        page = self.page
        match = ACTION_RE.match(command)
        if match is None:
            return f"Invalid action '{command}': reply search[query] or click[button]."
        verb, arg = match.group(1).lower(), " ".join(match.group(2).split())
        if verb == "search":
            if page.kind != "search":
                return f"There is no search box on this page: click[{BACK_TO_SEARCH}] first."
            if not arg:
                return "Empty search: write the query inside the brackets, e.g. search[red lipstick]."
            hits = [self.engine.products[i] for i in self.engine.search(arg)]
            self.page = page.evolve(kind="results", query=arg, results=hits, page_num=1, product=None)
            return ""
        name = arg.lower()
        if name not in page.clickables():
            return f"Unknown button '{arg}' on this page; clickable here: {', '.join(page.clickables()) or 'none'}."
        if name == BACK_TO_SEARCH:
            self.page = Page(kind="search", instruction=page.instruction)
        elif name == NEXT_PAGE:
            self.page = page.evolve(page_num=page.page_num + 1)
        elif name == PREV_PAGE:
            if page.kind == "results":
                self.page = page.evolve(page_num=page.page_num - 1)
            elif page.kind == "item":
                self.page = page.evolve(kind="results", product=None, selected={})
            else:
                self.page = page.evolve(kind="item", detail="")
        elif page.kind == "results":
            product = next(p for p in page.shown() if p.asin.lower() == name)
            self.page = page.evolve(kind="item", product=product, selected={})
        elif name in (DESCRIPTION, FEATURES):
            self.page = page.evolve(kind="detail", detail=name)
        elif name == BUY_NOW:
            details = get_reward(page.product, self.instruction, price=page.product.price, options=page.selected)
            self.page = page.evolve(kind="done", reward=details)
            self._done, self._reward = True, details.total
        else:  # an option value
            option = page.option_values()[name]
            self.page = page.evolve(selected={**page.selected, option: name})
        return ""

    def _pick_task(self, choice: Any) -> Instruction:
        if choice is None:
            return self.tasks[int(self.np_random.integers(len(self.tasks)))]
        if isinstance(choice, int) and not isinstance(choice, bool):
            if not -len(self.tasks) <= choice < len(self.tasks):
                raise OreoError(f"reset option task={choice} is out of range: split '{self.split}' has "
                                f"{len(self.tasks)} instructions")
            return self.tasks[choice]
        ins = self.catalog.instruction(str(choice))
        if ins.split != self.split:
            raise OreoError(f"reset option task={choice} is in split '{ins.split}', not '{self.split}'")
        if len(self.tasks) < len(self.catalog.instructions(self.split)) and ins not in self.tasks:
            raise OreoError(f"reset option task={choice} is not among this env's {len(self.tasks)} tasks (num_tasks)")
        return ins

    def _info(self) -> dict[str, Any]:
        ins, page = self.instruction, self.page
        if page.kind == "search":
            admissible = [f"search[{default_query(ins)}]"]
        else:
            admissible = [f"click[{name}]" for name in page.clickables()]
        info: dict[str, Any] = {
            INFO_ADMISSIBLE: admissible,
            INFO_TASK_ID: ins.task_id,
            INFO_TASK_TYPE: ins.category,
            INFO_GOAL: ins.text,
            INFO_SPLIT: self.split,
            INFO_WON: self._done and self._reward >= 1.0 - 1e-9,
            "page": page.kind,
            "steps": self.elapsed_steps,
        }
        if self.expert:
            info[INFO_EXPERT] = None if self._done else self._expert.act(page, ins)
        return info
