"""Batch-1 latency of an exported model: onnxruntime vs eager PyTorch, the default CNN, calls interleaved.

    python benchmarks/export.py [--data digits,../shared/data/mnist.npz] [--calls 2000] [--threads 1]

For each data set a default CNN is trained briefly (latency does not depend on the weights' quality; MNIST on
its first --train-rows images), exported with `layerwise.export.export(run, "onnx")`, and timed on single test
images. The rows:

- eager model: `model(x)` in fp32 under torch.inference_mode on an already preprocessed [1, C, H, W] tensor;
- eager + preprocessing: the run's numpy preprocessing (run.transform) of the raw image, then the model;
- onnxruntime: `session.run` on the raw image (the preprocessing is inside the graph).

Each iteration times one call of every engine in a rotating order; the table shows the median and 90th
percentile in microseconds and the median speed-up over the eager model. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import layerwise as lw
from layerwise.export import export


def train(data: str, rows: int, out: Path, threads: int):
    """A default CNN (precision fp32, the export's) trained for one epoch; raw test images [N, H, W, C]."""
    d = lw.load(data)
    test = d.test.x if d.test is not None else d.x[-500:]
    source = d.source or data
    if d.test is not None or len(d) > rows:  # a subset keeps the training short: the weights do not matter here
        x, y = d.x[:rows], d.y[:rows]
        d = (x, y)
    else:
        d = data
    run = lw.train(d, model="cnn", epochs=1, precision="fp32", out=out, quiet=True, threads=threads,
                   tensorboard=False, progress=False)
    return run, np.asarray(test[:500]), Path(str(source)).stem


def bench(run, images: np.ndarray, onnx_path: str, calls: int, threads: int) -> dict[str, list[float]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    model = run.model.eval()
    raw = [np.ascontiguousarray(images[i:i + 1], dtype=np.float32) for i in range(len(images))]
    pre = [torch.from_numpy(run.transform(lw.Data("image", r, None))[0]) for r in raw]

    def eager(i: int) -> None:
        model(pre[i])

    def eager_pre(i: int) -> None:
        model(torch.from_numpy(run.transform(lw.Data("image", raw[i], None))[0]))

    def onnx(i: int) -> None:
        session.run(None, {name: raw[i]})

    engines = {"eager model": eager, "eager + preprocessing": eager_pre, "onnxruntime": onnx}
    times: dict[str, list[float]] = {k: [] for k in engines}
    order = list(engines)
    with torch.inference_mode():
        for i in range(50):  # warm-up
            for fn in engines.values():
                fn(i % len(raw))
        for i in range(calls):
            order = order[1:] + order[:1]  # rotate who goes first
            for k in order:
                t = time.perf_counter_ns()
                engines[k](i % len(raw))
                times[k].append((time.perf_counter_ns() - t) / 1e3)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits", help="comma list: digits, mnist, or .npz paths")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of both engines")
    ap.add_argument("--train-rows", type=int, default=3000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = ["| data | engine | median µs | p90 µs | speed-up vs eager model |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(args.data.split(",")):
            run, images, label = train(data, args.train_rows, Path(tmp) / f"run{i}", args.threads)
            result = export(run, "onnx", Path(tmp) / f"cnn{i}.onnx", quiet=True)
            times = bench(run, images, result["path"], args.calls, args.threads)
            base = statistics.median(times["eager model"])
            shape = "x".join(map(str, images.shape[1:]))
            for k, v in times.items():
                med, p90 = statistics.median(v), float(np.percentile(v, 90))
                rows.append(f"| {label} ({shape}) | {k} | {med:.0f} | {p90:.0f} | {base / med:.2f}x |")
            print(f"{label}: {result['exporter']} exporter, opset {result['opset']}, max abs diff "
                  f"{result['max_abs_diff']:.2g} on {result['checked_on']}", flush=True)
    print(f"\n{args.calls} interleaved batch-1 calls per engine, {args.threads} thread(s), torch {torch.__version__}, "
          f"onnxruntime {__import__('onnxruntime').__version__}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
