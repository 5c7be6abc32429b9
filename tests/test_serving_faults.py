"""Faults under load, against the Serve app over real HTTP (tiny model, adapters in a moto S3 registry
of its own): a model replica killed, an alias promoted, the object store stopped and restarted.
Short versions of bench/soak.py's faults. Outcomes are asserted, and hangs are bounded by client
timeouts and generous recovery deadlines, never by how fast anything ran."""

import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import _free_port
from motostore import Store
from tiny import build_random_adapter

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "CREATE TABLE head (age INTEGER, name VARCHAR)"
SECRET = "fault-secret-Zq81Xv"  # the replicas' S3 secret key: must never reach a client
REFRESH_S = 1.0  # alias_refresh_s of the apps under test
CLIENT_TIMEOUT_S = 60  # a request unanswered after this is a hang: the tests fail on any


@contextmanager
def _env(**values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@dataclass
class Outcome:
    sent: float  # time.monotonic() when sent
    body: dict
    status: int | None = None  # None: no answer (timeout or connection error, in `error`)
    headers: dict = field(default_factory=dict)
    answer: dict | None = None
    error: str | None = None


class Load:
    """`threads` clients, each sending `bodies(i)` in a loop until stopped; every outcome is kept."""

    def __init__(self, url: str, bodies, threads: int = 8):
        self.url, self.bodies, self.outcomes = url + "/v1/sql", bodies, []
        self.stopping = threading.Event()
        self.workers = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(threads)]
        for worker in self.workers:
            worker.start()

    def _loop(self, worker: int):
        count = 0
        while not self.stopping.is_set():
            body = self.bodies(worker * 1000 + count)
            count += 1
            outcome = Outcome(time.monotonic(), body)
            try:
                response = requests.post(self.url, json=body, timeout=CLIENT_TIMEOUT_S)
                outcome.status, outcome.headers = response.status_code, dict(response.headers)
                outcome.answer = response.json() if "json" in response.headers.get("content-type", "") else None
            except requests.RequestException as err:
                outcome.error = f"{type(err).__name__}: {err}"
            self.outcomes.append(outcome)

    def wait_for(self, done, limit_s: float):
        """Until done(outcomes) or limit_s pass (then the caller's assert says what was missing)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not done(self.outcomes):
            time.sleep(0.2)

    def stop(self) -> list[Outcome]:
        self.stopping.set()
        for worker in self.workers:
            worker.join(CLIENT_TIMEOUT_S + 10)
        assert not any(worker.is_alive() for worker in self.workers), "a client thread hung"
        return self.outcomes


def sql_body(adapter=None, question="how many heads are older than 56?"):
    return {"schema": SCHEMA, "question": question, "max_new_tokens": 6, "adapter": adapter}


@pytest.fixture(scope="module")
def faulty(ray_local, tiny_model_dir, tmp_path_factory):
    """Two apps from local.yaml on this module's store: "faults" with two model replicas (a kill
    leaves one answering) and "store" with one (what it has loaded is known when the store stops)."""
    from ray import serve

    from sqlfoundry.serving.deploy import deploy, load_serve_file
    from sqlfoundry.storage.registry import Registry

    import boto3

    store = Store()
    work = tmp_path_factory.mktemp("faults")
    with _env(AWS_ENDPOINT_URL=store.endpoint):
        boto3.client("s3").create_bucket(Bucket="fault-adapters")
        registry = Registry("s3://fault-adapters/registry")  # its client keeps this endpoint
    versions = {name: registry.push(build_random_adapter(tiny_model_dir, work / name, seed=seed), name)
                for seed, name in [(1, "alpha"), (2, "beta"), (3, "gamma")]}
    registry.promote("gamma", versions["gamma"], "prod")
    overrides = [f"model.name_or_path={tiny_model_dir}", f"registry={registry.root}", "model_id=tiny",
                 f"alias_refresh_s={REFRESH_S}", "batching.batch_wait_timeout_s=0.05",
                 f"adapter_cache_dir={work / 'cache'}"]
    config = load_serve_file(ROOT / "serve_configs/local.yaml", overrides)
    env = {"env_vars": {"AWS_ENDPOINT_URL": store.endpoint, "AWS_SECRET_ACCESS_KEY": SECRET}}
    main = config["applications"][0]
    main["name"] = "faults"
    for deployment in main["deployments"]:
        deployment["ray_actor_options"]["runtime_env"] = env
    model = next(d for d in main["deployments"] if d["name"] == "SQLModel")
    model.pop("autoscaling_config")
    model.update(num_replicas=2, ray_actor_options={"num_cpus": 0.5, "runtime_env": env})
    single = {**main, "name": "store", "route_prefix": "/store",
              "deployments": [{**model, "num_replicas": 1}, next(d for d in main["deployments"]
                                                                  if d["name"] == "SQLIngress")]}
    config["applications"].append(single)
    config["http_options"]["port"] = _free_port()
    url = deploy(config, timeout_s=300)
    yield {"url": url, "registry": registry, "versions": versions, "work": work, "base": tiny_model_dir,
           "store": store}
    serve.shutdown()


def _model_replicas(app: str) -> list[tuple[str, str]]:
    """(name, namespace) of the app's live SQLModel replica actors."""
    import ray

    return [(a["name"], a["namespace"]) for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{app}#SQLModel#")]


def _running_replicas(app: str) -> int:
    from ray import serve

    return serve.status().applications[app].deployments["SQLModel"].replica_states.get("RUNNING", 0)


def _statuses(outcomes) -> dict:
    counts: dict = {}
    for o in outcomes:
        counts[o.status or o.error.split(":")[0]] = counts.get(o.status or o.error.split(":")[0], 0) + 1
    return counts


def test_a_killed_model_replica_costs_no_request(faulty):
    """ray.kill on one of two model replicas under load: in-flight requests are retried (or 503 +
    Retry-After), none hangs, none gets another status, and the app is whole again."""
    import ray

    assert _running_replicas("faults") == 2
    load = Load(faulty["url"], lambda i: sql_body([None, "alpha", "beta"][i % 3], f"question {i}?"))
    load.wait_for(lambda out: sum(o.status == 200 for o in out) >= 16, 120)
    name, namespace = _model_replicas("faults")[0]
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    load.wait_for(lambda out: sum(o.status == 200 and o.sent > killed_at + 3 for o in out) >= 16, 120)
    outcomes = load.stop()
    assert {o.status for o in outcomes} <= {200, 503}, _statuses(outcomes)
    assert all(o.headers.get("Retry-After") for o in outcomes if o.status == 503)
    assert sum(o.status == 200 and o.sent > killed_at + 3 for o in outcomes) >= 16, _statuses(outcomes)
    # Whole again: Serve replaces the replica (generous bound: a replica start on a loaded CPU).
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (_running_replicas("faults") != 2 or name in dict(_model_replicas("faults"))):
        time.sleep(1)
    assert _running_replicas("faults") == 2 and name not in dict(_model_replicas("faults"))
    assert requests.post(faulty["url"] + "/v1/sql", json=sql_body("alpha"), timeout=CLIENT_TIMEOUT_S).status_code == 200


def test_an_alias_promoted_under_load_fails_nothing_and_reaches_every_answer(faulty):
    registry, versions = faulty["registry"], faulty["versions"]
    old = f"gamma@{versions['gamma']}"
    load = Load(faulty["url"], lambda i: sql_body("gamma@prod" if i % 4 else None, f"question {i}?"))
    load.wait_for(lambda out: sum(o.status == 200 and o.answer["adapter"] == old for o in out) >= 8, 120)
    newer = registry.push(build_random_adapter(faulty["base"], faulty["work"] / "gamma2", seed=9), "gamma")
    registry.promote("gamma", newer, "prod")
    # Sent once alias_refresh_s has passed, plus a margin for a resolve that began before the
    # promotion and finished after it (a registry LIST can take seconds on a loaded 2-core CI
    # machine): such requests must all be answered by the new version.
    settled = time.monotonic() + REFRESH_S + 10
    load.wait_for(lambda out: sum(o.sent > settled and bool(o.body["adapter"]) for o in out) >= 24, 120)
    outcomes = load.stop()
    assert all(o.status == 200 for o in outcomes), _statuses(outcomes)
    late = [o.answer["adapter"] for o in outcomes if o.sent > settled and o.body["adapter"]]
    assert len(late) >= 24 and set(late) == {f"gamma@{newer}"}
    assert {o.answer["adapter"] for o in outcomes if o.body["adapter"]} <= {old, f"gamma@{newer}"}


def test_a_stopped_store_keeps_loaded_adapters_answering_and_recovers(faulty):
    url, store = faulty["url"] + "/store", faulty["store"]
    loaded = ["alpha", f"beta@{faulty['versions']['beta']}", "gamma@prod"]  # latest, pinned, alias
    for ref in loaded:  # the single replica loads them while the store is up
        assert requests.post(url + "/v1/sql", json=sql_body(ref), timeout=CLIENT_TIMEOUT_S).status_code == 200
    # Published, never asked for: the replica meets it first while the store is down.
    faulty["registry"].push(build_random_adapter(faulty["base"], faulty["work"] / "delta", seed=4), "delta")
    store.stop()
    try:
        load = Load(url, lambda i: sql_body(([None] + loaded)[i % 4], f"question {i}?"))
        # Long enough that every floating ref (latest, alias) tries a refresh against the dead store.
        stop_after = time.monotonic() + 4 * REFRESH_S
        load.wait_for(lambda out: time.monotonic() > stop_after and len(out) >= 24, 120)
        # An adapter not loaded yet: a clean 503 (or 502) naming the storage, no trace, no secret.
        fresh = requests.post(url + "/v1/sql", json=sql_body("delta"), timeout=CLIENT_TIMEOUT_S)
        outcomes = load.stop()
    finally:
        store.start()
    assert all(o.status == 200 for o in outcomes), _statuses(outcomes)
    assert fresh.status_code in (502, 503), fresh.text
    error = fresh.json()["error"]
    assert error["param"] == "adapter" and "storage" in error["message"] and "delta" in error["message"]
    assert "Traceback" not in fresh.text and SECRET not in fresh.text
    if fresh.status_code == 503:
        assert fresh.headers["Retry-After"]
    # The store is back: the adapter loads within a generous bound, and was never taken for
    # missing (a 404 from the negative cache would say the outage was remembered as "unknown").
    deadline, answered = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        answered = requests.post(url + "/v1/sql", json=sql_body("delta"), timeout=CLIENT_TIMEOUT_S)
        if answered.status_code == 200:
            break
        assert answered.status_code in (502, 503), answered.text
        time.sleep(0.5)
    assert answered.status_code == 200 and answered.json()["adapter"].startswith("delta@"), answered.text


def test_metrics_reach_the_ray_metrics_export_and_the_dashboard_reads_them(faulty):
    """After a few requests every sqlfoundry metric, with its adapter/route/status tags, is on the
    node's Prometheus export (the `ray_` names), and every metric the Grafana dashboard queries is."""
    import re

    import ray

    for adapter in (None, "alpha"):
        assert requests.post(faulty["url"] + "/v1/sql", json=sql_body(adapter), timeout=CLIENT_TIMEOUT_S).ok
    dashboard = json.loads((ROOT / "serve_configs/grafana_dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {name for expr in exprs for name in re.findall(r"\b(ray_[a-z_]+)\b", expr)}
    wanted = {"ray_sqlfoundry_requests_total", "ray_sqlfoundry_request_latency_ms_bucket",
              "ray_sqlfoundry_time_to_first_token_ms_bucket", "ray_sqlfoundry_batch_size_bucket",
              "ray_sqlfoundry_batch_latency_ms_bucket", "ray_sqlfoundry_generated_tokens_total",
              "ray_sqlfoundry_batch_tokens_per_second_bucket", "ray_sqlfoundry_queue_length",
              "ray_sqlfoundry_adapter_loads_total"}
    assert wanted <= queried, f"the dashboard does not read {wanted - queried}"
    port = ray._private.worker.global_worker.node.metrics_export_port
    def this_apps_alpha_lines(text: str) -> list[str]:
        # The session's Ray is shared: other tests' apps export the same series; pick this app's.
        return [li for li in text.splitlines() if li.startswith("ray_sqlfoundry_requests_total{")
                and 'adapter="alpha"' in li and 'application="faults"' in li]

    # Each series appears after Ray's next export round (seconds; longer on a loaded machine).
    deadline, exported, text = time.monotonic() + 120, set(), ""
    while time.monotonic() < deadline:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        exported = set(re.findall(r"^(ray_[a-z_]+)", text, re.M))
        if queried <= exported and this_apps_alpha_lines(text):
            break
        time.sleep(2)
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"
    lines = this_apps_alpha_lines(text)
    assert any('route="/v1/sql"' in li and 'status="200"' in li for li in lines), "\n".join(
        li for li in text.splitlines() if li.startswith("ray_sqlfoundry_requests_total{"))
