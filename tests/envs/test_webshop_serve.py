"""``oreo-agents serve``: the shop's HTML in a real headless browser (Debian's chromium), and the command's lifecycle.

CI needs ``apt-get install -y chromium``; without ``/usr/bin/chromium`` the browser test is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from oreo_agents.cli.app import cli
from oreo_agents.envs.webshop.server import ServeConfig, make_server
from oreo_agents.envs.webshop.expert import WebShopExpert
from oreo_agents.errors import OreoError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Links(HTMLParser):
    """The clickables a person sees: ``data-click`` name -> href, plus the search form's action."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self.form_action: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "a" and "data-click" in a:
            self.links[a["data-click"]] = a["href"]
        if tag == "form" and a.get("id") == "search-form":
            self.form_action = a["action"]


def dump_dom(url: str, profile: Path) -> str:
    proc = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture()
def server():
    srv = make_server(ServeConfig(port=0, num_products=1000))  # big enough that targets sit past page 1
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
def test_a_browser_can_search_paginate_pick_options_and_buy(server, tmp_path):
    host, port = server.server_address[:2]
    root = f"http://{host}:{port}"
    shop = server.RequestHandlerClass.shop
    # Pick a train instruction whose target sits on results page 2, so the walk also paginates.
    probe = shop._make()
    expert = WebShopExpert(probe.catalog, probe.engine)
    rank = {ins.task_id: [probe.engine.products[j].asin for j in probe.engine.search(expert.query_for(ins))]
            .index(ins.asin) for ins in probe.tasks}
    on_page_2 = [i for i, ins in enumerate(probe.tasks) if 10 <= rank[ins.task_id] < 20 and ins.goal_options]
    task = min(on_page_2, key=lambda i: len(probe.tasks[i].goal_options))  # fewest browser launches

    dom = dump_dom(f"{root}/new?task={task}", tmp_path)
    sid = re.search(r'action="/s/([0-9a-f]+)/search"', dom).group(1)
    env = shop.sessions[sid]
    assert env.instruction.task_id == probe.tasks[task].task_id and 'data-kind="search"' in dom
    assert "Instruction:</b> " + env.instruction.text.split(",")[0] in dom
    seen_kinds, clicks = set(), []
    for _ in range(env.max_steps):
        page = Links()
        page.feed(dom)
        seen_kinds.add(re.search(r'data-kind="(\w+)"', dom).group(1))
        action = expert.act(env.page, env.instruction)
        if action is None:
            break
        name = action[action.index("[") + 1 : -1]
        if action.startswith("search["):
            assert page.form_action == f"/s/{sid}/search"
            url = f"{root}{page.form_action}?q={quote(name)}"  # what submitting the form requests
        else:
            assert name in page.links, (name, sorted(page.links))  # the link is on the rendered page
            url = root + page.links[name]
            clicks.append(name)
        dom = dump_dom(url, tmp_path)
    assert seen_kinds == {"search", "results", "item", "done"}
    assert "next >" in clicks and "buy now" in clicks and len(clicks) >= 4
    assert re.search(r'id="reward">Your score \(min 0.0, max 1.0\): 1.00<', dom), dom[-1500:]
    assert env.page.reward.total == 1.0
    # A finished session ignores further clicks and says so.
    dom = dump_dom(f"{root}/s/{sid}/click?el=buy%20now", tmp_path)
    assert "You bought an item: start a new instruction below." in dom


def test_pages_over_plain_http(server):
    host, port = server.server_address[:2]
    opener = urllib.request.build_opener()
    with opener.open(f"http://{host}:{port}/") as resp:  # redirected to a fresh session
        body = resp.read().decode()
        assert re.search(r"/s/[0-9a-f]+/$", resp.url) and 'id="search-form"' in body
    with pytest.raises(urllib.error.HTTPError, match="404"):
        opener.open(f"http://{host}:{port}/s/deadbeef/")
    with opener.open(resp.url + "search?q=" + quote("lipstick <b>bold</b>")) as resp2:
        body = resp2.read().decode()
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>bold</b>" not in body  # user text is escaped
    assert server.server_address[0] == "127.0.0.1"
    with pytest.raises(urllib.error.HTTPError, match="400") as bad:
        opener.open(f"http://{host}:{port}/new?task=99999")
    assert "reset option task=99999 is out of range" in bad.value.read().decode()


def test_bad_env_and_busy_port_are_one_line_errors():
    result = CliRunner().invoke(cli, ["serve", "--env", "alfworld"])
    assert result.exit_code == 2 and "only the webshop env has pages to serve" in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OreoError, match=rf"--port {busy.getsockname()[1]}: cannot listen"):
            make_server(ServeConfig(port=busy.getsockname()[1], num_products=60))


def test_serve_prints_the_url_and_stops_cleanly_on_ctrl_c():
    # A shell's background job (`pytest &`) ignores SIGINT and its children inherit that: give the server the default
    # disposition a terminal's Ctrl-C meets, or Python installs no KeyboardInterrupt handler in it.
    proc = subprocess.Popen([sys.executable, "-m", "oreo_agents.cli.app", "serve", "--port", "0", "--num-products", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "new") as resp:
            assert 'id="search-form"' in resp.read().decode()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0 and "stopped the web shop server" in out, out


# --- issue #14 item 12: hostile queries get a 400, half-sent requests are released by the socket timeout --------------
@pytest.fixture()
def quick_server():
    srv = make_server(ServeConfig(port=0, num_products=60, request_timeout=0.5))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("task", ["--1", "¹", "٣", "1" * 5000, "-" * 300, "1e3", " 1", "\x00"])
def test_bad_task_queries_get_a_400_page(quick_server, task):
    host, port = quick_server.server_address[:2]
    with pytest.raises(urllib.error.HTTPError) as bad:  # before: ValueError in the handler, no response at all
        urllib.request.urlopen(f"http://{host}:{port}/new?task={quote(task)}", timeout=10)
    assert bad.value.code == 400
    with urllib.request.urlopen(f"http://{host}:{port}/new?task=0", timeout=10) as ok:  # still serving
        assert 'id="search-form"' in ok.read().decode()


def test_half_sent_requests_are_closed_after_the_request_timeout(quick_server):
    host, port = quick_server.server_address[:2]
    before = threading.active_count()
    stalled = []
    for _ in range(20):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET /new HTTP/1.1\r\nHost: x\r\n")  # never the blank line that ends the headers
        stalled.append(s)
    with urllib.request.urlopen(f"http://{host}:{port}/new", timeout=10) as ok:  # others are still served meanwhile
        assert ok.status == 200
    for s in stalled:  # the server closes each one after 0.5 s (recv returns EOF instead of blocking for 10 s)
        assert s.recv(1024) == b""
        s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # every handler thread ended


def test_request_timeout_must_be_positive():
    with pytest.raises(OreoError, match="--request-timeout"):
        ServeConfig(request_timeout=0)
