"""The HTTP app of `layerwise serve`: FastAPI routes in front of a micro-batching queue and one model thread.

    app = make_app(lw.Run.load("runs/..."), max_batch=64)      # then: uvicorn.run(app) or `layerwise serve RUN`

Routes: POST /predict (JSON items), POST /predict/files (image or WAV uploads), GET /health, GET /metadata,
and FastAPI's OpenAPI docs at /docs.
"""

# no `from __future__ import annotations`: FastAPI reads the route annotations (a local body model) at runtime
import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..errors import LayerwiseError
from .batcher import Batcher, Job, QueueFull, ShuttingDown, Stats
from .inputs import Chunk, InputError, Inputs

DEFAULTS = {"max_batch": 64, "max_wait_ms": 5.0, "max_queue": 1024, "max_items": 256, "max_body_mb": 10.0}
Scalar = bool | int | float | str | None


class PredictResponse(BaseModel):
    """The answer of /predict: one prediction per input, in order."""

    predictions: list[Any] = Field(description="one prediction per input: a class label or a number (or a list of "
                                               "numbers for several targets)")
    probabilities: list[list[float]] | None = Field(None, description="classification: one row per input, one "
                                                                         "probability per class (in `classes` order)")
    classes: list[Any] | None = Field(None, description="classification: the class labels")
    truncated: list[int] | None = Field(None, description="text models: the inputs cut to the model's context")
    inputs: list[str] | None = Field(None, description="/predict/files: the file name of each prediction")


class Problem(BaseModel):
    detail: str = Field(description="what is wrong, in one sentence")


def _request_model(inputs: Inputs, max_items: int) -> type[BaseModel]:
    """The body of /predict for this run's kind, with an example for the docs."""
    item: Any = {"table": dict[str, Scalar], "text": str}.get(inputs.kind, list[Any])
    desc = inputs.describe()
    example = inputs.example().raw
    example = [example[0]] if isinstance(example, list) else [np.asarray(example[0]).tolist()]
    fields = {"inputs": (list[item], Field(min_length=1, description=f"up to {max_items} items, each {desc['item']}"))}
    if inputs.kind == "text":
        fields["truncate"] = (bool, Field(True, description="cut texts longer than the context (listed under "
                                                            "`truncated`); false: refuse them with 422"))
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid",
                        json_schema_extra={"examples": [{"inputs": example}]}), **fields)


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, by its Content-Length and by the bytes actually read."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        mb = self.max_bytes / 2**20
        too_large = f"the request body is larger than {mb:g} MB (--max-body-mb); send fewer or smaller inputs."
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    return await _answer(send, 400, "the Content-Length header is not a number.")
                if length > self.max_bytes:
                    return await _answer(send, 413, too_large)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, too_large)  # FastAPI passes it on; the exception middleware answers
            return message

        return await self.app(scope, limited, send)


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), status, headers, media_type="application/json")


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# what the preprocessing raises on data it refuses: layerwise's own checks, and numpy/pandas conversions
BAD_DATA = (LayerwiseError, ValueError, TypeError)


def _bad(e: Exception) -> InputError:
    if isinstance(e, LayerwiseError):
        return InputError(422, str(e))
    first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
    return InputError(422, f"the inputs cannot be converted for the model ({first}); check them against GET "
                           "/metadata.")


class Predictor:
    """The worker thread's side: one batch of jobs -> run.transform once, run.outputs once, answers per job."""

    def __init__(self, run: Any, inputs: Inputs):
        self.run, self.inputs = run, inputs

    def __call__(self, jobs: list[Job]) -> list[Any]:
        chunks = [j.payload for j in jobs]
        try:
            parts = [self.inputs.model_inputs(chunks)]
            good = list(range(len(jobs)))
            results: list[Any] = [None] * len(jobs)
        except BAD_DATA as e:
            if len(jobs) == 1:
                return [_bad(e)]
            parts, good, results = [], [], [None] * len(jobs)  # find the requests at fault, answer the others
            for k, ch in enumerate(chunks):
                try:
                    parts.append(self.inputs.model_inputs([ch]))
                    good.append(k)
                except BAD_DATA as e1:
                    results[k] = _bad(e1)
            if not good:
                return results
        model_inputs = parts[0] if len(parts) == 1 else tuple(np.concatenate(xs) for xs in zip(*parts))
        dec = self.run.task.decode(self.run.outputs(model_inputs))  # once for the batch, then sliced per job
        start = 0
        for k in good:
            n = chunks[k].n
            part = {key: (v[start:start + n] if key in ("prediction", "probabilities") and v is not None else v)
                    for key, v in dec.items()}
            results[k] = self.answer(part, chunks[k])
            start += n
        return results

    def answer(self, dec: dict, chunk: Chunk) -> dict:
        pred = dec["prediction"]
        pred = pred.tolist() if isinstance(pred, np.ndarray) else [_py(p) for p in pred]
        if isinstance(dec.get("prediction"), np.ndarray) and dec["prediction"].ndim == 2 \
                and dec["prediction"].shape[1] == 1:
            pred = [p[0] for p in pred]
        body: dict[str, Any] = {"predictions": pred}
        if dec.get("probabilities") is not None:
            body["probabilities"] = np.asarray(dec["probabilities"]).tolist()
            body["classes"] = [_py(c) for c in dec.get("classes", [])]
        body.update(chunk.extra)
        return body


def _parameters(run: Any) -> int:
    n = run.info.get("parameters")
    return int(n) if n else int(sum(p.numel() for p in run.model.parameters()))


def _sentence(err: dict, inputs: Inputs) -> str:
    """One sentence from pydantic's first validation error."""
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    kind, msg = err.get("type", ""), err.get("msg", "invalid")
    if kind == "json_invalid":
        return f"the body is not valid JSON ({err.get('ctx', {}).get('error', msg)}); send {{\"inputs\": [...]}}."
    if not loc and kind in ("missing", "model_attributes_type", "dict_type", "model_type"):
        return "the body must be a JSON object {\"inputs\": [item, ...]}."
    if loc == ["inputs"] and kind == "missing":
        return f"the body needs \"inputs\": a list of items, each {inputs.describe()['item']}."
    if loc == ["inputs"] and kind == "too_short":
        return "\"inputs\" is empty; give at least one item."
    if loc == ["inputs"]:
        return f"\"inputs\" must be a list of items ({msg.lower()})."
    if loc[:1] == ["inputs"] and len(loc) >= 2:
        where = f"input {loc[1]}" + (f", column {loc[2]!r}" if len(loc) > 2 and inputs.kind == "table" else "")
        return f"{where}: {msg.lower()}; each item is {inputs.describe()['item']}."
    if kind == "extra_forbidden":
        return f"unknown field {'.'.join(loc)!r} in the body; it takes \"inputs\"" + \
            (" and \"truncate\"." if inputs.kind == "text" else ".")
    if loc[:1] == ["files"]:
        return "upload the files as multipart form data under the field name \"files\"."
    return f"{'.'.join(loc) or 'body'}: {msg.lower()}."


def make_app(run: Any, max_batch: int = 64, max_wait_ms: float = 5.0, max_queue: int = 1024, max_items: int = 256,
             max_body_mb: float = 10.0, warmup: bool = True) -> FastAPI:
    """A FastAPI app that answers predictions of `run` (a Run, or the path of a run folder).

    Concurrent requests are gathered into one forward pass of up to `max_batch` items (1: one pass per request),
    waiting at most `max_wait_ms` and only under concurrent load; at most `max_queue` requests wait (then 503),
    each with at most `max_items` inputs (else 413) in a body of at most `max_body_mb` MB (else 413).
    """
    from ..run import Run

    if isinstance(run, (str, Path)):
        run = Run.load(run)
    for name, v, low in (("max_batch", max_batch, 1), ("max_queue", max_queue, 1), ("max_items", max_items, 1)):
        if int(v) < low:
            from ..errors import ConfigError

            raise ConfigError(f"{name.replace('_', '-')} must be at least {low}, got {v}.")
    if max_wait_ms < 0 or max_body_mb <= 0:
        from ..errors import ConfigError

        raise ConfigError("max-wait-ms must be at least 0 and max-body-mb above 0.")
    inputs = Inputs(run)
    predictor = Predictor(run, inputs)
    batcher = Batcher(predictor, max_batch=int(max_batch), max_wait_ms=float(max_wait_ms), max_queue=int(max_queue))
    limits = {"max_batch": int(max_batch), "max_wait_ms": float(max_wait_ms), "max_queue": int(max_queue),
              "max_items": int(max_items), "max_body_mb": float(max_body_mb)}
    Body = _request_model(inputs, max_items)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        if warmup:
            with contextlib.suppress(Exception):  # a failed warm-up shows up again in the first request
                await batcher.submit(inputs.example(), 1)
                batcher.stats = Stats()  # count only real requests
        app.state.started = time.time()
        try:
            yield
        finally:  # graceful: the queued requests are answered first
            await batcher.close()

    name = run.info.get("model", "model")
    app = FastAPI(title=f"layerwise: {Path(run.path).name}",
                  description=f"Predictions of a {name} {run.task.name} model on {inputs.kind} data. "
                              "POST /predict with {\"inputs\": [item, ...]}; GET /metadata says what an item is.",
                  version="0.1.0", lifespan=lifespan)
    app.state.run, app.state.batcher, app.state.inputs, app.state.limits = run, batcher, inputs, limits
    app.add_middleware(BodyLimit, max_bytes=int(max_body_mb * 2**20))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")  # a misnamed field first
        return _json({"detail": _sentence(errors[0] if errors else {}, inputs)}, 422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # a bug, not bad input: say so in one sentence
        return _json({"detail": f"internal error: {exc.__class__.__name__}: {exc} (please report it)."}, 500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _json({"detail": str(exc.detail)}, exc.status_code, getattr(exc, "headers", None))

    async def predict_chunk(chunk: Chunk) -> Response:
        try:
            body = await batcher.submit(chunk, chunk.n)
        except QueueFull as e:
            return _json({"detail": str(e)}, 503, {"Retry-After": "1"})
        except ShuttingDown as e:
            return _json({"detail": str(e)}, 503, {"Retry-After": "5"})
        except InputError as e:
            return _json({"detail": e.detail}, e.status)
        except LayerwiseError as e:
            return _json({"detail": str(e)}, 422)
        return _json(body)

    def check_count(n: int) -> None:
        if n > max_items:
            raise InputError(413, f"the request holds {n} inputs, more than {max_items} (--max-items); split it "
                                  "into smaller requests.")

    answers = {200: {"model": PredictResponse}, 413: {"model": Problem}, 422: {"model": Problem},
               503: {"model": Problem, "description": "the queue is full (see Retry-After) or the server is stopping"}}

    @app.post("/predict", responses=answers, summary="predictions for JSON items")
    async def predict(body: Body) -> Response:  # type: ignore[valid-type]
        try:
            check_count(len(body.inputs))
            chunk = inputs.from_json(body.inputs, getattr(body, "truncate", True))
        except InputError as e:
            return _json({"detail": e.detail}, e.status)
        return await predict_chunk(chunk)

    @app.post("/predict/files", responses=answers, summary="predictions for uploaded image or WAV files")
    async def predict_files(files: Annotated[list[UploadFile], File(description="image files (.png, .jpg, ...) "
                                                                          "or WAV files, as the model reads")]):
        try:
            check_count(len(files))
            if inputs.files_kind is None:
                inputs.from_files([])  # says which endpoint fits
            data = [(f.filename or f"file {i}", await f.read()) for i, f in enumerate(files)]
            chunk = inputs.from_files(data)
        except InputError as e:
            return _json({"detail": e.detail}, e.status)
        return await predict_chunk(chunk)

    @app.get("/health", summary="whether the server takes requests")
    async def health():
        ok = batcher.running
        return _json({"status": "ok" if ok else "stopping", "queued": batcher.queued, "busy": batcher.busy},
                     200 if ok else 503)

    @app.get("/metadata", summary="the model, what an item is, its classes and test metrics, and the batching")
    async def metadata():
        return _json(metadata_of(run, inputs, limits, batcher))

    return app


def metadata_of(run: Any, inputs: Inputs, limits: dict, batcher: Batcher) -> dict:
    task = run.task
    meta: dict[str, Any] = {
        "run": Path(run.path).name,
        "task": task.name,
        "input": inputs.describe(),
        "model": {"name": run.info.get("model"), "parameters": _parameters(run)},
        "test_metrics": run.info.get("test_metrics"),
        "target": getattr(run.config, "target", None),
        "limits": limits,
        "batching": batcher.stats.to_dict(),
    }
    if getattr(task, "classes", None) is not None:
        meta["classes"] = [_py(c) for c in task.classes]
    if inputs.kind == "table":
        meta["columns"] = list(inputs.columns)
    elif "shape" in meta["input"]:
        meta["shape"] = meta["input"]["shape"]
    return meta
