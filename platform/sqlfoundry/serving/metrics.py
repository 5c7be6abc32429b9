"""The Serve app's Prometheus metrics, in one place so serve_configs/grafana_dashboard.json can be
checked against them.

They are Ray Serve metrics (`ray.serve.metrics`): each series also carries the `deployment`,
`replica` and `application` tags, and Ray exports them on every node's metrics port with a `ray_`
prefix (`sqlfoundry_requests` is scraped as `ray_sqlfoundry_requests_total`, a histogram as
`..._bucket`/`_sum`/`_count`). Tag values stay few: `adapter` is an adapter *name* the registry
answered with (never the version, never a client's unresolved text), "base", or "unresolved".

The engine does not stream, so time to first token is measured at the model replica: from the
request's arrival there to the end of the first forward pass of the batch it joined (the prefill,
which yields every row's first token). Queue wait and prefill are in it; the ingress hop is not.
"""

from __future__ import annotations

from ray.serve.metrics import Counter, Gauge, Histogram

BASE_TAG = "base"  # no adapter asked for
UNRESOLVED_TAG = "unresolved"  # an adapter was asked for but did not answer (4xx/5xx before or at the model)

LATENCY_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000]
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128]
TOKENS_PER_S = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]


def adapter_tag(key: str | None) -> str:
    """The `adapter` tag of an answered request: the name of `name@version`, or "base"."""
    return key.partition("@")[0] if key else BASE_TAG


class IngressMetrics:
    """Whole requests, as clients see them (less the proxy hop), by route, status and adapter."""

    def __init__(self):
        tags = ("route", "status", "adapter")
        self.requests = Counter("sqlfoundry_requests", description="HTTP requests by route, status and adapter",
                                tag_keys=tags)
        self.latency = Histogram("sqlfoundry_request_latency_ms", description="Whole-request latency at the "
                                 "ingress (ms)", boundaries=LATENCY_MS, tag_keys=tags)

    def record(self, route: str, status: int, adapter: str, elapsed_ms: float) -> None:
        tags = {"route": route, "status": str(status), "adapter": adapter}
        self.requests.inc(tags=tags)
        self.latency.observe(elapsed_ms, tags=tags)


class ModelMetrics:
    """One model replica: queue, batches, first token and generated tokens."""

    def __init__(self):
        self.queue_length = Gauge("sqlfoundry_queue_length", description="Requests at this model replica "
                                  "waiting for a generation batch")
        self.batch_size = Histogram("sqlfoundry_batch_size", description="Rows per generation batch",
                                    boundaries=BATCH_SIZES)
        self.batch_latency = Histogram("sqlfoundry_batch_latency_ms", description="Wall time of one "
                                       "generation batch (ms)", boundaries=LATENCY_MS)
        self.first_token = Histogram("sqlfoundry_time_to_first_token_ms", description="Arrival at the model "
                                     "replica to the end of its batch's prefill (ms)", boundaries=LATENCY_MS,
                                     tag_keys=("adapter",))
        self.generated_tokens = Counter("sqlfoundry_generated_tokens", description="Completion tokens generated",
                                        tag_keys=("adapter",))
        self.adapter_loads = Counter("sqlfoundry_adapter_loads", description="Adapters pulled from the registry "
                                     "and loaded onto this replica (LRU misses)")
        self.tokens_per_s = Histogram("sqlfoundry_batch_tokens_per_second", description="Completion tokens of "
                                      "a batch over its wall time", boundaries=TOKENS_PER_S)
        # Requests between arrival and their batch's start. A set, not a count: a request cancelled
        # while queued (client gone) leaves it in `left` whether or not a batch ever took it.
        self.waiting: set[int] = set()
        self.queue_length.set(0)

    def arrived(self, request_token: int) -> None:
        self.waiting.add(request_token)
        self.queue_length.set(len(self.waiting))

    def left(self, request_token: int) -> None:
        if request_token in self.waiting:
            self.waiting.discard(request_token)
            self.queue_length.set(len(self.waiting))

    def batch_started(self, request_tokens: list[int]) -> None:
        self.waiting.difference_update(request_tokens)
        self.queue_length.set(len(self.waiting))
        self.batch_size.observe(len(request_tokens))

    def batch_done(self, seconds: float, tokens_by_adapter: dict[str, int]) -> None:
        self.batch_latency.observe(seconds * 1000)
        for adapter, tokens in tokens_by_adapter.items():
            if tokens:  # Ray counters refuse 0
                self.generated_tokens.inc(tokens, tags={"adapter": adapter})
        total = sum(tokens_by_adapter.values())
        if total and seconds > 0:
            self.tokens_per_s.observe(total / seconds)

    def adapters_loaded(self, count: int) -> None:
        if count:  # Ray counters refuse 0
            self.adapter_loads.inc(count)

    def first_token_ms(self, adapter: str, milliseconds: float) -> None:
        self.first_token.observe(milliseconds, tags={"adapter": adapter})
