"""Search over the catalogue with BM25 (the ``rank-bm25`` package, Lucene's idf), as WebShop searches with Pyserini.

Each product is indexed as its title, features, description and option values; a query returns the top ``top_k``
products (WebShop shows 50 results, 10 per page) with a positive score, best first, ties broken by catalogue order::

    >>> from oreo_agents.envs.webshop.generator import generate_catalog
    >>> engine = SearchEngine(generate_catalog(num_products=100, seed=0).products)
    >>> hits = engine.search("gluten free protein bars")
    >>> engine.products[hits[0]].query
    'protein bars'
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
from rank_bm25 import BM25Okapi

from oreo_agents.envs.webshop.catalog import Product

TOP_K = 50
# Words that carry no product meaning in instructions ("i am looking for ... and price lower than 30.00 dollars").
STOP_WORDS = frozenset(
    "i am a an the and or of for to in on with me my is it be that which this find need want looking buy can you "
    "help should price lower than dollars".split()
)


class LuceneBM25(BM25Okapi):
    """rank-bm25's Okapi BM25 with Lucene's idf, ``log(1 + (N - n + 0.5) / (n + 0.5))`` (what Pyserini/WebShop use).

    Okapi's raw idf is zero or negative for words in half the documents or more, which on a small shop would make
    "bluetooth" in a catalogue of speakers invisible; Lucene's idf stays positive and keeps the ranking monotone.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1.0 + (self.corpus_size - freq + 0.5) / (freq + 0.5))
        self.average_idf = sum(self.idf.values()) / max(1, len(self.idf))


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stop words; numbers stay (sizes such as ``8 fl oz`` are searchable)."""
    return [w for w in re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", text.lower()) if w not in STOP_WORDS]


class SearchEngine:
    """A BM25 index over ``products``; :meth:`search` returns product indices."""

    def __init__(self, products: Sequence[Product], top_k: int = TOP_K) -> None:
        self.products = list(products)
        self.top_k = top_k
        corpus = [tokenize(p.search_text()) or ["<empty>"] for p in self.products]
        self.bm25 = LuceneBM25(corpus)
        self._cache: dict[str, list[int]] = {}

    def scores(self, query: str) -> np.ndarray:
        terms = tokenize(query)
        if not terms:
            return np.zeros(len(self.products))
        return np.asarray(self.bm25.get_scores(terms), dtype=float)

    def search(self, query: str) -> list[int]:
        """Indices of the best ``top_k`` products for ``query`` (an empty list when nothing matches)."""
        key = " ".join(tokenize(query))
        if key not in self._cache:
            scores = self.scores(query)
            # Stable sort on -score keeps catalogue order among ties, so results are deterministic.
            order = np.argsort(-scores, kind="stable")[: self.top_k]
            self._cache[key] = [int(i) for i in order if scores[i] > 0]
            if len(self._cache) > 4096:  # bound memory for long-running servers
                self._cache.pop(next(iter(self._cache)))
        return list(self._cache[key])
