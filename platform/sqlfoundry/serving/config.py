"""The serving configuration: the `args` of the Serve application in serve_configs/*.yaml.

Replica counts, autoscaling, resources and queue limits are Ray Serve's own deployment options
(the `deployments:` section of the same file); this holds what only sqlfoundry knows: which
model, where adapters come from, how requests are batched and what input is accepted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sqlfoundry.config.loader import ConfigError, format_validation_error
from sqlfoundry.config.schema import ModelConfig, QuantizationConfig, StrategyConfig
from sqlfoundry.databases.config import DatabaseConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchingConfig(_Section):
    # Rows generated together; at most the model deployment's max_ongoing_requests.
    max_batch_size: int = Field(16, ge=1, le=256)
    # How long the first request of a batch waits for company.
    batch_wait_timeout_s: float = Field(0.05, ge=0, le=10)


class LimitsConfig(_Section):
    max_schema_chars: int = Field(16_000, ge=100)
    max_question_chars: int = Field(2_000, ge=10)
    max_new_tokens: int = Field(256, ge=1, le=4096)  # the most a request may ask for
    default_max_new_tokens: int = Field(128, ge=1, le=4096)
    max_body_bytes: int = Field(64_000, ge=1_000)  # refused with 413 before parsing

    def model_post_init(self, _context) -> None:
        if self.default_max_new_tokens > self.max_new_tokens:
            raise ValueError("limits.default_max_new_tokens must not exceed limits.max_new_tokens")


class ServeConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    # The id clients see in /v1/models; adapters appear as "<model_id>:<adapter>".
    model_id: str = Field("sqlfoundry", pattern=r"^[A-Za-z0-9._-]+$")
    # Adapter registry: local folder or s3://bucket/prefix; None serves the base model only.
    registry: str | None = None
    max_loaded_adapters: int = Field(4, ge=1, le=64)  # LRU per replica
    # Requests for an adapter go to its home replica (serving/routing.py: rendezvous hashing of the
    # adapter name over the live replicas), so each replica loads its share of the adapters instead
    # of all of them in turn. Off: any replica, as for the base model.
    adapter_affinity: bool = True
    # A name or name@alias is resolved again after this long: how fast a promotion reaches replicas.
    alias_refresh_s: float = Field(10.0, ge=0)
    # An adapter ref the registry does not know is answered 404 from memory for this long, so a
    # client repeating it costs one storage LIST per replica per period, not one per request.
    negative_cache_s: float = Field(5.0, ge=0, le=300)
    adapter_cache_dir: str | None = None  # default: $SQLFOUNDRY_CACHE/serve-adapters
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    # How answers are made (candidates, retrieval, pruning, repair): the deployment's defaults; a
    # /v1/sql request may ask for up to strategy.max_candidates candidates.
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    # Named real databases for /v1/query, /v1/databases and /v1/sql's `database` (sqlfoundry.databases).
    databases: dict[str, DatabaseConfig] = Field(default_factory=dict)
    # Schema and question text stay out of logs unless asked (they may be customer data).
    log_text: bool = False
    # Serve without API keys on a host other than loopback (only behind a gateway that authenticates).
    allow_unauthenticated: bool = False

    @field_validator("strategy")
    @classmethod
    def _examples_file(cls, value: StrategyConfig) -> StrategyConfig:
        # A replica holds one retrieval index for every adapter it serves: it comes from a file.
        if value.few_shot_k and not value.examples:
            raise ValueError("few_shot_k > 0 needs strategy.examples (a JSON/JSONL file of question/context/answer "
                             "rows) when serving; replicas do not read each adapter's examples.jsonl yet")
        return value

    @field_validator("databases")
    @classmethod
    def _database_names(cls, value: dict[str, DatabaseConfig]) -> dict[str, DatabaseConfig]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                raise ValueError(f"database name {name!r}: use letters, digits, _ and - (it is part of a URL)")
        return value


class ServeConfigError(ConfigError):
    """Bad serving args; the message names the field."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it is reachable from the network
        return False


def api_keys_for(host: str, config: ServeConfig, environ: Mapping[str, str]) -> list[str]:
    """The API keys from SQLFOUNDRY_API_KEYS (comma-separated) in the ingress's environment.
    Refuses to serve a non-loopback `host` without keys unless the args allow it."""
    keys = [key.strip() for key in environ.get("SQLFOUNDRY_API_KEYS", "").split(",") if key.strip()]
    if not keys and not is_loopback(host) and not config.allow_unauthenticated:
        raise ServeConfigError(
            f"http_options.host is {host!r}, reachable from the network, but SQLFOUNDRY_API_KEYS is not set: "
            "set SQLFOUNDRY_API_KEYS=key1,key2 in the ingress environment (the nodes' environment or "
            "deployments[SQLIngress].ray_actor_options.runtime_env.env_vars), or bind http_options.host: "
            "127.0.0.1, or set args.allow_unauthenticated: true if a gateway in front authenticates")
    return keys


def parse_serve_config(args: dict | None) -> ServeConfig:
    try:
        return ServeConfig.model_validate(args or {})
    except ValidationError as err:
        raise ServeConfigError(format_validation_error(err, "serving args", "serve_configs/*.yaml")) from None
