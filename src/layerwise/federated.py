"""Federated learning: `layerwise federated DATA --clients 10 --rounds 20` and `federated(data, ...)`.

The flow: settings -> data -> model -> client shards -> rounds of federated averaging (fit/federated.py,
on the one training loop) -> an ordinary run folder (config.yaml, schema.json, model.safetensors, run.json
with test_metrics, metrics.jsonl with one line per round), so that `layerwise evaluate/predict RUN` work on
it. A checkpoint of the global state after every round lets `--resume RUN` go on from the last round.

    from layerwise.federated import federated
    run = federated("digits", clients=5, rounds=5, model="mlp")                 # IID shards
    run = federated("mnist", clients=10, rounds=20, non_iid=2, out="runs/fed")  # 2 classes per client
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .config import dump_yaml, load_yaml, make_config
from .errors import ConfigError, DataError, RunError, say
from .run import FILES

RUNS_ROOT = "runs"


def federated(data: Any = None, *, resume: str | Path | None = None, config: str | None = None,
              quiet: bool = False, callbacks: Any = (), **settings: Any):
    """Train a model by federated averaging over client shards of `data`; returns the Run.

    The federated settings (`clients=10, rounds=20, local_epochs=1, non_iid=None, client_fraction=1.0`) and
    every training setting of ``layerwise.config.Config`` (``model="mlp", lr=3e-3, batch_size=64, seed=0``)
    are keywords; ``resume=RUN`` continues a run from its last round. `callbacks` are objects with
    ``on_round_end(fed)`` (fit/federated.py's FedAvg), called after each round's checkpoint.

    Example: ``run = federated("digits", clients=5, rounds=5, model="mlp"); run.evaluate()``.
    """
    import torch

    from .fit.federated import FedAvg, RoundCheckpoint, RoundLog
    from .fit.precision import choose_precision
    from .fit.state import load_latest
    from .models import count_parameters
    from .options import active_options
    from .run import Run, check_same_data, stopped_info, write_json
    from .tasks import prepare_data

    cfg, data, info = _settings(data, resume, config, settings)
    given = set(cfg.model_fields_set)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prepared = prepare_data(cfg, None if isinstance(data, (str, Path)) or data is None else data, quiet=quiet)
    options = active_options(cfg)
    for option in options:
        prepared = option.prepare(cfg, prepared, quiet)
    say(prepared.counts_table(), quiet)
    task = prepared.task
    _check_task(cfg, prepared)
    shards = make_shards(cfg, prepared.train.y)
    model, model_name = _model(cfg, prepared, given, quiet)
    extras = [cb for option in options for cb in option.callbacks(cfg, prepared, model)]
    if any(o.step is not None for o in options):
        raise ConfigError("federated learning does not combine with semi-supervised training; train without "
                          "--semi-supervised, --labels-per-class and --unlabelled.")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    bf16, channels_last, why = choose_precision(cfg, model_name, device, prepared.pre.spec()["kind"])
    say(f"model: {model_name} ({count_parameters(model):,} parameters); task: {task.describe()}; "
        f"precision: {why}; device: {device}", quiet)
    say(_describe_shards(cfg, shards, prepared.train.y if cfg.non_iid else None), quiet)

    run_dir = _run_dir(cfg, model_name, resume)
    info = {**info, "model": model_name, "parameters": count_parameters(model), "task": task.name,
            "data": cfg.data, "precision": "bf16" if bf16 else "fp32", "status": "running",
            "created": info.get("created", time.strftime("%Y-%m-%d %H:%M:%S")),
            "federated": {"clients": cfg.clients, "rounds": cfg.rounds, "local_epochs": cfg.local_epochs,
                          "client_fraction": cfg.client_fraction, "split": f"non-iid:{cfg.non_iid}" if cfg.non_iid
                          else "iid", "shard_sizes": [len(s) for s in shards]}}
    run = Run(run_dir, cfg, prepared.pre, task, model, info)
    if resume is not None:
        check_same_data(run, run_dir / FILES["schema"])
    standard = [RoundLog(run_dir / FILES["metrics"]), *([] if quiet else [_Progress()])]
    fed = FedAvg(model, task, cfg, (prepared.train.inputs, prepared.train.y), shards,
                 (prepared.val.inputs, prepared.val.y) if prepared.val is not None else None,
                 [*standard, RoundCheckpoint(run_dir / FILES["checkpoint"]), *callbacks], device, bf16,
                 channels_last, step_fn=task.step, client_callbacks=extras)
    checkpoint = run_dir / FILES["checkpoint"]
    if resume is not None and (checkpoint.is_file() or checkpoint.with_name(checkpoint.name + ".prev").is_file()):
        state, notes = load_latest(checkpoint)
        for n in notes:
            say(f"warning: {n} Using the previous checkpoint.", quiet)
        fed.load_state_dict(state)
        say(f"resuming {str(run_dir)!r} at round {fed.round + 1} of {cfg.rounds}", quiet)
    elif resume is not None:
        say(f"note: {str(run_dir)!r} stopped before its first round ended; training it from the beginning", quiet)
    cfg.model, cfg.lr = model_name, cfg.lr or _peak_lr(model, cfg)  # the saved config names what was used
    (run_dir / FILES["config"]).write_text(dump_yaml(cfg))
    write_json(run_dir / FILES["schema"], run.schema())
    write_json(run_dir / FILES["info"], info)
    try:
        fed.fit()
    except BaseException as e:
        stopped_info(info, e, fed.round)["rounds_done"] = fed.round
        write_json(run_dir / FILES["info"], info)
        raise
    return _finish(run, fed, prepared, quiet)


def _settings(data: Any, resume: Any, config: str | None, settings: dict) -> tuple[Any, Any, dict]:
    """(cfg, data, info): the given settings, or those of the run to resume with the given ones on top."""
    from .models import check_model_name

    if settings.get("model") is not None and not isinstance(settings["model"], str):
        raise ConfigError("federated learning builds its model from a name (--model mlp, cnn, ...); your own "
                          "nn.Module is not supported here.")
    info: dict = {}
    if resume is None:
        base = load_yaml(config) if config else {}
        if isinstance(data, (str, Path)):
            settings["data"] = str(data)
    else:
        from .run import read_info

        run_dir = Path(resume)
        info = read_info(run_dir)
        if "federated" not in info:
            raise RunError(f"{str(run_dir)!r} is not a federated run; continue it with `layerwise train --resume`.")
        base = load_yaml(run_dir / FILES["config"])
        recorded = base.pop("data", None)
        data = recorded if data is None else data
        if data is None:
            raise ConfigError("this run was trained on in-memory data; pass the data again: "
                              "federated(data, resume=RUN).")
        if isinstance(data, (str, Path)):
            settings["data"] = str(data)
        settings["out"] = str(run_dir)
    cfg = make_config(base, **settings)
    cfg.model = check_model_name(cfg.model)
    if data is None and not cfg.data:
        raise ConfigError("give the data to train on, e.g. `layerwise federated digits`, or --resume RUN.")
    return cfg, data if data is not None else cfg.data, info


def _check_task(cfg: Any, prepared: Any) -> None:
    """The task trains on the one loop with its default step and optimizer, and the data fits the clients."""
    from .tasks import Task

    task, n = prepared.task, len(prepared.train)
    if task.step is not None or type(task).optimizer is not Task.optimizer or task.callbacks(cfg, None):
        raise ConfigError(f"federated learning does not train the {task.name} task (it brings its own step, "
                          "optimizer or callbacks); use a task such as classify or regress.")
    if cfg.clients > n:
        raise DataError(f"--clients {cfg.clients} is more than the {n} training samples; use at most {n} clients.")
    if cfg.non_iid is not None:
        if task.name != "classify" or task.classes is None:
            raise ConfigError(f"--non-iid deals out classes, but this run's task is {task.name}, not classify; "
                              "drop --non-iid for an IID split.")
        n_classes = len(set(prepared.train.y.tolist()))
        if cfg.non_iid > n_classes:
            raise ConfigError(f"--non-iid {cfg.non_iid} is more than the {n_classes} classes of the training "
                              f"split; use at most {n_classes}.")


def make_shards(cfg: Any, y: Any) -> list:
    """The training rows of each client: IID, or `cfg.non_iid` classes each; DataError when one is empty."""
    import numpy as np

    from .fit.federated import iid_shards, non_iid_shards

    y = np.asarray(y)
    shards = (non_iid_shards(y, cfg.clients, cfg.non_iid, cfg.seed) if cfg.non_iid
              else iid_shards(len(y), cfg.clients, cfg.seed))
    if any(len(s) == 0 for s in shards):
        raise DataError(f"--clients {cfg.clients} with --non-iid {cfg.non_iid} leaves some clients without "
                        "samples (the classes are too small to cut into that many chunks); use fewer clients.")
    return shards


def _describe_shards(cfg: Any, shards: list, y: Any) -> str:
    from .fit.federated import clients_per_round

    sizes = [len(s) for s in shards]
    kind = f"non-IID, {cfg.non_iid} classes each" if y is not None else "IID"
    m = clients_per_round(cfg.clients, cfg.client_fraction)
    return (f"federated: {cfg.clients} clients ({kind}; {min(sizes)}-{max(sizes)} samples each), {m} per round, "
            f"{cfg.rounds} rounds of {cfg.local_epochs} local epoch{'s' if cfg.local_epochs > 1 else ''}")


def _model(cfg: Any, prepared: Any, given: set, quiet: bool) -> tuple[Any, str]:
    """The defaults of the data kind, the task and the model, then the model (as api.train builds it)."""
    import torch

    from .models import build_model, default_model, model_entry

    spec, n_train = prepared.pre.spec(), len(prepared.train)
    name = default_model(spec) if cfg.model == "auto" else cfg.model
    say(prepared.pre.defaults(cfg, n_train, given), quiet)
    say(prepared.task.defaults(cfg, spec, n_train, given), quiet)
    tune = model_entry(name).tune
    if tune is not None:
        say(tune(cfg, spec, n_train, given), quiet)
    torch.manual_seed(cfg.seed)
    return build_model(name, spec, prepared.task.out_dim, cfg), name


def _peak_lr(model: Any, cfg: Any) -> float:
    from .fit.optim import make_optimizer

    return max(g["lr"] for g in make_optimizer(model, cfg).param_groups)


def _run_dir(cfg: Any, model_name: str, resume: Any) -> Path:
    from .run import new_run_dir

    if cfg.out:
        run_dir = Path(cfg.out)
    else:
        name = Path(cfg.data).stem if cfg.data else "data"
        run_dir = new_run_dir(RUNS_ROOT, f"{name[:40]}-federated-{model_name.replace(':', '-')}")
    if resume is None and (run_dir / FILES["info"]).exists() and (
            (run_dir / FILES["checkpoint"]).exists() or (run_dir / FILES["weights"]).exists()):
        raise RunError(f"{str(run_dir)!r} already holds a run; pick another --out or continue it with --resume.")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.out = str(run_dir)
    return run_dir


class _Progress:
    """One line per round on stderr: round r/R, loss, validation loss and metric, clients, seconds."""

    def on_round_end(self, fed: Any) -> None:
        h = fed.history[-1]
        metric = fed.task.monitor[0]
        parts = [f"round {h['round']}/{fed.cfg.rounds}", f"loss {h['train_loss']:.4f}"]
        if f"val_{metric}" in h:
            parts += [f"val_loss {h['val_loss']:.4f}", f"val_{metric} {h[f'val_{metric}']:.4f}"]
        parts += [f"{h['clients']} clients", f"{h['seconds']:.1f} s"]
        say("  ".join(parts))


def _finish(run: Any, fed: Any, prepared: Any, quiet: bool):
    """Test metrics of the global model, the final weights and run.json."""
    from .fit.state import finish_checkpoints

    info = run.info
    if fed.val_metrics:
        info["val_metrics"] = dict(fed.val_metrics)
    if prepared.test is not None:
        run._test = (prepared.test.inputs, prepared.test.y)
        info["test_metrics"] = dict(run.evaluate())
    info.update(status="done", epochs_done=fed.round, rounds_done=fed.round,
                history_tail=fed.history[-1] if fed.history else {})
    run.save()
    finish_checkpoints(run.path / FILES["checkpoint"])
    say(f"run: {run.path}", quiet)
    metrics = info.get("test_metrics") or info.get("val_metrics")
    if metrics:
        shown = "test" if "test_metrics" in info else "validation"
        say(f"{shown}: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}), quiet)
    return run
