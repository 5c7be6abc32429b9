"""Model loading (builtin models, 4-bit NF4), LoRA / LoRA+, NEFTune and SQL generation."""
