"""``oreo-agents serve``: the web-shop env as HTML pages, so a person can shop in a browser.

    oreo-agents serve --env webshop --port 8000        # then open http://127.0.0.1:8000/

The server is :mod:`oreo_agents.envs.webshop.server` (127.0.0.1 only; Ctrl-C stops it).
"""

from __future__ import annotations

from typing import Any

import click

from oreo_agents.cli.flags import config_options
from oreo_agents.config import build_config
from oreo_agents.console import console, escape, user_errors
from oreo_agents.envs.webshop.server import ServeConfig, make_server


@click.command()
@config_options(ServeConfig)
@user_errors
def serve(**kwargs: Any) -> None:
    """Serve the web shop as HTML on 127.0.0.1 so a person can search, paginate, pick options and buy."""
    cfg = build_config(ServeConfig, kwargs)
    with console.status("loading the shop and building the search index..."):
        server = make_server(cfg)
    host, port = server.server_address[:2]
    shop = server.RequestHandlerClass.shop
    console.print(f"[bold]WebShop[/] ({escape(str(shop.catalog))}) at http://{host}:{port}/  (Ctrl-C stops)", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped the web shop server")
    finally:
        server.server_close()
