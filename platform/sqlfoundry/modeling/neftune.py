"""NEFTune (Jain et al. 2023): uniform noise on input embeddings while training.

Noise is Uniform(-1, 1) * alpha / sqrt(L * d), with d the embedding width and L the length of the
sequence a token belongs to. Unlike the stock implementation, which takes L as the padded row
length, L here is each sequence's own length: in a padding-free packed row (one row holding many
examples, told apart by position_ids restarting at 0) every example gets the noise scale it would
get alone, and in a padded batch padding does not dilute it.
"""

from __future__ import annotations

import torch


def sequence_lengths(position_ids: torch.Tensor | None, attention_mask: torch.Tensor | None,
                     shape: torch.Size) -> torch.Tensor:
    """Per-token length of the sequence the token belongs to, shape (batch, seq)."""
    batch, seq = shape[0], shape[1]
    if position_ids is not None and position_ids.shape[-1] == seq:
        position_ids = position_ids.expand(batch, seq) if position_ids.shape[0] == 1 else position_ids
        lengths = torch.empty(batch, seq, dtype=torch.float32, device=position_ids.device)
        for row in range(batch):
            starts = (position_ids[row] == 0).nonzero().flatten().tolist()
            if not starts or starts[0] != 0:
                starts = [0] + starts
            bounds = starts + [seq]
            for begin, end in zip(bounds[:-1], bounds[1:]):
                lengths[row, begin:end] = end - begin
        return lengths
    if attention_mask is not None and attention_mask.shape[-1] == seq:
        return attention_mask.sum(dim=1, keepdim=True).clamp(min=1).float().expand(batch, seq)
    return torch.full((batch, seq), float(seq))


def neftune_noise(embeddings: torch.Tensor, alpha: float, lengths: torch.Tensor) -> torch.Tensor:
    scale = alpha / torch.sqrt(lengths.to(embeddings.device) * embeddings.shape[-1])
    noise = torch.zeros_like(embeddings).uniform_(-1, 1)
    return embeddings + noise * scale.unsqueeze(-1).to(embeddings.dtype)


class NEFTune:
    """Attach with `NEFTune.attach(model, alpha)`; `detach()` removes the hooks."""

    def __init__(self, alpha: float):
        self.alpha = alpha
        self._batch: dict = {}
        self._handles: list = []

    @classmethod
    def attach(cls, model, alpha: float) -> "NEFTune":
        hook = cls(alpha)
        embedding = model.get_input_embeddings()
        # The decoder (the module that owns the embedding and receives position_ids) tells the
        # embedding hook where the packed sequences start.
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
        hook._handles = [
            decoder.register_forward_pre_hook(hook._remember_batch, with_kwargs=True),
            embedding.register_forward_hook(hook._add_noise),
        ]
        return hook

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _remember_batch(self, module, args, kwargs):
        self._batch = {"position_ids": kwargs.get("position_ids"), "attention_mask": kwargs.get("attention_mask")}

    def _add_noise(self, module, inputs, output):
        if not module.training or self.alpha == 0:
            return output
        mask = self._batch.get("attention_mask")
        lengths = sequence_lengths(
            self._batch.get("position_ids"), mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None,
            output.shape,
        )
        return neftune_noise(output, self.alpha, lengths)
