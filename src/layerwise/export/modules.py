"""Export-friendly equivalents of layers the exporters cannot trace, with the same weights and outputs.

`RecurrentNet` packs its padded sequences (`pack_padded_sequence`), which `torch.export` cannot follow.
`PaddedRecurrent` computes the same thing on the padded batch: padding sits at the end of each sequence,
so the forward direction's states at the real steps never see it, and the backward direction runs forward
over each sequence reversed within its own length (a gather), then is reversed back. The readout pools over
the real steps only, as the original does.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class PaddedRecurrent(nn.Module):
    """The outputs of a `models.rnn.RecurrentNet` without packed sequences (one single-layer cell per layer
    and direction, holding the original weights)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        r = net.rnn
        self.embed, self.drop, self.head = net.embed, net.drop, net.head
        self.readout, self.pad_id, self.dirs = net.readout, net.pad_id, net.directions
        extra = {"nonlinearity": r.nonlinearity} if isinstance(r, nn.RNN) else {}
        self.cells = nn.ModuleList()
        for layer in range(r.num_layers):
            for d in range(self.dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                width = r.input_size if layer == 0 else r.hidden_size * self.dirs
                cell = type(r)(width, r.hidden_size, 1, bias=r.bias, batch_first=True, **extra)
                names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if r.bias else ())
                with torch.no_grad():
                    for n in names:
                        getattr(cell, n + "_l0").copy_(getattr(r, n + suffix))
                self.cells.append(cell)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        B, T = x.shape[:2]
        steps = torch.arange(T, device=x.device)
        if lengths is None:
            lengths = (x != self.pad_id).sum(1) if self.embed is not None else \
                torch.full((B,), T, dtype=torch.int64, device=x.device)
        lengths = lengths.to(torch.int64).clamp(1, T)
        h = self.embed(x) if self.embed is not None else x
        real = steps[None] < lengths[:, None]  # [B, T]
        rev = torch.where(real, lengths[:, None] - 1 - steps[None], steps[None])  # its own inverse
        for layer in range(len(self.cells) // self.dirs):
            outs = [self.cells[layer * self.dirs](h)[0]]
            if self.dirs == 2:
                back = self.cells[layer * self.dirs + 1](h.gather(1, rev[:, :, None].expand(-1, -1, h.size(2))))[0]
                outs.append(back.gather(1, rev[:, :, None].expand(-1, -1, back.size(2))))
            h = torch.cat(outs, 2) if self.dirs == 2 else outs[0]
        width = h.size(2) // self.dirs
        if self.readout == "last":
            last = (lengths - 1)[:, None, None].expand(-1, 1, width)
            pooled = h[:, :, :width].gather(1, last)[:, 0]
            if self.dirs == 2:  # the backward direction's state after the first step has read everything
                pooled = torch.cat([pooled, h[:, 0, width:]], 1)
        elif self.readout == "mean":
            m = real[:, :, None]
            pooled = h.masked_fill(~m, 0.0).sum(1) / m.sum(1)
        else:
            pooled = h.masked_fill(~real[:, :, None], float("-inf")).amax(1)
        return self.head(self.drop(pooled))


def exportable(model: nn.Module) -> nn.Module:
    """A copy of `model` (in evaluation mode) with every RecurrentNet replaced by its PaddedRecurrent."""
    from ..models.rnn import RecurrentNet

    def swap(m: nn.Module) -> nn.Module:
        if isinstance(m, RecurrentNet):
            return PaddedRecurrent(m)
        for name, child in m.named_children():
            new = swap(child)
            if new is not child:
                setattr(m, name, new)
        return m

    return swap(copy.deepcopy(model)).eval()
