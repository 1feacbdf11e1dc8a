"""The Python entry points: train (and resume) a run, and the learning-rate range test.

`train` is the flow, top to bottom: settings -> data -> task.prepare -> options -> defaults -> model ->
loop -> run. Each step is a registry lookup or a declared hook (tasks/base.py, data/base.py,
models/__init__.py, options.py); nothing here knows a task, a data kind or a model by name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .config import dump_yaml, load_yaml, make_config
from .errors import RunError, say
from .tasks import prepare_data

RUNS_ROOT = "runs"
EXTRA_DATA = ("validation", "test")  # settings that take anything `data` takes (arrays, frames, paths, names)


def resolve_config(data: Any = None, config: str | None = None, **settings: Any) -> tuple[Any, Any]:
    """Settings from a YAML file and keywords (keywords win); a torch module given as `model`, and validation
    or test data given as objects rather than paths, are kept aside (returned in `cfg`'s place: see below).

    Returns (cfg, module). Extra data objects are returned through `extra_data(settings)` before this call."""
    from .models import check_model_name

    module = settings.pop("model", None)
    if module is not None and not isinstance(module, str):
        settings["model"] = "auto"
    elif module is not None:
        settings["model"] = module
    base = load_yaml(config) if config else {}
    if isinstance(data, (str, Path)):
        settings["data"] = str(data)
    cfg = make_config(base, **settings)
    cfg.model = check_model_name(cfg.model)
    if cfg.task is not None:
        from .errors import ConfigError
        from .tasks import TASKS, task_names

        if cfg.task not in TASKS or cfg.task == "gan":
            raise ConfigError(f"setting task={cfg.task} is not allowed: unknown task {cfg.task!r}; valid: "
                              f"{', '.join(task_names())}.")
    return cfg, (None if isinstance(module, str) else module)


def extra_data(settings: dict) -> dict:
    """Pop validation/test data given as objects (arrays, (X, y), DataFrames, Data) out of `settings`."""
    return {k: settings.pop(k) for k in EXTRA_DATA if settings.get(k) is not None
            and not isinstance(settings[k], (str, Path))}


def _settings_for(resume: Any, data: Any, config: str | None, settings: dict) -> tuple[Any, Any, Any, dict, set]:
    """(cfg, module, data, info, given): new settings, or those of the run to resume (`given`: the names the
    user set, which defaults never override)."""
    from .run import FILES, read_info

    if resume is None:
        cfg, module = resolve_config(data, config, **settings)
        if config and "out" not in settings and cfg.out and (Path(cfg.out) / FILES["info"]).exists():
            say(f"note: {config} was saved by the run {cfg.out!r}; training the same settings into a new folder "
                "(choose it with --out)")
            cfg.out = None
        return cfg, module, data, {}, set(cfg.model_fields_set)
    run_dir = Path(resume)
    info = read_info(run_dir)
    saved = {**load_yaml(run_dir / FILES["config"]), **settings}
    recorded = saved.pop("data", None)
    data = recorded if data is None else data
    cfg, module = resolve_config(data, None, **saved)
    if info.get("model") == "custom" and module is None:
        raise RunError("this run was trained with your own nn.Module; pass it again: lw.train(data, "
                       "model=MyModule(), resume=path).")
    cfg.out = str(run_dir)
    return cfg, module, data, info, set(cfg.model_fields_set)


def train(data: Any = None, *, resume: str | Path | None = None, config: str | None = None,
          quiet: bool = False, callbacks: Any = (), **settings: Any):
    """Train a model on `data` and return its Run.

    Every setting of ``layerwise.config.Config`` is a keyword (``epochs=5, lr=3e-3, model="cnn"``); `model`
    may also be your own ``torch.nn.Module``, and `validation` / `test` anything `data` takes (a path, a
    built-in name, arrays, an (X, y) pair, a DataFrame). ``resume=RUN`` continues a run from its last
    checkpoint. ``callbacks=[...]`` adds your own ``layerwise.fit.loop.Callback`` objects (on_epoch_end(loop)).

    Example: ``run = lw.train("digits", model="mlp", epochs=20)``.
    """
    import torch

    from .fit.callbacks import Checkpoint, EarlyStopping, MetricsLog, ProgressBar, TensorBoard
    from .fit.loop import Loop
    from .fit.precision import choose_precision
    from .fit.state import load_latest
    from .models import count_parameters
    from .options import active_options
    from .run import FILES, Run, check_same_data, write_json

    extra = extra_data(settings)
    cfg, module, data, info, given = _settings_for(resume, data, config, settings)
    from .notify import DivergenceWatch, check_targets

    check_targets(cfg.notify)  # a bad --notify value fails now, not when the run ends
    check_environment(cfg)  # before anything is loaded: a device that exists, a folder that can be written
    group = _group(cfg, resume, quiet)  # under torchrun: this process's rank; None in a single process
    quiet = quiet or (group is not None and group.rank > 0)  # rank 0 speaks and writes for all
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prepared = prepare_data(cfg, None if isinstance(data, (str, Path)) else data, quiet=quiet, **extra)
    options = active_options(cfg)
    for option in options:  # synthetic images, few labels + unlabelled data, ...
        prepared = option.prepare(cfg, prepared, quiet)
    say(prepared.counts_table(), quiet)
    model, model_name = _model(cfg, prepared, module, given, quiet)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    device = group.device if group is not None else device
    bf16, channels_last, why = choose_precision(cfg, model_name, device, prepared.pre.spec()["kind"])
    task = prepared.task
    say(f"model: {model_name} ({count_parameters(model):,} parameters); task: {task.describe()}; "
        f"precision: {why}; device: {device}", quiet)
    extras = [cb for option in options for cb in option.callbacks(cfg, prepared, model)]
    step = next((o.step for o in options if o.step is not None), None) or task.step
    if group is not None:
        group.check(cfg, step)

    run_dir = _run_dir(cfg, model_name, resume) if group is None or group.rank == 0 else None
    if group is not None:  # rank 0's folder (and a barrier: the others have read the saved settings)
        run_dir = group.broadcast(run_dir)
        cfg.out = str(run_dir)
    info = {**info, "model": model_name, "parameters": count_parameters(model), "task": task.name,
            "data": cfg.data, "precision": "bf16" if bf16 else "fp32", "status": "running",
            "created": info.get("created", time.strftime("%Y-%m-%d %H:%M:%S"))}
    run = Run(run_dir, cfg, prepared.pre, task, model, info)
    if resume is not None:
        check_same_data(run, run_dir / FILES["schema"])  # run.py

    metric, mode = cfg.monitor or task.monitor[0], task.monitor[1]
    if cfg.monitor and cfg.monitor != task.monitor[0]:
        mode = "min" if cfg.monitor in ("loss", "rmse", "mae", "mse") else "max"
    standard = [EarlyStopping(metric, mode, cfg.early_stopping)] if cfg.early_stopping and prepared.val is not None else []
    # a bar in a terminal, one plain line per epoch elsewhere and with --no-progress
    standard += [ProgressBar(metric, bar=None if cfg.progress else False)] if not quiet else []
    writes = group is None or group.rank == 0
    standard += [MetricsLog(run_dir / FILES["metrics"])] if writes else []
    standard += [TensorBoard(run_dir / FILES["tensorboard"])] if cfg.tensorboard and writes else []
    standard += [DivergenceWatch(run_dir, cfg.notify, quiet)] if cfg.notify and writes else []
    standard += [group.callback()] if group is not None else []
    # the user's callbacks before the checkpoint, so that their state is saved with the epoch
    all_callbacks = [*extras, *task.callbacks(cfg, run_dir), *standard, *callbacks,
                     Checkpoint(run_dir / FILES["checkpoint"], cfg.checkpoint_minutes)]
    val = (prepared.val.inputs, prepared.val.y) if prepared.val is not None else None
    loop = Loop(model, task, cfg, (prepared.train.inputs, prepared.train.y), val, all_callbacks, device, bf16,
                channels_last, step_fn=step)
    if resume is not None and has_checkpoint(run_dir / FILES["checkpoint"]):
        state, notes = load_latest(run_dir / FILES["checkpoint"])
        for n in notes:
            say(f"warning: {n} Using the previous checkpoint.", quiet)
        loop.load_state_dict(state)
        say(f"resuming {str(run_dir)!r} at epoch {loop.epoch + 1}, batch {loop.batch_idx}", quiet)
    elif resume is not None:
        say(f"note: {str(run_dir)!r} stopped before its first checkpoint; training it from the beginning", quiet)
    if group is not None:  # after the checkpoint: every rank holds its weights
        group.attach(loop)
    if module is None:  # the saved config names what was used: the model, the learning rate
        cfg.model, cfg.lr = model_name, cfg.lr or max(loop.base_lrs)
    if not writes:
        _fit(loop, run, all_callbacks[-1], quiet)
        run._loop = loop
        return run  # its model holds the weights rank 0 saves
    (run_dir / FILES["config"]).write_text(dump_yaml(cfg))
    write_json(run_dir / FILES["schema"], run.schema())
    write_json(run_dir / FILES["info"], info)
    _fit(loop, run, all_callbacks[-1], quiet)
    return _finish(run, loop, prepared, quiet)


def _group(cfg: Any, resume: Any, quiet: bool) -> Any:
    """The process group under torchrun, None in a single process; cfg.workers records how many trained."""
    from .errors import ConfigError
    from .fit.distributed import Group

    group = Group.start(cfg.device)
    if group is None and cfg.workers > 1:
        if resume is None:
            raise ConfigError(f"workers={cfg.workers} is for the command line, which starts the processes: "
                              f"`layerwise train DATA --workers {cfg.workers}` (or torchrun, see "
                              "docs/distributed.md).")
        say(f"note: this run trained with {cfg.workers} workers; continuing in one process (the same batches "
            f"and schedule; add --workers {cfg.workers} for {cfg.workers})", quiet)
    size = group.size if group is not None else 1
    if cfg.workers != size:
        cfg.workers = size
    return group


def check_environment(cfg: Any) -> None:
    """Refuse, before loading anything, a device this torch does not have and a run folder that cannot be
    written (the user's environment, not the library, is what to fix)."""
    import os
    import tempfile

    import torch

    from .errors import ConfigError

    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: this torch ({torch.__version__}) sees no CUDA device; use "
                          "--device cpu (or auto).")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        try:
            torch.device(cfg.device)
        except RuntimeError:
            raise ConfigError(f"unknown --device {cfg.device!r}; use cpu, cuda, cuda:N or auto.") from None
    folder = Path(cfg.out) if cfg.out else Path(RUNS_ROOT)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".layerwise-write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunError(f"cannot write the run folder {str(folder)!r} ({e.__class__.__name__}: "
                       f"{e.strerror or e}); give --out a folder you can write.") from None


def has_checkpoint(path: Path) -> bool:
    return path.is_file() or path.with_name(path.name + ".prev").is_file()


def _fit(loop: Any, run: Any, checkpoint: Any, quiet: bool = False) -> None:
    """loop.fit() with the run's status kept in run.json: Ctrl-C or SIGTERM stops after the current batch and
    saves a checkpoint ("interrupted"); an error is recorded in one line ("failed"); running out of memory
    says to lower the batch size."""
    import signal
    import threading

    from .run import FILES, stopped_info, write_json

    def stop(signum, frame):
        if loop.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        loop.interrupted = True

    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        loop.fit()
        if loop.interrupted:
            checkpoint.save(loop)
            raise KeyboardInterrupt(str(run.path))
    except BaseException as e:
        stopped_info(run.info, e, loop.epoch)
        if getattr(loop, "rank", 0) == 0:  # under torchrun, rank 0 keeps the run's record
            write_json(run.path / FILES["info"], run.info)
            from .notify import notify

            notify(run, run.info["status"], loop.cfg.notify, quiet)
        if _out_of_memory(e):
            raise RunError(f"ran out of memory with batch_size {loop.cfg.batch_size}; try a smaller --batch-size, "
                           f"e.g. {max(1, loop.cfg.batch_size // 4)}.") from None
        raise
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _out_of_memory(e: BaseException) -> bool:
    import torch

    text = str(e).lower()
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                         or "not enough memory" in text))


def _model(cfg: Any, prepared: Any, module: Any, given: set, quiet: bool) -> tuple[Any, str]:
    """Fill the defaults of the data kind, the task and the model (one sentence each), then build the model:
    the user's own module, or the registry's (models/__init__.py) for the data's spec."""
    import torch

    from .models import build_model, default_model, model_entry

    spec, n_train = prepared.pre.spec(), len(prepared.train)
    name = "custom" if module is not None else (default_model(spec) if cfg.model == "auto" else cfg.model)
    say(prepared.pre.defaults(cfg, n_train, given), quiet)
    say(prepared.task.defaults(cfg, spec, n_train, given), quiet)
    tune = model_entry(name).tune if module is None else None
    if tune is not None:
        say(tune(cfg, spec, n_train, given), quiet)
    torch.manual_seed(cfg.seed)
    if module is not None:
        return module, name
    return build_model(name, spec, prepared.task.out_dim, cfg), name


def _run_dir(cfg: Any, model_name: str, resume: Any) -> Path:
    from .run import FILES, new_run_dir

    run_dir = Path(cfg.out) if cfg.out else new_run_dir(RUNS_ROOT, f"{_data_name(cfg)}-{model_name.replace(':', '-')}")
    if not resume and (run_dir / FILES["info"]).exists():
        if has_checkpoint(run_dir / FILES["checkpoint"]) or (run_dir / FILES["weights"]).exists():
            raise RunError(f"{str(run_dir)!r} already holds a run; pick another --out or continue it with "
                           "--resume.")
        say(f"note: {str(run_dir)!r} holds a run that stopped before its first checkpoint; starting it again "
            "in place")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.out = str(run_dir)
    return run_dir


def _finish(run: Any, loop: Any, prepared: Any, quiet: bool):
    """Test metrics, the final weights and run.json of a finished training."""
    info = run.info
    run._loop = loop
    if loop.val_metrics:
        info["val_metrics"] = dict(loop.val_metrics)
    if prepared.test is not None:
        run._test = (prepared.test.inputs, prepared.test.y)
        info["test_metrics"] = dict(run.evaluate())
    info["status"] = "done"
    info["epochs_done"] = loop.epoch
    info["history_tail"] = loop.history[-1] if loop.history else {}
    run.save()
    from .fit.state import finish_checkpoints
    from .run import FILES

    if not run.config.keep_optimizer:  # keep what --resume needs: no *.prev, no optimizer moments
        finish_checkpoints(run.path / FILES["checkpoint"])
    from .report import write_report

    write_report(run, quiet=quiet)  # summary.txt, curves.png, confusion.png
    say(f"run: {run.path}", quiet)
    metrics = info.get("test_metrics") or info.get("val_metrics")
    if metrics:  # what was measured, under its own name
        shown = "test" if "test_metrics" in info else "validation"
        say(f"{shown}: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}), quiet)
    from .notify import notify

    notify(run, "done", run.config.notify, quiet)
    return run


def _data_name(cfg) -> str:
    """The data part of a default run folder name: the file's folder and name (`adult-train`), and the target
    column when one was named (two tables called train.csv, or two targets of one table, get two names)."""
    if not cfg.data:
        return "data"
    path = Path(cfg.data)
    parts = [path.parent.name, path.stem] if path.suffix and path.parent.name not in ("", ".") else [path.stem]
    if cfg.target:
        parts.append(str(cfg.target))
    name = "-".join(p.replace(" ", "_") for p in parts if p)
    return name[:40] or "data"


def lr_find(data: Any, plot: str | Path | None = "lr_find.png", start: float = 1e-6, end: float = 10.0,
            steps: int = 200, config: str | None = None, **settings: Any) -> dict:
    """Learning-rate range test (fit/lrfind.py) on a fresh model; returns {"suggested_lr", "lrs", "losses"}
    and saves a plot. Example: ``lw.lr_find("digits", model="mlp")["suggested_lr"]``."""
    from .fit.lrfind import range_test
    from .fit.precision import choose_precision

    cfg, module = resolve_config(data, config, **settings)
    prepared = prepare_data(cfg, data if not isinstance(data, (str, Path)) else None, quiet=True)
    model, name = _model(cfg, prepared, module, set(cfg.model_fields_set), quiet=True)
    bf16, channels_last, _ = choose_precision(cfg, name, "cpu", prepared.pre.spec()["kind"])
    result = range_test(model, prepared.task, cfg, (prepared.train.inputs, prepared.train.y), start, end, steps,
                        bf16, channels_last, plot)
    s = result["suggested_lr"]
    say(f"suggested learning rate: {s:.2g} (use --lr {s:.2g}); plot: {plot}")
    return result
