"""Load the real WebShop data files (Yao et al., 2022) into a :class:`~oreo_agents.envs.webshop.catalog.Catalog`.

Put these files (from WebShop's ``setup.sh`` downloads) in one folder and pass it as ``data_dir``:

- ``items_shuffle_1000.json`` or ``items_shuffle.json`` — a list of products (``asin``, ``name``, ``full_description``,
  ``pricing``, ``product_category``, ``small_description``, ``customization_options``, ``category``, ``query``);
- ``items_ins_v2_1000.json`` or ``items_ins_v2.json`` — per ASIN: ``attributes`` and the synthetic ``instruction`` /
  ``instruction_attributes``;
- ``items_human_ins.json`` — per ASIN: a list of human ``instruction`` / ``instruction_attributes`` /
  ``instruction_options`` (needed for ``human_goals=True``, WebShop's default).

Parsing follows WebShop's ``engine.load_products`` and ``goal.get_human_goals`` / ``get_synthetic_goals``: option
values are lower-cased with ``/`` shown as `` | ``; a product with a price range gets a seeded price inside it; goals get
a seeded price cap from the next price steps above the price. Split (WebShop's): goals shuffled with seed 233, the first
500 are ``test`` (10% when there are fewer than 1,500 goals), the rest ``train``. Problems raise one-line errors naming
the file, the item and the field::

    >>> load_webshop_data("/nowhere")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    DataNotFoundError: WebShop data folder not found: /nowhere
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

from oreo_agents.envs.webshop.catalog import Catalog, Instruction, Product, price_cap, price_text
from oreo_agents.errors import DataNotFoundError, SchemaError

PRODUCT_FIELDS = ("asin", "name", "full_description", "pricing", "product_category", "small_description",
                  "customization_options", "category", "query")
HUMAN_FIELDS = ("instruction", "instruction_attributes", "instruction_options")
SPLIT_SEED = 233
TEST_SIZE = 500


def _find(folder: Path, stem: str, required: bool = True) -> Path | None:
    exact = folder / f"{stem}.json"
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"{stem}*.json"))
    if matches:
        return matches[0]
    if required:
        raise DataNotFoundError(f"WebShop data file {stem}*.json not found in {folder}")
    return None


def _read_json(path: Path, kind: type) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, kind):
        raise SchemaError(f"{path}: expected a JSON {'list' if kind is list else 'object'} at the top level")
    return data


def _require(item: Any, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(item, dict):
        raise SchemaError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [f for f in fields if f not in item]
    if missing:
        raise SchemaError(f"{where}: missing field '{missing[0]}'")


def _prices(pricing: Any, where: str) -> list[float]:
    if not pricing:
        return [100.0]  # WebShop's default for items without a price
    if not isinstance(pricing, str):
        raise SchemaError(f"{where}: field 'pricing' must be a string such as '$12.99' or '$10.00 - $20.00'")
    try:
        values = [float(re.sub(r"[^\d.]", "", part)) for part in pricing.split("$")[1:]]
    except ValueError as exc:
        raise SchemaError(f"{where}: field 'pricing' has an unreadable price {pricing!r}") from exc
    if not values:
        raise SchemaError(f"{where}: field 'pricing' has no $ amount: {pricing!r}")
    return values[:2]


def _options(raw: Any, where: str) -> dict[str, list[str]]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise SchemaError(f"{where}: field 'customization_options' must map option names to value lists")
    options: dict[str, list[str]] = {}
    for name, contents in raw.items():
        if contents is None:
            continue
        values = []
        for content in contents:
            if not isinstance(content, dict) or "value" not in content:
                raise SchemaError(f"{where}: option '{name}' has an entry without field 'value'")
            value = " ".join(str(content["value"]).strip().replace("/", " | ").lower().split())
            if value and value not in values:
                values.append(value)
        options[str(name).lower()] = values
    return options


def _product(item: dict, where: str, attributes: dict, seed: int) -> Product:
    pricing = _prices(item["pricing"], where)
    asin = item["asin"]
    price = pricing[0] if len(pricing) == 1 else random.Random(f"{seed}-{asin}").uniform(*pricing)
    bullets = item["small_description"]
    bullets = [str(b) for b in bullets] if isinstance(bullets, list) else [str(bullets)]
    attrs = attributes.get(asin, {}).get("attributes") or ["DUMMY_ATTR"]
    return Product(
        asin=asin,
        title=str(item["name"]),
        category=str(item["category"]),
        product_category=str(item["product_category"]),
        query=str(item["query"]).lower().strip(),
        price=round(float(price), 2),
        options=_options(item["customization_options"], where),
        attributes=[str(a) for a in attrs],
        bullet_points=bullets,
        description=str(item["full_description"] or ""),
        rating=str(item.get("average_rating", "N.A.") or "N.A."),
    )


def _goal(p: Product, k: int, text: str, attrs: list, options: Any, rng: random.Random) -> Instruction:
    cap = price_cap(p.price, rng)
    return Instruction(
        task_id=f"webshop-{p.asin}-{k}", asin=p.asin, text=text.strip().strip(".") + price_text(cap),
        attributes=[str(a) for a in attrs], goal_options=options, price_upper=cap, name=p.title, query=p.query,
        product_category=p.product_category, category=p.category,
    )


def load_webshop_data(
    data_dir: str | Path, num_products: int | None = None, human_goals: bool = True, seed: int = 0
) -> Catalog:
    """Products and goals from the WebShop files in ``data_dir`` (see the module docstring)."""
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"WebShop data folder not found: {folder}")
    items_path = _find(folder, "items_shuffle")
    attrs_path = _find(folder, "items_ins_v2")
    human_path = _find(folder, "items_human_ins") if human_goals else None
    items = _read_json(items_path, list)
    attributes = _read_json(attrs_path, dict)
    human = _read_json(human_path, dict) if human_path else {}
    if num_products is not None:
        items = items[:num_products]  # WebShop: the items file is already shuffled

    products: list[Product] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        _require(item, PRODUCT_FIELDS, f"{items_path.name} item {i}")
        asin = str(item["asin"])
        if asin == "nan" or len(asin) > 10 or asin in seen:  # WebShop skips these too
            continue
        seen.add(asin)
        products.append(_product(item, f"{items_path.name} item {i} (asin {asin})", attributes, seed))

    rng = random.Random(f"webshop-goals-{seed}")
    goals: list[Instruction] = []
    for p in products:
        if human_goals:
            entries = human.get(p.asin, [])
            if not isinstance(entries, list):
                raise SchemaError(f"{human_path.name} asin {p.asin}: expected a list of instructions")
            for k, entry in enumerate(entries):
                _require(entry, HUMAN_FIELDS, f"{human_path.name} asin {p.asin} instruction {k}")
                if entry["instruction_attributes"]:  # WebShop skips goals without attributes
                    goals.append(_goal(p, k, entry["instruction"], entry["instruction_attributes"],
                                       [str(o) for o in entry["instruction_options"]], rng))
        else:
            entry = attributes.get(p.asin) or {}
            if not entry.get("instruction"):
                continue
            if not entry.get("instruction_attributes"):
                raise SchemaError(f"{attrs_path.name} asin {p.asin}: missing field 'instruction_attributes'")
            names = sorted(p.options)
            for k, combo in enumerate(itertools.product(*(p.options[n] for n in names))):
                goal_options = dict(zip(names, combo))
                option_text = ", and ".join(f"{n}: {v}" for n, v in goal_options.items())
                text = entry["instruction"].strip().strip(".") + (f", with {option_text}" if option_text else "")
                goals.append(_goal(p, k, text, entry["instruction_attributes"], goal_options, rng))
    if not goals:
        source = human_path.name if human_goals else attrs_path.name
        raise SchemaError(f"{source}: no instructions for the {len(products)} loaded products")
    order = list(range(len(goals)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_test = TEST_SIZE if len(goals) > 3 * TEST_SIZE else max(1, len(goals) // 10) if len(goals) > 1 else 0
    for rank, index in enumerate(order):
        goals[index].split = "test" if rank < n_test else "train"
    return Catalog(products, goals, source=f"WebShop data {folder}")
