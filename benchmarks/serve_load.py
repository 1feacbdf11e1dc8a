"""Load test of `layerwise serve`: micro-batching on and off, and a plain FastAPI endpoint, on 127.0.0.1.

    python benchmarks/serve_load.py [--seconds 20] [--clients 32,1] [--model cnn] [--run RUN] [--threads 1]

Trains the default CNN on digits for one epoch (unless --run is given), then for each server -- `layerwise serve
--max-batch 64` (batching on), `--max-batch 1` (batching off) and a plain FastAPI endpoint that runs one forward
pass per request -- starts it in a subprocess on a free port of 127.0.0.1, runs a closed-loop load with httpx
(asyncio) for --seconds at each number of concurrent clients (each client sends one 8x8 image per request and
waits for the answer), and stops it. Prints requests/s, p50/p95/p99 latency and errors as a markdown table.
`--client raw` swaps httpx for a minimal asyncio HTTP/1.1 client: on a small machine httpx's own CPU per request
is the limit, not the server's.
Everything is bounded: each load by time and a request cap, each server start by a timeout; the servers are
stopped (SIGTERM, then killed) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"
NAMES = {"on": "layerwise serve, batching on (--max-batch 64)", "off": "layerwise serve, batching off (--max-batch 1)",
         "plain": "plain FastAPI, one forward per request"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the plain endpoint (a subprocess of this file)


def plain_server(run_dir: str, port: int, threads: int) -> None:
    """FastAPI with one forward pass per request (run.predict in FastAPI's thread pool), no batching."""
    import torch
    import uvicorn
    from fastapi import FastAPI

    import layerwise as lw

    torch.set_num_threads(threads)
    run = lw.Run.load(run_dir)
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict):
        out = run.predict(np.asarray(body["inputs"], dtype=np.float32))
        return {"predictions": [int(p) for p in out["prediction"]], "probabilities": out["probabilities"].tolist()}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- servers


@contextlib.contextmanager
def server(kind: str, run_dir: str, threads: int, log: Path):
    port = free_port()
    if kind == "plain":
        cmd = [sys.executable, __file__, "--plain-server", run_dir, "--port", str(port), "--threads", str(threads)]
    else:
        cmd = [sys.executable, "-m", "layerwise.cli", "serve", run_dir, "--host", HOST, "--port", str(port),
               "--threads", str(threads), "--max-batch", "64" if kind == "on" else "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc, log)
        yield f"http://{HOST}:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: queued requests are answered, then it stops
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_healthy(port: int, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped (exit {proc.returncode}):\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer /health within {seconds:.0f} s:\n{log.read_text()[-2000:]}")


# ---------------------------------------------------------------- load


async def load(url: str, images: list, clients: int, seconds: float, warmup: float = 1.0,
               max_requests: int = 1_000_000) -> dict:
    """`clients` closed-loop clients for `seconds` (after `warmup` seconds not counted): latencies and errors.

    Each client has its own httpx.AsyncClient with one keep-alive connection: one shared pool of 32
    connections costs the load generator several times more CPU per request than the server spends."""
    import httpx

    bodies = [json.dumps({"inputs": [im]}).encode() for im in images]
    headers = {"content-type": "application/json"}
    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        i = k
        async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=10.0) as client:
            while (now := time.perf_counter()) < end and len(lat) + errors < max_requests:
                body = bodies[i % len(bodies)]
                i += clients
                t = time.perf_counter()
                try:
                    r = await client.post("/predict", content=body, headers=headers)
                    ok = r.status_code == 200 and len(r.json()["predictions"]) == 1
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                if now >= measure_from:
                    if ok:
                        lat.append(time.perf_counter() - t)
                    else:
                        errors += 1

    await asyncio.gather(*(worker(k) for k in range(clients)))
    return {"latencies": lat, "errors": errors, "seconds": time.perf_counter() - measure_from}


async def load_raw(url: str, images: list, clients: int, seconds: float, warmup: float = 1.0,
                   max_requests: int = 1_000_000) -> dict:
    """As `load`, with a minimal HTTP/1.1 keep-alive client on asyncio streams (a fraction of httpx's CPU per
    request), to see what the server can do when the load generator is not the limit."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = [json.dumps({"inputs": [im]}).encode() for im in images]
    requests = [b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (host.encode(), len(b), b) for b in bodies]
    lat: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        i = k
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
        try:
            while (now := time.perf_counter()) < end and len(lat) + errors < max_requests:
                req = requests[i % len(requests)]
                i += clients
                t = time.perf_counter()
                try:
                    writer.write(req)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    lines = head.split(b"\r\n")
                    length = next(int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length:"))
                    body = await asyncio.wait_for(reader.readexactly(length), 10)
                    ok = lines[0].split()[1] == b"200" and len(json.loads(body)["predictions"]) == 1
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError,
                        StopIteration):
                    ok = False
                if now >= measure_from:
                    if ok:
                        lat.append(time.perf_counter() - t)
                    else:
                        errors += 1
                if not ok:
                    break
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(clients)))
    return {"latencies": lat, "errors": errors, "seconds": time.perf_counter() - measure_from}


LOADS = {"httpx": load, "raw": load_raw}


def summary(parts: list[dict]) -> dict:
    lat = [x for p in parts for x in p["latencies"]]
    elapsed = max(p["seconds"] for p in parts)
    ms = np.asarray(lat) * 1000 if lat else np.asarray([float("nan")])
    return {"rps": len(lat) / elapsed, "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95),
            "p99": np.percentile(ms, 99), "errors": sum(p["errors"] for p in parts), "n": len(lat)}


def measure(url: str, images: list, clients: int, seconds: float, procs: int, how: str = "httpx") -> dict:
    """The load from `procs` processes (this one when 1), each with its share of the clients."""
    procs = max(1, min(procs, clients))
    if procs == 1:
        return summary([asyncio.run(LOADS[how](url, images, clients, seconds))])
    shares = [clients // procs + (k < clients % procs) for k in range(procs)]
    workers = [subprocess.Popen([sys.executable, __file__, "--load-worker", url, "--clients", str(n), "--seconds",
                                 str(seconds), "--client", how], stdout=subprocess.PIPE, text=True) for n in shares]
    parts = []
    for w in workers:
        try:
            out, _ = w.communicate(timeout=seconds + 60)
            parts.append(json.loads(out))
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            w.kill()
            w.wait(5)
            parts.append({"latencies": [], "errors": 1, "seconds": seconds})
    return summary(parts)


async def batching_of(url: str) -> tuple[int, int]:
    """(forward passes, items) the server has run so far; (0, 0) for the plain endpoint."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=5) as c:
        r = await c.get("/metadata")
    if r.status_code != 200:
        return 0, 0
    b = r.json()["batching"]
    return b["forward_passes"], b["items"]


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per load (default: 20)")
    ap.add_argument("--clients", default="32,1", help="concurrent clients, comma list (default: 32,1)")
    ap.add_argument("--model", default="cnn", help="model trained on digits when --run is not given")
    ap.add_argument("--run", help="a run folder to serve instead (trained on 8x8 digits)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each server (default: 1)")
    ap.add_argument("--servers", default="on,off,plain", help="which servers: on, off, plain")
    ap.add_argument("--client", default="httpx", choices=("httpx", "raw"),
                    help="load generator: httpx.AsyncClient per client, or a minimal asyncio HTTP/1.1 client that "
                         "costs far less CPU (default: httpx)")
    ap.add_argument("--load-procs", type=int, default=1, help="processes that generate the load (default: 1)")
    ap.add_argument("--plain-server", metavar="RUN", help=argparse.SUPPRESS)
    ap.add_argument("--load-worker", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_server:
        return plain_server(args.plain_server, args.port, args.threads)
    from layerwise.data import builtin

    images = builtin.NAMES["digits"]()["x"][:256, 0].tolist()
    if args.load_worker:  # one share of the clients, in its own process: its latencies as JSON
        return print(json.dumps(asyncio.run(LOADS[args.client](args.load_worker, images, int(args.clients),
                                                                args.seconds))))

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        run_dir = args.run
        if run_dir is None:
            import layerwise as lw

            run_dir = str(Path(tmp) / "digits")
            lw.train("digits", model=args.model, epochs=1, out=run_dir, progress=False, tensorboard=False,
                     threads=args.threads, quiet=True)
        clients = [int(c) for c in args.clients.split(",")]
        rows = []
        for kind in args.servers.split(","):
            with server(kind, run_dir, args.threads, Path(tmp) / f"{kind}.log") as url:
                for n in clients:
                    passes, items = asyncio.run(batching_of(url))
                    r = measure(url, images, n, args.seconds, args.load_procs, args.client)
                    passes2, items2 = asyncio.run(batching_of(url))
                    r["per_pass"] = (items2 - items) / (passes2 - passes) if passes2 > passes else None
                    rows.append((kind, n, r))
                    print(f"  {kind:>5} {n:>3} clients: {r['rps']:8.1f} req/s  p95 {r['p95']:.2f} ms", file=sys.stderr)
    model = Path(args.run).name if args.run else args.model
    print(f"\ndigits 8x8, model {model}, {args.seconds:g} s per load, {args.threads} torch thread(s) per server, "
          f"{os.cpu_count()} CPUs shared with the load generator ({args.load_procs} process(es), {args.client} clients)\n")
    print("| server | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | items per forward |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, n, r in rows:
        per = f"{r['per_pass']:.1f}" if r["per_pass"] else "1 (each request)"
        print(f"| {NAMES[kind]} | {n} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | "
              f"{r['errors']} | {per} |")
    got = {(kind, n): r for kind, n, r in rows}
    print()
    for n in clients:
        if ("on", n) in got and ("off", n) in got:
            on, off = got[("on", n)], got[("off", n)]
            print(f"{n} client(s), batching on / off: requests/s x{on['rps'] / off['rps']:.2f}, "
                  f"p95 x{on['p95'] / off['p95']:.2f}")


if __name__ == "__main__":
    main()
