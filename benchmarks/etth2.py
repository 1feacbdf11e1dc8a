"""ETTh2 forecasting, target OT, horizon 96, look-back 336, the standard 12/4/4-month split, standardised with
training statistics: the default model (DLinear) against the naive and seasonal-naive forecasts.

    python benchmarks/etth2.py [--data ../shared/data/timeseries/ETTh2.csv] [--threads 2] [--seeds 0,1,2]

MS: all 7 columns as inputs, OT as the target (what `--target OT` does); the MSE over all 7 columns of
the same run is the multivariate-to-multivariate (M) number that papers report (PatchTST ≈ 0.27–0.29,
DLinear ≈ 0.29 at horizon 96). S: the target alone as input (--series-inputs target).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import layerwise as lw


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" /
                                        "timeseries" / "ETTh2.csv"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for inputs in ("all", "target"):
            for seed in map(int, args.seeds.split(",")):
                t = time.perf_counter()
                run = lw.train(args.data, task="forecast", target="OT", horizon=96, lookback=336, series_inputs=inputs,
                               seed=seed, threads=args.threads, out=Path(tmp) / f"{inputs}-{seed}", progress=False,
                               tensorboard=False, quiet=True)
                rows.append((inputs, seed, run.info["test_metrics"], time.perf_counter() - t))
    print(f"{'setting':<22}{'seed':>5}{'MSE OT':>9}{'MAE OT':>9}{'naive':>9}{'s-naive':>9}{'MSE all':>9}"
          f"{'sMAE/sn':>9}{'seconds':>9}")
    for inputs, seed, m, sec in rows:
        name = "MS (7 inputs -> OT)" if inputs == "all" else "S (OT -> OT)"
        loss_all = f"{m['loss']:>9.4f}" if inputs == "all" else f"{'':>9}"
        print(f"{name:<22}{seed:>5}{m['mse']:>9.4f}{m['mae']:>9.4f}{m['naive_mse']:>9.4f}{m['seasonal_naive_mse']:>9.4f}"
              f"{loss_all}{m['scaled_mae_seasonal_naive']:>9.3f}{sec:>9.1f}")
    print("MSE/MAE on the standardised scale of the test part (2785 windows); naive / s-naive: MSE of repeating "
          "the last value / the last day; MSE all: the same run's MSE over all 7 columns (M setting); "
          "sMAE/sn: MAE over the seasonal-naive MAE.")


if __name__ == "__main__":
    main()
