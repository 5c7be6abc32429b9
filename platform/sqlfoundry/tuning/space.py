"""The search space: Ray Tune sampling from the `tune` section, and one trial's RunConfig."""

from __future__ import annotations

import copy
from pathlib import Path

from sqlfoundry.config.loader import ConfigError, parse_config
from sqlfoundry.config.schema import RunConfig, SearchDimension


def _set(raw: dict, dotted: str, value) -> dict:
    # Not config.loader.apply_overrides: that one reads YAML text ("1e-05" stays a string in
    # YAML 1.1) and creates missing keys; trial values are already typed and keys must exist.
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"tune.search_space: {dotted} is not a config key (no section {part!r})")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"tune.search_space: {dotted} is not a config key; use a dotted path such as "
                          "loraplus.ratio or training.learning_rate")
    node[parts[-1]] = value
    return raw


def trial_config(base: RunConfig, params: dict, output_dir: str | Path) -> RunConfig:
    """`base` with the trial's values, writing to `output_dir`, pushing nothing (the driver pushes
    the best), and checkpointing at every evaluation so a restored search resumes its trials."""
    raw = copy.deepcopy(base.model_dump(mode="json"))
    for key, value in params.items():
        _set(raw, key, value)
    raw["output"].update(dir=str(output_dir), push_to=None, overwrite=True)
    raw["training"]["save_steps"] = raw["training"]["eval_steps"]
    return parse_config(raw, origin=f"tune trial {params}")


def _candidates(dimension: SearchDimension) -> list[float]:
    return list(dimension.values) if dimension.values else [dimension.low, dimension.high]


def validate_search_space(config: RunConfig) -> None:
    """Every key must exist and every candidate value must make a valid config: fail before Ray."""
    for key, dimension in config.tune.search_space.items():
        for value in _candidates(dimension):
            trial_config(config, {key: value}, config.output.dir)
    if config.training.max_steps < config.training.eval_steps:
        raise ConfigError("tune needs training.eval_steps <= training.max_steps: the scheduler and the results "
                          "are fed by evaluations")


def param_space(config: RunConfig) -> dict:
    from ray import tune

    space = {}
    for key, dimension in config.tune.search_space.items():
        if dimension.sample == "grid":
            space[key] = tune.grid_search(list(dimension.values))
        elif dimension.sample == "choice":
            space[key] = tune.choice(list(dimension.values))
        elif dimension.sample == "uniform":
            space[key] = tune.uniform(dimension.low, dimension.high)
        else:
            space[key] = tune.loguniform(dimension.low, dimension.high)
    return space


def evaluations_per_trial(config: RunConfig) -> int:
    return config.training.max_steps // config.training.eval_steps
