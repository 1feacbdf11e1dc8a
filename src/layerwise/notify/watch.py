"""DivergenceWatch: a loop callback that tells the --notify targets, once, when training diverges."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ..fit.loop import Callback
from .send import notify

FACTOR, PATIENCE = 10.0, 3  # an epoch's mean loss above FACTOR x the first epoch's, PATIENCE epochs in a row
CHECK_SECONDS = 1.0  # off the CPU, the loss is read back (a device sync) at most this often


class DivergenceWatch(Callback):
    """Notify the targets once with event "diverged" when the training loss becomes NaN or infinite, or when
    an epoch's mean loss stays above 10x the first epoch's mean for 3 epochs in a row. It never stops the
    run (the run's own status, and its end, are what they would be without it).

    `run_dir` and `targets` default to the loop's cfg.out and cfg.notify. Example:
    ``lw.train("digits", notify="desktop", callbacks=[DivergenceWatch()])``.
    """

    order = 10  # after the callbacks that change the loss of the batch

    def __init__(self, run_dir: str | Path | None = None, targets: str | None = None, quiet: bool = False):
        self.run_dir, self.targets, self.quiet = run_dir, targets, quiet
        self.first_mean: float | None = None  # mean loss of the first epoch this watch saw
        self.bad_epochs = 0
        self.notified = False
        self.told: list[str] = []  # the targets the "diverged" notification reached
        self._epoch: int | None = None  # the epoch whose batch losses are being added up
        self._sum: Any = 0.0
        self._count = 0
        self._checked = 0.0

    def on_batch_end(self, loop: Any) -> None:
        if self.notified or loop.loss is None:
            return
        epoch = getattr(loop, "epoch", 0)
        if self._epoch is not None and epoch != self._epoch:
            self._close_epoch(loop)  # a loop that does not fire epoch_end (or a new epoch after a resume)
            if self.notified:
                return
        loss = loop.loss.detach().float() if hasattr(loop.loss, "detach") else float(loop.loss)
        self._epoch = epoch
        self._sum = self._sum + loss  # stays on the device; a NaN or inf in any batch makes the sum non-finite
        self._count += 1
        device = getattr(getattr(loop, "device", None), "type", "cpu")
        now = time.monotonic()
        if device == "cpu" or now - self._checked >= CHECK_SECONDS:
            self._checked = now
            if not math.isfinite(float(self._sum)):
                self._diverged(loop, f"the training loss became {_nonfinite(self._sum)} in epoch {epoch + 1} "
                                     f"(by batch {getattr(loop, 'batch_idx', 0)})", float(self._sum))

    def on_epoch_end(self, loop: Any) -> None:
        if not self.notified and self._count:
            self._close_epoch(loop)

    def _close_epoch(self, loop: Any) -> None:
        mean, epoch = float(self._sum) / self._count, self._epoch
        self._epoch, self._sum, self._count = None, 0.0, 0
        if not math.isfinite(mean):
            self._diverged(loop, f"the training loss became {_nonfinite(mean)} in epoch {(epoch or 0) + 1}", mean)
            return
        if self.first_mean is None:
            self.first_mean = mean
            return
        if self.first_mean > 0 and mean > FACTOR * self.first_mean:
            self.bad_epochs += 1
        else:
            self.bad_epochs = 0
        if self.bad_epochs >= PATIENCE:
            self._diverged(loop, f"the training loss ({mean:.4g}) has been above {FACTOR:g}x its first-epoch mean "
                                 f"({self.first_mean:.4g}) for {PATIENCE} epochs", mean)

    def _diverged(self, loop: Any, reason: str, loss: float) -> None:
        """Notify once; the run goes on."""
        self.notified = True
        cfg = getattr(loop, "cfg", None)
        run_dir = self.run_dir or getattr(cfg, "out", None)
        targets = self.targets if self.targets is not None else getattr(cfg, "notify", None)
        if not targets:
            return
        info = _read_info(run_dir)
        epoch = getattr(loop, "epoch", 0)
        info.update(path=str(run_dir) if run_dir else None, reason=reason, epochs_done=epoch,
                    diverged_metrics={"loss": loss, "first_epoch_loss": self.first_mean})
        self.told = notify(info, "diverged", targets, self.quiet)

    def state_dict(self) -> dict:
        return {"first_mean": self.first_mean, "bad_epochs": self.bad_epochs, "notified": self.notified}

    def load_state_dict(self, state: dict) -> None:
        self.first_mean = state.get("first_mean")
        self.bad_epochs = state.get("bad_epochs", 0)
        self.notified = state.get("notified", False)


def _nonfinite(x: Any) -> str:
    value = float(x)
    return "NaN" if math.isnan(value) else "infinite" if math.isinf(value) else f"{value:.4g}"


def _read_info(run_dir: Any) -> dict:
    import json

    from ..run import FILES

    if not run_dir:
        return {}
    try:
        info = json.loads((Path(run_dir) / FILES["info"]).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
