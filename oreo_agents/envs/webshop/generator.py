"""The embedded shop: a seeded generator of products and shopping instructions (no data files needed).

Five departments as in WebShop (beauty, grocery, fashion, furniture, electronics), each with product types that carry
their own attribute pool and option menus. Products of one type differ in brand, attributes, option values and price,
so an instruction ("... that is gluten free and low sugar, with flavor: vanilla, and price lower than 30.00 dollars")
has near-miss distractors that the reward scores below 1::

    >>> cat = generate_catalog(num_products=200, seed=0)
    >>> len(cat.products), len(cat.instructions("train")) + len(cat.instructions("test"))
    (200, 200)

Vocabulary rule (tested): within a type, no two attributes and no two values of one option fuzzy-match each other
under the reward's matcher, so buying the wrong colour or missing an attribute always costs reward.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from oreo_agents.envs.webshop.catalog import Catalog, Instruction, Product, price_cap, price_text, split_of

COLORS = ["black", "white", "red", "green", "grey", "beige", "pink", "brown", "navy", "purple", "yellow", "teal"]
SHIRT_SIZES = ["s", "m", "l", "xl", "xxl"]


@dataclass(frozen=True)
class ProductType:
    query: str  # also the product noun phrase in titles and instructions
    department: str
    breadcrumb: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price: tuple[float, float]
    material: str


TYPES: tuple[ProductType, ...] = (
    ProductType("face moisturizer", "beauty", "Beauty & Personal Care › Skin Care › Face › Moisturizers",
                ("fragrance free", "paraben free", "dermatologist tested", "oil free", "long lasting", "vegan"),
                (("size", ("1.7 fl oz", "3.4 fl oz", "8 fl oz")),), (8, 60), "hyaluronic acid"),
    ProductType("shampoo", "beauty", "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
                ("sulfate free", "paraben free", "cruelty free", "natural ingredients", "color safe", "dry hair"),
                (("scent", ("lavender", "citrus", "coconut", "unscented")), ("size", ("12 fl oz", "33.8 fl oz"))),
                (6, 35), "argan oil"),
    ProductType("lipstick", "beauty", "Beauty & Personal Care › Makeup › Lips › Lipstick",
                ("long lasting", "cruelty free", "matte finish", "vegan", "travel size"),
                (("color", ("red", "pink", "brown", "purple", "beige")),), (5, 30), "shea butter"),
    ProductType("protein bars", "grocery", "Grocery & Gourmet Food › Snack Foods › Bars › Protein Bars",
                ("gluten free", "low sugar", "high protein", "non gmo", "keto friendly", "plant based"),
                (("flavor", ("chocolate", "vanilla", "peanut", "caramel", "strawberry")), ("size", ("6 count", "18 count", "40 count"))),
                (9, 45), "whey protein"),
    ProductType("herbal tea", "grocery", "Grocery & Gourmet Food › Beverages › Tea › Herbal Tea",
                ("caffeine free", "organic", "non gmo", "sugar free", "individually wrapped"),
                (("flavor", ("chamomile", "peppermint", "ginger", "hibiscus")), ("size", ("20 count", "100 count"))),
                (4, 25), "dried herbs"),
    ProductType("coffee beans", "grocery", "Grocery & Gourmet Food › Beverages › Coffee › Whole Bean Coffee",
                ("fair trade", "organic", "dark roast", "low acid", "single origin"),
                (("size", ("12 ounce", "2 pound", "bulk bag")),), (10, 70), "arabica beans"),
    ProductType("running shoes", "fashion", "Clothing, Shoes & Jewelry › Women › Shoes › Athletic › Running",
                ("non slip", "breathable mesh", "lightweight", "arch support", "machine washable", "memory foam"),
                (("color", tuple(COLORS[:8])), ("size", ("6", "7", "8", "9", "10", "11"))), (25, 120), "rubber sole"),
    ProductType("hoodie", "fashion", "Clothing, Shoes & Jewelry › Men › Clothing › Fashion Hoodies & Sweatshirts",
                ("machine washable", "relaxed fit", "fleece lined", "long sleeve", "quick drying"),
                (("color", tuple(COLORS)), ("size", tuple(SHIRT_SIZES))), (18, 70), "cotton blend"),
    ProductType("yoga pants", "fashion", "Clothing, Shoes & Jewelry › Women › Clothing › Active › Leggings",
                ("high waist", "tummy control", "moisture wicking", "squat proof", "hand wash"),
                (("color", tuple(COLORS[:6])), ("size", tuple(SHIRT_SIZES))), (15, 55), "spandex"),
    ProductType("office chair", "furniture", "Home & Kitchen › Furniture › Home Office Furniture › Desk Chairs",
                ("lumbar support", "adjustable height", "easy assemble", "high back", "heavy duty"),
                (("color", ("black", "grey", "white", "brown")),), (60, 350), "mesh fabric"),
    ProductType("bed sheets", "furniture", "Home & Kitchen › Bedding › Sheets & Pillowcases › Sheet Sets",
                ("deep pocket", "wrinkle free", "hypoallergenic", "cooling", "easy clean"),
                (("color", tuple(COLORS[:7])), ("size", ("twin", "full", "queen", "king"))), (20, 110), "microfiber"),
    ProductType("throw pillow covers", "furniture", "Home & Kitchen › Home Décor › Decorative Pillows › Throw Pillow Covers",
                ("double sided", "hidden zipper", "set of 2", "easy care"),
                (("color", tuple(COLORS)), ("size", ("small square", "large square", "lumbar"))), (8, 40), "linen"),
    ProductType("wireless earbuds", "electronics", "Electronics › Headphones, Earbuds & Accessories › Earbuds",
                ("noise cancelling", "water resistant", "fast charging", "long battery life", "touch control"),
                (("color", ("black", "white", "navy", "pink")),), (20, 180), "silicone tips"),
    ProductType("usb c cable", "electronics", "Electronics › Computers & Accessories › Cables › USB Cables",
                ("fast charging", "braided nylon", "high speed", "durable"),
                (("color", ("black", "white", "grey")), ("size", ("3 ft", "6 ft", "10 ft"))), (5, 25), "aluminum"),
    ProductType("bluetooth speaker", "electronics", "Electronics › Portable Audio & Video › Portable Speakers",
                ("waterproof", "loud sound", "long battery life", "built in microphone", "compact"),
                (("color", ("black", "blue", "red", "teal")),), (20, 150), "abs shell"),
)

BRAND_PARTS = ("lu", "mo", "ra", "vi", "ze", "ka", "no", "tri", "sol", "ve", "quin", "dar", "el", "pa", "zu", "ori")
GENERIC_FEATURES = (
    "Satisfaction guarantee: contact us any time and we will help",
    "Package includes the item and a user guide",
    "Designed and tested by our team",
)
TEMPLATES = (
    "i need {type} that is {attrs}",
    "i am looking for {type} that is {attrs}",
    "find me {type} which is {attrs}",
    "i want to buy {type}, it should be {attrs}",
    "can you help me find {type} that is {attrs}",
)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(BRAND_PARTS) for _ in range(rng.randint(2, 3))).capitalize()


def _asin(rng: random.Random, taken: set[str]) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _product(kind: ProductType, rng: random.Random, taken: set[str]) -> Product:
    attrs = rng.sample(kind.attributes, rng.randint(2, min(4, len(kind.attributes))))
    options = {}
    for name, values in kind.options:
        # Every product offers a subset of the type's values, so a wanted colour is sometimes only on some items.
        options[name] = sorted(rng.sample(values, rng.randint(min(2, len(values)), len(values))), key=values.index)
    brand = _brand(rng)
    title_attrs = " ".join(a.title() for a in attrs[:2])
    title = f"{brand} {title_attrs} {kind.query.title()}"
    if len(attrs) > 2:
        title += " - " + ", ".join(a.title() for a in attrs[2:])
    bullets = [f"{a.capitalize()}: made to be {a}, as the label says" for a in attrs]
    bullets.append(f"Material: {kind.material}")
    bullets.append(rng.choice(GENERIC_FEATURES))
    description = (
        f"The {brand} {kind.query} is {_join(attrs)}. Made with {kind.material}. "
        f"Available in {sum(len(v) for v in options.values())} variants; pick yours on the item page."
    )
    low, high = kind.price
    return Product(
        asin=_asin(rng, taken),
        title=title,
        category=kind.department,
        product_category=kind.breadcrumb,
        query=kind.query,
        price=round(rng.uniform(low, high), 2),
        options=options,
        attributes=list(attrs),
        bullet_points=bullets,
        description=description,
        rating=f"{rng.uniform(3.0, 5.0):.1f}",
    )


def _instruction(product: Product, index: int, rng: random.Random, test_fraction: float) -> Instruction:
    attrs = rng.sample(product.attributes, rng.randint(1, min(3, len(product.attributes))))
    goal_options = {name: rng.choice(values) for name, values in sorted(product.options.items())}
    cap = price_cap(product.price, rng)
    text = rng.choice(TEMPLATES).format(type=product.query, attrs=_join(attrs))
    if goal_options:
        text += ", with " + ", and ".join(f"{k}: {v}" for k, v in goal_options.items())
    text += price_text(cap)
    task_id = f"webshop-gen-{index:05d}-{product.asin}"
    return Instruction(
        task_id=task_id,
        asin=product.asin,
        text=text,
        attributes=attrs,
        goal_options=goal_options,
        price_upper=cap,
        name=product.title,
        query=product.query,
        product_category=product.product_category,
        category=product.category,
        split=split_of(task_id, test_fraction),
    )


def generate_catalog(
    num_products: int = 1000, num_instructions: int | None = None, seed: int = 0, test_fraction: float = 0.2
) -> Catalog:
    """A seeded shop: ``num_products`` items spread over all types, ``num_instructions`` goals (default one per item).

    The same arguments always give the same catalogue (titles, prices, ASINs, instructions, split).
    """
    if num_products < len(TYPES):
        from oreo_agents.errors import OreoError

        raise OreoError(f"num_products must be at least {len(TYPES)} (one per product type), got {num_products}")
    rng = random.Random(f"webshop-catalog-{seed}")
    taken: set[str] = set()
    products = [_product(TYPES[i % len(TYPES)], rng, taken) for i in range(num_products)]
    rng.shuffle(products)
    count = num_products if num_instructions is None else num_instructions
    targets = [products[i % num_products] for i in range(count)]
    instructions = [_instruction(p, i, rng, test_fraction) for i, p in enumerate(targets)]
    return Catalog(products, instructions, source=f"generated(num_products={num_products}, seed={seed})")
