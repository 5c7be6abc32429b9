"""The Ray Serve application: `serve run serve_configs/local.yaml` builds it with `build_app`.

Two deployments, because they scale on different things:
- SQLIngress (FastAPI, no GPU): auth, body limits, validation, schema parsing, SQL checks and
  dialect transpilation. Bad requests are answered here and never take a slot on a GPU replica.
- SQLModel (one GPU each in production): the base model, an LRU of adapters, and `@serve.batch`
  dynamic batching. It autoscales on ongoing requests; its queue limit is the backpressure point.
"""

# No `from __future__ import annotations`: FastAPI must see the real body types on the routes.
import asyncio
import hmac
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.metrics import Counter, Histogram

from sqlfoundry.sql.schema import SchemaError, parse_schema
from sqlfoundry.serving.api import ApiError, ChatBody, SqlBody, chat_to_sql_request, finish_sql
from sqlfoundry.serving.config import ServeConfig, parse_serve_config
from sqlfoundry.storage.registry import Registry

# Serve routes the "ray.serve" logger of a replica to its log files, with the request id.
log = logging.getLogger("ray.serve")

ERROR_STATUS = {"unknown_adapter": 404, "adapter_mismatch": 409, "adapter_unavailable": 502}


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
        self.batch_size = Histogram("sqlfoundry_batch_size", description="Rows per generation batch",
                                    boundaries=[1, 2, 4, 8, 16, 32, 64, 128])
        self.generated_tokens = Counter("sqlfoundry_generated_tokens", description="Completion tokens generated")

    async def generate(self, request) -> dict:
        return await self.generate_batch(request)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def generate_batch(self, requests: list) -> list[dict]:
        self.batch_size.observe(len(requests))
        started = time.perf_counter()
        results = await asyncio.get_running_loop().run_in_executor(self.executor, self.engine.generate, requests)
        log.info("generated a batch of %d in %.2fs", len(requests), time.perf_counter() - started)
        tokens = sum(r.completion_tokens for r in results)
        if tokens:  # Ray counters refuse 0
            self.generated_tokens.inc(tokens)
        return [r.to_dict() for r in results]


app = FastAPI(title="sqlfoundry", description="Text-to-SQL: {schema, question} -> one read-only SQL query.")


def _error_response(request_id: str, err: ApiError) -> JSONResponse:
    body = {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.status},
            "request_id": request_id}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def _request_id(request: Request) -> str:
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or uuid.uuid4().hex
    except Exception:  # outside a Serve request (unit use)
        return request.headers.get("x-request-id") or uuid.uuid4().hex


@app.middleware("http")
async def _limits_and_ids(request: Request, call_next):
    """Bodies over the limit refused before they are parsed. (Serve's proxy puts the request id in
    the X-Request-Id response header; error bodies carry it too.)"""
    request.state.request_id = _request_id(request)
    limit = request.app.state.max_body_bytes
    declared = request.headers.get("content-length")
    too_big = (declared is not None and declared.isdigit() and int(declared) > limit) or (
        declared is None and request.method == "POST" and len(await request.body()) > limit)
    if too_big:
        return _error_response(request.state.request_id, ApiError(
            413, f"request body is larger than {limit} bytes (limits.max_body_bytes)", "body"))
    return await call_next(request)


@app.exception_handler(ApiError)
async def _api_error(request: Request, err: ApiError):
    return _error_response(request.state.request_id, err)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, err: RequestValidationError):
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    if first["type"] == "json_invalid":
        return _error_response(request.state.request_id, ApiError(400, f"malformed JSON: {first['msg']}", "body"))
    return _error_response(request.state.request_id, ApiError(422, f"{field}: {first['msg']}", field))


def _require_key(request: Request) -> None:
    keys = request.app.state.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), k.encode()) for k in keys):
        raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>", "authorization",
                       kind="authentication_error", headers={"WWW-Authenticate": "Bearer"})


@serve.deployment(name="SQLIngress", max_ongoing_requests=512)
@serve.ingress(app)
class SQLIngress:
    def __init__(self, model, config: dict):
        self.model = model
        self.config: ServeConfig = parse_serve_config(config)
        self.registry = Registry(self.config.registry) if self.config.registry else None
        keys = os.environ.get("SQLFOUNDRY_API_KEYS", "")
        app.state.api_keys = [k.strip() for k in keys.split(",") if k.strip()]
        app.state.max_body_bytes = self.config.limits.max_body_bytes
        self.requests = Counter("sqlfoundry_requests", description="HTTP requests by route and status",
                                tag_keys=("route", "status"))
        self.latency = Histogram("sqlfoundry_request_latency_ms", description="Request latency (ms)",
                                 boundaries=[10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
                                 tag_keys=("route",))
        log.info("ingress ready: model_id=%s registry=%s auth=%s", self.config.model_id,
                 self.config.registry, "on" if app.state.api_keys else "off")

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "model": self.config.model_id}

    @app.get("/v1/models", dependencies=[Depends(_require_key)])
    async def models(self) -> dict:
        base = self.config.model_id
        ids = [base]
        if self.registry is not None:
            for name in await asyncio.to_thread(self.registry.names):
                ids.append(f"{base}:{name}")
                ids.extend(f"{base}:{name}@{alias}" for alias in sorted(self.registry.aliases(name)))
        return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "sqlfoundry"} for i in ids]}

    @app.post("/v1/sql", dependencies=[Depends(_require_key)])
    async def sql(self, body: SqlBody, request: Request) -> dict:
        return await self._timed("/v1/sql", request, self._answer(
            body.schema_, body.question, body.dialect, body.adapter, body.max_new_tokens, request))

    @app.post("/v1/chat/completions", dependencies=[Depends(_require_key)])
    async def chat(self, body: ChatBody, request: Request) -> dict:
        async def run():
            schema, question = chat_to_sql_request(body)
            adapter = self._adapter_for_model(body.model)
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
        return await self._timed("/v1/chat/completions", request, run())

    def _adapter_for_model(self, model: str) -> str | None:
        base, sep, adapter = model.partition(":")
        if base != self.config.model_id or (sep and not adapter):
            raise ApiError(404, f"unknown model {model!r}; GET /v1/models lists what this endpoint serves",
                           "model", kind="not_found_error")
        return adapter or None

    async def _timed(self, route: str, request: Request, work) -> dict:
        started, status = time.perf_counter(), 200
        try:
            return await work
        except ApiError as err:
            status = err.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.requests.inc(tags={"route": route, "status": str(status)})
            self.latency.observe(elapsed_ms, tags={"route": route})
            log.info("request_id=%s route=%s status=%d latency_ms=%.0f", request.state.request_id, route,
                     status, elapsed_ms)

    async def _answer(self, schema: str, question: str, dialect: str, adapter: str | None,
                      max_new_tokens: int | None, request: Request) -> dict:
        from sqlfoundry.serving.engine import SqlRequest

        limits = self.config.limits
        if len(schema) > limits.max_schema_chars:
            raise ApiError(422, f"schema is {len(schema)} characters; the limit is {limits.max_schema_chars}", "schema")
        if len(question) > limits.max_question_chars:
            raise ApiError(422, f"question is {len(question)} characters; the limit is "
                                f"{limits.max_question_chars}", "question")
        if max_new_tokens is not None and max_new_tokens > limits.max_new_tokens:
            raise ApiError(422, f"max_new_tokens must be at most {limits.max_new_tokens}", "max_new_tokens")
        try:
            tables = parse_schema(schema)
        except SchemaError as err:
            raise ApiError(422, f"schema must be CREATE TABLE statements: {err}", "schema") from None
        if self.config.log_text:
            log.info("request_id=%s schema=%r question=%r", request.state.request_id, schema, question)
        started = time.perf_counter()
        try:
            result = await self.model.generate.remote(SqlRequest(
                schema=schema, question=question, adapter=adapter,
                max_new_tokens=max_new_tokens or limits.default_max_new_tokens))
        except BackPressureError:
            raise ApiError(503, "the model is at capacity; retry shortly", kind="overloaded_error",
                           headers={"Retry-After": "1"}) from None
        if result["error"]:
            raise ApiError(ERROR_STATUS[result["error"]], result["detail"], "adapter",
                           kind="not_found_error" if result["error"] == "unknown_adapter" else "adapter_error")
        sql, valid, error = finish_sql(result["sql"], tables, dialect)
        return {
            "sql": sql, "dialect": dialect, "valid": valid, "error": error, "adapter": result["adapter"],
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "prompt_tokens": result["prompt_tokens"], "completion_tokens": result["completion_tokens"],
            "request_id": request.state.request_id,
        }


def build_app(args: dict):
    """Serve application builder: `args` is the `args:` mapping of a serve_configs/*.yaml app.

    Invalid args fail here, at deploy time, with the field named (ServeConfigError)."""
    config = parse_serve_config(args).model_dump(mode="json")
    return SQLIngress.bind(SQLModel.bind(config), config)
