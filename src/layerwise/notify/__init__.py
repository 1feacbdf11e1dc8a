"""Notifications when a run ends or diverges (--notify desktop, webhook:URL, mailto:ADDRESS), through apprise.

- ``check_targets(value)``: checks a --notify value before training (ConfigError, one sentence).
- ``notify(run_dir_or_info, event, cfg_notify, quiet)``: tells the targets that a run is "done", "failed",
  "interrupted" or "diverged"; returns the targets told; a failure is one warning line, never an exception.
- ``DivergenceWatch``: a loop callback that notifies once ("diverged") when the loss becomes NaN/inf or stays
  above 10x its first-epoch mean for 3 epochs; it never stops the run.

apprise is imported only when a notification is sent (``pip install 'layerwise[notify]'``). See docs/notify.md.
"""

from __future__ import annotations

from typing import Any

from .send import EVENTS, notify, summary
from .targets import SMTP_ENV, Target, check_targets, parse_targets, smtp_settings

__all__ = ["EVENTS", "SMTP_ENV", "DivergenceWatch", "Target", "check_targets", "notify", "parse_targets",
           "smtp_settings", "summary"]


def __getattr__(name: str) -> Any:
    if name == "DivergenceWatch":  # imports torch (a loop callback); the rest of this package does not
        from .watch import DivergenceWatch

        return DivergenceWatch
    raise AttributeError(name)
