"""Precision and memory format: bf16 autocast where the hardware has it and the model gains from it (the
models registry says which do), channels-last for convolutions over images."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _entry(model_name: str):
    from ..models import model_entry

    return None if model_name == "custom" else model_entry(model_name)


def channels_last(model_name: str, kind: str) -> bool:
    """Channels-last memory format pays for convolutions over images."""
    e = _entry(model_name)
    return bool(e and e.conv and kind == "image")


def choose_precision(cfg: Any, model_name: str, device: str, kind: str = "image") -> tuple[bool, bool, str]:
    """(bf16, channels_last, sentence): auto uses bf16 (+ channels-last for images) for conv nets and pretrained
    backbones where the hardware has bf16."""
    import torch

    e = _entry(model_name)
    big = bool(e and e.bf16)  # bf16 convs/matmuls pay (~2x)
    conv = channels_last(model_name, kind)
    if cfg.precision == "fp32":
        return False, False, "fp32 (as asked)"
    native = torch.cuda.is_bf16_supported() if device.startswith("cuda") else cpu_has_bf16()
    if cfg.precision == "bf16":
        note = "" if native else " (this CPU has no native bf16: expect it to be slow)"
        return True, conv, "bf16 autocast" + (" + channels-last" if conv else "") + note
    if native and big:
        return True, conv, ("bf16 autocast" + (" + channels-last" if conv else "")
                            + " (auto: the hardware has native bf16; --precision fp32 to turn off)")
    why = "no native bf16 on this hardware" if not native else \
        "auto picks bf16 only for conv nets and pretrained backbones; --precision bf16 to try it"
    return False, False, f"fp32 (auto: {why})"


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
