"""WebShop's reward on hand-made cases, BM25 search sanity, and the generator's vocabulary rules."""

from __future__ import annotations

import itertools

import pytest

from oreo_agents.envs.webshop.catalog import Instruction, Product
from oreo_agents.envs.webshop.generator import TYPES, generate_catalog
from oreo_agents.envs.webshop.reward import attribute_matches, fuzzy_match, get_reward, normalize_color
from oreo_agents.envs.webshop.search import SearchEngine

BARS = "Grocery & Gourmet Food › Snack Foods › Bars › Protein Bars"


def bar(asin="B000000001", title="Acme Gluten Free Low Sugar Protein Bars", attributes=("gluten free", "low sugar"),
        price=18.0, query="protein bars", breadcrumb=BARS, description="Tasty bars.") -> Product:
    return Product(asin, title, "grocery", breadcrumb, query, price,
                   options={"flavor": ["chocolate", "vanilla"], "size": ["6 count", "18 count"]},
                   attributes=list(attributes), bullet_points=["Made in a nut free facility"], description=description)


GOAL = Instruction(
    task_id="t0", asin="B000000001", text="i need gluten free, low sugar protein bars ...",
    attributes=["gluten free", "low sugar"], goal_options={"flavor": "vanilla", "size": "18 count"}, price_upper=20.0,
    name="Acme Gluten Free Low Sugar Protein Bars", query="protein bars", product_category=BARS, category="grocery",
)
RIGHT = {"flavor": "vanilla", "size": "18 count"}


def test_full_match_scores_one():
    details = get_reward(bar(), GOAL, price=18.0, options=RIGHT)
    assert details.total == 1.0 and details.r_type == 1.0 and details.price_ok
    assert details.summary().startswith("reward 1.000 = type 1 x (attributes 2/2 + options 2/2 + price 1/1) / 5")


@pytest.mark.parametrize(
    "case, product, options, price, expected",
    [
        ("partial attribute", bar(title="Acme Gluten Free Protein Bars", attributes=["gluten free"]), RIGHT, 18.0, 4 / 5),
        ("no attribute", bar(title="Acme Protein Bars", attributes=["high protein"]), RIGHT, 18.0, 3 / 5),
        ("wrong option", bar(), {"flavor": "chocolate", "size": "18 count"}, 18.0, 4 / 5),
        ("option not chosen", bar(), {"size": "18 count"}, 18.0, 4 / 5),
        ("over price", bar(price=25.0), RIGHT, 25.0, 4 / 5),
        ("everything wrong but the type", bar(title="Acme Protein Bars", attributes=[]), {}, 30.0, 0.0),
    ],
)
def test_partial_matches_lose_their_share(case, product, options, price, expected):
    assert get_reward(product, GOAL, price=price, options=options).total == pytest.approx(expected), case


def test_attribute_found_in_description_counts():
    product = bar(title="Acme Protein Bars", attributes=["high protein"], description="Gluten free and low sugar.")
    assert attribute_matches(product, GOAL.attributes) == 2


def test_type_factor():
    lipstick = Product("B000000002", "Rosy Matte Lipstick", "beauty", "Beauty › Makeup › Lips", "lipstick", 9.0,
                       attributes=["gluten free", "low sugar"])
    # Same attributes, options and price, but nothing of the type: WebShop's r_type is 0.
    assert get_reward(lipstick, GOAL, price=9.0, options=RIGHT).total == 0.0
    # Another query and breadcrumb, one of five title nouns shared (score 0.2, not > 0.2): r_type 0.5.
    goal = Instruction(**{**GOAL.__dict__, "name": "Acme Crunchy Granola Protein Bars"})
    granola = bar(title="Zeta Gluten Free Low Sugar Bars", query="granola", breadcrumb="Food › Cereal")
    details = get_reward(granola, goal, price=18.0, options=RIGHT)
    assert details.r_type == 0.5 and details.total == 0.5
    # Same breadcrumb (>= 2 shared parts) keeps the full type reward even with another query.
    assert get_reward(bar(query="snacks"), goal, price=18.0, options=RIGHT).r_type == 1.0


def test_colour_normalisation_and_human_goal_options():
    assert normalize_color("jet black") == "black" and fuzzy_match(normalize_color("jet black"), "black")
    human = Instruction(**{**GOAL.__dict__, "goal_options": ["vanilla", "18 count"]})
    assert get_reward(bar(), human, price=18.0, options=RIGHT).total == 1.0
    assert get_reward(bar(), human, price=18.0, options={"flavor": "vanilla"}).total == pytest.approx(4 / 5)


def test_search_ranks_the_best_match_first():
    products = [
        Product("B000000001", "Loud Waterproof Bluetooth Speaker", "electronics", "E › S", "bluetooth speaker", 30.0),
        Product("B000000002", "Compact Bluetooth Speaker", "electronics", "E › S", "bluetooth speaker", 20.0),
        Product("B000000003", "Waterproof Running Shoes", "fashion", "F › S", "running shoes", 50.0),
        Product("B000000004", "Red Matte Lipstick", "beauty", "B › L", "lipstick", 9.0),
    ]
    engine = SearchEngine(products, top_k=3)
    assert [products[i].asin for i in engine.search("waterproof bluetooth speaker")] == [
        "B000000001", "B000000002", "B000000003"]
    assert engine.search("I need a lipstick, and price lower than 10.00 dollars") == [3]
    assert engine.search("zzz unknown words") == [] and engine.search("") == []


def test_search_on_generated_shop():
    catalog = generate_catalog(num_products=300, seed=1)
    engine = SearchEngine(catalog.products)
    hits = [catalog.products[i] for i in engine.search("gluten free protein bars")]
    assert len(hits) == 50 and all(p.query == "protein bars" for p in hits[:10])
    assert "gluten free" in hits[0].attributes
    for product in catalog.products[:40]:  # a product's own title finds it first
        assert catalog.products[engine.search(product.title)[0]].title == product.title


def test_generator_vocabulary_never_fuzzy_matches_within_a_type():
    for kind in TYPES:
        for a, b in itertools.combinations(kind.attributes, 2):
            assert not fuzzy_match(a, b) and a not in b and b not in a, (kind.query, a, b)
        for name, values in kind.options:
            for a, b in itertools.combinations(values, 2):
                assert not fuzzy_match(normalize_color(a), normalize_color(b)), (kind.query, name, a, b)
    catalog = generate_catalog(num_products=300, seed=2)
    by_query = {k.query: k for k in TYPES}
    for product in catalog.products:  # a product never mentions an attribute it lacks
        missing = [a for a in by_query[product.query].attributes if a not in product.attributes]
        assert attribute_matches(product, missing) == 0, product.title


def test_generator_is_seeded_and_splits_by_instruction():
    a, b = generate_catalog(num_products=200, seed=5), generate_catalog(num_products=200, seed=5)
    assert [p.title for p in a.products] == [p.title for p in b.products]
    assert [i.text for i in a.instructions("test")] == [i.text for i in b.instructions("test")]
    assert [p.title for p in generate_catalog(num_products=200, seed=6).products] != [p.title for p in a.products]
    train, test = a.instructions("train"), a.instructions("test")
    assert len(train) + len(test) == 200 and 0.1 < len(test) / 200 < 0.3
    assert not {i.task_id for i in train} & {i.task_id for i in test}
    for ins in train + test:
        product = a.product(ins.asin)
        assert product.price <= ins.price_upper and f"price lower than {ins.price_upper:.2f} dollars" in ins.text
        assert set(ins.attributes) <= set(product.attributes)
        assert all(product.options[k].count(v) == 1 for k, v in ins.goal_options.items())
