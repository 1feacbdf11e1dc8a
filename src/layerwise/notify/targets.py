"""The --notify value: a comma list of targets (desktop, webhook:URL, mailto:ADDRESS), checked before training."""

from __future__ import annotations

import os
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from ..errors import ConfigError

SCHEMES = ("desktop", "webhook", "mailto")
USE = "use desktop, webhook:URL or mailto:ADDRESS"
SMTP_ENV = ("LAYERWISE_SMTP_HOST", "LAYERWISE_SMTP_PORT", "LAYERWISE_SMTP_USER", "LAYERWISE_SMTP_PASSWORD",
            "LAYERWISE_SMTP_FROM")
# a comma starts a new target where a scheme (`word:`) or `desktop` follows; commas inside a webhook's URL
# (?tags=a,b) stay in it, and the other targets, which hold no commas, are split at every comma
_SPLIT = re.compile(r",\s*(?=[A-Za-z][\w+.-]*:|desktop\s*(?:,|$))", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


class Target(NamedTuple):
    scheme: str  # desktop, webhook or mailto
    value: str  # the URL or the address ("" for desktop)

    def __str__(self) -> str:  # as the user wrote it: desktop, webhook:URL, mailto:ADDRESS
        return self.scheme if not self.value else f"{self.scheme}:{self.value}"


def parse_targets(value: str | list | tuple | None) -> list[Target]:
    """The targets of a --notify value (a comma list, or a list of them), each checked, duplicates dropped;
    a malformed one raises ConfigError with one sentence."""
    if not value:
        return []
    pieces = [q for v in ([value] if isinstance(value, str) else value) for p in _SPLIT.split(str(v))
              for q in ([p] if p.strip().lower().startswith("webhook:") else p.split(","))]
    targets: list[Target] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        target = _parse_one(piece)
        if target not in targets:
            targets.append(target)
    return targets


def _parse_one(text: str) -> Target:
    scheme, colon, rest = text.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "desktop" and not rest.strip():
        return Target("desktop", "")
    if scheme == "webhook" and colon:
        url = rest.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--notify target {text!r} needs an http:// or https:// URL, e.g. "
                              "webhook:https://example.com/hook.")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ConfigError(f"--notify target {text!r} has a bad port; give a URL such as "
                              "webhook:http://host:8080/hook.") from None
        return Target("webhook", url)
    if scheme == "mailto" and colon:
        address = rest.strip().removeprefix("//")
        if not _EMAIL.match(address):
            raise ConfigError(f"--notify target {text!r} needs an e-mail address, e.g. mailto:me@example.com.")
        return Target("mailto", address)
    raise ConfigError(f"unknown --notify target {text!r}; {USE}.")


def smtp_settings(environ: dict | None = None) -> dict:
    """The SMTP server that sends mailto: notifications, from LAYERWISE_SMTP_HOST, _PORT, _USER, _PASSWORD and
    _FROM: {"host", "port", "user", "password", "from", "mode"} (mode: ssl on port 465, starttls on 587 or when
    a user logs in, otherwise none). No host, or a port that is not a number, raises ConfigError."""
    env = os.environ if environ is None else environ
    host = env.get("LAYERWISE_SMTP_HOST", "").strip()
    if not host:
        raise ConfigError("--notify mailto: needs an SMTP server; set LAYERWISE_SMTP_HOST (and, as needed, "
                          "LAYERWISE_SMTP_PORT, LAYERWISE_SMTP_USER, LAYERWISE_SMTP_PASSWORD, LAYERWISE_SMTP_FROM).")
    user, password = env.get("LAYERWISE_SMTP_USER", "").strip(), env.get("LAYERWISE_SMTP_PASSWORD", "")
    port_text = env.get("LAYERWISE_SMTP_PORT", "").strip()
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConfigError(f"LAYERWISE_SMTP_PORT={port_text!r} is not a port; give a number such as 587.")
    port = int(port_text) if port_text else (587 if user else 25)
    mode = "ssl" if port == 465 else "starttls" if port == 587 or user else "insecure"
    sender = env.get("LAYERWISE_SMTP_FROM", "").strip() or (user if "@" in user else "")
    if sender and not _EMAIL.match(sender):
        raise ConfigError(f"LAYERWISE_SMTP_FROM={sender!r} is not an e-mail address; give one such as "
                          "layerwise@example.com.")
    return {"host": host, "port": port, "user": user, "password": password, "from": sender, "mode": mode}


def check_targets(value: str | list | tuple | None) -> list[Target]:
    """Check a --notify value before training starts (ConfigError, one sentence): known schemes, a URL for
    webhook:, an address for mailto: and, for mailto:, the SMTP server in the environment."""
    targets = parse_targets(value)
    if any(t.scheme == "mailto" for t in targets):
        smtp_settings()
    return targets
