"""The Ray glue that Ray Train (training/ray_train.py), Ray Tune (tuning/) and Ray Serve (serving/)
share: joining or starting Ray, checking that a request fits the cluster, storage for Ray's run
state, absolute paths for workers, Ray tasks for the evaluator, and a relay of progress events from
workers to the driver. Nothing in the core (data, sql, modeling, training loop, answering,
evaluation) imports this module: the Ray layers and the CLI pass what the core needs explicitly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from sqlfoundry.config.loader import ConfigError
from sqlfoundry.config.schema import RunConfig
from sqlfoundry.storage.backends import absolute_local_path

log = logging.getLogger(__name__)

# Ray binds the eth0 address and patches print() in workers unless told otherwise.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def ensure_ray(address: str | None, log_to_driver: bool = True) -> None:
    """Join `address` (else $RAY_ADDRESS), or start an embedded local Ray; no-op when connected.
    `log_to_driver=False` keeps the workers' output out of this process (it stays in Ray's session
    logs); the quiet CLI uses it for `serve`, whose replicas log every request."""
    import ray

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env={"env_vars": RAY_ENV}, log_to_driver=log_to_driver)
    else:  # the dashboard starts too (and the state API Ray Train polls)
        ray.init(runtime_env={"env_vars": RAY_ENV}, log_to_driver=log_to_driver)


def check_fits(per_unit: dict[str, float], units: int, setting: str, fix: str) -> None:
    """`units` x `per_unit` resources must fit the cluster's totals, or Ray would wait forever.
    `setting` names the config that asked for them, e.g. "ray.num_workers=4 x resources_per_worker"."""
    import ray

    total = ray.cluster_resources()
    for resource, amount in per_unit.items():
        want = amount * units
        if want > total.get(resource, 0):
            raise ConfigError(f"{setting}.{resource}={amount:g} needs {want:g} {resource}, but the cluster has "
                              f"{total.get(resource, 0):g}; {fix}")


def storage_for_ray(storage_path: str):
    """(storage_path, storage_filesystem) for ray.train.RunConfig; S3 endpoints from AWS_ENDPOINT_URL."""
    parsed = urlparse(storage_path)
    if parsed.scheme == "s3":
        from sqlfoundry.storage.backends import S3Store

        S3Store(storage_path).check()  # missing bucket or credentials fail here, before any work
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            return storage_path, None
        import pyarrow.fs

        url = urlparse(endpoint)
        filesystem = pyarrow.fs.S3FileSystem(endpoint_override=url.netloc, scheme=url.scheme or "https",
                                             region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return f"{parsed.netloc}{parsed.path}", filesystem
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"ray.storage_path {storage_path}: unsupported scheme {parsed.scheme!r} "
                          "(use a folder or s3://bucket/prefix)")
    return str(Path(parsed.path if parsed.scheme else storage_path).expanduser().resolve()), None


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """A copy whose local paths are absolute: Ray workers and Tune trials run in their own working
    directories, where a relative `outputs/registry` would land somewhere else entirely."""
    config = config.model_copy(deep=True)
    config.output.dir = absolute_local_path(config.output.dir)
    config.output.push_to = absolute_local_path(config.output.push_to)
    config.data.source = absolute_local_path(config.data.source, only_if_exists=True)
    config.data.exclude = [absolute_local_path(path, only_if_exists=True) for path in config.data.exclude]
    config.model.name_or_path = absolute_local_path(config.model.name_or_path, only_if_exists=True)
    return config


def ray_map(function: Callable, items: Iterable) -> Iterator:
    """`function` over `items` as Ray tasks (one CPU each) on the connected cluster, results in input
    order: the evaluator's `map_chunks` when it runs inside a Ray job."""
    import ray

    remote = ray.remote(num_cpus=1)(function)
    for ref in [remote.remote(item) for item in items]:
        yield ray.get(ref)


@contextmanager
def relay(handler: Callable[[dict], None]) -> Iterator:
    """A queue that workers anywhere on the cluster put event dicts into; a driver thread hands each
    to `handler` until the block ends (then the rest). Yields the queue, to pass to the workers."""
    from ray.util.queue import Empty, Queue

    queue = Queue(actor_options={"num_cpus": 0})  # a 0-CPU actor: it must not wait for the workers' cores
    done = threading.Event()

    def drain(block: bool) -> None:
        while True:
            try:
                event = queue.get(block=block, timeout=0.5)
            except Empty:
                return
            try:
                handler(event)
            except Exception:  # a progress display must never stop the relay or hide the run's result
                log.exception("progress handler failed on %r", event)

    def pump() -> None:
        while not done.is_set():
            drain(block=True)

    thread = threading.Thread(target=pump, name="sqlfoundry-progress", daemon=True)
    thread.start()
    try:
        yield queue
    finally:
        done.set()
        thread.join()
        drain(block=False)
        queue.shutdown()


def relay_put(queue) -> Callable[[dict], None]:
    """The worker side of `relay`: a put that never blocks and never fails the training run (a lost
    progress event only makes the driver's bar lag)."""
    def put(event: dict) -> None:
        try:
            queue.put_nowait(event)
        except Exception as err:  # noqa: BLE001 - progress must never stop training
            log.debug("progress event dropped: %s", err)

    return put
