"""Recurrent sequence models: RecurrentNet (RNN/LSTM/GRU over tokens or feature vectors) and CRNN
(convolutions over a spectrogram, then a recurrent layer over time).

Padded steps never reach the recurrent layer: sequences are packed with their true lengths
(`nn.utils.rnn.pack_padded_sequence`), and the readout pools over real steps only, so padding a
batch further does not change any output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
READOUTS = ("mean", "max", "last")


def _cell(cell: str) -> type[nn.RNNBase]:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}.")
    return CELLS[cell]


class RecurrentNet(nn.Module):
    """A stacked RNN/LSTM/GRU (Elman 1990; Hochreiter & Schmidhuber 1997; Cho et al. 2014) over token
    ids [B, T] (`vocab_size`, `pad_id` marks padding) or float features [B, T, F] (`in_features`),
    pooled over time by `readout` into [B, out_dim].

    "last" reads the state after the last real step; when bidirectional, the forward direction's last
    state and the backward direction's state after the first step (each has then read the whole sequence).
    """

    def __init__(self, out_dim: int, *, cell: str = "lstm", vocab_size: int | None = None,
                 in_features: int | None = None, embed_dim: int = 128, hidden: int = 128, layers: int = 2,
                 bidirectional: bool = False, dropout: float = 0.1, readout: str = "mean", pad_id: int = 0):
        super().__init__()
        if (vocab_size is None) == (in_features is None):
            raise ValueError("give exactly one of vocab_size (token-id input) or in_features (float input).")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}; got {readout!r}.")
        self.readout, self.pad_id, self.directions = readout, pad_id, 2 if bidirectional else 1
        self.embed = None if vocab_size is None else nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = _cell(cell)(embed_dim if vocab_size is not None else in_features, hidden, num_layers=layers,
                               batch_first=True, bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, out_dim)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: token ids [B, T] or features [B, T, F]; lengths: real steps per sequence (padding at the end).
        Without lengths, token input counts the non-pad tokens and float input uses all T steps."""
        B, T = x.shape[:2]
        if lengths is None:
            lengths = (x != self.pad_id).sum(1) if self.embed is not None else torch.full((B,), T)
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64).clamp(1, T)  # pack wants CPU lengths >= 1
        h = self.embed(x) if self.embed is not None else x
        packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)
        if self.readout == "last":
            h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM returns (h_n, c_n)
            # h_n: [layers * directions, B, hidden], states back in batch order; take the top layer
            pooled = torch.cat(list(h_n[-self.directions:]), dim=-1)
        else:
            out, _ = pad_packed_sequence(out, batch_first=True)  # [B, max(lengths), H*dirs]
            real = (torch.arange(out.size(1)) < lengths[:, None]).to(out.device).unsqueeze(-1)
            if self.readout == "mean":
                pooled = out.masked_fill(~real, 0.0).sum(1) / real.sum(1)
            else:
                pooled = out.masked_fill(~real, float("-inf")).amax(1)
        return self.head(self.drop(pooled))


class CRNN(nn.Module):
    """Convolutional recurrent network for spectrograms (Choi et al. 2017): conv blocks over a log-mel
    spectrogram [B, 1, n_mels, T], frequency averaged away, a GRU/LSTM over the remaining time steps,
    mean pooled over time, then a linear head. Time is halved by the first two blocks only (T/4 steps).
    """

    def __init__(self, out_dim: int, *, n_mels: int = 64, channels: tuple[int, ...] = (32, 64, 128),
                 hidden: int = 128, cell: str = "gru", bidirectional: bool = True, dropout: float = 0.1):
        super().__init__()
        if n_mels < 2 ** len(channels):
            raise ValueError(f"n_mels={n_mels} is too few for {len(channels)} blocks that halve frequency; "
                             f"use at least {2 ** len(channels)} mel bands or fewer channels.")
        self.n_mels = n_mels
        blocks: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d((2, 2) if i < 2 else (2, 1))]  # (frequency, time)
            c_in = c
        self.conv = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.rnn = _cell(cell)(c_in, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.size(1) != 1 or x.size(2) != self.n_mels or x.size(3) < 4:
            raise ValueError(f"CRNN expects a spectrogram [B, 1, {self.n_mels}, T] with T >= 4; "
                             f"got shape {list(x.shape)}.")
        h = self.conv(x).mean(2).transpose(1, 2)  # [B, C, F', T'] -> average frequency -> [B, T', C]
        out, _ = self.rnn(self.drop(h))
        return self.head(self.drop(out.mean(1)))


def build_crnn(spec: dict, out_dim: int, cfg) -> CRNN:
    """`--model crnn` for audio spectrograms [B, 1, n_mels, T]: conv channels `channels` (default 16,32,64),
    a GRU (or `--cell lstm`) of hidden[0] units (default 64), bidirectional unless --no-bidirectional."""
    from ..errors import ConfigError

    if spec["kind"] != "audio":
        raise ConfigError(f"model 'crnn' reads audio spectrograms, but the data is {spec['kind']} data; "
                          "give a folder of WAV files, or use --model mlp.")
    return CRNN(out_dim, n_mels=spec["shape"][1], channels=tuple(cfg.channels),
                hidden=cfg.hidden[0], cell=cfg.cell, bidirectional=cfg.bidirectional, dropout=cfg.dropout)


def build_recurrent(name: str, spec: dict, out_dim: int, cfg) -> RecurrentNet:
    """`--model rnn|lstm|gru` for text (token ids, embedded d_model wide) or sequences (float steps): `layers`
    stacked cells of hidden[0] units (default 128), optionally bidirectional, pooled over real steps
    (`--readout mean|max`) or read at the last state (`--readout last`)."""
    from ..errors import ConfigError

    common = {"cell": name, "hidden": cfg.hidden[0], "layers": cfg.layers,
              "bidirectional": cfg.bidirectional, "dropout": cfg.dropout, "readout": cfg.readout}
    if spec["kind"] == "sequence":
        return RecurrentNet(out_dim, in_features=spec["channels"], **common)
    if spec["kind"] != "text":
        raise ConfigError(f"model {name!r} reads text here, but the data is {spec['kind']} data; "
                          "use --model mlp, or give a text column.")
    return RecurrentNet(out_dim, vocab_size=spec["vocab_size"], embed_dim=cfg.d_model,
                        pad_id=spec.get("pad_id", 0), **common)
