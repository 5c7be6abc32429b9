"""Deploy a serve_configs/*.yaml file the way `serve run FILE` does, plus `--set` overrides of the
application's args and a wait until it is RUNNING (or a clear failure).

Only Serve's public API is used: `serve.start` with the file's HTTP options and proxy location, each
application bound by sqlfoundry.serving.app.bind_app with its `args` and its `deployments:` entries
as `Deployment.options()`, then `serve.run_many` with each name and route prefix. Unlike `serve
deploy FILE` (Serve's REST API), this needs no dashboard, and the applications are imperative ones:
on a long-lived cluster, redeploy them with `sqlfoundry serve` (not `serve deploy`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml

from sqlfoundry.config.loader import ConfigError, apply_overrides
from sqlfoundry.serving.config import parse_serve_config
from sqlfoundry.storage.backends import absolute_local_path

log = logging.getLogger(__name__)

APP_IMPORT_PATH = "sqlfoundry.serving.app:build_app"


def load_serve_file(path: str | Path, overrides: list[str] | None = None) -> dict:
    """The Serve config in `path` with `overrides` (KEY.PATH=VALUE under the sqlfoundry app's args)
    applied, local paths made absolute, and the args validated before anything starts."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read serve config {path}: {err}") from None
    apps = [a for a in config.get("applications", []) if a.get("import_path") == APP_IMPORT_PATH]
    if len(apps) != 1:
        raise ConfigError(f"{path}: expected one application with import_path {APP_IMPORT_PATH}")
    args = apply_overrides(apps[0].get("args") or {}, overrides or [])
    # Replicas do not share the caller's working directory.
    args["registry"] = absolute_local_path(args.get("registry"))
    if isinstance(args.get("model"), dict):
        args["model"]["name_or_path"] = absolute_local_path(args["model"].get("name_or_path"), only_if_exists=True)
    parse_serve_config(args)  # raises ServeConfigError naming the field
    apps[0]["args"] = args
    return config


def _application(app):
    """The bound application of one ServeApplicationSchema entry."""
    import inspect

    from ray.serve import Deployment

    from sqlfoundry.serving.app import bind_app

    if app.import_path != APP_IMPORT_PATH:
        raise ConfigError(f"applications[{app.name}].import_path {app.import_path}: `sqlfoundry serve` deploys "
                          f"{APP_IMPORT_PATH} applications only; use `serve deploy FILE` for others")
    options = {}
    for entry in app.deployments:
        fields = entry.model_dump(exclude_unset=True)
        name = fields.pop("name")
        unsupported = sorted(set(fields) - set(inspect.signature(Deployment.options).parameters))
        if unsupported:
            raise ConfigError(f"applications[{app.name}].deployments[{name}].{unsupported[0]}: not a "
                              "Deployment.options() setting, so `sqlfoundry serve` cannot apply it; remove it")
        options[name] = fields
    if app.runtime_env:  # as Serve does for a config file: the app's runtime_env under each deployment's own
        for name in ("SQLModel", "SQLIngress"):
            actor = options.setdefault(name, {}).setdefault("ray_actor_options", {})
            own = actor.get("runtime_env") or {}
            actor["runtime_env"] = {**app.runtime_env, **own, "env_vars": {
                **app.runtime_env.get("env_vars", {}), **own.get("env_vars", {})}}
    return bind_app(app.args, options)


def deploy(config: dict, timeout_s: float = 600) -> str:
    """Start Serve on the connected Ray (HTTP options from the file), deploy, wait for RUNNING.
    Returns the application's base URL."""
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    targets = [serve.RunTarget(target=_application(app), name=app.name, route_prefix=app.route_prefix,
                               logging_config=app.logging_config) for app in schema.applications]
    serve.start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    serve.run_many(targets, wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    names = [app.name for app in schema.applications]
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications
        states = {name: status[name].status if name in status else "NOT_STARTED" for name in names}
        failed = {n: status[n].message for n, s in states.items() if s in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            raise RuntimeError(f"serve deployment failed: {failed}")
        if all(s == "RUNNING" for s in states.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"applications not RUNNING after {timeout_s:.0f}s: {states}")
        time.sleep(1)
    host, port = schema.http_options.host, schema.http_options.port
    route = schema.applications[0].route_prefix or "/"
    url = f"http://{host}:{port}{route.rstrip('/')}"
    log.info("serving at %s", url)
    return url

