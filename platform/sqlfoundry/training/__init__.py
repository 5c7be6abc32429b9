"""The fine-tuning recipe: `train(config) -> TrainResult` (one process; Ray Train calls it unchanged)."""

from sqlfoundry.training.recipe import TrainResult, train

__all__ = ["TrainResult", "train"]
