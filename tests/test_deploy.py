"""serving/deploy.py turns a Serve config file into applications through Serve's public API; bad
`deployments:` entries fail before anything starts, naming the entry (no Ray needed here; the
deployed app itself is tested over HTTP in tests/test_serving.py)."""

from pathlib import Path

import pytest

from sqlfoundry.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _schema(tiny_model_dir, deployment=None):
    from ray.serve.schema import ServeDeploySchema

    from sqlfoundry.serving.deploy import load_serve_file

    config = load_serve_file(ROOT / "serve_configs/local.yaml", [f"model.name_or_path={tiny_model_dir}"])
    entries = config["applications"][0]["deployments"]
    same = [entry for entry in entries if deployment and entry["name"] == deployment["name"]]
    if same:
        same[0].update(deployment)
    elif deployment:
        entries.append(deployment)
    return ServeDeploySchema.model_validate(config).applications[0]


def test_local_yaml_binds_with_its_deployment_options(tiny_model_dir):
    from ray.serve import Application

    from sqlfoundry.serving.deploy import _application

    assert isinstance(_application(_schema(tiny_model_dir)), Application)


@pytest.mark.parametrize("deployment, message", [
    ({"name": "SQLModle", "num_replicas": 1}, "unknown deployment 'SQLModle'"),
    ({"name": "SQLModel", "rolling_update_percentage": 0.5}, r"deployments\[SQLModel\].rolling_update_percentage"),
])
def test_bad_deployment_entries_are_refused_by_name(tiny_model_dir, deployment, message):
    from sqlfoundry.serving.deploy import _application

    with pytest.raises(ConfigError, match=message):
        _application(_schema(tiny_model_dir, deployment))


def test_the_model_deployment_routes_by_adapter_with_the_lru_size_of_its_args(tiny_model_dir):
    """bind_app sets serving/routing.py's router on SQLModel, sized by args.max_loaded_adapters."""
    from sqlfoundry.serving.app import bind_app
    from sqlfoundry.serving.routing import ROUTER_CLASS

    app = bind_app({"model": {"name_or_path": str(tiny_model_dir)}, "max_loaded_adapters": 6})
    model = app._bound_deployment.init_args[0]._bound_deployment  # ingress.bind(model.bind(...), ...)
    router = model._deployment_config.request_router_config
    assert router.request_router_class == ROUTER_CLASS and router.request_router_kwargs == {"adapters_per_replica": 6}
