"""The loader for the real WebShop files, on small files in WebShop's own format written here."""

from __future__ import annotations

import json

import pytest

from oreo_agents.envs.webshop.env import WebShopEnv
from oreo_agents.envs.webshop.realdata import load_webshop_data
from oreo_agents.errors import DataNotFoundError, SchemaError


def item(asin: str, name: str, pricing: str = "$12.99", **extra) -> dict:
    base = {
        "asin": asin, "name": name, "full_description": f"{name}. Great value.", "pricing": pricing,
        "product_category": "Beauty & Personal Care › Makeup › Lips › Lipstick", "small_description": ["Long wear"],
        "customization_options": {"Color": [{"value": "Ruby Red", "image": None}, {"value": "Nude/Beige"}]},
        "category": "beauty", "query": "Lipstick ", "images": [], "average_rating": 4.5,
    }
    return {**base, **extra}


def write_shop(folder, items=None, attrs=None, human=None):
    items = items if items is not None else [
        item("B0000000A1", "Velvet Matte Lipstick Long Lasting"),
        item("B0000000A2", "Gloss Lip Shine", "$5.00 - $9.00"),
        item("B0000000A2", "Duplicate ASIN is skipped"),
        item("nan", "Bad ASIN is skipped"),
    ]
    attrs = attrs if attrs is not None else {
        "B0000000A1": {"attributes": ["long lasting", "matte"], "instruction": "i want a long lasting matte lipstick",
                       "instruction_attributes": ["long lasting"]},
        "B0000000A2": {"attributes": ["shine"]},
    }
    human = human if human is not None else {
        "B0000000A1": [{"instruction": "i need a long lasting lipstick in ruby red.", "instruction_attributes":
                        ["long lasting"], "instruction_options": ["ruby red"]}],
        "B0000000A2": [{"instruction": "no attributes, skipped", "instruction_attributes": [], "instruction_options": []}],
    }
    (folder / "items_shuffle_1000.json").write_text(json.dumps(items))
    (folder / "items_ins_v2_1000.json").write_text(json.dumps(attrs))
    (folder / "items_human_ins.json").write_text(json.dumps(human))
    return folder


def test_loads_products_like_webshop(tmp_path):
    catalog = load_webshop_data(write_shop(tmp_path))
    assert [p.asin for p in catalog.products] == ["B0000000A1", "B0000000A2"]
    lipstick, gloss = catalog.products
    assert lipstick.options == {"color": ["ruby red", "nude | beige"]} and lipstick.query == "lipstick"
    assert lipstick.price == 12.99 and 5.0 <= gloss.price <= 9.0 and gloss.attributes == ["shine"]
    goals = catalog.instructions("train") + catalog.instructions("test")
    assert len(goals) == 1 and goals[0].goal_options == ["ruby red"]
    assert goals[0].text.startswith("i need a long lasting lipstick in ruby red, and price lower than")


def test_expert_wins_on_real_format_data(tmp_path):
    write_shop(tmp_path)
    for human_goals in (True, False):
        catalog = load_webshop_data(tmp_path, human_goals=human_goals)
        for split, i in [(s, i) for s in ("train", "test") for i in range(len(catalog.instructions(s)))]:
            env = WebShopEnv(split=split, catalog=catalog, expert=True)
            obs, info = env.reset(options={"task": i})
            while True:
                obs, reward, terminated, truncated, info = env.step(info["expert_action"])
                if terminated or truncated:
                    break
            assert reward == 1.0 and info["won"], (env.tasks[i].text, obs)
    synthetic = load_webshop_data(tmp_path, human_goals=False)
    goals = synthetic.instructions("train") + synthetic.instructions("test")
    assert sorted(g.goal_options["color"] for g in goals) == ["nude | beige", "ruby red"]  # one goal per option combo


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="WebShop data folder not found: .*nowhere"):
        load_webshop_data(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match=r"items_shuffle\*\.json not found in"):
        load_webshop_data(tmp_path)
    write_shop(tmp_path)
    (tmp_path / "items_human_ins.json").unlink()
    with pytest.raises(DataNotFoundError, match=r"items_human_ins\*\.json"):
        load_webshop_data(tmp_path)
    assert load_webshop_data(tmp_path, human_goals=False).products  # synthetic goals need no human file


@pytest.mark.parametrize(
    "items, attrs, human, message",
    [
        ([{"asin": "B0000000A1", "name": "x"}], None, None, r"items_shuffle_1000\.json item 0: missing field 'full_description'"),
        ([item("B0000000A1", "x", pricing="twelve")], None, None, r"item 0 \(asin B0000000A1\): field 'pricing' has no \$"),
        ([item("B0000000A1", "x", customization_options={"size": [{"name": "s"}]})], None, None, "option 'size' has an entry without field 'value'"),
        (None, None, {"B0000000A1": [{"instruction": "hi"}]}, r"items_human_ins\.json asin B0000000A1 instruction 0: missing field 'instruction_attributes'"),
        (None, None, {"B0000000A9": []}, r"items_human_ins\.json: no instructions for the 2 loaded products"),
        ({"not": "a list"}, None, None, r"items_shuffle_1000\.json: expected a JSON list"),
    ],
)
def test_bad_fields_are_named(tmp_path, items, attrs, human, message):
    write_shop(tmp_path, items, attrs, human)
    with pytest.raises(SchemaError, match=message):
        load_webshop_data(tmp_path)


def test_invalid_json_names_the_file(tmp_path):
    write_shop(tmp_path)
    (tmp_path / "items_ins_v2_1000.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"items_ins_v2_1000\.json: not readable JSON"):
        load_webshop_data(tmp_path)
