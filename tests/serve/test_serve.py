"""`layerwise serve`: the FastAPI app in-process (TestClient), its micro-batching queue, and the CLI's port check."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient

import layerwise as lw
from layerwise.cli import main
from layerwise.serve import make_app
from layerwise.serve.batcher import Batcher

FAST = {"epochs": 1, "progress": False, "tensorboard": False, "threads": 1, "quiet": True}
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color,
                         "label": np.where(x1 + (color == "red") > 0.3, "yes", "no"), "price": 3 * x1 - x2})


def reviews(n: int = 60) -> pd.DataFrame:
    good, bad = ["great", "superb", "moving"], ["dull", "awful", "boring"]
    rows = [(f"the film was really {(good if i % 2 else bad)[i % 3]} and the plot {i}", "pos" if i % 2 else "neg")
            for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "sentiment"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-runs")
    df = table()
    csv = root / "reviews.csv"
    reviews().to_csv(csv, index=False)
    lw.train("digits", model="mlp", out=root / "digits", **FAST)
    lw.train(df.drop(columns=["price"]), target="label", out=root / "table", **FAST)
    lw.train(df.drop(columns=["label", "color"]), target="price", task="regress", out=root / "regress", **FAST)
    lw.train(str(csv), target="sentiment", out=root / "text", max_len=16, d_model=16, hidden=[16], **FAST)
    return {k: lw.Run.load(root / k) for k in ("digits", "table", "regress", "text")}


@pytest.fixture(scope="module")
def digits():
    from layerwise.data import builtin

    return builtin.NAMES["digits"]()["x"][:40, 0]  # [40, 8, 8] floats in [0, 1]


def client(run, **kw) -> TestClient:
    return TestClient(make_app(run, **kw))


def same(answer: dict, expected: dict) -> None:
    assert answer["predictions"] == [p.item() if hasattr(p, "item") else p for p in expected["prediction"]]
    if "probabilities" in expected:
        np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], atol=1e-5)
        assert answer["classes"] == expected["classes"]


# ---------------------------------------------------------------- answers equal run.predict


def test_digits_images_in_every_layout_equal_run_predict(runs, digits):
    run, x = runs["digits"], digits[:6]
    expected = run.predict(x)
    with client(run) as c:
        for items in (x.tolist(), x[..., None].tolist(), x[:, None].tolist(), x.reshape(6, -1).tolist()):
            r = c.post("/predict", json={"inputs": items})
            assert r.status_code == 200, r.text
            same(r.json(), expected)


def test_table_rows_equal_run_predict_and_the_target_column_is_ignored(runs):
    run = runs["table"]
    rows = table(8, seed=1).drop(columns=["price"]).to_dict("records")
    rows[2]["x2"], rows[3]["color"] = None, None  # missing values as in a CSV
    rows[4]["color"] = "purple"  # a category not seen in training
    expected = run.predict(pd.DataFrame(rows))
    with client(run) as c:
        r = c.post("/predict", json={"inputs": rows})
    assert r.status_code == 200, r.text
    same(r.json(), expected)
    assert set(r.json()["classes"]) == {"yes", "no"}


def test_regression_answers_numbers(runs):
    run = runs["regress"]
    rows = table(5, seed=2)[["x1", "x2"]].to_dict("records")
    with client(run) as c:
        got = c.post("/predict", json={"inputs": rows}).json()
    np.testing.assert_allclose(got["predictions"], run.predict(pd.DataFrame(rows))["prediction"].ravel(), rtol=1e-5)
    assert "probabilities" not in got


def test_texts_equal_run_predict_and_long_ones_are_cut_or_refused(runs):
    run = runs["text"]
    texts = ["a great and moving film", "dull awful boring", "the plot " * 40]
    with client(run) as c:
        r = c.post("/predict", json={"inputs": texts})
        assert r.status_code == 200, r.text
        with pytest.warns(UserWarning, match="truncated"):
            same(r.json(), run.predict(texts, text=True))
        assert r.json()["truncated"] == [2]
        refused = c.post("/predict", json={"inputs": texts, "truncate": False})
        assert "truncated" not in c.post("/predict", json={"inputs": texts[:2]}).json()
    assert refused.status_code == 422
    assert "input 2 is longer than the model's context of 16 tokens" in refused.json()["detail"]


def test_image_files_equal_run_predict_of_the_same_files(runs, digits, tmp_path):
    from PIL import Image

    run = runs["digits"]
    paths = []
    for i in range(3):
        p = tmp_path / f"d{i}.png"
        Image.fromarray((digits[i] * 255).astype(np.uint8)).save(p)
        paths.append(p)
    with client(run) as c:
        r = c.post("/predict/files", files=[("files", (p.name, p.read_bytes(), "image/png")) for p in paths])
        broken = c.post("/predict/files", files=[("files", ("notes.txt", b"not an image", "text/plain"))])
    assert r.status_code == 200, r.text
    same(r.json(), run.predict([str(p) for p in paths]))
    assert r.json()["inputs"] == ["d0.png", "d1.png", "d2.png"]
    assert broken.status_code == 422 and "'notes.txt' cannot be read as an image" in broken.json()["detail"]


# ---------------------------------------------------------------- metadata, health, docs


def test_metadata_health_and_docs(runs):
    run = runs["table"]
    with client(run, max_batch=8) as c:
        meta = c.get("/metadata").json()
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/docs").status_code == 200
        schema = c.get("/openapi.json").json()
    assert meta["task"] == "classify" and meta["input"]["kind"] == "table"
    assert meta["columns"] == ["x1", "x2", "color"] and meta["input"]["columns"]["color"] == "category"
    assert sorted(meta["classes"]) == ["no", "yes"]
    assert meta["model"]["name"] == "mlp" and meta["model"]["parameters"] == run.info["parameters"] > 0
    assert meta["test_metrics"] == run.info["test_metrics"]
    assert meta["limits"]["max_batch"] == 8 and meta["batching"]["forward_passes"] == 0
    assert {"/predict", "/predict/files", "/health", "/metadata"} <= set(schema["paths"])
    with client(runs["digits"]) as c:
        meta = c.get("/metadata").json()
    assert meta["input"]["shape"] == [8, 8, 1] and meta["classes"] == list(range(10))


# ---------------------------------------------------------------- bad input: a 4xx and one sentence, never a 500


@pytest.mark.parametrize("body, status, says", [
    ({"inputs": [{"x1": 1.0, "color": "red"}]}, 422, "input 0 lacks column(s) 'x2'"),
    ({"inputs": [{"x1": 1.0, "x2": 0.0, "colour": "red"}]}, 422,
     "lacks column(s) 'color' and has unknown column(s) 'colour'"),
    ({"inputs": [{"x1": "abc", "x2": 0.0, "color": "red"}]}, 422, "column 'x1' holds non-numeric values"),
    ({"inputs": [{"x1": [1], "x2": 0.0, "color": "red"}]}, 422, "input 0, column 'x1'"),
    ({"inputs": ["just a text"]}, 422, "input 0"),
    ({"inputs": []}, 422, "\"inputs\" is empty"),
    ({"rows": []}, 422, "unknown field 'rows'"),
    ({}, 422, "the body needs \"inputs\""),
])
def test_bad_table_requests(runs, body, status, says):
    with client(runs["table"]) as c:
        r = c.post("/predict", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and says in detail and detail.endswith(".")


def test_bad_image_requests_and_limits(runs, digits):
    with client(runs["digits"], max_items=10, max_body_mb=0.05) as c:
        small = c.post("/predict", json={"inputs": [np.zeros((7, 7)).tolist()]})
        assert small.status_code == 422 and "an image of 7x7, but the model takes 8x8 images" in small.json()["detail"]
        ragged = c.post("/predict", json={"inputs": [[[1, 2], [3]]]})
        assert ragged.status_code == 422 and "not a rectangular nested list" in ragged.json()["detail"]
        text = c.post("/predict", json={"inputs": ["a picture"]})
        assert text.status_code == 422 and "input 0" in text.json()["detail"]
        nan = c.post("/predict", content=json.dumps({"inputs": [[float("nan")] * 64]}),
                     headers={"content-type": "application/json"})
        assert nan.status_code == 422 and "NaN" in nan.json()["detail"]
        many = c.post("/predict", json={"inputs": digits[:11].tolist()})
        assert many.status_code == 413 and "more than 10 (--max-items)" in many.json()["detail"]
        big = json.dumps({"inputs": [[0.123456789] * 64] * 200}).encode()  # ~0.14 MB
        assert c.post("/predict", content=big, headers={"content-type": "application/json"}).status_code == 413
        streamed = c.post("/predict", content=iter([big[:40000], big[40000:]]),  # no Content-Length
                          headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "--max-body-mb" in streamed.json()["detail"]
        broken = c.post("/predict", content=b'{"inputs": [', headers={"content-type": "application/json"})
        assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]
        assert c.post("/predict", json={"inputs": digits[:2].tolist()}).status_code == 200  # still serving


def test_files_to_a_table_model_and_no_files(runs):
    with client(runs["table"]) as c:
        r = c.post("/predict/files", files=[("files", ("a.png", b"x", "image/png"))])
        assert r.status_code == 422 and "POST the items as JSON to /predict" in r.json()["detail"]
    with client(runs["digits"]) as c:
        r = c.post("/predict/files")
        assert r.status_code == 422 and "field name \"files\"" in r.json()["detail"]


# ---------------------------------------------------------------- micro-batching


def slow(run, monkeypatch, seconds: float = 0.02, gate: threading.Event | None = None):
    """run.outputs taking at least `seconds` (or until `gate` is set), so that requests pile up meanwhile."""
    outputs = run.outputs

    def waiting(inputs):
        if gate is not None:
            gate.wait(10)
        time.sleep(seconds)
        return outputs(inputs)

    monkeypatch.setattr(run, "outputs", waiting)


def test_32_concurrent_requests_are_answered_correctly_and_batched(runs, digits, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    run = runs["digits"]
    expected = run.predict(digits[:32])
    slow(run, monkeypatch)
    with client(run, max_batch=64) as c:
        def ask(i):
            return i, c.post("/predict", json={"inputs": [digits[i].tolist()]})

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(ask, range(32)))
        stats = c.get("/metadata").json()["batching"]
    for i, r in answers:
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [expected["prediction"][i]]
        np.testing.assert_allclose(r.json()["probabilities"][0], expected["probabilities"][i], atol=1e-5)
    assert stats["requests"] == 32 and stats["items"] == 32
    assert stats["forward_passes"] < 32 and stats["batched_passes"] >= 1 and stats["largest_batch"] > 1


def test_max_batch_1_runs_one_request_per_pass(runs, digits, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    run = runs["digits"]
    slow(run, monkeypatch, 0.005)
    with client(run, max_batch=1) as c:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: c.post("/predict", json={"inputs": [digits[i].tolist()]}).status_code,
                                  range(8)))
        stats = c.get("/metadata").json()["batching"]
    assert codes == [200] * 8
    assert stats["forward_passes"] == 8 and stats["requests_per_pass"] == {"1": 8}


def test_a_lone_request_does_not_wait_for_a_batch(runs, digits):
    with client(runs["digits"], max_wait_ms=500) as c:
        c.post("/predict", json={"inputs": [digits[0].tolist()]})
        t = time.perf_counter()
        assert c.post("/predict", json={"inputs": [digits[1].tolist()]}).status_code == 200
        assert time.perf_counter() - t < 0.25


def test_a_full_queue_answers_503_with_retry_after(runs, digits, monkeypatch):
    run, gate = runs["digits"], threading.Event()
    slow(run, monkeypatch, 0.0, gate)
    item = {"inputs": [digits[0].tolist()]}
    with client(run, max_queue=1, warmup=False) as c:
        batcher = c.app.state.batcher
        first = threading.Thread(target=c.post, args=("/predict",), kwargs={"json": item})
        second = threading.Thread(target=c.post, args=("/predict",), kwargs={"json": item})
        first.start()
        _until(lambda: batcher.busy)
        second.start()
        _until(lambda: batcher.queued == 1)
        r = c.post("/predict", json=item)
        gate.set()
        first.join(10)
        second.join(10)
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["detail"]


def _until(condition, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


def test_closing_finishes_the_queued_jobs_first():
    calls = []

    def process(jobs):
        time.sleep(0.01)
        calls.append(len(jobs))
        return [j.payload * 2 for j in jobs]

    async def scenario():
        b = Batcher(process, max_batch=4, max_wait_ms=0)
        b.start()
        tasks = [asyncio.ensure_future(b.submit(i, 1)) for i in range(10)]
        await asyncio.sleep(0)  # all submitted
        await b.close()
        return await asyncio.gather(*tasks)

    assert asyncio.run(scenario()) == [2 * i for i in range(10)]
    assert sum(calls) == 10 and max(calls) == 4  # batched, and no batch over max_batch


# ---------------------------------------------------------------- the command


def test_a_port_in_use_is_one_sentence_and_exit_2(runs, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", str(runs["digits"].path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: port {port} on 127.0.0.1 is in use; stop what runs there or pick another port with --port."


def test_importing_serve_and_the_parser_stay_light():
    code = ("import sys, layerwise.serve, layerwise.cli as c; c.build_parser(); "
            "print(any(m in sys.modules for m in ('fastapi', 'torch', 'uvicorn')))")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_image_bytes_helper_reads_png_like_files(runs, digits):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((digits[0] * 255).astype(np.uint8)).save(buf, format="PNG")
    chunk = make_app(runs["digits"]).state.inputs.from_files([("x.png", buf.getvalue())])
    assert chunk.raw.shape == (1, 8, 8, 1) and chunk.extra == {"inputs": ["x.png"]}


def test_a_bad_request_in_a_batch_fails_alone(runs):
    from layerwise.serve.batcher import Job
    from layerwise.serve.inputs import InputError

    run = runs["table"]
    app = make_app(run)
    inputs, predictor = app.state.inputs, app.state.batcher.process
    good = [{"x1": 0.5, "x2": -1.0, "color": "red"}]
    bad = [{"x1": 1.0, "x2": "n/a?", "color": "blue"}]
    jobs = [Job(inputs.from_json(rows), 1, None) for rows in (good, bad, good)]
    first, failed, last = predictor(jobs)
    assert first == last and first["predictions"] == run.predict(pd.DataFrame(good))["prediction"]
    assert isinstance(failed, InputError) and failed.status == 422 and "column 'x2'" in failed.detail
