"""Ray Tune search over training config values (by default the LoRA+ ratio and learning rate)."""
