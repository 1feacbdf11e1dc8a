"""The `layerwise` command. Thin: parse, then call the Python API. Torch is imported only when needed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .config import GROUPS, SETTINGS
from .errors import LayerwiseError
from .report import SORTS, STATUSES

EPILOG = """examples:
  layerwise train digits
  layerwise train mnist.npz --model cnn --epochs 3
  layerwise train table.csv --target price --task regress
  layerwise evaluate runs/<run> --json
  layerwise runs --sort metric --status done
  layerwise predict runs/<run> image.png
  layerwise serve runs/<run> --port 8000
"""
SETTINGS_NOTE = "Each setting below is also a Python keyword and a key of --config YAML files."
# groups of settings whose flags only one command takes (the others' --help stays short)
COMMAND_GROUPS = {"federated learning": "federated"}
FLAG_ALIASES = {"client_fraction": ("--fraction",)}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`error: ...`, exit 2); an unknown flag gets the closest valid one."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        unknown = [a for a in extras if a.startswith("-") and a != "-" and not _is_number(a)]
        if unknown:  # here, in the (sub)parser that knows the flags, not in the top-level parser
            from .config import closest

            flag = unknown[0].split("=", 1)[0]
            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            close = closest(flag, flags)
            self.error(f"unknown option {flag!r}; did you mean {close!r}?" if close else
                       f"unknown option {flag!r}; see `{self.prog} --help` for the options.")
        return ns, extras

    def error(self, message: str):
        message = message[0].lower() + message[1:] if message else message
        if not message.endswith(("?", ".")):
            message += f"; see `{self.prog} --help`."
        self.exit(2, f"error: {message}\n")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _add_settings(p: argparse.ArgumentParser, command: str = "train") -> None:
    """One flag per field of the settings schema, same names (underscores become dashes), listed in the
    schema's groups; each help says its default once. A group of COMMAND_GROUPS goes to its command only."""
    own_first = sorted(GROUPS, key=lambda name: COMMAND_GROUPS.get(name) != command)  # stable: GROUPS' order
    groups = {name: p.add_argument_group(f"{name} ({GROUPS[name]})") for name in own_first  # one line each
              if COMMAND_GROUPS.get(name, command) == command}
    for s in SETTINGS:
        if s.name == "data" or COMMAND_GROUPS.get(s.group, command) != command:
            continue
        if s.group not in groups:  # a setting outside GROUPS still gets its flag
            groups[s.group] = p.add_argument_group(s.group or "other settings")
        g = groups[s.group]
        flag = "--" + s.name.replace("_", "-")
        flags = (flag, *FLAG_ALIASES.get(s.name, ()))
        head, paren, tail = s.help.partition(" (default")
        help_ = f"{head}: {', '.join(s.choices)}{paren}{tail}" if s.choices else s.help
        if "default" not in help_ and s.default is not None and s.default is not False:
            help_ += f" (default: {'on' if s.default is True else s.default})"
        if s.type is bool:
            g.add_argument(*flags, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            metavar = {int: "N", float: "X", list: "N,N"}.get(s.type, "NAME" if s.choices else "VALUE")
            alone = {"nargs": "?", "const": "default"} if s.name == "augment" else {}  # `--augment` alone
            g.add_argument(*flags, dest=s.name, default=None, metavar=metavar, help=help_, **alone)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="layerwise", description="Deep learning from your data in one command.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="layerwise 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on data (a path or a built-in name: digits, mnist)",
                       usage="%(prog)s [DATA] [--config YAML] [--resume RUN] [--SETTING ...]",
                       description=SETTINGS_NOTE)
    t.add_argument("source", nargs="?", metavar="DATA", help="data: folder of images, CSV/Parquet, .npz, or a name")
    t.add_argument("--config", metavar="YAML", help="read settings from a YAML file (flags win)")
    t.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    _add_settings(t)

    e = sub.add_parser("evaluate", help="metrics of a run on its test split or on given data")
    e.add_argument("run", metavar="RUN")
    e.add_argument("source", nargs="?", metavar="DATA")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--confusion", action="store_true",
                   help="with --json: add the confusion matrix and its classes (classification)")

    pr = sub.add_parser("predict", help="predictions for image files, a CSV or an .npz")
    pr.add_argument("run", metavar="RUN")
    pr.add_argument("inputs", nargs="+", metavar="INPUT")
    pr.add_argument("--json", action="store_true", help="print predictions as JSON")
    pr.add_argument("--out", metavar="CSV", help="write predictions (and probabilities) to a CSV file")
    pr.add_argument("--text", action="store_true", help="text models: take every INPUT as a text, even one that "
                    "looks like a file name")

    ge = sub.add_parser("generate", help="text from a trained language model (--task generate)")
    ge.add_argument("run", metavar="RUN")
    ge.add_argument("--prompt", default="\n", help="text to continue (default: a new line)")
    ge.add_argument("--tokens", type=int, default=200, metavar="N", help="new tokens to sample (default: 200)")
    ge.add_argument("--temperature", type=float, default=1.0, metavar="X",
                    help="below 1: safer, above 1: wilder (default: 1.0)")
    ge.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only from the K likeliest tokens")
    ge.add_argument("--seed", type=int, default=None, metavar="N", help="sampling seed (default: the run's seed)")

    sa = sub.add_parser("sample", help="images from a trained generator (gan): a PNG grid or an .npz")
    sa.add_argument("run", metavar="RUN")
    sa.add_argument("--n", type=int, default=64, metavar="N", help="how many images (default: 64)")
    sa.add_argument("--out", default="samples.png", metavar="FILE", help="a .png grid or an .npz of arrays")
    sa.add_argument("--label", metavar="CLASS", help="the class to draw (conditional generators only)")
    sa.add_argument("--seed", type=int, default=0, metavar="N", help="noise seed (default: 0)")
    sa.add_argument("--truncation", type=float, default=None, metavar="T",
                    help="draw the noise from a normal cut at [-T, T]: cleaner, less varied samples (e.g. 0.7)")

    sub.add_parser("models", help="list the architectures and the pretrained:NAME models (installed or not)")

    ex = sub.add_parser("export", help="a run's model with its preprocessing as ONNX or a torch.export program")
    ex.add_argument("run", metavar="RUN")
    ex.add_argument("--format", default="onnx", metavar="FORMAT",
                    help="onnx (for onnxruntime, the default) or torch (a torch.export .pt2 program)")
    ex.add_argument("--out", metavar="PATH", help="the file to write, or a folder for model.onnx / model.pt2 "
                    "(default: the run folder)")
    ex.add_argument("--no-check", dest="check", action="store_false",
                    help="skip the comparison with eager PyTorch on sample inputs")
    ex.add_argument("--json", action="store_true", help="print what was written and checked as JSON")

    for name, help_ in (("embed", "encoder vectors of data (.npz) and a 2-D map coloured by label (autoencoders)"),
                        ("cluster", "k-means on the embeddings of data; NMI and ARI when it has labels"),
                        ("score", "anomaly score (and flag) per sample of data (--task anomaly or reconstruct)")):
        u = sub.add_parser(name, help=help_)
        u.add_argument("run", metavar="RUN")
        u.add_argument("source", metavar="DATA", help="data like the training data (a name: its test split)")
        u.add_argument("--target", metavar="COLUMN", help="table column with labels (default: the run's target)")
        if name == "embed":
            u.add_argument("--out", default="embeddings.npz", metavar="NPZ", help="where to save the vectors")
            u.add_argument("--plot", metavar="PNG", help="save a 2-D map of the embeddings")
            u.add_argument("--map", default="pca", choices=("pca", "tsne", "umap"), help="2-D map method")
        else:
            u.add_argument("--out", metavar="CSV", help="save one row per sample")
            u.add_argument("--json", action="store_true", help="print the results as JSON")
        if name == "cluster":
            u.add_argument("--k", type=int, default=10, metavar="K", help="number of clusters (default: 10)")
            u.add_argument("--seed", type=int, default=0, metavar="N", help="k-means seed (default: 0)")
            u.add_argument("--manifold", choices=("tsne", "umap"), help="k-means on this 2-D map of the embeddings")
            u.add_argument("--whiten", action=argparse.BooleanOptionalAction, default=True,
                           help="PCA-whiten the embeddings before k-means (default: on)")

    sv = sub.add_parser("serve", help="answer predictions over HTTP: POST /predict (JSON), /predict/files, "
                        "GET /metadata, docs at /docs", description="Serve a run with micro-batching: concurrent "
                        "requests share one forward pass. Needs `pip install 'layerwise[serve]'`.")
    sv.add_argument("run", metavar="RUN")
    sv.add_argument("--port", type=int, default=8000, metavar="N", help="TCP port (default: 8000)")
    sv.add_argument("--host", default="127.0.0.1", metavar="HOST",
                    help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    sv.add_argument("--max-batch", type=int, default=64, metavar="N",
                    help="most items in one forward pass; 1 turns batching off (default: 64)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                    help="most time to wait for a fuller batch, only under concurrent load (default: 5)")
    sv.add_argument("--max-queue", type=int, default=1024, metavar="N",
                    help="requests that may wait; more get 503 with Retry-After (default: 1024)")
    sv.add_argument("--max-items", type=int, default=256, metavar="N",
                    help="most inputs in one request, else 413 (default: 256)")
    sv.add_argument("--max-body-mb", type=float, default=10.0, metavar="MB",
                    help="largest request body, else 413 (default: 10)")
    sv.add_argument("--threads", type=int, default=None, metavar="N",
                    help="torch threads for the model (default: torch's)")

    r = sub.add_parser("runs", help="list runs with their status, training time and key metric")
    r.add_argument("root", nargs="?", default="runs", metavar="FOLDER", help="where the runs are (default: runs)")
    r.add_argument("--sort", default="created", choices=SORTS,
                   help="created (oldest first, the default), name, metric (best first) or time (longest first)")
    r.add_argument("--status", choices=STATUSES, help="only runs with this status")
    r.add_argument("--task", metavar="NAME", help="only runs of this task (classify, regress, ...)")
    r.add_argument("--model", metavar="NAME", help="only runs of this model (mlp, cnn, ...)")
    r.add_argument("--json", action="store_true", help="print the runs as a JSON list of objects")
    r.add_argument("--prune", action="store_true",
                   help="remove the runs that did not finish and have no trained weights (with the filters: of those)")
    r.add_argument("--dry-run", action="store_true", help="with --prune: only list what would be removed")

    rm = sub.add_parser("rm", help="remove run folders")
    rm.add_argument("runs", nargs="+", metavar="RUN")

    sm = sub.add_parser("summary", help="the layers of a run's model: output shapes and parameters")
    sm.add_argument("run", metavar="RUN")

    fe = sub.add_parser("federated", help="federated averaging: clients train on shards of the data, the server "
                        "averages their weights (FedAvg)",
                        usage="%(prog)s [DATA] [--clients N] [--rounds N] [--non-iid N] [--resume RUN] [--SETTING ...]",
                        description=SETTINGS_NOTE)
    fe.add_argument("source", nargs="?", metavar="DATA", help="data like `layerwise train` takes")
    fe.add_argument("--config", metavar="YAML", help="read settings from a YAML file (flags win)")
    fe.add_argument("--resume", metavar="RUN", help="continue a federated run from its last round")
    _add_settings(fe, "federated")

    lf = sub.add_parser("lr-find", help="learning-rate range test: saves a plot, suggests a value",
                        usage="%(prog)s DATA [--config YAML] [--plot PNG] [--SETTING ...]",
                        description=SETTINGS_NOTE)
    lf.add_argument("source", metavar="DATA")
    lf.add_argument("--config", metavar="YAML")
    lf.add_argument("--plot", metavar="PNG", default="lr_find.png", help="where to save the plot")
    _add_settings(lf)
    return p


def _settings(args: argparse.Namespace) -> dict:
    return {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --workers N` passes them on to torchrun
    if not args.command:
        parser.print_help()
        return 0
    warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
    try:
        code = COMMANDS[args.command](args) or 0
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:  # the reader went away (`layerwise runs | head -1`): stop quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a command its reader stopped
    except LayerwiseError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        run = e.args[0] if e.args else "RUN"
        print(f"interrupted; a checkpoint was saved: continue with `layerwise train --resume {run}`."
              if e.args else "interrupted; resume a training with `layerwise train --resume RUN`.", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: short message, the traceback only on request
        if "--debug" in sys.argv or __import__("os").environ.get("LAYERWISE_DEBUG"):
            raise
        print(f"internal error: {e.__class__.__name__}: {e} (set LAYERWISE_DEBUG=1 for the traceback; "
              "please report it)", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at devnull so that the interpreter's final flush does not fail again (Python docs, 'Note on
    SIGPIPE')."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (replaced in tests)
        pass


def cmd_train(args) -> int:
    from .api import train
    from .errors import ConfigError

    if not args.source and not args.resume and not args.config:
        raise ConfigError("give the data to train on, e.g. `layerwise train digits`, or --resume RUN.")
    workers = _workers(args)
    if workers > 1 and int(os.environ.get("WORLD_SIZE") or 1) == 1:  # not yet under torchrun: start it
        from .fit.distributed import launch

        return launch(args.argv, workers, args.threads)
    train(args.source, resume=args.resume, config=args.config, **_settings(args))
    return 0


def _workers(args) -> int:
    """--workers N, or `workers` of the --config file; 1 without them (a bad value: train() says so)."""
    value = args.workers
    if value is None and args.config:
        from .config import load_yaml

        value = load_yaml(args.config).get("workers")
    try:
        return int(value or 1)
    except (TypeError, ValueError):
        return 1


def cmd_evaluate(args) -> int:
    from .report import confusion_text
    from .run import Run

    run = Run.load(args.run)
    metrics = run.evaluate(args.source, confusion=args.confusion or not args.json)
    classes = run.task.classes if isinstance(run.task.classes, list) else None
    if args.json:
        if "confusion_matrix" in metrics:  # the labels of its rows and columns, next to it
            cm = metrics.pop("confusion_matrix")
            metrics.update(confusion_matrix=cm, classes=classes or list(range(len(cm))))
        print(json.dumps(metrics))
        return 0
    cm = metrics.pop("confusion_matrix", None)
    width = max([10, *map(len, metrics)])  # forecast metrics have long names (seasonal_naive_mse, ...)
    for k, v in metrics.items():
        print(f"{k:>{width}}  {v:.4f}")
    if cm is not None and len(cm) <= 20:
        print(confusion_text(cm, classes))
    elif cm is not None:
        print(f"({len(cm)} classes: too many to print; `layerwise evaluate RUN --json --confusion` gives the "
              "confusion matrix)")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from .run import Run

    run = Run.load(args.run)
    out = run.predict(args.inputs if len(args.inputs) > 1 else args.inputs[0], text=args.text)
    if "table" in out:  # a forecast: one row per future step
        return _print_table(out["table"], args)
    preds, probs = out["prediction"], out.get("probabilities")
    labels = out.get("inputs") or _input_labels(args.inputs, len(preds))
    if args.out:
        import pandas as pd

        df = pd.DataFrame({"input": labels, "prediction": list(preds)})
        if probs is not None:
            for i, c in enumerate(run.task.classes):
                df[f"p_{c}"] = probs[:, i]
        df.to_csv(args.out, index=False)
        print(f"wrote {len(df)} predictions to {args.out}", file=sys.stderr)
    elif args.json:
        rows = [{"input": s, "prediction": _py(p)} for s, p in zip(labels, preds)]
        if probs is not None:
            for r, pr in zip(rows, probs):
                r["probabilities"] = {str(c): float(v) for c, v in zip(run.task.classes, pr)}
        print(json.dumps(rows))
    else:
        for i, (s, p) in enumerate(zip(labels, preds)):
            conf = f"  ({float(np.max(probs[i])):.3f})" if probs is not None else ""
            print(f"{s}\t{_py(p)}{conf}")
    skipped = out.get("skipped") or []
    for name, why in skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    if skipped:
        print(f"error: {len(skipped)} of {len(skipped) + len(preds)} inputs were not predicted (listed above); "
              "remove or fix them.", file=sys.stderr)
        return 2
    return 0


def _print_table(df, args) -> int:
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"wrote {len(df)} rows to {args.out}", file=sys.stderr)
    elif args.json:
        print(df.to_json(orient="records"))
    else:
        print(df.to_string(index=False))
    return 0


def _input_labels(inputs: list[str], n: int) -> list[str]:
    if len(inputs) == n:
        return list(inputs)
    return [f"{inputs[0]}[{i}]" for i in range(n)]


def _py(v):
    return v.item() if hasattr(v, "item") else v


def cmd_generate(args) -> int:
    from .run import Run

    print(Run.load(args.run).generate(args.prompt, args.tokens, args.temperature, args.top_k, args.seed))
    return 0


def cmd_models(args) -> int:
    from .models import MODELS
    from .models.pretrained import listing

    print("architectures (--model NAME):")
    print("  " + ", ".join(MODELS))
    print("pretrained backbones with a new head (--model pretrained:NAME; --freeze, --lr-decay, --unfreeze-every):")
    for row in listing():
        state = "installed" if row["installed"] else f"not installed: {row['install']}"
        print(f"  {row['name']:<29} {row['kind']:<6} {row['about']}\n  {'':<29} {state}")
    return 0


def cmd_runs(args) -> int:
    from .errors import ConfigError
    from .report import filter_runs, list_runs, prunable, remove_runs, sort_runs

    if args.dry_run and not args.prune:
        raise ConfigError("--dry-run goes with --prune: `layerwise runs --prune --dry-run` lists what it would remove.")
    root = Path(args.root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; give the folder that holds the runs (default: runs).")
    found = list_runs(root)
    rows = sort_runs(filter_runs(found, args.status, args.task, args.model), args.sort)
    if args.prune:
        doomed = [r for r in rows if prunable(r)]
        if not args.dry_run:
            remove_runs([r["path"] for r in doomed])
        for r in doomed:
            print(f"{'would remove' if args.dry_run else 'removed'} {r['path']} ({r['status']})")
        if not doomed:
            print(f"nothing to prune in {str(root)!r}: every run finished or has trained weights.")
        return 0
    if args.json:
        print(json.dumps(rows))
        return 0
    if not found:
        print(f"no runs in {str(root)!r} yet; start one with `layerwise train DATA`.")
        return 0
    if not rows:
        print(f"no runs in {str(root)!r} match the filters ({len(found)} runs in all).")
        return 0
    table = [(r["name"], r["status"], _cell(r["data"]), _cell(r["model"]), _cell(r["task"]), _epochs(r),
              _duration(r["seconds"]), f"{r['metric']} {r['value']:.4f}" if _is_float(r["value"]) else "-")
             for r in rows]
    head = ("run", "status", "data", "model", "task", "epochs", "time", "metric")
    caps = (44, 11, 20, 16, 11, 9, 8, 40)
    widths = [min(cap, max(len(h), *(len(t[i]) for t in table))) for i, (h, cap) in enumerate(zip(head, caps))]
    print(_line(head, widths))
    for r, t in zip(rows, table):
        print(_line(t, widths))
        if r["error"]:
            print(f"  error: {r['error']}")
    return 0


def _line(cells, widths) -> str:
    out = [c if len(c) <= w else c[:w - 1] + "…" for c, w in zip(cells, widths)]
    return "  ".join(f"{c:<{w}}" for c, w in zip(out[:-1], widths)) + "  " + out[-1]


def _cell(v) -> str:
    return "?" if v is None else str(v)


def _is_float(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _epochs(r: dict) -> str:
    return f"{r['epochs_done']}/{r['epochs']}" if r["epochs"] is not None else str(r["epochs_done"])


def _duration(seconds) -> str:
    if not _is_float(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def cmd_rm(args) -> int:
    from .report import remove_runs

    for p in remove_runs(args.runs):
        print(f"removed {p}")
    return 0


def cmd_summary(args) -> int:
    from .report import summary_text
    from .run import Run

    print(summary_text(Run.load(args.run)))
    return 0


def cmd_lr_find(args) -> int:
    from .api import lr_find

    lr_find(args.source, plot=args.plot, config=args.config, **_settings(args))
    return 0


def cmd_sample(args) -> int:
    from .run import Run

    out = Run.load(args.run).save_samples(args.out, args.n, args.label, args.seed, args.truncation)
    print(f"wrote {args.n} samples to {out}", file=sys.stderr)
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "runs": cmd_runs,
            "lr-find": cmd_lr_find}
COMMANDS["sample"] = cmd_sample
COMMANDS["generate"] = cmd_generate
COMMANDS["models"] = cmd_models

def cmd_embed(args) -> int:
    from .run import Run

    z = Run.load(args.run).embed(args.source, out=args.out, plot=args.plot, method=args.map,
              target=args.target)["embeddings"]
    plot = f" and a {args.map} map to {args.plot}" if args.plot else ""
    print(f"wrote {z.shape[0]} embeddings of size {z.shape[1]} to {args.out}{plot}", file=sys.stderr)
    return 0


def cmd_cluster(args) -> int:
    from .run import Run

    r = Run.load(args.run).cluster(args.source, args.k, seed=args.seed, out=args.out, target=args.target,
                manifold=args.manifold, whiten=args.whiten)
    summary = {k: r[k] for k in ("k", "sizes", "nmi", "ari") if k in r}
    if args.json:
        print(json.dumps(summary))
        return 0
    print("cluster    size")
    for i, n in enumerate(r["sizes"]):
        print(f"{i:>7} {n:>7}")
    for m in ("nmi", "ari"):
        if m in r:
            print(f"{m:>7} {r[m]:.4f}")
    return 0


def cmd_score(args) -> int:
    from .run import Run

    r = Run.load(args.run).score(args.source, out=args.out, target=args.target)
    s, flags = r["score"], r["flag"]
    metrics = {k: r[k] for k in ("auroc", "average_precision", "tpr", "fpr") if k in r}
    if args.json:
        rows = [{"row": i, "score": float(v), **({"flag": bool(flags[i])} if flags is not None else {})}
                for i, v in enumerate(s)]
        print(json.dumps({"threshold": r["threshold"], **metrics, "rows": rows}))
        return 0
    if not args.out:
        for i, v in enumerate(s):
            print(f"{i}\t{v:.6g}" + (f"\t{'anomaly' if flags[i] else 'normal'}" if flags is not None else ""))
    parts = [f"{len(s)} scores" + (f" written to {args.out}" if args.out else "")]
    if flags is not None:
        parts.append(f"{int(flags.sum())} flagged (threshold {r['threshold']:.4g})")
    parts += [f"{k} {v:.4f}" for k, v in metrics.items()]
    print("; ".join(parts), file=sys.stderr)
    return 0


COMMANDS.update(embed=cmd_embed, cluster=cmd_cluster, score=cmd_score, rm=cmd_rm, summary=cmd_summary)


def cmd_export(args) -> int:
    from .export import export

    result = export(args.run, args.format, args.out, check=args.check, quiet=args.json)
    if args.json:
        print(json.dumps(result))
    return 0


COMMANDS["export"] = cmd_export


def cmd_serve(args) -> int:
    from .serve import serve

    return serve(args.run, host=args.host, port=args.port, threads=args.threads, max_batch=args.max_batch,
                 max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, max_items=args.max_items,
                 max_body_mb=args.max_body_mb)


COMMANDS["serve"] = cmd_serve


def cmd_federated(args) -> int:
    from .errors import ConfigError
    from .federated import federated

    if not args.source and not args.resume and not args.config:
        raise ConfigError("give the data to train on, e.g. `layerwise federated digits --clients 10`, or --resume "
                          "RUN.")
    try:
        federated(args.source, resume=args.resume, config=args.config, **_settings(args))
    except KeyboardInterrupt:
        print("interrupted; continue from the last finished round with `layerwise federated --resume RUN`.",
              file=sys.stderr)
        return 130
    return 0


COMMANDS["federated"] = cmd_federated

if __name__ == "__main__":
    sys.exit(main())
