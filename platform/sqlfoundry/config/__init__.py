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
    SearchDimension,
    TrainingConfig,
    TuneConfig,
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
    "SearchDimension",
    "TrainingConfig",
    "TuneConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
]
