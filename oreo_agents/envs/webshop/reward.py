"""WebShop's purchase reward (Yao et al., 2022; ``web_agent_site/engine/goal.py:get_reward``), in [0, 1].

    reward = r_type * (n_attribute_matches + n_option_matches + [price <= cap]) / (n_goal_attributes + n_goal_options + 1)

- **attributes**: a goal attribute matches when one of the product's attributes fuzzy-matches it
  (``token_set_ratio > 85``) or the attribute text occurs in the product's title, features or description.
- **options**: a goal option matches when one of the chosen options fuzzy-matches it after colour normalisation.
- **price**: 1 when the price is at most the cap.
- **type** ``r_type``: 1 when the bought item is the same type as the target (same search query, >= 2 shared
  breadcrumb parts, or title-noun overlap > 0.2); 0.5 when none of these hold; 0.1 when the noun overlap is below 0.1;
  0 when no noun is shared.

Simplifications, said honestly: WebShop finds title nouns with spaCy's part-of-speech tagger; this module uses the
title's content words (lower-case alphabetic tokens minus a stop list), which needs no model download. Fuzzy matching
uses ``rapidfuzz`` with thefuzz's preprocessing (lower case, punctuation to spaces), which is what WebShop's ``thefuzz``
call computes. WebShop's colour list is reproduced (``COLOR_SET``). Example::

    >>> from oreo_agents.envs.webshop.catalog import Product, Instruction
    >>> p = Product("B000000001", "Acme Gluten Free Protein Bars", "grocery", "Food › Snacks › Bars", "protein bars", 9.5,
    ...             options={"flavor": ["vanilla"]}, attributes=["gluten free"])
    >>> g = Instruction("t", "B000000001", "...", ["gluten free"], {"flavor": "vanilla"}, 20.0, p.title, p.query,
    ...                 p.product_category, "grocery")
    >>> get_reward(p, g, price=p.price, options={"flavor": "vanilla"}).total
    1.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from rapidfuzz import fuzz, utils

from oreo_agents.envs.webshop.catalog import Instruction, Product

MATCH_THRESHOLD = 85  # WebShop: token_set_ratio > 85 counts as a match

# WebShop's normalize.py COLOR_SET: an option holding one of these words is reduced to the first one found.
COLOR_SET = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue", "blush", "bordeaux",
    "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cheetah", "chestnut",
    "chocolate", "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal", "dark", "denim",
    "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite", "grass", "gray", "green",
    "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac", "lime",
    "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom", "mustard", "natural",
    "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple", "rainbow", "red", "rose", "royal",
    "rust", "sand", "sapphire", "seashell", "silver", "skull", "slate", "steel", "stone", "stonewash", "sunflower",
    "tan", "taupe", "teal", "tiger", "turquoise", "violet", "walnut", "wheat", "white", "wine", "yellow",
)

STOP_WORDS = frozenset(
    "a an and the of for with in on to by from at or is are be it its this that as set pack count size inch oz fl "
    "ft lb x new men women mens womens kids pcs piece pieces".split()
)


@dataclass(frozen=True)
class RewardDetails:
    """The reward and the parts it is made of (shown on the confirmation page and in ``info``)."""

    total: float
    r_type: float
    attribute_matches: int
    num_attributes: int
    option_matches: int
    num_options: int
    price_ok: bool

    def summary(self) -> str:
        return (
            f"reward {self.total:.3f} = type {self.r_type:g} x (attributes {self.attribute_matches}/{self.num_attributes}"
            f" + options {self.option_matches}/{self.num_options} + price {int(self.price_ok)}/1)"
            f" / {self.num_attributes + self.num_options + 1}"
        )


def fuzzy_match(a: str, b: str) -> bool:
    return fuzz.token_set_ratio(a, b, processor=utils.default_process) > MATCH_THRESHOLD


def normalize_color(text: str) -> str:
    """WebShop's normalize_color: the first colour word contained in ``text``, else ``text`` itself."""
    for color in COLOR_SET:
        if color in text:
            return color
    return text


def title_nouns(title: str) -> list[str]:
    """Content words of a title: the stand-in for spaCy's noun tagging (see the module docstring)."""
    return [w for w in re.findall(r"[a-z]+", title.lower()) if len(w) > 1 and w not in STOP_WORDS]


def type_reward(product: Product, goal: Instruction) -> float:
    query_match = product.query == goal.query
    bought = {x.strip() for x in product.product_category.split("›")}
    wanted = {x.strip() for x in goal.product_category.split("›")}
    category_match = len(bought & wanted) >= 2
    desired = set(title_nouns(goal.name))
    title_score = 0.2 if not desired else len(set(title_nouns(product.title)) & desired) / len(desired)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type


def attribute_matches(product: Product, goal_attributes: Iterable[str]) -> int:
    texts = (product.title.lower(), " ".join(product.bullet_points).lower(), product.description.lower())
    count = 0
    for g_attr in goal_attributes:
        if any(fuzzy_match(p_attr, g_attr) for p_attr in product.attributes) or any(g_attr in t for t in texts):
            count += 1
    return count


def option_matches(chosen: Iterable[str], goal_options: Iterable[str]) -> int:
    chosen = [normalize_color(o) for o in chosen]
    return sum(any(fuzzy_match(p, normalize_color(g)) for p in chosen) for g in goal_options)


def get_reward(product: Product, goal: Instruction, *, price: float, options: dict[str, str]) -> RewardDetails:
    """The reward for buying ``product`` at ``price`` with the chosen ``options`` (name -> value) for ``goal``."""
    goal_options = list(goal.goal_options.values()) if isinstance(goal.goal_options, dict) else list(goal.goal_options)
    n_attr = attribute_matches(product, goal.attributes)
    n_opt = option_matches(options.values(), goal_options)
    price_ok = price <= goal.price_upper
    r_type = type_reward(product, goal)
    total = r_type * (n_attr + n_opt + int(price_ok)) / (len(goal.attributes) + len(goal_options) + 1)
    return RewardDetails(
        total=float(total),
        r_type=r_type,
        attribute_matches=n_attr,
        num_attributes=len(goal.attributes),
        option_matches=n_opt,
        num_options=len(goal_options),
        price_ok=bool(price_ok),
    )
