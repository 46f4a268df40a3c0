"""The expert: buys the instruction's target product with the wanted options (SFT data for ``collect``).

It acts from the current page alone, so it also recovers after another policy's detours (noisy-expert data)::

    search page      -> search[<query>]           (the instruction without its price clause and option list; the
                                                   target's title when that query does not rank the target in the top 50)
    results page     -> click[<target asin>] if shown, else click[next >] / click[< prev] towards it,
                        else click[back to search]
    item page        -> click[< prev] on a wrong item; click[<value>] for each wanted option not yet chosen;
                        then click[buy now]
    description page -> click[< prev]

Buying the target with the goal's options at its price (always under the cap) scores 1.0 by construction of the
instructions, so the expert's success rate on generated instructions is 100% (tested).
"""

from __future__ import annotations

import re

from oreo_agents.envs.webshop.catalog import Catalog, Instruction
from oreo_agents.envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, RESULTS_PER_PAGE, Page
from oreo_agents.envs.webshop.reward import fuzzy_match, normalize_color
from oreo_agents.envs.webshop.search import SearchEngine

_PRICE_CLAUSE = re.compile(r",? and price lower than [0-9.]+ dollars\s*$")


def default_query(instruction: Instruction) -> str:
    """The instruction as a search query: price clause and ``, with option: value`` list removed."""
    text = _PRICE_CLAUSE.sub("", instruction.text.strip().rstrip("."))
    return text.split(", with ", 1)[0].strip() or instruction.query


def wanted_options(instruction: Instruction, options: dict[str, list[str]]) -> dict[str, str]:
    """Option name -> the product's value to click for each goal option (human goals name values only)."""
    if isinstance(instruction.goal_options, dict):
        return {k: v for k, v in instruction.goal_options.items() if v in options.get(k, [])}
    out: dict[str, str] = {}
    for goal_value in instruction.goal_options:
        for name, values in options.items():
            value = next((v for v in values if fuzzy_match(normalize_color(v), normalize_color(goal_value))), None)
            if value is not None and name not in out:
                out[name] = value
                break
    return out


class WebShopExpert:
    """Next action for the instruction's target; see the module docstring."""

    def __init__(self, catalog: Catalog, engine: SearchEngine) -> None:
        self.catalog = catalog
        self.engine = engine
        self._queries: dict[str, str] = {}

    def query_for(self, instruction: Instruction) -> str:
        """A query whose results hold the target (cached per instruction)."""
        if instruction.task_id not in self._queries:
            target = instruction.asin
            query = default_query(instruction)
            if not self._finds(query, target):
                query = self.catalog.product(target).title
            self._queries[instruction.task_id] = query
        return self._queries[instruction.task_id]

    def _finds(self, query: str, asin: str) -> bool:
        return any(self.engine.products[i].asin == asin for i in self.engine.search(query))

    def act(self, page: Page, instruction: Instruction) -> str | None:
        target = instruction.asin
        if page.kind == "search":
            return f"search[{self.query_for(instruction)}]"
        if page.kind == "results":
            asins = [p.asin for p in page.results]
            if target not in asins:
                return f"click[{BACK_TO_SEARCH}]"
            want = asins.index(target) // RESULTS_PER_PAGE + 1
            if want == page.page_num:
                return f"click[{target.lower()}]"
            return f"click[{NEXT_PAGE}]" if want > page.page_num else f"click[{PREV_PAGE}]"
        if page.kind == "item" and page.product is not None:
            if page.product.asin != target:
                return f"click[{PREV_PAGE}]"
            values = page.option_values()
            for name, value in wanted_options(instruction, page.product.options).items():
                # A value shared by two options always selects the first; do not click it forever.
                if page.selected.get(name) != value and values.get(value) == name:
                    return f"click[{value}]"
            return f"click[{BUY_NOW}]"
        if page.kind == "detail":
            return f"click[{PREV_PAGE}]"
        return None
