"""Load a RunConfig from YAML plus `--set key.path=value` overrides, with errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sqlfoundry.config.schema import RunConfig


class ConfigError(ValueError):
    """A configuration problem, with the offending key path and how to fix it in the message."""


def format_validation_error(err: ValidationError, origin: str, examples: str = "jobs/configs/*.yaml") -> str:
    """One line per problem, each naming the key path; `examples` is where valid keys can be seen."""
    lines = [f"invalid configuration ({origin}):"]
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling; see {examples} for the valid keys)"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], origin: str = "config") -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid configuration ({origin}): the top level must be a mapping of sections")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each `a.b.c=value` applied; values are parsed as YAML scalars."""
    result = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r}: expected KEY.PATH=VALUE, e.g. training.max_steps=50")
        parts = key.strip().split(".")
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {part} is a value, not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""
    return result


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (pass --config with a YAML file)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        origin = str(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
        origin += " with --set overrides"
    return parse_config(raw, origin)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
