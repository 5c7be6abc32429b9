"""Typed run configuration: validated once at the edge, then trusted."""

from sqlfoundry.config.loader import ConfigError, apply_overrides, load_config, parse_config
from sqlfoundry.config.schema import (
    DataConfig,
    LoraConfig,
    LoraPlusConfig,
    ModelConfig,
    NEFTuneConfig,
    OutputConfig,
    QuantizationConfig,
    RayConfig,
    RunConfig,
    TrainingConfig,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "LoraConfig",
    "LoraPlusConfig",
    "ModelConfig",
    "NEFTuneConfig",
    "OutputConfig",
    "QuantizationConfig",
    "RayConfig",
    "RunConfig",
    "TrainingConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
]
