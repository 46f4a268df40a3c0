"""The web shop as HTML pages on 127.0.0.1, so a person can shop in a browser (``oreo-agents serve``).

Every browser visit to ``/`` (or ``/new``) starts a session with its own env and instruction, kept under
``/s/<session>/``; a click or search is one ``env.step`` (``click[...]`` / ``search[...]``) followed by a redirect to
the session page, so reloading never repeats an action. The server listens on 127.0.0.1 only (the standard library's
``http.server``).

Hostile requests get an answer, never a dead thread: a query that names no instruction (``?task=--1``, ``?task=¹``, a
5,000-digit number) is a 400 page, and a connection that sends half a request is closed after ``request_timeout``
seconds, so half-sent requests cannot hold the server's threads forever.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"  # never expose the shop beyond this machine
MAX_SESSIONS = 256
MAX_TASK_CHARS = 200  # instruction ids are short; an index fits in 9 digits
_INDEX_RE = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: "¹".isdigit() is True but int("¹") raises


@dataclass
class ServeConfig:
    env: str = field(default="webshop", metadata={"help": "Environment family to serve (only webshop has pages)."})
    port: int = field(default=8000, metadata={"help": "Port on 127.0.0.1 (0 picks a free one)."})
    split: str = field(default="train", metadata={"help": "Instruction split: train or test."})
    data_path: str | None = field(default=None, metadata={"help": "Folder with the real WebShop JSON files; default: the embedded generated shop."})
    num_products: int | None = field(default=None, metadata={"help": "Generated shop size (default 1000) or number of real products to load (default all)."})
    seed: int = field(default=0, metadata={"help": "Shop seed; session k gets instruction seed seed + k."})
    max_steps: int = field(default=50, metadata={"help": "Step limit of each browser session."})
    request_timeout: float = field(
        default=10.0, metadata={"help": "Seconds a connection may take to send its request before it is closed."}
    )

    def __post_init__(self) -> None:
        from oreo_agents.errors import OreoError

        if not self.request_timeout > 0:
            raise OreoError(f"--request-timeout must be positive seconds (got {self.request_timeout})")


class Shop:
    """The sessions of one server: session id -> its own ``WebShopEnv`` (all share one catalogue and index)."""

    def __init__(self, cfg: ServeConfig) -> None:
        from oreo_agents.envs.webshop.env import WebShopEnv

        self.cfg = cfg
        self._make = lambda: WebShopEnv(split=cfg.split, max_steps=cfg.max_steps, data_path=cfg.data_path,
                                        num_products=cfg.num_products, seed=cfg.seed)
        self.catalog = self._make().catalog  # load (and validate) the data once, before the first visitor
        self.sessions: OrderedDict[str, Any] = OrderedDict()
        self.over: dict[str, str] = {}
        self._counter = itertools.count()
        self.lock = threading.Lock()

    def new_session(self, task: str | None = None) -> str:
        """Start a session (``task``: an instruction index or id of the split; raises OreoError if unknown)."""
        from oreo_agents.errors import OreoError

        if task is not None and (len(task) > MAX_TASK_CHARS or not task.isprintable()):
            raise OreoError(f"task={task[:40]!r}...: not an instruction index or id")
        choice: Any = int(task) if task and _INDEX_RE.fullmatch(task) else task
        env = self._make()
        env.reset(seed=self.cfg.seed + next(self._counter), options={"task": choice} if task else None)
        sid = secrets.token_hex(6)
        with self.lock:
            self.sessions[sid] = env
            while len(self.sessions) > MAX_SESSIONS:  # forget the oldest visitor
                old, _ = self.sessions.popitem(last=False)
                self.over.pop(old, None)
        return sid

    def act(self, sid: str, action: str) -> None:
        env = self.sessions[sid]
        with self.lock:
            if sid in self.over:  # a finished episode ignores further clicks (the page says why)
                return
            _, _, terminated, truncated, _ = env.step(action)
            if terminated:
                self.over[sid] = "You bought an item: start a new instruction below."
            elif truncated:
                self.over[sid] = f"Step limit ({env.max_steps}) reached: start a new instruction below."

    def html(self, sid: str, base: str) -> str:
        with self.lock:
            return self.sessions[sid].html(base, message=self.over.get(sid))


class ShopHandler(BaseHTTPRequestHandler):
    shop: Shop  # set on the subclass made by make_server
    timeout = 10.0  # socket timeout (StreamRequestHandler applies it); make_server sets --request-timeout
    server_version = "oreo-agents-webshop"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the console shows only the URL
        return

    def _send(self, status: HTTPStatus, body: str = "", location: str | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")  # every page is live state
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            self._get()
        except (ConnectionError, TimeoutError):
            raise  # the client went away: nothing to answer
        except Exception as exc:  # noqa: BLE001 - any other bug still gets an answer, and the server keeps serving
            self.close_connection = True
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR,
                       f"<!doctype html><p>internal error: {html.escape(type(exc).__name__)}</p>")

    def _get(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path in ("/", "/new"):
            from oreo_agents.errors import OreoError

            try:
                sid = self.shop.new_session(query.get("task"))
            except OreoError as exc:  # e.g. ?task=99999: say so on the page instead of a stack trace
                return self._send(HTTPStatus.BAD_REQUEST, f'<!doctype html><p id="message">{html.escape(str(exc))}</p>'
                                                          '<p><a href="/new">Start with a random instruction</a></p>')
            return self._send(HTTPStatus.SEE_OTHER, location=f"/s/{sid}/")
        if url.path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT)
        match = re.fullmatch(r"/s/([0-9a-f]+)/(search|click)?", url.path)
        if match is None or match.group(1) not in self.shop.sessions:
            return self._send(HTTPStatus.NOT_FOUND, '<!doctype html><p>No such page or session. '
                                                    '<a href="/new">Start shopping</a></p>')
        sid, verb = match.groups()
        base = f"/s/{sid}"
        if verb == "search":
            self.shop.act(sid, f"search[{query.get('q', '')}]")
        elif verb == "click":
            self.shop.act(sid, f"click[{query.get('el', '')}]")
        if verb:
            return self._send(HTTPStatus.SEE_OTHER, location=f"{base}/")
        self._send(HTTPStatus.OK, self.shop.html(sid, base))


def make_server(cfg: ServeConfig) -> ThreadingHTTPServer:
    """A ready (not yet serving) HTTP server on 127.0.0.1:``cfg.port``; call ``serve_forever`` on it."""
    from oreo_agents.errors import OreoError

    if cfg.env.lower() not in ("webshop", "oreo_agents/webshop-v0"):
        raise OreoError(f"--env {cfg.env}: only the webshop env has pages to serve (use --env webshop)")
    handler = type("BoundShopHandler", (ShopHandler,), {"shop": Shop(cfg), "timeout": cfg.request_timeout})
    try:
        server = ThreadingHTTPServer((HOST, cfg.port), handler)
    except OSError as exc:
        raise OreoError(f"--port {cfg.port}: cannot listen on {HOST}:{cfg.port} ({exc.strerror}); pick another port")
    server.daemon_threads = True
    return server
