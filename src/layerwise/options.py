"""Training options that are not tasks: each changes the prepared data, adds callbacks, or takes the step.

`api.train` asks every option in OPTIONS whether the settings turn it on, then lets the active ones
`prepare` the data (in order), contribute `callbacks`, and, at most one of them, the `step`. A new option is
one class here plus one line in OPTIONS.
"""

from __future__ import annotations

from typing import Any


class Option:
    """An option with every hook defaulted: on when `active`, it may change the data, add callbacks, and
    replace the loop's step (`step(loop)`, set by `callbacks` when it has one)."""

    step = None

    def active(self, cfg: Any) -> bool:
        return False

    def prepare(self, cfg: Any, prepared: Any, quiet: bool) -> Any:
        return prepared

    def callbacks(self, cfg: Any, prepared: Any, model: Any) -> list:
        return []


class Synthetic(Option):
    """--synthetic N --synthetic-from RUN: images of a conditional GAN added to the training split."""

    def active(self, cfg):
        return bool(cfg.synthetic or cfg.synthetic_from)

    def prepare(self, cfg, prepared, quiet):
        from .errors import ConfigError
        from .run import Run
        from .tasks.sampling import add_synthetic

        if not cfg.synthetic_from:
            raise ConfigError("--synthetic needs --synthetic-from RUN, a run of a conditional GAN to draw from.")
        if not cfg.synthetic:
            raise ConfigError("--synthetic-from needs --synthetic, how many images to add (e.g. 2x or 5000).")
        if "synthetic" not in prepared.task.supports:
            raise ConfigError(f"synthetic data is for classification; this run's task is {prepared.task.name}.")
        if prepared.pre.spec().get("kind") != "image":
            raise ConfigError("synthetic data from a generator needs image data to train on.")
        return add_synthetic(cfg, prepared, Run.load(cfg.synthetic_from), quiet)


class SemiSupervised(Option):
    """--labels-per-class N, --unlabelled PATH, --semi-supervised: few labels, FixMatch on the rest."""

    def active(self, cfg):
        return bool(cfg.semi_supervised or cfg.labels_per_class or cfg.unlabelled)

    def prepare(self, cfg, prepared, quiet):
        from .fit.semi import split_labels

        return split_labels(prepared, cfg, quiet)

    def callbacks(self, cfg, prepared, model):
        if prepared.unlabelled is None:
            return []
        from .fit.semi import FixMatch

        fixmatch = FixMatch.from_config(prepared.unlabelled, prepared.pre.spec(), cfg)
        self.step = fixmatch.step
        return [fixmatch]


class ExpertBalance(Option):
    """Models with mixture-of-experts layers: the load-balancing loss, expert use logged."""

    def active(self, cfg):
        return True  # decided by the model: any MoE layer in it

    def callbacks(self, cfg, prepared, model):
        from .fit.experts import MoEBalance
        from .models.moe import MoE

        return [MoEBalance(cfg.moe_balance)] if any(isinstance(m, MoE) for m in model.modules()) else []


class Transfer(Option):
    """--freeze, --unfreeze-every, --lr-decay on pretrained backbones (an error on other models)."""

    def active(self, cfg):
        return True

    def callbacks(self, cfg, prepared, model):
        from .fit.transfer import transfer_callbacks

        return transfer_callbacks(cfg, model)


class Augmentation(Option):
    """--augment POLICIES on each training batch."""

    def active(self, cfg):
        return bool(cfg.augment)

    def callbacks(self, cfg, prepared, model):
        from .fit.callbacks import Augment

        return [Augment.from_config(cfg, prepared.pre.spec(), prepared.task)]


class SpecAugmentation(Option):
    """--spec-augment: time and frequency masks on training spectrograms (audio)."""

    def active(self, cfg):
        return bool(cfg.spec_augment)

    def callbacks(self, cfg, prepared, model):
        from .data.audio import SpecAugment

        return [SpecAugment()] if prepared.pre.spec()["kind"] == "audio" else []


OPTIONS: list[type[Option]] = [Synthetic, SemiSupervised, ExpertBalance, Transfer, Augmentation, SpecAugmentation]


def active_options(cfg: Any) -> list[Option]:
    return [o for o in (cls() for cls in OPTIONS) if o.active(cfg)]
