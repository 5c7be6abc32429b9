"""The serving core without Ray: adapter LRU, alias refresh, mixed-adapter batches, SQL checks."""

import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sqlfoundry.sql.schema import parse_schema
from sqlfoundry.serving.api import ChatBody, ApiError, SqlBody, chat_to_sql_request, finish_sql
from sqlfoundry.serving.config import ServeConfigError, api_keys_for, parse_serve_config
from sqlfoundry.serving.engine import SqlEngine, SqlRequest
from sqlfoundry.storage.backends import StorageError
from sqlfoundry.storage.registry import Registry
from tiny import build_random_adapter

SCHEMA = "CREATE TABLE head (age INTEGER, name VARCHAR); CREATE TABLE dept (id INTEGER, budget REAL)"


@pytest.fixture(scope="module")
def registry_with_adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-registry")
    registry = Registry(str(root / "registry"))
    versions = {}
    for seed, name in enumerate(["alpha", "beta", "gamma"], start=1):
        versions[name] = registry.push(build_random_adapter(tiny_model_dir, root / name, seed=seed), name)
    return registry, versions


@pytest.fixture(scope="module")
def engine(tiny_model_dir, registry_with_adapters, tmp_path_factory):
    registry, _ = registry_with_adapters
    config = parse_serve_config({"model": {"name_or_path": str(tiny_model_dir)}, "registry": registry.root,
                                 "max_loaded_adapters": 2, "alias_refresh_s": 0.5,
                                 "adapter_cache_dir": str(tmp_path_factory.mktemp("adapter-cache"))})
    return SqlEngine(config)


def _request(adapter=None, question="how many heads are older than 56?", tokens=12):
    return SqlRequest(schema=SCHEMA, question=question, max_new_tokens=tokens, adapter=adapter)


def test_mixed_adapter_batch_matches_each_row_alone(engine):
    requests = [_request(), _request("alpha"), _request("beta"), _request("alpha", "list names", 7)]
    together = engine.generate(requests)
    alone = [engine.generate([r])[0] for r in requests]
    assert [r.text for r in together] == [r.text for r in alone]
    assert [r.completion_tokens for r in together] == [r.completion_tokens for r in alone]
    # The adapters really change the output, so the equality above is not trivially "all base".
    assert len({together[0].text, together[1].text, together[2].text}) == 3
    assert together[0].adapter is None and together[1].adapter.startswith("alpha@")
    assert together[3].completion_tokens <= 7


def test_lru_keeps_at_most_n_adapters(engine):
    for name in ["alpha", "beta", "gamma", "alpha"]:
        assert engine.generate([_request(name)])[0].error is None
        assert len(engine.adapters.loaded) <= 2
    assert [k.split("@")[0] for k in engine.adapters.loaded] == ["gamma", "alpha"]


def test_unknown_adapter_fails_only_its_row(engine):
    results = engine.generate([_request("nope"), _request("alpha@20990101T000000-abcdef"), _request()])
    assert results[0].error == "unknown_adapter" and "nope" in results[0].detail
    assert results[1].error == "unknown_adapter"
    assert results[2].error is None and results[2].completion_tokens > 0


def test_alias_promotion_reaches_the_replica_within_refresh(engine, registry_with_adapters, tiny_model_dir, tmp_path):
    registry, versions = registry_with_adapters
    registry.promote("alpha", versions["alpha"], "production")
    assert engine.generate([_request("alpha@production")])[0].adapter == f"alpha@{versions['alpha']}"
    newer = registry.push(build_random_adapter(tiny_model_dir, tmp_path / "alpha2", seed=9), "alpha")
    registry.promote("alpha", newer, "production")
    time.sleep(0.6)
    assert engine.generate([_request("alpha@production")])[0].adapter == f"alpha@{newer}"


def test_tampered_adapter_is_refused(engine, registry_with_adapters, tiny_model_dir, tmp_path):
    registry, _ = registry_with_adapters
    version = registry.push(build_random_adapter(tiny_model_dir, tmp_path / "evil", seed=5), "evil")
    weights = registry.root + f"/adapters/evil/{version}/adapter_model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    result = engine.generate([_request("evil")])[0]
    assert result.error == "adapter_invalid" and "sha256" in result.detail


def test_adapter_for_another_base_is_refused(engine, registry_with_adapters, tmp_path):
    import json

    registry, _ = registry_with_adapters
    folder = tmp_path / "other"
    registry.pull("beta", folder)
    meta = json.loads((folder / "sqlfoundry_model.json").read_text())
    meta["model"]["name_or_path"] = "some/other-model"
    (folder / "sqlfoundry_model.json").write_text(json.dumps(meta))
    (folder / "manifest.json").unlink()
    registry.push(folder, "other")
    result = engine.generate([_request("other")])[0]
    assert result.error == "adapter_mismatch" and "some/other-model" in result.detail


# -- one bad adapter in a batch ----------------------------------------------------------------
def _client_error(code, operation):
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


def _wrapped(outer, inner):
    """`outer` raised while handling `inner`, as the storage layer wraps botocore and OS errors."""
    try:
        raise inner
    except Exception:
        try:
            raise outer from None
        except Exception as err:
            return err


class FaultyStore:
    """The registry's real store, except that `operation` on keys of one adapter raises `error`:
    what S3 does to one prefix when a policy denies it, it is throttled or the endpoint drops."""

    def __init__(self, store, operation, prefix, error):
        self.store, self.operation, self.prefix, self.error = store, operation, prefix, error

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def call(key, *args):
            if name == self.operation and key.startswith(self.prefix):
                raise self.error
            return method(key, *args)
        return call


@pytest.fixture(scope="module")
def spare_adapter(tiny_model_dir, tmp_path_factory):
    return build_random_adapter(tiny_model_dir, tmp_path_factory.mktemp("spare") / "adapter", seed=11)


def _isolated(engine, bad_adapter):
    """Serve [bad, base, alpha] together: only the bad row may fail, the others answer exactly as alone."""
    alone = engine.generate([_request(), _request("alpha")])
    results = engine.generate([_request(bad_adapter), _request(), _request("alpha")])
    assert [(r.error, r.text, r.adapter) for r in results[1:]] == [(None, r.text, r.adapter) for r in alone]
    assert results[0].sql == "" and results[0].completion_tokens == 0
    return results[0]


@pytest.mark.parametrize("name, operation, error", [
    ("list-denied", "list", _client_error("AccessDenied", "ListObjectsV2")),  # resolving the latest version
    ("manifest-throttled", "get_bytes",  # as S3Store raises it: StorageError from the botocore error
     _wrapped(StorageError("read s3://b/k: SlowDown (throttled)"), _client_error("SlowDown", "GetObject"))),
    ("download-5xx", "get_file", _client_error("InternalError", "GetObject")),
    ("endpoint-down", "get_file", EndpointConnectionError(endpoint_url="http://s3.example")),
    ("disk-io", "get_file", OSError(5, "Input/output error")),
])
def test_storage_failure_fails_only_its_rows(engine, registry_with_adapters, spare_adapter, monkeypatch,
                                             name, operation, error):
    registry, _ = registry_with_adapters
    registry.push(spare_adapter, name)
    monkeypatch.setattr(engine.adapters.registry, "store", FaultyStore(engine.adapters.registry.store, operation,
                                                                       f"adapters/{name}/", error))
    failed = _isolated(engine, name)
    assert failed.error == "adapter_unavailable" and name in failed.detail and "retry" in failed.detail
    monkeypatch.undo()  # the storage recovers: the same ref now loads (nothing cached the failure)
    assert engine.generate([_request(name)])[0].adapter.startswith(f"{name}@")


def _edit_json(path, change):
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name, breakage", [
    ("no-such-modules", lambda d: _edit_json(d / "adapter_config.json",
                                             lambda c: c.update(target_modules=["no_such_proj"]))),
    ("garbage-weights", lambda d: (d / "adapter_model.safetensors").write_bytes(b"not a safetensors file" * 40)),
    ("config-not-json", lambda d: (d / "adapter_config.json").write_text("{")),
    ("dora", lambda d: _edit_json(d / "adapter_config.json", lambda c: c.update(use_dora=True))),  # loads, then
    ("not-lora", lambda d: _edit_json(d / "adapter_config.json", lambda c: c.update(peft_type="IA3"))),  # breaks batches
    ("no-system-prompt", lambda d: _edit_json(d / "sqlfoundry_model.json", lambda m: m.pop("system_prompt"))),
])
def test_broken_adapter_fails_only_its_rows(engine, registry_with_adapters, spare_adapter, tmp_path, name, breakage):
    import shutil

    registry, _ = registry_with_adapters
    folder = tmp_path / name
    shutil.copytree(spare_adapter, folder)
    breakage(folder)
    registry.push(folder, name)  # published as broken: the checksums match, the content does not load
    failed = _isolated(engine, name)
    assert failed.error == "adapter_invalid" and name in failed.detail
    # Nothing of it stays on the model (peft injects layers before reading weights).
    assert not any(name.replace("-", "_") in param for param, _ in engine.model.named_parameters())
    assert name not in " ".join(engine.adapters.loaded)


def test_adapter_template_that_does_not_render_fails_only_its_rows(engine, registry_with_adapters, spare_adapter,
                                                                  tmp_path):
    import shutil

    registry, _ = registry_with_adapters
    shutil.copytree(spare_adapter, tmp_path / "bad-template")
    _edit_json(tmp_path / "bad-template" / "sqlfoundry_model.json",
               lambda meta: meta["model"].update(chat_template="{% if %}"))
    registry.push(tmp_path / "bad-template", "bad-template")
    failed = _isolated(engine, "bad-template")
    assert failed.error == "adapter_invalid" and "bad-template@" in failed.detail and "chat template" in failed.detail


def test_bad_ref_that_reaches_the_engine_fails_only_its_row(engine):
    failed = _isolated(engine, "bad name!")
    assert failed.error == "unknown_adapter" and "bad name!" in failed.detail


def test_failed_first_load_leaves_the_base_model_clean(tiny_model_dir, registry_with_adapters, spare_adapter,
                                                       tmp_path):
    """The very first adapter of a replica wraps the bare base model; if its weights fail to load,
    the base must answer exactly as before, and the next adapter still loads."""
    import shutil

    registry, _ = registry_with_adapters
    folder = tmp_path / "first-broken"
    shutil.copytree(spare_adapter, folder)
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    registry.push(folder, "first-broken")
    fresh = SqlEngine(parse_serve_config({"model": {"name_or_path": str(tiny_model_dir)}, "registry": registry.root,
                                          "adapter_cache_dir": str(tmp_path / "cache")}))
    before = fresh.generate([_request()])[0].text
    results = fresh.generate([_request("first-broken"), _request()])
    assert results[0].error == "adapter_invalid" and results[1].error is None and results[1].text == before
    assert not any("first_broken" in param for param, _ in fresh.model.named_parameters())
    assert not hasattr(fresh.model, "peft_config")
    assert fresh.generate([_request("alpha")])[0].adapter.startswith("alpha@")
    assert [name.split("_")[0] for name in fresh.model.peft_config] == ["alpha"]
    assert fresh.generate([_request()])[0].text == before


def test_generation_failure_answers_every_row_and_logs_once(engine, monkeypatch, caplog):
    import sqlfoundry.serving.engine as engine_module

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine_module, "generate_candidates", out_of_memory)
    with caplog.at_level("ERROR", logger="sqlfoundry.serving.engine"):
        results = engine.generate([_request(), _request("alpha"), _request("nope")])
    assert [r.error for r in results] == ["generation_failed", "generation_failed", "unknown_adapter"]
    assert "RuntimeError" in results[0].detail and "2.00 GiB" not in results[0].detail
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info and "out of memory" in str(errors[0].exc_info[1])
    monkeypatch.undo()
    assert engine.generate([_request()])[0].error is None


# -- the negative cache ---------------------------------------------------------------------------
class CountingRegistry:
    """The real registry, counting `resolve` calls (each is a storage LIST or read)."""

    def __init__(self, registry):
        self.registry, self.calls = registry, 0

    def resolve(self, ref):
        self.calls += 1
        return self.registry.resolve(ref)

    def __getattr__(self, name):
        return getattr(self.registry, name)


def _pool(tmp_path, registry, ttl=1.0, size=1024, refresh_s=10.0):
    from sqlfoundry.serving.adapters import AdapterPool

    pool = AdapterPool(registry, base_model="unused", max_loaded=2, refresh_s=refresh_s, cache_dir=tmp_path / "cache",
                       negative_ttl_s=ttl, negative_size=size)
    pool.registry = CountingRegistry(pool.registry)
    return pool


def _unknown(pool, ref):
    from sqlfoundry.serving.adapters import AdapterError

    with pytest.raises(AdapterError) as err:
        pool.resolve(ref)
    assert err.value.kind == "unknown_adapter", err.value.detail


def test_unknown_adapters_cost_one_lookup_per_ttl(tmp_path, spare_adapter):
    root = str(tmp_path / "registry")
    pool = _pool(tmp_path, root, ttl=1.0)
    for _ in range(20):
        _unknown(pool, "late")
    assert pool.registry.calls == 1
    version = Registry(root).push(spare_adapter, "late")  # pushed within the TTL: still answered from memory
    _unknown(pool, "late")
    assert pool.registry.calls == 1
    _unknown(pool, "never")  # another ref is its own entry
    assert pool.registry.calls == 2
    time.sleep(1.1)
    assert pool.resolve("late") == f"late@{version}"  # after the TTL the push is visible
    _unknown(pool, "never")
    assert pool.registry.calls == 4


def test_negative_cache_is_bounded_and_can_be_off(tmp_path):
    root = str(tmp_path / "registry")
    pool = _pool(tmp_path, root, ttl=60, size=3)
    for ref in ["a", "b", "c", "d"]:  # "a" is forgotten when "d" arrives
        _unknown(pool, ref)
    _unknown(pool, "d")
    assert pool.registry.calls == 4
    _unknown(pool, "a")
    assert pool.registry.calls == 5
    off = _pool(tmp_path, root, ttl=0)
    for _ in range(3):
        _unknown(off, "a")
    assert off.registry.calls == 3


def test_storage_failures_are_not_cached_and_a_known_ref_keeps_serving(tmp_path, spare_adapter, s3_server):
    """A real S3 error (the registry's bucket is missing on the moto server): 503-class, retried on
    every request. A floating ref resolved before keeps its last version while storage fails."""
    from sqlfoundry.serving.adapters import AdapterError

    pool = _pool(tmp_path, "s3://no-such-bucket-for-serving/registry", ttl=60)
    for _ in range(2):
        with pytest.raises(AdapterError) as err:
            pool.resolve("alpha")
        assert err.value.kind == "adapter_unavailable" and "no-such-bucket-for-serving" in err.value.detail
    assert pool.registry.calls == 2

    root = str(tmp_path / "registry")
    version = Registry(root).push(spare_adapter, "steady")
    local = _pool(tmp_path, root, refresh_s=0)
    assert local.resolve("steady") == f"steady@{version}"
    store = local.registry.registry.store
    local.registry.registry.store = FaultyStore(store, "list", "adapters/", _client_error("SlowDown", "ListObjectsV2"))
    assert local.resolve("steady") == f"steady@{version}"
    with pytest.raises(AdapterError, match="retry"):
        local.resolve("other")


# -- ingress checks without Ray --------------------------------------------------------------------
@pytest.mark.parametrize("model, expected", [
    ("tiny", None),
    ("tiny:alpha", "alpha"),
    ("tiny:alpha@production", "alpha@production"),
    ("tiny:alpha@20990101T000000-abcdef", "alpha@20990101T000000-abcdef"),
    ("gpt-4", 404),
    ("tiny:", 404),
    ("other:alpha", 404),
    ("tiny:bad name!", 422),
    ("tiny:alpha@", 422),
    ("tiny:alpha@pro@d", 422),
    ("tiny:../etc", 422),
    ("tiny:alpha\n", 422),
    ("tiny:alpha@2099", 422),
])
def test_chat_model_names_a_valid_adapter_ref(model, expected):
    from sqlfoundry.serving.api import adapter_for_model

    if isinstance(expected, int):
        with pytest.raises(ApiError) as err:
            adapter_for_model(model, "tiny")
        assert (err.value.status, err.value.param) == (expected, "model")
    else:
        assert adapter_for_model(model, "tiny") == expected


def _guarded_app(keys, limit=4000):
    from fastapi import FastAPI, Request

    from sqlfoundry.serving.guard import RequestGuard

    app = FastAPI()
    app.state.api_keys, app.state.max_body_bytes = keys, limit
    app.add_middleware(RequestGuard, request_id=lambda headers: "rid-1")

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body()), "request_id": request.state.request_id}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def _call(app, method, path, headers, chunks):
    """Run one request through the ASGI app; returns (status, JSON body, chunks the app read)."""
    import asyncio
    import json

    read = 0

    async def receive():
        nonlocal read
        if read == len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, (json.loads(body) if body.startswith(b"{") else body), read


KEYED = {"Authorization": "Bearer k2"}
MB = [b"x" * 65536] * 160  # 10 MB in 64 KB chunks


@pytest.mark.parametrize("keys, method, path, headers, chunks, status, most_read", [
    (["k1", "k2"], "POST", "/echo", {}, MB, 401, 0),
    (["k1", "k2"], "POST", "/echo", {"Authorization": "Bearer k3"}, MB, 401, 0),
    (["k1", "k2"], "POST", "/echo", {"Authorization": "Basic k2"}, MB, 401, 0),
    (["k1", "k2"], "POST", "/echo", {**KEYED, "Content-Length": "10485760"}, MB, 413, 0),
    (["k1", "k2"], "POST", "/echo", KEYED, MB, 413, 1),
    (["k1", "k2"], "POST", "/echo", KEYED, [b"y" * 1000] * 10, 413, 5),
    (["k1", "k2"], "POST", "/echo", KEYED, [b"y" * 1000] * 4, 200, 4),
    ([], "POST", "/echo", {}, [b"y" * 4000], 200, 1),
    (["k1", "k2"], "GET", "/healthz", {}, [b""], 200, 1),
    (["k1", "k2"], "GET", "/docs", {}, [b""], 401, 0),
    (["k1", "k2"], "GET", "/openapi.json", {}, [b""], 401, 0),
    (["k1", "k2"], "GET", "/redoc", {}, [b""], 401, 0),
    (["k1", "k2"], "GET", "/openapi.json", KEYED, [b""], 200, 1),
], ids=["no-key", "wrong-key", "not-bearer", "declared-too-big", "chunked-10mb", "creeping-over", "within-limit",
        "no-keys-configured", "healthz-public", "docs", "openapi", "redoc", "openapi-with-key"])
def test_guard_checks_key_then_cuts_the_body_at_the_limit(keys, method, path, headers, chunks, status, most_read):
    response_status, body, read = _call(_guarded_app(keys), method, path, headers, chunks)
    assert response_status == status
    assert read <= most_read  # refused bodies are not read past the limit (nor at all without a key)
    if status == 200 and path == "/echo":
        assert body == {"bytes": sum(map(len, chunks)), "request_id": "rid-1"}
    elif status in (401, 413):
        assert body["error"]["param"] == {401: "authorization", 413: "body"}[status] and body["request_id"] == "rid-1"


@pytest.mark.parametrize("host, environ, allow, keys", [
    ("127.0.0.1", {}, False, []),
    ("localhost", {}, False, []),
    ("::1", {}, False, []),
    ("0.0.0.0", {"SQLFOUNDRY_API_KEYS": " k1, ,k2 "}, False, ["k1", "k2"]),
    ("0.0.0.0", {}, True, []),
    ("0.0.0.0", {}, False, None),
    ("0.0.0.0", {"SQLFOUNDRY_API_KEYS": " , "}, False, None),
    ("10.1.2.3", {}, False, None),
    ("::", {}, False, None),
    ("serve.internal", {}, False, None),
])
def test_network_bind_needs_api_keys(host, environ, allow, keys):
    config = parse_serve_config({"allow_unauthenticated": allow})
    if keys is None:
        with pytest.raises(ServeConfigError) as err:
            api_keys_for(host, config, environ)
        for fix in ("http_options.host", "SQLFOUNDRY_API_KEYS", "allow_unauthenticated: true", "127.0.0.1"):
            assert fix in str(err.value)
    else:
        assert api_keys_for(host, config, environ) == keys


TABLES = parse_schema(SCHEMA)


@pytest.mark.parametrize("generated, reason", [
    ("INSERT INTO head VALUES (1, 'x')", "not_read_only"),
    ("UPDATE head SET age = 1", "not_read_only"),
    ("DELETE FROM head", "not_read_only"),
    ("DROP TABLE head", "not_read_only"),
    ("ATTACH DATABASE 'x.db' AS x", "not_read_only"),
    ("PRAGMA writable_schema = 1", "not_read_only"),
    ("SELECT 1; DROP TABLE head", "not_read_only"),
    ("WITH x AS (DELETE FROM head RETURNING *) SELECT * FROM x", "not_read_only"),
    ("CREATE TABLE x AS SELECT * FROM head", "not_read_only"),
    ("SELECT salary FROM head", "unknown_column"),
    ("SELECT * FROM employees", "unknown_table"),
    ("SELEC name FROM", "parse_error"),
    ("", "no_sql"),
])
def test_writes_and_bad_queries_come_back_invalid(generated, reason):
    sql, valid, error = finish_sql(generated, TABLES, "postgres")
    assert not valid and error.startswith(reason)
    assert sql == generated  # returned as generated, so the caller sees what was refused


@pytest.mark.parametrize("dialect, expected", [
    ("sqlite", "SELECT name FROM head WHERE age > 56 LIMIT 3"),
    ("postgres", "SELECT name FROM head WHERE age > 56 LIMIT 3"),
    ("tsql", "SELECT TOP 3 name FROM head WHERE age > 56"),
    ("snowflake", "SELECT name FROM head WHERE age > 56 LIMIT 3"),
])
def test_valid_sql_is_transpiled(dialect, expected):
    sql, valid, error = finish_sql("SELECT name FROM head WHERE age > 56 LIMIT 3", TABLES, dialect)
    assert valid and error is None and sql == expected


def test_chat_messages_map_to_schema_and_question():
    from sqlfoundry.config.schema import DEFAULT_SYSTEM_PROMPT

    full_prompt = DEFAULT_SYSTEM_PROMPT.replace("{schema}", SCHEMA)
    for system in [SCHEMA, full_prompt]:
        body = ChatBody(model="m", messages=[{"role": "system", "content": system},
                                             {"role": "user", "content": "how many?"}])
        assert chat_to_sql_request(body) == (SCHEMA, "how many?")
    with pytest.raises(ApiError, match="system message"):
        chat_to_sql_request(ChatBody(model="m", messages=[{"role": "user", "content": "q"}]))
    with pytest.raises(ApiError, match="streaming"):
        chat_to_sql_request(ChatBody(model="m", stream=True, messages=[{"role": "user", "content": "q"}]))


@pytest.mark.parametrize("body, field", [
    ({"schema": SCHEMA, "question": "q", "dialect": "pg"}, "dialect"),
    ({"schema": SCHEMA, "question": "q", "adapter": "bad name"}, "adapter"),
    ({"schema": SCHEMA, "question": "q", "max_new_tokens": 0}, "max_new_tokens"),
    ({"schema": SCHEMA, "question": ""}, "question"),
    ({"schema": SCHEMA, "question": "q", "tempurature": 1}, "tempurature"),
])
def test_bad_request_fields_are_named(body, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        SqlBody.model_validate(body)
    assert field in str(err.value)


@pytest.mark.parametrize("args, field", [
    ({"batching": {"max_batch_size": 0}}, "batching.max_batch_size"),
    ({"limits": {"default_max_new_tokens": 500, "max_new_tokens": 100}}, "default_max_new_tokens"),
    ({"model_id": "has space"}, "model_id"),
    ({"max_loaded_adapters": 0}, "max_loaded_adapters"),
    ({"regsitry": "x"}, "regsitry"),
    ({"negative_cache_s": -1}, "negative_cache_s"),
    ({"allow_unauthenticated": "sometimes"}, "allow_unauthenticated"),
])
def test_bad_serving_args_are_rejected(args, field):
    with pytest.raises(ServeConfigError, match=field):
        parse_serve_config(args)


@pytest.mark.parametrize("name", ["local.yaml", "a100.yaml"])
def test_shipped_serve_configs_validate(name):
    """Both files pass Ray Serve's own schema and our args validation, with the expected scaling."""
    from pathlib import Path

    from ray.serve.schema import ServeDeploySchema

    from sqlfoundry.serving.deploy import load_serve_file

    config = load_serve_file(Path(__file__).resolve().parents[1] / "serve_configs" / name)
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    model = next(d for d in app.deployments if d.name == "SQLModel")
    batch = app.args["batching"]["max_batch_size"]
    assert model.max_ongoing_requests >= batch
    if name == "local.yaml":
        assert schema.http_options.host == "127.0.0.1"
        assert (model.autoscaling_config["min_replicas"], model.autoscaling_config["max_replicas"]) == (1, 2)
    else:
        assert model.ray_actor_options.num_gpus == 1 and model.ray_actor_options.accelerator_type == "A100"
        assert (model.autoscaling_config["min_replicas"], model.autoscaling_config["max_replicas"]) == (1, 8)
        assert app.args["quantization"]["mode"] == "nf4" and app.args["registry"].startswith("s3://")
        # It binds every interface, so it only starts with API keys in the ingress environment.
        assert schema.http_options.host == "0.0.0.0" and not app.args.get("allow_unauthenticated")
        with pytest.raises(ServeConfigError, match="SQLFOUNDRY_API_KEYS"):
            api_keys_for(schema.http_options.host, parse_serve_config(app.args), {})
        assert api_keys_for(schema.http_options.host, parse_serve_config(app.args),
                            {"SQLFOUNDRY_API_KEYS": "k1"}) == ["k1"]
        for key in ("target_ongoing_requests", "upscale_delay_s", "downscale_delay_s"):
            assert key in model.autoscaling_config


def test_serve_file_overrides_are_validated(tmp_path):
    from pathlib import Path

    from sqlfoundry.serving.deploy import load_serve_file

    local = Path(__file__).resolve().parents[1] / "serve_configs" / "local.yaml"
    with pytest.raises(ServeConfigError, match="limits.max_new_tokens"):
        load_serve_file(local, ["limits.max_new_tokens=0"])
    config = load_serve_file(local, ["registry=relative/registry"])
    assert Path(config["applications"][0]["args"]["registry"]).is_absolute()


# -- the answering strategy in the engine -------------------------------------------------------
def test_default_strategy_gives_exactly_the_greedy_answer(engine):
    """Everything off is today's path: the same prompt, one greedy decode, the same SQL and tokens."""
    from sqlfoundry.data.formatting import render_prompt
    from sqlfoundry.modeling.generation import generate_batch

    questions = ["how many heads are older than 56?", "list the budget of every dept", "which names?"]
    results = engine.generate([_request(question=q) for q in questions])
    before = generate_batch(engine.model, engine.tokenizer, [render_prompt(engine.tokenizer, SCHEMA, q) for q in questions],
                            max_new_tokens=12, adapter_names=["__base__"] * 3 if engine.adapters.loaded else None)
    assert [(r.sql, r.text, r.prompt_tokens, r.completion_tokens) for r in results] == \
        [(g.sql, g.text, g.prompt_tokens, g.completion_tokens) for g in before]
    assert all(r.confidence is None and r.candidates_considered == 1 and not r.repaired for r in results)
    assert all((r.pruned_tables, r.pruned_columns, r.few_shot) == (0, 0, 0) for r in results)


def test_candidates_per_request_in_one_mixed_batch(engine):
    """A row asking for candidates, a default row and a failing row in one batch: each gets its own."""
    alone = engine.generate([_request("alpha")])[0]
    results = engine.generate([SqlRequest(SCHEMA, "how many heads?", 12, candidates=3), _request("nope"),
                               _request("alpha")])
    assert results[0].error is None and results[0].candidates_considered == 3
    assert results[0].confidence is not None and 0 <= results[0].confidence <= 1  # executed and voted
    assert results[1].error == "unknown_adapter"
    assert (results[2].text, results[2].candidates_considered, results[2].confidence) == (alone.text, 1, None)


def test_candidates_left_to_the_caller_are_checked_not_executed(engine):
    """execute_candidates=False (/v1/query runs them on the real database): no synthesized
    database is built, and every candidate comes back with its check, greedy first."""
    misses = engine.pipeline.cache.misses
    [result] = engine.generate([SqlRequest(SCHEMA, "how many heads?", 12, candidates=3, execute_candidates=False)])
    assert result.error is None and engine.pipeline.cache.misses == misses
    assert len(result.candidates) == 3 and [c["greedy"] for c in result.candidates] == [True, False, False]
    assert result.sql in [c["sql"] for c in result.candidates]
    assert all(set(c) == {"sql", "greedy", "problem", "group", "repair"} for c in result.candidates)


def test_pruning_and_examples_reach_the_prompt(engine, monkeypatch):
    from sqlfoundry.answering.pipeline import Pipeline
    from sqlfoundry.answering.retrieve import ExampleIndex
    from sqlfoundry.config.schema import StrategyConfig

    plain = engine.generate([_request()])[0]
    rows = [{"question": "How many heads are older than 60?", "context": "CREATE TABLE head (age INTEGER)",
             "answer": "SELECT COUNT(*) FROM head WHERE age > 60"}]
    strategy = StrategyConfig(prune=True, prune_min_columns=2, few_shot_k=1, examples="rows.jsonl")
    monkeypatch.setattr(engine, "pipeline", Pipeline(strategy, ExampleIndex(rows)))
    result = engine.generate([_request()])[0]
    # dept goes; head is named by the question and, no column of it mentioned, kept whole
    assert result.error is None and (result.pruned_tables, result.pruned_columns, result.few_shot) == (1, 0, 1)
    assert result.prompt_tokens > plain.prompt_tokens  # the example turns are in the prompt


def test_an_adapter_that_breaks_generation_fails_only_its_rows(engine, monkeypatch):
    """An adapter can load fine and still make a mixed batch raise (peft refuses some per-row mixes):
    its rows fail, the rest of the batch is answered as if alone, and it is unloaded."""
    import sqlfoundry.serving.engine as engine_module

    real = engine_module.generate_candidates

    def refuses_beta(model, tokenizer, prompts, counts, sampling, adapter_names=None, **kwargs):
        if adapter_names and any(name.startswith("beta") for name in adapter_names):
            raise ValueError("this adapter cannot be mixed into a batch")
        return real(model, tokenizer, prompts, counts, sampling, adapter_names=adapter_names, **kwargs)

    monkeypatch.setattr(engine_module, "generate_candidates", refuses_beta)
    failed = _isolated(engine, "beta")
    assert failed.error == "generation_failed" and "ValueError" in failed.detail
    assert not any(key.startswith("beta@") for key in engine.adapters.loaded)


def test_a_row_that_breaks_generation_fails_alone_in_a_one_adapter_batch(engine, monkeypatch):
    """No adapter to blame (one group): the rows are answered one by one, only the breaking one fails."""
    import sqlfoundry.serving.engine as engine_module

    real = engine_module.generate_candidates

    def refuses_poison(model, tokenizer, prompts, counts, sampling, **kwargs):
        if any("poison" in prompt for prompt in prompts):
            raise RuntimeError("this prompt cannot be generated")
        return real(model, tokenizer, prompts, counts, sampling, **kwargs)

    alone = engine.generate([_request(), _request(question="list the names")])
    monkeypatch.setattr(engine_module, "generate_candidates", refuses_poison)
    results = engine.generate([_request(), _request(question="poison"), _request(question="list the names")])
    assert results[1].error == "generation_failed"
    assert [(r.error, r.text) for r in (results[0], results[2])] == [(None, r.text) for r in alone]
