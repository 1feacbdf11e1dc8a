"""--notify: webhook, e-mail and desktop notifications when a run ends or diverges; failures are one warning.

Every server here listens on 127.0.0.1 and answers at once; apprise's own timeouts bound every wait."""

import json
import shutil
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

import layerwise as lw
from layerwise.config import make_config
from layerwise.errors import ConfigError
from layerwise.notify import DivergenceWatch, check_targets, notify, parse_targets

QUIET = {"progress": False, "tensorboard": False, "threads": 1, "quiet": True}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Requests to 127.0.0.1 never go through a proxy set in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class Hook:
    """A webhook on 127.0.0.1: keeps each POST (path, query, headers, JSON body) and answers `status`."""

    def __init__(self):
        self.posts, self.status = [], 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                hook.posts.append({"path": parts.path, "query": parse_qs(parts.query), "json": json.loads(body),
                                   "type": self.headers.get("Content-Type")})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One epoch on digits with a DivergenceWatch that points at a webhook: a healthy run tells it nothing."""
    import torch

    threads = torch.get_num_threads()
    h = Hook()
    watch = DivergenceWatch(targets=f"webhook:{h.url}")
    try:
        run = lw.train("digits", model="mlp", epochs=1, out=tmp_path_factory.mktemp("notify") / "digits",
                       callbacks=[watch], **QUIET)
        posts = list(h.posts)
    finally:
        h.close()
        torch.set_num_threads(threads)
    return run, watch, posts


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_setting_and_targets():
    assert make_config(notify="desktop,webhook:https://example.com/h").notify == "desktop,webhook:https://example.com/h"
    assert make_config().notify is None
    assert [str(t) for t in parse_targets("desktop, webhook:http://h/x?tags=a,b,mailto:me@example.com,desktop")] \
        == ["desktop", "webhook:http://h/x?tags=a,b", "mailto:me@example.com"]
    assert check_targets(None) == [] and check_targets("") == []


@pytest.mark.parametrize("value, message", [
    ("slack:foo", "unknown --notify target 'slack:foo'; use desktop, webhook:URL or mailto:ADDRESS."),
    ("desktop,pager", "unknown --notify target 'pager'; use desktop, webhook:URL or mailto:ADDRESS."),
    ("webhook:example.com/hook", "needs an http:// or https:// URL"),
    ("mailto:nobody", "needs an e-mail address"),
    ("mailto:me@example.com", "set LAYERWISE_SMTP_HOST"),
])
def test_bad_targets_raise_one_sentence(value, message, monkeypatch):
    monkeypatch.delenv("LAYERWISE_SMTP_HOST", raising=False)
    with pytest.raises(ConfigError) as e:
        check_targets(value)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_webhook_done(digits_run, hook):
    run, watch, posts = digits_run
    assert posts == [] and not watch.notified and watch.first_mean is not None  # the healthy run
    target = f"webhook:{hook.url}?token=abc"
    assert notify(run.path, "done", target, quiet=True) == [target]
    assert len(hook.posts) == 1
    post = hook.posts[0]
    assert post["path"] == "/hook" and post["query"] == {"token": ["abc"]} and post["type"] == "application/json"
    got = post["json"]
    assert got["run"] == str(run.path) and got["event"] == "done" and got["status"] == "done"
    assert (got["task"], got["model"], got["data"]) == ("classify", "mlp", "digits")
    assert got["metrics_split"] == "test" and got["metrics"] == pytest.approx(run.info["test_metrics"])
    assert got["epochs"] == 1 and got["epochs_total"] == 1 and got["error"] is None
    assert isinstance(got["seconds"], float) and got["seconds"] >= 0
    assert got["type"] == "success" and "finished" in got["title"] and "accuracy" in got["message"]


def test_webhook_failed_run(digits_run, hook, tmp_path):
    run, _, _ = digits_run
    failed = tmp_path / "failed"
    shutil.copytree(run.path, failed)
    info = json.loads((failed / "run.json").read_text())
    info.update(status="failed", error="RuntimeError: simulated crash", epochs_done=0)
    info.pop("test_metrics"), info.pop("val_metrics")
    (failed / "run.json").write_text(json.dumps(info))
    assert notify(failed, "failed", f"webhook:{hook.url}", quiet=True) == [f"webhook:{hook.url}"]
    # the same run as the dict api.py holds when it fails (no folder read)
    assert notify({**info, "path": str(failed)}, "failed", f"webhook:{hook.url}", quiet=True)
    assert len(hook.posts) == 2
    for post in hook.posts:
        got = post["json"]
        assert got["event"] == "failed" and got["status"] == "failed" and got["type"] == "failure"
        assert got["error"] == "RuntimeError: simulated crash" and got["run"] == str(failed)
        assert got["metrics"] is None and got["epochs"] == 0 and got["model"] == "mlp"
        assert "simulated crash" in got["message"]


def fake_loop(run_dir, losses_by_epoch):
    """Drive a DivergenceWatch the way the loop does: on_batch_end per batch, on_epoch_end per epoch."""
    import torch

    loop = SimpleNamespace(cfg=SimpleNamespace(out=str(run_dir), notify=None), device=torch.device("cpu"),
                           epoch=0, batch_idx=0, loss=None, stop=False)

    def drive(watch):
        for epoch, losses in enumerate(losses_by_epoch):
            loop.epoch = epoch
            for i, value in enumerate(losses):
                loop.loss, loop.batch_idx = torch.tensor(value, requires_grad=True) * 1.0, i + 1
                watch.on_batch_end(loop)
            loop.epoch = epoch + 1
            watch.on_epoch_end(loop)
        assert loop.stop is False  # it never stops the run

    return loop, drive


def test_diverged_nan_notifies_once(digits_run, hook):
    run, _, _ = digits_run
    loop, drive = fake_loop(run.path, [[1.0, 0.9, 0.8], [0.7, float("nan"), float("nan")], [float("nan")] * 3])
    loop.cfg.notify = f"webhook:{hook.url}"  # the targets come from the loop's settings
    watch = DivergenceWatch()
    drive(watch)
    assert len(hook.posts) == 1 and watch.notified and watch.told == [f"webhook:{hook.url}"]
    got = hook.posts[0]["json"]
    assert got["event"] == "diverged" and got["run"] == str(run.path) and got["type"] == "warning"
    assert "NaN" in got["reason"] and "epoch 2" in got["reason"] and got["epochs"] == 1
    assert got["metrics"]["loss"] == "nan" and got["metrics"]["first_epoch_loss"] == pytest.approx(0.9)
    assert watch.state_dict()["notified"] is True


def test_diverged_loss_far_above_first_epoch(digits_run, hook):
    run, _, _ = digits_run
    high = [20.0, 30.0]
    _, drive = fake_loop(run.path, [[1.0, 1.0], [2.0, 2.0], high, high, [5.0, 50.0], high, high])
    watch = DivergenceWatch(run.path, f"webhook:{hook.url}", quiet=True)
    drive(watch)
    assert len(hook.posts) == 1  # epochs 3, 4, 5 above 10x; 6 and 7 say nothing more
    got = hook.posts[0]["json"]
    assert got["event"] == "diverged" and "above 10x" in got["reason"] and got["epochs"] == 5


def test_mailto_done(digits_run, monkeypatch):
    controller = pytest.importorskip("aiosmtpd.controller")
    run, _, _ = digits_run
    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append(envelope)
            return "250 OK"

    port = closed_port()
    smtp = controller.Controller(Handler(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        monkeypatch.setenv("LAYERWISE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("LAYERWISE_SMTP_PORT", str(port))
        monkeypatch.setenv("LAYERWISE_SMTP_FROM", "layerwise@example.com")
        for name in ("LAYERWISE_SMTP_USER", "LAYERWISE_SMTP_PASSWORD"):
            monkeypatch.delenv(name, raising=False)
        assert check_targets("mailto:me@example.com")
        assert notify(run.path, "done", "mailto:me@example.com", quiet=True) == ["mailto:me@example.com"]
    finally:
        smtp.stop()
    assert len(got) == 1
    assert got[0].mail_from == "layerwise@example.com" and got[0].rcpt_tos == ["me@example.com"]
    text = got[0].content.decode()
    assert f"Subject: layerwise run {run.path.name} finished" in text and "accuracy" in text


def test_unreachable_target_is_one_warning(digits_run, capsys):
    run, _, _ = digits_run
    target = f"webhook:http://127.0.0.1:{closed_port()}/x"
    assert notify(run.path, "done", target, quiet=False) == []
    assert capsys.readouterr().err.splitlines() == [
        f"warning: could not notify {target} (connection refused); the run itself is fine"]
    assert notify(run.path, "done", target, quiet=True) == [] and capsys.readouterr().err == ""


def test_refusing_target_says_the_http_status(digits_run, hook, capsys):
    run, _, _ = digits_run
    hook.status = 500
    assert notify(run.path, "failed", f"webhook:{hook.url}") == []
    assert capsys.readouterr().err.splitlines() == [
        f"warning: could not notify webhook:{hook.url} (HTTP 500); the run itself is fine"]
    assert len(hook.posts) == 1


def test_no_desktop_backend_and_no_apprise(digits_run, hook, monkeypatch, capsys):
    run, _, _ = digits_run
    monkeypatch.setattr("layerwise.notify.send._desktop_urls", lambda: ())
    assert notify(run.path, "done", f"desktop,webhook:{hook.url}") == [f"webhook:{hook.url}"]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: could not notify desktop (")
    assert len(hook.posts) == 1
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise fails
    assert notify(run.path, "done", f"desktop,webhook:{hook.url}") == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "pip install apprise" in lines[0] and lines[0].endswith("the run itself is fine")
    assert len(hook.posts) == 1
