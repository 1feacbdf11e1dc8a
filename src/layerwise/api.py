"""The Python entry points: train (and resume) a run, and the learning-rate range test."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .config import dump_yaml, load_yaml, make_config
from .errors import ConfigError, RunError

RUNS_ROOT = "runs"


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr)


def resolve_config(data: Any = None, config: str | None = None, **settings: Any) -> tuple[Any, Any]:
    """Settings from a YAML file and keywords (keywords win); a torch module given as `model` is kept aside."""
    module = settings.pop("model", None)
    if module is not None and not isinstance(module, str):
        settings["model"] = "auto"
    elif module is not None:
        settings["model"] = module
    base = load_yaml(config) if config else {}
    if isinstance(data, (str, Path)):
        settings["data"] = str(data)
    cfg = make_config(base, **settings)
    return cfg, (None if isinstance(module, str) else module)


def prepare_data(cfg, data: Any = None, quiet: bool = False):
    """Load the data (and explicit validation/test data) and split it as the settings say."""
    from .data import load, prepare
    from .tasks import TASKS, infer_task, make_task

    d = load(data if data is not None else cfg.data, target=cfg.target, image_size=cfg.image_size,
             sample_rate=cfg.sample_rate, clip_seconds=cfg.clip_seconds)
    for note in d.notes:
        say(note, quiet)
    if d.kind == "corpus" and cfg.task is None:
        cfg.task = "generate"
        say("task: generate (the data is a text corpus: a language model learns it; set --task to change)", quiet)
    key = cfg.task
    if cfg.model == "gan" or (cfg.task == "generate" and cfg.model == "auto" and d.kind == "image"):
        key = "gan"  # image generation: tasks/gan.py (generate on text is the language-model task)
    from .data.sequences import wants_sequences

    if wants_sequences(cfg, d):  # series (or windows of one) to classify or regress: data/sequences.py
        from .data.sequences import prepare_sequences

        return prepare_sequences(cfg, d, quiet)
    if key in TASKS and hasattr(TASKS[key], "prepare"):
        # tasks with their own data flow (forecast, generate, reconstruct, ...): Task.prepare(cfg, data, quiet)
        return TASKS[key].prepare(cfg, d, quiet)
    if d.y is None:
        raise ConfigError("the data has no targets; give a target column (--target) or (X, y) arrays.")
    if cfg.target is None and d.target is not None:
        cfg.target = d.target
    task_name = cfg.task
    if task_name is None:
        task_name, why = infer_task(d.y)
        say(f"task: {task_name} ({why}; set --task to change)", quiet)
        cfg.task = task_name
    if task_name in ("classify", "regress"):
        from .data.sequences import time_column_hint

        hint = time_column_hint(d)
        if hint:
            say(hint, quiet)
    smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else (0.1 if d.kind == "image" else 0.0)
    task = make_task(task_name, loss=cfg.loss, label_smoothing=smoothing) if task_name == "classify" else \
        make_task(task_name, loss=cfg.loss)
    val = load(cfg.validation, target=cfg.target, image_size=_image_size(d)) if cfg.validation else None
    test = load(cfg.test, target=cfg.target, image_size=_image_size(d)) if cfg.test else None
    fit_pre = None
    if d.kind == "audio":  # extra audio at the training data's rate and clip length; mel bands as set
        from .data.audio import AudioPre, reclip

        val, test = (reclip(e, d.x.sr, d.x.shape[1] / d.x.sr) for e in (val, test))

        def fit_pre(train):
            return AudioPre.fit(train, cfg.n_mels)
    if cfg.model.startswith("pretrained:"):  # the backbone's own tokenizer / normalisation (models/pretrained.py)
        from .models.pretrained import input_pipeline

        fit_pre = input_pipeline(cfg, d, quiet)
    elif d.kind == "text":  # the tokenizer is fitted on the training split with the run's text settings
        from .data.textpre import text_defaults, text_pre_fitter

        text_defaults(cfg, quiet)
        fit_pre = text_pre_fitter(cfg, d)
    return prepare(d, task, cfg.val_fraction, cfg.test_fraction, cfg.seed, val, test, fit_pre=fit_pre)


def _image_size(d) -> int | None:
    return d.x.shape[1] if d.kind == "image" and d.x.shape[1] == d.x.shape[2] else None


SMALL_TABLE = 1000  # training rows below which dense models get small-data defaults


def small_data_defaults(cfg, spec: dict, n_train: int, given: set) -> str | None:
    """A few hundred rows overfit a 256-128 MLP in a handful of steps: use a smaller net, smaller batches, more
    epochs and more dropout unless the user set them. Returns the sentence to print, or None."""
    if spec.get("kind") not in ("table", "array") or cfg.model not in ("auto", "mlp") or n_train >= SMALL_TABLE:
        return None
    batch = cfg.batch_size if "batch_size" in given else 32
    steps = max(1, n_train // batch)  # at least ~300 optimizer steps in all
    changes = {"batch_size": 32, "epochs": min(200, max(cfg.epochs, 20, -(-300 // steps))), "hidden": [64],
               "dropout": 0.2}
    changes = {k: v for k, v in changes.items() if k not in given and getattr(cfg, k) != v}
    for k, v in changes.items():
        setattr(cfg, k, v)
    if not changes:
        return None
    shown = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in changes.items())
    return f"small data ({n_train} training rows): {shown} (set them to override)"


def choose_precision(cfg, model_name: str, device: str, kind: str = "image") -> tuple[bool, bool, str]:
    """(bf16, channels_last, sentence): auto uses bf16 (+ channels-last for images) for conv nets and pretrained
    backbones where the hardware has bf16."""
    import torch

    big = model_name in ("cnn", "resnet") or model_name.startswith("pretrained:")  # bf16 convs/matmuls pay (~2x)
    conv = kind == "image" and (model_name in ("cnn", "resnet") or model_name.startswith("pretrained:efficientnet"))
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


SCHEMA_PARTS = {"input": "the preprocessing (tokenizer, scaling, shapes)", "task": "the targets (classes)"}


def check_same_data(run, schema_path: Path) -> None:
    """Resume only on data that gives the run's preprocessing and classes again: other data would feed the
    saved weights inputs (token ids, scaled values, class indices) they were not trained on."""
    from .run import _jsonable

    saved = json.loads(schema_path.read_text())
    now = json.loads(json.dumps(run.schema(), default=_jsonable))
    changed = [what for part, what in SCHEMA_PARTS.items() if now[part] != saved.get(part)]
    if changed:
        raise RunError(f"the data differs from the data this run was trained on ({' and '.join(changed)} changed); "
                       "resume with the same data, or start a new run on the new data.")


def train(data: Any = None, *, resume: str | Path | None = None, config: str | None = None,
          quiet: bool = False, callbacks: Any = (), **settings: Any):
    """Train a model on `data` and return its Run.

    Every setting of ``layerwise.config.Config`` is a keyword (``epochs=5, lr=3e-3, model="cnn"``); `model`
    may also be your own ``torch.nn.Module``. ``resume=RUN`` continues a run from its last checkpoint.
    ``callbacks=[...]`` adds your own ``layerwise.fit.loop.Callback`` objects (on_epoch_end(loop), ...).

    Example: ``run = lw.train("digits", model="mlp", epochs=20)``.
    """
    import torch

    from .fit.callbacks import Augment, Checkpoint, EarlyStopping, MetricsLog, ProgressBar, TensorBoard
    from .fit.loop import Loop
    from .fit.state import load_latest
    from .models import build_model, count_parameters, default_model
    from .run import FILES, Run, new_run_dir, write_json

    if resume is not None:
        from .run import read_info

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
    else:
        cfg, module = resolve_config(data, config, **settings)
        info = {}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prepared = prepare_data(cfg, data if not isinstance(data, (str, Path)) else None, quiet)
    if cfg.synthetic or cfg.synthetic_from:  # generated images added to the training split (sample.py)
        from .sample import add_synthetic

        prepared = add_synthetic(cfg, prepared, quiet)
    if cfg.semi_supervised or cfg.labels_per_class or cfg.unlabelled:  # few labels (+ unlabelled data)
        from .fit.semi import split_labels

        prepared = split_labels(prepared, cfg, quiet)
    say(prepared.counts_table(), quiet)
    spec, task = prepared.pre.spec(), prepared.task
    augment = Augment.from_config(cfg, spec, task) if cfg.augment else None
    if resume is None and module is None:
        given = set(settings) | (set(load_yaml(config)) if config else set())
        note = small_data_defaults(cfg, spec, len(prepared.train), given)
        if note:
            say(note, quiet)
        if spec["kind"] == "audio":  # a few thousand clips: smaller batches (data/audio.py)
            from .data.audio import audio_defaults

            note = audio_defaults(cfg, len(prepared.train), given)
            if note:
                say(note, quiet)

    torch.manual_seed(cfg.seed)
    if module is not None:
        model, model_name = module, "custom"
    else:
        model_name = default_model(spec) if cfg.model == "auto" else cfg.model
        model = build_model(model_name, spec, task.out_dim, cfg)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    bf16, channels_last, why = choose_precision(cfg, model_name, device, spec["kind"])
    say(f"model: {model_name} ({count_parameters(model):,} parameters); task: {task.describe()}; "
        f"precision: {why}; device: {device}", quiet)
    from .fit.transfer import transfer_callbacks

    transfer = transfer_callbacks(cfg, model)  # freezing / gradual unfreezing of pretrained models

    run_dir = Path(cfg.out) if cfg.out else new_run_dir(RUNS_ROOT, f"{_data_name(cfg)}-{model_name.replace(':', '-')}")
    if not resume and (run_dir / FILES["info"]).exists():
        raise RunError(f"{str(run_dir)!r} already holds a run; pick another --out or continue it with --resume.")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.out = str(run_dir)
    info = {**info, "model": model_name, "parameters": count_parameters(model), "task": task.name,
            "data": cfg.data, "precision": "bf16" if bf16 else "fp32", "status": "running",
            "created": info.get("created", time.strftime("%Y-%m-%d %H:%M:%S"))}
    run = Run(run_dir, cfg, prepared.pre, task, model, info)
    if resume is not None:
        check_same_data(run, run_dir / FILES["schema"])
    (run_dir / FILES["config"]).write_text(dump_yaml(cfg))
    write_json(run_dir / FILES["schema"], run.schema())
    write_json(run_dir / FILES["info"], info)

    metric, mode = cfg.monitor or task.monitor[0], task.monitor[1]
    if cfg.monitor and cfg.monitor != task.monitor[0]:
        mode = "min" if cfg.monitor in ("loss", "rmse", "mae", "mse") else "max"
    user_callbacks, callbacks = list(callbacks), []
    if augment is not None:
        callbacks.append(augment)
    if cfg.spec_augment and spec["kind"] == "audio":  # SpecAugment masks on training spectrograms
        from .data.audio import SpecAugment

        callbacks.append(SpecAugment())
    if cfg.early_stopping and prepared.val is not None:
        callbacks.append(EarlyStopping(metric, mode, cfg.early_stopping))
    if cfg.progress and not quiet:
        callbacks.append(ProgressBar(metric))
    callbacks.append(MetricsLog(run_dir / FILES["metrics"]))
    if cfg.tensorboard:
        callbacks.append(TensorBoard(run_dir / FILES["tensorboard"]))
    callbacks += user_callbacks  # before the checkpoint, so their state is saved with the epoch
    callbacks.append(Checkpoint(run_dir / FILES["checkpoint"], cfg.checkpoint_minutes))
    callbacks[:0] = transfer

    val = (prepared.val.inputs, prepared.val.y) if prepared.val is not None else None
    if hasattr(task, "callbacks"):  # a task's own callbacks (sample grids, diagnostics, ...)
        callbacks[:0] = task.callbacks(cfg, run_dir)
    step_fn = getattr(task, "step_fn", None)
    if getattr(prepared, "unlabelled", None) is not None:  # semi-supervised: the FixMatch step (fit/semi.py)
        from .fit.semi import FixMatch

        fixmatch = FixMatch.from_config(prepared.unlabelled, spec, cfg)
        callbacks.insert(0, fixmatch)
        step_fn = fixmatch.step
    from .models.moe import MoE

    if any(isinstance(m, MoE) for m in model.modules()):  # load-balancing loss, expert utilisation logged
        from .fit.experts import MoEBalance

        callbacks.insert(0, MoEBalance(cfg.moe_balance))
    loop = Loop(model, task, cfg, (prepared.train.inputs, prepared.train.y), val, callbacks, device, bf16,
                channels_last, step_fn=step_fn)
    if resume is not None:
        state, notes = load_latest(run_dir / FILES["checkpoint"])
        for n in notes:
            say(f"warning: {n} Using the previous checkpoint.", quiet)
        loop.load_state_dict(state)
        say(f"resuming {str(run_dir)!r} at epoch {loop.epoch + 1}, batch {loop.batch_idx}", quiet)
    loop.fit()
    run._loop = loop
    if prepared.test is not None:
        run._test = (prepared.test.inputs, prepared.test.y)
        info["test_metrics"] = {k: v for k, v in run.evaluate().items()}
    info["status"] = "done"
    info["epochs_done"] = loop.epoch
    info["history_tail"] = loop.history[-1] if loop.history else {}
    run.save()
    say(f"run: {run_dir}", quiet)
    if "test_metrics" in info:
        say("test: " + json.dumps({k: round(v, 4) for k, v in info["test_metrics"].items()}), quiet)
    return run


def _data_name(cfg) -> str:
    if not cfg.data:
        return "data"
    return Path(cfg.data).stem.replace(" ", "_")[:24] or "data"
