"""Telling the targets of --notify that a run ended (done, failed, interrupted) or diverged, through apprise.

Nothing here may change a run: every problem (apprise missing, a target that cannot be reached or refuses)
becomes one warning line on stderr, never an exception.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ..errors import LayerwiseError
from .targets import Target, parse_targets, smtp_settings

EVENTS = ("done", "failed", "interrupted", "diverged")
KINDS = {"done": "success", "failed": "failure", "interrupted": "warning", "diverged": "warning"}  # apprise's
PIP = "pip install apprise (or pip install 'layerwise[notify]')"
CONNECT_SECONDS, READ_SECONDS = 5, 15  # a target that does not answer delays the end of a run by at most this
# on Linux the first desktop backend apprise can load is used; each needs its own package (dbus-python,
# PyGObject, PyQt) and a desktop session
DESKTOP_URLS = {"darwin": ("macosx://",), "win32": ("windows://",)}
LINUX_DESKTOP_URLS = ("dbus://", "glib://", "gnome://", "qt://", "kde://")


def summary(run_dir_or_info: Any, event: str) -> dict:
    """What a notification says about a run, as JSON (the webhook's payload): run (the folder), event, status,
    task, model, data, metrics (test, else validation) and metrics_split, error, epochs (done) and
    epochs_total, seconds (of training, as `layerwise runs` counts them), created, host, reason (diverged).

    `run_dir_or_info`: a run folder, a Run, or a run.json dict (its folder under "path" or "run", if known)."""
    path, info = _run_and_info(run_dir_or_info)
    metrics, split = info.get("test_metrics"), "test"
    if not metrics:
        metrics, split = info.get("val_metrics"), "validation"
    if event == "diverged" and info.get("diverged_metrics"):
        metrics, split = info["diverged_metrics"], "training"
    return {"run": str(path) if path else info.get("run"), "event": event, "status": info.get("status"),
            "task": info.get("task"), "model": info.get("model"), "data": info.get("data"),
            "metrics": _finite(metrics) if metrics else None, "metrics_split": split if metrics else None,
            "error": info.get("error"), "epochs": info.get("epochs_done"), "epochs_total": _epochs_total(path),
            "seconds": _seconds(path, info), "created": info.get("created"), "host": socket.gethostname(),
            "reason": info.get("reason")}


def notify(run_dir_or_info: Any, event: str, cfg_notify: str | list | None, quiet: bool = False) -> list[str]:
    """Tell each target of `cfg_notify` (the --notify value) about `event` ("done", "failed", "interrupted" or
    "diverged") of the run `run_dir_or_info` (a run folder, a Run or a run.json dict); returns the targets that
    were told. Never raises: a target that fails gets one warning line on stderr (none when `quiet`).

    Example: ``notify("runs/x", "done", "webhook:https://example.com/hook,desktop")``."""
    if event not in EVENTS:
        raise ValueError(f"unknown notify event {event!r}; valid: {', '.join(EVENTS)}")
    if not cfg_notify:
        return []
    try:
        targets = parse_targets(cfg_notify)
        facts = summary(run_dir_or_info, event)
    except Exception as e:  # noqa: BLE001 (a value not checked before training, an odd run folder)
        _warn(str(cfg_notify), _why(e), quiet)
        return []
    with warnings.catch_warnings():  # apprise's (lazy) imports of deprecated modules are not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import apprise
        except ImportError:
            _warn(", ".join(map(str, targets)), f"apprise is not installed; {PIP}", quiet)
            return []
        title, body = _message(facts)
        told = []
        for target in targets:
            try:
                ok, reason = _send(apprise, target, facts, title, body)
            except Exception as e:  # noqa: BLE001 (whatever apprise or a backend raises, the run goes on)
                ok, reason = False, _why(e)
            if ok:
                told.append(str(target))
            else:
                _warn(str(target), reason, quiet)
    return told


def _warn(target: str, reason: str, quiet: bool) -> None:
    if not quiet:
        print(f"warning: could not notify {target} ({reason}); the run itself is fine", file=sys.stderr)


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, LayerwiseError):
        return text.rstrip(".")
    return f"{e.__class__.__name__}: {text}"[:200] if text else e.__class__.__name__


# ---- the run's facts


def _run_and_info(obj: Any) -> tuple[Path | None, dict]:
    if isinstance(obj, dict):
        where = obj.get("path") or obj.get("run")
        return (Path(where) if where else None), dict(obj)
    if hasattr(obj, "info") and hasattr(obj, "path"):  # a Run
        return Path(obj.path), dict(obj.info)
    from ..run import FILES

    path = Path(obj)
    try:
        info = json.loads((path / FILES["info"]).read_text())
    except (OSError, ValueError):
        info = {}
    return path, info if isinstance(info, dict) else {}


def _finite(metrics: dict) -> dict:
    """JSON has no NaN: a non-finite number becomes its name ("nan", "inf")."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


def _epochs_total(path: Path | None) -> int | None:
    from ..run import FILES

    if path is None or not (path / FILES["config"]).is_file():
        return None
    try:
        from ..config import load_yaml

        return load_yaml(path / FILES["config"]).get("epochs")
    except Exception:  # noqa: BLE001 (a damaged config: the notification shows no total)
        return None


def _seconds(path: Path | None, info: dict) -> float | None:
    """Seconds of training: the epochs of metrics.jsonl (as `layerwise runs` adds them up), else run.json's."""
    from ..run import FILES

    total, found = 0.0, False
    if path is not None and (path / FILES["metrics"]).is_file():
        try:
            for line in (path / FILES["metrics"]).read_text().splitlines():
                row = json.loads(line) if line.strip() else {}
                if isinstance(row.get("seconds"), (int, float)):
                    total, found = total + row["seconds"], True
        except (OSError, ValueError):
            pass
    if found:
        return round(total, 2)
    seconds = info.get("seconds")
    return round(seconds, 2) if isinstance(seconds, (int, float)) else None


def _message(facts: dict) -> tuple[str, str]:
    """A title and a few plain lines, for the desktop and e-mail (the webhook also gets the JSON fields)."""
    name = Path(facts["run"]).name if facts["run"] else "run"
    what = {"done": "finished", "failed": "failed", "interrupted": "was interrupted",
            "diverged": "is diverging"}[facts["event"]]
    title = f"layerwise run {name} {what}"
    epochs = facts["epochs"]
    lines = [f"{facts['run'] or 'the run'} {what}" + (f" after {epochs} epoch{'s' if epochs != 1 else ''}"
                                                      if isinstance(epochs, int) else "")
             + (f" of {facts['epochs_total']}" if facts["epochs_total"] and facts["event"] != "done" else "")
             + (f" ({facts['seconds']} s of training)" if facts["seconds"] is not None else "") + "."]
    lines.append(", ".join(f"{k} {facts[k]}" for k in ("task", "model", "data") if facts.get(k)))
    if facts["reason"]:
        lines.append(facts["reason"])
    if facts["error"]:
        lines.append(f"error: {facts['error']}")
    if facts["metrics"]:
        lines.append(f"{facts['metrics_split']}: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in facts["metrics"].items()))
    lines.append(f"host: {facts['host']}")
    return title, "\n".join(x for x in lines if x)


# ---- apprise


def _send(apprise: Any, target: Target, facts: dict, title: str, body: str) -> tuple[bool, str]:
    """(told, why not) for one target."""
    if target.scheme == "desktop":
        service = next((s for url in _desktop_urls() if (s := _quietly(apprise, url)) is not None), None)
        if service is None:
            return False, _no_desktop()
    elif target.scheme == "webhook":
        service = _quietly(apprise, _webhook(target.value, facts))
    else:
        service = _quietly(apprise, _mail_url(target.value))
    if service is None:
        return False, f"apprise cannot use this {target.scheme} target"
    kind = getattr(apprise.NotifyType, KINDS[facts["event"]].upper())  # an Enum in apprise 2, constants before
    with _apprise_log() as log:
        ok = bool(service.notify(body=body, title=title, notify_type=kind))
    return ok, "" if ok else _reason(log)


def _quietly(apprise: Any, url: Any) -> Any:
    with _apprise_log():
        return apprise.Apprise.instantiate(url)


def _desktop_urls() -> tuple[str, ...]:
    return DESKTOP_URLS.get(sys.platform, LINUX_DESKTOP_URLS)


def _no_desktop() -> str:
    if sys.platform in DESKTOP_URLS:
        return "apprise found no desktop notifications here"
    if not (os.environ.get("DBUS_SESSION_BUS_ADDRESS") or os.environ.get("DISPLAY")
            or os.environ.get("WAYLAND_DISPLAY")):
        return "no desktop session here"
    return "apprise needs dbus-python or PyGObject for desktop notifications: pip install dbus-python"


def _webhook(url: str, facts: dict) -> dict:
    """apprise's json:// (jsons:// for https) service for the user's URL: the same host, port, path, login and
    query, POSTing apprise's title/message/type with the run's facts as top-level fields."""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme.lower() == "https" else "json"
    netloc = parts.netloc.rpartition("@")[2]
    base = f"{scheme}://{netloc}{quote(parts.path or '/', safe='/%')}?method=POST&cto={CONNECT_SECONDS}" \
           f"&rto={READ_SECONDS}"
    from apprise.plugins import url_to_dict

    results = url_to_dict(base)
    if results is None:
        raise ValueError("apprise cannot read the URL")
    results["params"] = dict(parse_qsl(parts.query, keep_blank_values=True))  # the query goes as it came
    results["user"] = unquote(parts.username) if parts.username else None
    results["password"] = unquote(parts.password) if parts.password else None
    results["payload"] = dict(facts)  # added next to version, title, message, type
    return results


def _mail_url(address: str) -> str:
    smtp = smtp_settings()
    sender = smtp["from"] or address
    login = f"{quote(smtp['user'], safe='')}:{quote(smtp['password'], safe='')}@" if smtp["user"] else ""
    scheme = "mailto" if smtp["mode"] == "insecure" else "mailtos"
    return (f"{scheme}://{login}{smtp['host']}:{smtp['port']}/{quote(address, safe='')}?smtp="
            f"{quote(smtp['host'], safe='')}&from={quote(sender, safe='')}&name=layerwise&mode={smtp['mode']}"
            f"&cto={CONNECT_SECONDS}&rto={READ_SECONDS}")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.levelno, record.getMessage()))
        except Exception:  # noqa: BLE001 (a log line that cannot be formatted is not worth a failure)
            self.lines.append((record.levelno, str(record.msg)))


@contextmanager
def _apprise_log():
    """apprise's log lines, kept here (not printed): the reason of a failure is read from them."""
    logger = logging.getLogger("apprise")
    handler, level, propagate = _Records(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


REASONS = (  # (text in apprise's log, what the warning says), first match wins
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("temporary failure in name resolution", "host not found"),
    ("getaddrinfo failed", "host not found"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("certificate", "TLS certificate not accepted"),
    ("ssl", "TLS failed"),
    ("authentication", "SMTP login refused"),
    ("login", "SMTP login refused"),
    ("recipient", "recipient refused"),
)


# apprise's lines that echo what was sent (the run's own error text, its path), not what went wrong
ECHOES = ("json payload", "json post url", "loaded ", "notifying ", "threaded notification", "sent ")


def _reason(log: list[tuple[int, str]]) -> str:
    text = " ".join(line for _, line in log if not line.lower().startswith(ECHOES)).lower()
    for needle, reason in REASONS:
        if needle in text:
            return reason
    import re

    http = re.search(r"error=(\d{3})", text)
    if http:
        return f"HTTP {http.group(1)}"
    warnings = [line for level, line in log if level >= logging.WARNING]
    return warnings[-1].rstrip(".")[:200] if warnings else "the service did not accept it"
