"""The Ray Serve application: `serve run serve_configs/local.yaml` builds it with `build_app`.

Two deployments, because they scale on different things:
- SQLIngress (FastAPI, no GPU): auth, body limits, validation, schema parsing, SQL checks and
  dialect transpilation. Bad requests are answered here and never take a slot on a GPU replica.
- SQLModel (one GPU each in production): the base model, an LRU of adapters, and `@serve.batch`
  dynamic batching. It autoscales on ongoing requests; its queue limit is the backpressure point.
"""

# No `from __future__ import annotations`: FastAPI must see the real body types on the routes.
import asyncio
import dataclasses
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

from sqlfoundry.sql.schema import SchemaError, parse_schema
from sqlfoundry.serving.api import ApiError, ChatBody, SqlBody, adapter_for_model, chat_to_sql_request, finish_sql
from sqlfoundry.serving.config import ServeConfig, ServeConfigError, api_keys_for, parse_serve_config
from sqlfoundry.databases import DatabaseError, Databases
from sqlfoundry.serving.api import QueryBody
from sqlfoundry.serving.db_access import api_error, database_for, listing, run_and_vote
from sqlfoundry.serving.guard import RequestGuard, error_response
from sqlfoundry.playground.mount import mount_playground
from sqlfoundry.serving.routing import ROUTER_CLASS
from sqlfoundry.serving.metrics import UNRESOLVED_TAG, IngressMetrics, ModelMetrics, adapter_tag
from sqlfoundry.storage.registry import AdapterRef, Registry

# Serve routes the "ray.serve" logger of a replica to its log files, with the request id.
log = logging.getLogger("ray.serve")

# Engine error kinds (serving/adapters.py) -> (status, OpenAI error type). Storage failures are 503:
# the adapter may be fine and the same request may pass once the storage answers again.
ERROR_STATUS = {"unknown_adapter": (404, "not_found_error"), "adapter_mismatch": (409, "adapter_error"),
                "adapter_invalid": (502, "adapter_error"), "adapter_unavailable": (503, "adapter_error"),
                "generation_failed": (500, "server_error")}
# A model replica gone mid-request (ActorDiedError, ActorUnavailableError are RayActorErrors).
REPLICA_LOST = (RayActorError, DeploymentUnavailableError, ReplicaUnavailableError)
REPLICA_LOSS_RETRIES = 1


# Requests for an adapter go to its home replica (serving/routing.py; bind_app sets the router).
@serve.deployment(name="SQLModel", max_ongoing_requests=32, max_queued_requests=64)
class SQLModel:
    def __init__(self, config: dict):
        from sqlfoundry.modeling.loading import set_cpu_threads
        from sqlfoundry.serving.engine import SqlEngine

        import ray

        cfg = parse_serve_config(config)
        # Torch gets the CPUs this replica was given, not every core of the node.
        set_cpu_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        self.engine = SqlEngine(cfg)
        self.generate_batch.set_max_batch_size(cfg.batching.max_batch_size)
        self.generate_batch.set_batch_wait_timeout_s(cfg.batching.batch_wait_timeout_s)
        # Generation runs in one worker thread so the replica's event loop keeps collecting the
        # next batch (and answering health checks) while the model works.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self.metrics = ModelMetrics()

    async def generate(self, request) -> dict:
        arrival = time.perf_counter()
        token = id(request)  # unique while the request object lives, i.e. while it is queued or running
        self.metrics.arrived(token)
        try:
            return await self.generate_batch((token, arrival, request))
        finally:
            self.metrics.left(token)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def generate_batch(self, items: list) -> list[dict]:
        """`items`: (queue token, arrival perf_counter, SqlRequest) per request."""
        self.metrics.batch_started([token for token, _, _ in items])
        started, loads = time.perf_counter(), self.engine.adapters.loads
        requests = [request for _, _, request in items]
        try:
            results = await asyncio.get_running_loop().run_in_executor(self.executor, self.engine.generate, requests)
        finally:  # a batch that raises may have loaded adapters too
            self.metrics.adapters_loaded(self.engine.adapters.loads - loads)
        elapsed = time.perf_counter() - started
        log.info("generated a batch of %d in %.2fs", len(requests), elapsed)
        tokens: dict[str, int] = {}
        first_step = self.engine.first_step_at  # read before the next batch can reset it
        for (_, arrival, _), result in zip(items, results):
            if result.error is None:
                adapter = adapter_tag(result.adapter)
                tokens[adapter] = tokens.get(adapter, 0) + result.completion_tokens
                if first_step is not None:
                    self.metrics.first_token_ms(adapter, (first_step - arrival) * 1000)
        self.metrics.batch_done(elapsed, tokens)
        return [r.to_dict() for r in results]


app = FastAPI(title="sqlfoundry", description="Text-to-SQL: {schema, question} -> one read-only SQL query.")


def _request_id(headers) -> str:
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or uuid.uuid4().hex
    except Exception:  # outside a Serve request (unit use)
        return headers.get("x-request-id") or uuid.uuid4().hex


# API key and body limit before FastAPI reads the body. (Serve's proxy puts the request id in the
# X-Request-Id response header; error bodies carry it too.)
app.add_middleware(RequestGuard, request_id=_request_id)
# The playground (Gradio) at /ui, behind the same keys: a login form sets a /ui-only cookie.
mount_playground(app)


@app.exception_handler(ApiError)
async def _api_error(request: Request, err: ApiError):
    return error_response(request.state.request_id, err)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, err: RequestValidationError):
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    if first["type"] == "json_invalid":
        return error_response(request.state.request_id, ApiError(400, f"malformed JSON: {first['msg']}", "body"))
    return error_response(request.state.request_id, ApiError(422, f"{field}: {first['msg']}", field))


def _http_options():
    """Serve's HTTP options (http_options of the config file), from the Serve controller."""
    from ray.serve.context import _get_global_client

    return _get_global_client().http_config


def _model_budget_s(request_timeout_s: float | None) -> float | None:
    """How long the ingress waits for the model: a little under the proxy's request_timeout_s, so
    a request that waits for a replica (all of them restarting) is answered 503 + Retry-After by
    us rather than 408 by the proxy. None (no proxy timeout): no bound."""
    return None if request_timeout_s is None else max(1.0, request_timeout_s - 5)


@serve.deployment(name="SQLIngress", max_ongoing_requests=512)
@serve.ingress(app)
class SQLIngress:
    def __init__(self, model, config: dict):
        self.model = model
        self.config: ServeConfig = parse_serve_config(config)
        self.registry = Registry(self.config.registry) if self.config.registry else None
        # Engines connect on first use: a database that is down does not stop the ingress starting.
        self.databases = Databases(self.config.databases, os.environ)
        # Refuses to start on a non-loopback host without keys (unless args.allow_unauthenticated).
        http = _http_options()
        app.state.api_keys = api_keys_for(http.host, self.config, os.environ)
        self.model_budget_s = _model_budget_s(http.request_timeout_s)
        app.state.max_body_bytes = self.config.limits.max_body_bytes
        self.metrics = IngressMetrics()
        log.info("ingress ready: model_id=%s registry=%s auth=%s", self.config.model_id,
                 self.config.registry, "on" if app.state.api_keys else "off")

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "model": self.config.model_id}

    @app.get("/v1/models")
    async def models(self) -> dict:
        base = self.config.model_id
        ids = [base]
        if self.registry is not None:
            for name in await asyncio.to_thread(self.registry.names):
                ids.append(f"{base}:{name}")
                ids.extend(f"{base}:{name}@{alias}" for alias in sorted(self.registry.aliases(name)))
        return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "sqlfoundry"} for i in ids]}

    @app.get("/v1/databases")
    async def list_databases(self, request: Request) -> dict:
        return listing(self.databases, request.headers)

    @app.get("/v1/databases/{name}/schema")
    async def database_schema(self, name: str, request: Request) -> dict:
        db = database_for(self.databases, name, request.headers)
        snapshot = await self._schema(db)
        return {"name": db.name, "dialect": db.dialect, "schema": snapshot.text,
                "tables": [dataclasses.asdict(table) for table in snapshot.tables],
                "sample_values": snapshot.samples}

    @app.post("/v1/query")
    async def query(self, body: QueryBody, request: Request) -> dict:
        return await self._timed("/v1/query", request, self._query(body, request), bool(body.adapter))

    @app.post("/v1/sql")
    async def sql(self, body: SqlBody, request: Request) -> dict:
        async def run():
            schema, dialect, tables = await self._sql_schema(body, request)
            return await self._answer(schema, body.question, dialect, body.adapter, body.max_new_tokens, request,
                                      body.candidates, tables)
        return await self._timed("/v1/sql", request, run(), bool(body.adapter))

    async def _sql_schema(self, body: SqlBody, request: Request) -> tuple:
        """(schema text, dialect, tables) of a /v1/sql body: its own schema (tables None: parsed from
        it), or a database's (SQL only, not run) with its introspected tables."""
        if (body.schema_ is None) == (body.database is None):
            raise ApiError(422, "send either schema (CREATE TABLE statements) or database (a name from "
                                "GET /v1/databases)", "schema")
        if body.database is None:
            return body.schema_, body.dialect, None
        db = database_for(self.databases, body.database, request.headers)
        snapshot = await self._schema(db)
        return (snapshot.text, body.dialect if "dialect" in body.model_fields_set else db.dialect,
                snapshot.tables)

    async def _schema(self, db):
        try:
            return await asyncio.to_thread(db.schema)
        except DatabaseError as err:
            raise api_error(err) from None

    async def _query(self, body: QueryBody, request: Request) -> dict:
        """Generate SQL from the database's introspected schema, then run it there read-only
        (databases.run_candidate: checked, transpiled, read-only transaction, time limit, row cap).
        With several candidates the model replica only checks them; they run here, on the
        database itself, and the vote is on their real rows (db_access.run_and_vote)."""
        from sqlfoundry.serving.engine import SqlRequest

        limits = self.config.limits
        db = database_for(self.databases, body.database, request.headers)
        if body.max_rows is not None and body.max_rows > db.config.max_rows:
            raise ApiError(422, f"max_rows must be at most {db.config.max_rows} (the database's max_rows)", "max_rows")
        self._check_candidates(body.candidates)
        if len(body.question) > limits.max_question_chars:
            raise ApiError(422, f"question is {len(body.question)} characters; the limit is "
                                f"{limits.max_question_chars}", "question")
        if body.max_new_tokens is not None and body.max_new_tokens > limits.max_new_tokens:
            raise ApiError(422, f"max_new_tokens must be at most {limits.max_new_tokens}", "max_new_tokens")
        snapshot = await self._schema(db)
        if len(snapshot.text) > limits.max_schema_chars:
            raise ApiError(422, f"database {db.name}'s schema is {len(snapshot.text)} characters; the limit is "
                                f"{limits.max_schema_chars} (limits.max_schema_chars)", "database")
        started = time.perf_counter()
        result = await self._generate(SqlRequest(
            schema=snapshot.text, question=body.question, adapter=body.adapter,
            max_new_tokens=body.max_new_tokens or limits.default_max_new_tokens, candidates=body.candidates,
            execute_candidates=False))
        try:
            outcome, confidence = await asyncio.to_thread(run_and_vote, db, result["candidates"], body.max_rows,
                                                          snapshot.tables)
        except DatabaseError as err:
            raise api_error(err) from None
        if outcome.error_kind == "timeout":
            raise ApiError(504, outcome.error, "database", kind="timeout_error")
        return {
            "sql": outcome.sql, "dialect": outcome.dialect, "valid": outcome.valid, "error": outcome.error,
            "columns": outcome.columns, "rows": outcome.rows, "row_count": outcome.row_count,
            "truncated": outcome.truncated, "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "adapter": result["adapter"], "request_id": request.state.request_id,
            "confidence": confidence, "candidates_considered": len(result["candidates"]),
        }

    def _check_candidates(self, candidates: int | None) -> None:
        if candidates is not None and candidates > self.config.strategy.max_candidates:
            raise ApiError(422, f"candidates must be at most {self.config.strategy.max_candidates} (the "
                                "deployment's strategy.max_candidates)", "candidates")

    @app.post("/v1/chat/completions")
    async def chat(self, body: ChatBody, request: Request) -> dict:
        async def run():
            schema, question = chat_to_sql_request(body)
            adapter = adapter_for_model(body.model, self.config.model_id)
            answer = await self._answer(schema, question, body.dialect, adapter,
                                        body.max_completion_tokens or body.max_tokens, request)
            return {
                "id": f"chatcmpl-{answer['request_id']}", "object": "chat.completion", "created": int(time.time()),
                "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer["sql"]},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": answer["prompt_tokens"], "completion_tokens": answer["completion_tokens"],
                          "total_tokens": answer["prompt_tokens"] + answer["completion_tokens"]},
                "sqlfoundry": {k: answer[k] for k in ("valid", "error", "dialect", "adapter", "latency_ms")},
            }
        return await self._timed("/v1/chat/completions", request, run(), body.model != self.config.model_id)

    async def _timed(self, route: str, request: Request, work, adapter_asked: bool) -> dict:
        started, status = time.perf_counter(), 200
        adapter = UNRESOLVED_TAG if adapter_asked else adapter_tag(None)
        try:
            answer = await work
            # The adapter that answered (name@version; the chat route nests it): its name is the tag.
            adapter = adapter_tag(answer.get("adapter") or answer.get("sqlfoundry", {}).get("adapter"))
            return answer
        except ApiError as err:
            status = err.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.metrics.record(route, status, adapter, elapsed_ms)
            log.info("request_id=%s route=%s status=%d latency_ms=%.0f", request.state.request_id, route,
                     status, elapsed_ms)

    async def _generate(self, request) -> dict:
        """The model deployment's answer; a full queue is 503 + Retry-After, an engine error its status.

        A model replica that dies with the request in flight (killed, out of memory, node lost) is
        retried once: generation has no side effects, and Serve's router has by then dropped the
        dead replica, so the retry goes to a live one (or waits for the replacement, within the
        proxy's request_timeout_s). A second loss, or no answer within that time, is 503 +
        Retry-After, never a 500, a 408 or a hang."""
        deadline = None if self.model_budget_s is None else time.monotonic() + self.model_budget_s
        model = self.model
        if request.adapter and self.config.adapter_affinity:  # to the adapter's home replica (routing.py)
            model = model.options(multiplexed_model_id=AdapterRef.parse(request.adapter).name)
        for attempt in range(1 + REPLICA_LOSS_RETRIES):
            try:
                left = None if deadline is None else max(0.1, deadline - time.monotonic())
                result = await asyncio.wait_for(model.generate.remote(request), left)  # cancels on timeout
                break
            except asyncio.TimeoutError:
                raise ApiError(503, "the model did not answer in time (replicas restarting or overloaded); retry "
                                    "shortly", kind="unavailable_error", headers={"Retry-After": "5"}) from None
            except BackPressureError:
                raise ApiError(503, "the model is at capacity; retry shortly", kind="overloaded_error",
                               headers={"Retry-After": "1"}) from None
            except REPLICA_LOST as err:
                log.warning("model replica lost with a request in flight (attempt %d): %s", attempt + 1,
                            type(err).__name__)
        else:
            raise ApiError(503, "the model replica stopped while answering; retry shortly",
                           kind="unavailable_error", headers={"Retry-After": "2"})
        if result["error"]:
            status, kind = ERROR_STATUS[result["error"]]
            # The storage may answer again soon (adapters.py does not cache storage failures).
            headers = {"Retry-After": "5"} if status == 503 else None
            raise ApiError(status, result["detail"], None if status == 500 else "adapter", kind=kind, headers=headers)
        return result

    async def _answer(self, schema: str, question: str, dialect: str, adapter: str | None,
                      max_new_tokens: int | None, request: Request, candidates: int | None = None,
                      tables: list | None = None) -> dict:
        from sqlfoundry.serving.engine import SqlRequest

        limits, strategy = self.config.limits, self.config.strategy
        self._check_candidates(candidates)
        if len(schema) > limits.max_schema_chars:
            raise ApiError(422, f"schema is {len(schema)} characters; the limit is {limits.max_schema_chars}", "schema")
        if len(question) > limits.max_question_chars:
            raise ApiError(422, f"question is {len(question)} characters; the limit is "
                                f"{limits.max_question_chars}", "question")
        if max_new_tokens is not None and max_new_tokens > limits.max_new_tokens:
            raise ApiError(422, f"max_new_tokens must be at most {limits.max_new_tokens}", "max_new_tokens")
        try:
            # A database's SQL is checked against its introspected tables, never a re-parse of the
            # rendered text (stored sample values end up in that text).
            tables = parse_schema(schema) if tables is None else tables
        except SchemaError as err:
            raise ApiError(422, f"schema must be CREATE TABLE statements: {err}", "schema") from None
        if self.config.log_text:
            log.info("request_id=%s schema=%r question=%r", request.state.request_id, schema, question)
        started = time.perf_counter()
        result = await self._generate(SqlRequest(
            schema=schema, question=question, adapter=adapter,
            max_new_tokens=max_new_tokens or limits.default_max_new_tokens, candidates=candidates))
        sql, valid, error = finish_sql(result["sql"], tables, dialect)
        return {
            "sql": sql, "dialect": dialect, "valid": valid, "error": error, "adapter": result["adapter"],
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "prompt_tokens": result["prompt_tokens"], "completion_tokens": result["completion_tokens"],
            "request_id": request.state.request_id,
            "confidence": result["confidence"], "candidates_considered": result["candidates_considered"],
            "pruned_tables": result["pruned_tables"], "pruned_columns": result["pruned_columns"],
            "strategy": {"candidates": candidates or strategy.candidates, "few_shot": result["few_shot"],
                         "prune": strategy.prune, "repair": strategy.repair, "repaired": result["repaired"]},
        }


def build_app(args: dict):
    """Serve application builder: `args` is the `args:` mapping of a serve_configs/*.yaml app.

    Invalid args fail here, at deploy time, with the field named (ServeConfigError)."""
    return bind_app(args)


def bind_app(args: dict, options: dict[str, dict] | None = None):
    """The application of `args` with `options` (deployment name -> `Deployment.options()` keywords,
    the `deployments:` entries of a config file) applied: serving/deploy.py deploys a config file
    through Serve's public API with it. Serve calls builders with one argument, hence build_app."""
    options = dict(options or {})
    parsed = parse_serve_config(args)
    model_options = dict(options.pop("SQLModel", {}))
    # The router mirrors each replica's adapter LRU (routing.py), so it needs the LRU's size.
    model_options.setdefault("request_router_config", RequestRouterConfig(
        request_router_class=ROUTER_CLASS, request_router_kwargs={"adapters_per_replica": parsed.max_loaded_adapters}))
    model, ingress = SQLModel.options(**model_options), SQLIngress.options(**options.pop("SQLIngress", {}))
    if options:
        raise ServeConfigError(f"deployments: unknown deployment {sorted(options)[0]!r} "
                               "(this application has SQLModel and SQLIngress)")
    config = parsed.model_dump(mode="json")
    return ingress.bind(model.bind(config), config)
