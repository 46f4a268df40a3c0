"""The shop's data: products, shopping instructions (goals) and their train/test split.

Two sources fill the same classes: :func:`oreo_agents.envs.webshop.generator.generate_catalog` (embedded, seeded) and
:func:`oreo_agents.envs.webshop.realdata.load_webshop_data` (the real WebShop JSON files). Field names follow WebShop's
``engine.py`` / ``goal.py`` so its reward function reads them unchanged::

    >>> from oreo_agents.envs.webshop.generator import generate_catalog
    >>> cat = generate_catalog(num_products=50, seed=0)
    >>> goal = cat.instructions("train")[0]
    >>> cat.product(goal.asin).title in [p.title for p in cat.products]
    True
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Sequence

from oreo_agents.errors import OreoError

# WebShop's goal.py: price caps are drawn from these (10, 20, ..., 990 dollars).
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
SPLITS = ("train", "test")


@dataclass
class Product:
    """One item of the catalogue (WebShop's product dict, with its keys renamed to Python style)."""

    asin: str  # WebShop's 10-character id, shown as the result's clickable
    title: str
    category: str  # top-level shop category (beauty, fashion, ...)
    product_category: str  # breadcrumb "A › B › C"; >= 2 shared parts count as the same type in the reward
    query: str  # the search query the product was collected with; equal queries count as the same type
    price: float
    options: dict[str, list[str]] = field(default_factory=dict)  # option name -> values (lower case)
    attributes: list[str] = field(default_factory=list)
    bullet_points: list[str] = field(default_factory=list)  # the "Features" page
    description: str = ""
    rating: str = "N.A."

    @property
    def price_tag(self) -> str:
        return f"${self.price:.2f}"

    def search_text(self) -> str:
        """What the search index sees: title, features, description and option values (as WebShop indexes them)."""
        options = " ".join(v for values in self.options.values() for v in values)
        return " ".join([self.title, " ".join(self.bullet_points), self.description, options])


@dataclass
class Instruction:
    """A shopping goal: buy a product of ``asin``'s type with ``attributes``, ``goal_options`` and price < cap."""

    task_id: str
    asin: str  # the product the instruction was written for (the expert buys it)
    text: str  # what the agent reads, price cap included
    attributes: list[str]
    goal_options: dict[str, str] | list[str]  # synthetic goals name the option; human goals give bare values
    price_upper: float
    name: str  # the target's title (type reward compares nouns of titles)
    query: str
    product_category: str
    category: str
    split: str = "train"


class Catalog:
    """Products by ASIN plus the instructions of each split; raises :class:`OreoError` on inconsistent data."""

    def __init__(self, products: Sequence[Product], instructions: Sequence[Instruction], *, source: str) -> None:
        self.source = source
        self.products = list(products)
        self._by_asin = {p.asin: p for p in self.products}
        if len(self._by_asin) != len(self.products):
            raise OreoError(f"{source}: duplicate product ASINs in the catalogue")
        by_split: dict[str, list[Instruction]] = {s: [] for s in SPLITS}
        for ins in instructions:
            if ins.asin not in self._by_asin:
                raise OreoError(f"{source}: instruction {ins.task_id} names unknown product ASIN {ins.asin}")
            if ins.split not in by_split:
                raise OreoError(f"{source}: instruction {ins.task_id} has split '{ins.split}' (use train or test)")
            by_split[ins.split].append(ins)
        self._by_split = by_split
        self._by_task = {ins.task_id: ins for ins in instructions}

    def product(self, asin: str) -> Product:
        return self._by_asin[asin]

    def has_product(self, asin: str) -> bool:
        return asin in self._by_asin

    def instructions(self, split: str) -> list[Instruction]:
        if split not in self._by_split:
            raise OreoError(f"unknown web-shop split '{split}' (choose from: {', '.join(SPLITS)})")
        return self._by_split[split]

    def instruction(self, task_id: str) -> Instruction:
        if task_id not in self._by_task:
            raise OreoError(f"unknown web-shop task_id '{task_id}' in {self.source}")
        return self._by_task[task_id]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(v)}" for s, v in self._by_split.items())
        return f"Catalog({self.source}: {len(self.products)} products, instructions {sizes})"


def split_of(task_id: str, test_fraction: float = 0.2) -> str:
    """Split by instruction: a stable hash of the task id, so adding instructions never moves existing ones."""
    bucket = int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def price_cap(price: float, rng: random.Random) -> float:
    """WebShop's cap: two of the four next price steps above the price, keep the larger (None-free: 1e6 if none)."""
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) < 2:
        return 1_000_000.0
    return max(rng.sample(above, 2))


def price_text(cap: float) -> str:
    return f", and price lower than {cap:.2f} dollars" if cap < 1_000_000 else ""
