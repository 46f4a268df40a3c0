"""The shop's pages: one model, rendered as text for agents and as HTML for people (``oreo-agents serve``).

WebShop's four page kinds: **search** (a search box), **results** (10 per page, ``next >`` / ``< prev``), **item**
(options such as size and colour, price, ``description`` / ``features`` / ``buy now``) and **item detail**
(description or features, ``< prev`` back to the item). A **done** page shows the purchase and its reward.
Clickables use WebShop's lower-case names; in the text rendering each clickable is shown in brackets exactly as the
agent writes it inside ``click[...]``::

    >>> page = Page(kind="search", instruction="i need a red lipstick")
    >>> print(page.to_text())
    WebShop
    Instruction: i need a red lipstick
    [search] reply search[your query]
    >>> page.clickables()
    []
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from oreo_agents.envs.webshop.catalog import Product
from oreo_agents.envs.webshop.reward import RewardDetails

RESULTS_PER_PAGE = 10
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
DESCRIPTION = "description"
FEATURES = "features"
BUY_NOW = "buy now"


@dataclass
class Page:
    """What the browser shows now. ``results`` holds every hit of the query; ``page_num`` picks the 10 shown."""

    kind: str  # search | results | item | detail | done
    instruction: str
    query: str = ""
    results: list[Product] = field(default_factory=list)
    page_num: int = 1
    product: Product | None = None
    selected: dict[str, str] = field(default_factory=dict)  # option name -> chosen value
    detail: str = ""  # description | features
    reward: RewardDetails | None = None

    def evolve(self, **changes: object) -> "Page":
        return replace(self, **changes)

    # --- structure ---------------------------------------------------------------------------------------------
    @property
    def num_pages(self) -> int:
        return max(1, -(-len(self.results) // RESULTS_PER_PAGE))

    def shown(self) -> list[Product]:
        start = (self.page_num - 1) * RESULTS_PER_PAGE
        return self.results[start : start + RESULTS_PER_PAGE]

    def option_values(self) -> dict[str, str]:
        """Clickable option value -> option name (the first option that offers it, if two share a value)."""
        out: dict[str, str] = {}
        for name, values in (self.product.options if self.product else {}).items():
            for value in values:
                out.setdefault(value, name)
        return out

    def clickables(self) -> list[str]:
        """The names ``click[...]`` accepts on this page, in page order (lower case)."""
        if self.kind == "results":
            names = [BACK_TO_SEARCH]
            if self.page_num > 1:
                names.append(PREV_PAGE)
            if self.page_num < self.num_pages:
                names.append(NEXT_PAGE)
            return names + [p.asin.lower() for p in self.shown()]
        if self.kind == "item":
            return [BACK_TO_SEARCH, PREV_PAGE, *self.option_values(), DESCRIPTION, FEATURES, BUY_NOW]
        if self.kind == "detail":
            return [BACK_TO_SEARCH, PREV_PAGE]
        return []

    # --- text ----------------------------------------------------------------------------------------------------
    def to_text(self) -> str:
        lines = ["WebShop", f"Instruction: {self.instruction}"]
        if self.kind == "search":
            lines.append("[search] reply search[your query]")
        elif self.kind == "results":
            nav = [f"[{BACK_TO_SEARCH}]"]
            nav += [f"[{PREV_PAGE}]"] if self.page_num > 1 else []
            nav += [f"[{NEXT_PAGE}]"] if self.page_num < self.num_pages else []
            lines.append(" ".join(nav))
            lines.append(f"Results for \"{self.query}\": page {self.page_num} of {self.num_pages} "
                         f"(total results: {len(self.results)})")
            lines += [f"[{p.asin.lower()}] {p.title} | {p.price_tag}" for p in self.shown()]
            if not self.results:
                lines.append("No products match this search.")
        elif self.kind in ("item", "detail") and self.product is not None:
            p = self.product
            lines.append(f"[{BACK_TO_SEARCH}] [{PREV_PAGE}]")
            if self.kind == "item":
                for name, values in p.options.items():
                    chosen = self.selected.get(name)
                    suffix = f" (selected: {chosen})" if chosen else ""
                    lines.append(f"{name}: " + " ".join(f"[{v}]" for v in values) + suffix)
                lines += [p.title, f"Price: {p.price_tag}", f"Rating: {p.rating}"]
                lines.append(f"[{DESCRIPTION}] [{FEATURES}] [{BUY_NOW}]")
            elif self.detail == DESCRIPTION:
                lines += [f"Description of {p.asin}:", p.description or "(no description)"]
            else:
                lines += [f"Features of {p.asin}:"] + [f"- {b}" for b in p.bullet_points]
        elif self.kind == "done" and self.product is not None:
            chosen = ", ".join(f"{k}: {v}" for k, v in self.selected.items()) or "no options"
            lines.append(f"Thank you for shopping with us! You bought {self.product.title} ({chosen}) "
                         f"for {self.product.price_tag}.")
            if self.reward is not None:
                lines.append(f"Your score (min 0.0, max 1.0): {self.reward.total:.2f}")
        return "\n".join(lines)

    # --- HTML ----------------------------------------------------------------------------------------------------
    def to_html(self, base: str, *, message: str = "", steps: str = "") -> str:
        """A full HTML page; links go to ``{base}/click?el=...`` and the search form to ``{base}/search``."""
        e = html.escape

        def link(name: str, label: str | None = None, css: str = "click") -> str:
            return f'<a class="{css}" data-click="{e(name)}" href="{base}/click?el={quote(name)}">{e(label or name)}</a>'

        body: list[str] = []
        if self.kind == "search":
            body.append(f'<form id="search-form" action="{base}/search" method="get">'
                        '<input id="search-input" name="q" size="60" autofocus placeholder="search the shop">'
                        '<button type="submit">Search</button></form>')
        elif self.kind == "results":
            nav = [link(BACK_TO_SEARCH, "Back to Search")]
            nav += [link(PREV_PAGE)] if self.page_num > 1 else []
            nav += [link(NEXT_PAGE)] if self.page_num < self.num_pages else []
            body.append(f'<nav>{" ".join(nav)}</nav>')
            body.append(f'<p id="result-count">Results for "{e(self.query)}": page {self.page_num} of '
                        f"{self.num_pages} (total results: {len(self.results)})</p><ol>")
            for p in self.shown():
                body.append(f'<li class="result">{link(p.asin.lower(), p.asin, "click asin")} {e(p.title)} '
                            f'<span class="price">{e(p.price_tag)}</span></li>')
            body.append("</ol>" + ("" if self.results else "<p>No products match this search.</p>"))
        elif self.kind in ("item", "detail") and self.product is not None:
            p = self.product
            body.append(f'<nav>{link(BACK_TO_SEARCH, "Back to Search")} {link(PREV_PAGE)}</nav>')
            body.append(f'<h2 id="title">{e(p.title)}</h2>')
            if self.kind == "item":
                for name, values in p.options.items():
                    items = [link(v, css="click option selected" if self.selected.get(name) == v else "click option")
                             for v in values]
                    body.append(f'<p class="options"><b>{e(name)}</b>: {" ".join(items)}</p>')
                body.append(f'<p id="price">Price: {e(p.price_tag)}</p><p>Rating: {e(p.rating)}</p>')
                body.append(f'<nav>{link(DESCRIPTION, "Description")} {link(FEATURES, "Features")} '
                            f'{link(BUY_NOW, "Buy Now", "click buy")}</nav>')
            elif self.detail == DESCRIPTION:
                body.append(f'<p id="description">{e(p.description)}</p>')
            else:
                body.append('<ul id="features">' + "".join(f"<li>{e(b)}</li>" for b in p.bullet_points) + "</ul>")
        elif self.kind == "done" and self.product is not None:
            chosen = ", ".join(f"{k}: {v}" for k, v in self.selected.items()) or "no options"
            body.append(f'<p id="bought">You bought {e(self.product.title)} ({e(chosen)}) for '
                        f"{e(self.product.price_tag)}.</p>")
            if self.reward is not None:
                body.append(f'<p id="reward">Your score (min 0.0, max 1.0): {self.reward.total:.2f}</p>'
                            f"<p><small>{e(self.reward.summary())}</small></p>")
        notice = f'<p id="message" class="message">{e(message)}</p>' if message else ""
        return (
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>WebShop</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:1em auto}a.click{margin-right:.6em}"
            "a.selected{font-weight:bold;background:#ffd}.message{color:#a00}.price{color:#070}"
            f"</style></head><body><h1><a href=\"{base}/\">WebShop</a></h1>"
            f'<p id="instruction"><b>Instruction:</b> {e(self.instruction)}</p>{notice}'
            f'<div id="page" data-kind="{self.kind}">{"".join(body)}</div>'
            f'<footer><small>{e(steps)} <a id="new-session" href="/new">new instruction</a></small></footer>'
            "</body></html>"
        )
