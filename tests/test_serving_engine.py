"""The serving core without Ray: adapter LRU, alias refresh, mixed-adapter batches, SQL checks."""

import time

import pytest

from sqlfoundry.sql.schema import parse_schema
from sqlfoundry.serving.api import ChatBody, ApiError, SqlBody, chat_to_sql_request, finish_sql
from sqlfoundry.serving.config import ServeConfigError, parse_serve_config
from sqlfoundry.serving.engine import SqlEngine, SqlRequest
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
    assert result.error == "adapter_unavailable" and "sha256" in result.detail


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
