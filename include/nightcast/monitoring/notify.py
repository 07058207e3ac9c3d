"""Alert delivery through an Airflow notifier backed by Apprise.

Why Apprise (``apache-airflow-providers-apprise``) rather than the SMTP or Slack
provider's notifier: one notifier and one Airflow connection reach every channel an
on-call rota uses (a Slack-compatible webhook, email, Teams, Mattermost, PagerDuty,
Opsgenie, ntfy, ...), each written as a URL; changing who is paged is an edit of that
connection in the UI or the secrets backend, not a code change or a new provider.

The channels of a deployment (:func:`channels`):

- ``NIGHTCAST_ALERT_CONN_ID``: an Airflow connection of type ``apprise`` whose extra
  ``config`` lists Apprise URLs (``[{"path": "slack://...", "tag": "oncall"}]``, the
  provider's own format), read through Airflow's connection API inside a task;
- ``NIGHTCAST_ALERT_WEBHOOK_URL``: a Slack-compatible webhook (``{"text": ...}``, which
  Slack, Mattermost and Rocket.Chat accept), sent as Apprise's custom JSON;
- ``NIGHTCAST_ALERT_EMAIL_TO`` with ``NIGHTCAST_SMTP_HOST`` / ``NIGHTCAST_SMTP_PORT`` /
  ``NIGHTCAST_ALERT_EMAIL_FROM``: mail through that relay, sent as Apprise's ``mailto``.

:class:`AlertNotifier` is an Airflow notifier (``BaseNotifier``: templated, usable as a
DAG or task callback). Unlike the provider's ``AppriseNotifier`` it sends to each
channel on its own and keeps what each one answered, so ``ops.alerts`` can say which
channel failed and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from airflow.sdk import BaseNotifier

from nightcast.config import Settings
from nightcast.connections import get_connection
from nightcast.redaction import redact

log = logging.getLogger("nightcast.alerts")

# Apprise's custom JSON, remapped to the one key a Slack-compatible webhook reads.
_SLACK_COMPATIBLE = {
    ":message": "text",
    ":version": "",
    ":title": "",
    ":attachments": "",
    ":type": "",
}


@dataclass(frozen=True)
class Channel:
    name: str  # what ops.alerts.delivered_to says: "webhook", "email", "<conn id>[i]"
    url: str  # an Apprise URL (holds credentials: never logged unredacted)


def webhook_channel(url: str) -> Channel:
    """``url`` (http or https) as Apprise's custom JSON posting ``{"text": body}``."""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = parts.query + ("&" if parts.query else "") + urlencode(_SLACK_COMPATIBLE)
    return Channel("webhook", f"{scheme}://{parts.netloc}{parts.path or '/'}?{query}")


def email_channel(settings: Settings) -> Channel:
    """Mail to ``alert_email_to`` through the relay ``smtp_host:smtp_port`` (no login, as a
    relay inside the network takes it; a relay that needs one goes in the connection)."""
    assert settings.smtp_host is not None
    query = urlencode(
        {
            "from": settings.alert_email_from,
            "to": ",".join(settings.alert_email_to),
            "mode": "insecure",
        }
    )
    host = quote(settings.smtp_host, safe=".-[]:")
    return Channel("email", f"mailto://{host}:{settings.smtp_port}?{query}")


def connection_channels(conn_id: str) -> list[Channel]:
    """The Apprise URLs of Airflow connection ``conn_id`` (type apprise, extra ``config``:
    one ``{"path": ..., "tag": ...}`` or a list of them; a path may hold several URLs
    separated by commas or spaces, as Apprise reads it)."""
    import json

    config: Any = get_connection(conn_id).extra.get("config")
    if isinstance(config, str):
        config = json.loads(config)
    entries = config if isinstance(config, list) else [config] if config else []
    urls = [
        url
        for entry in entries
        for url in str((entry or {}).get("path", "")).replace(",", " ").split()
    ]
    if not urls:
        raise ValueError(
            f"Airflow connection {conn_id!r} (NIGHTCAST_ALERT_CONN_ID) lists no Apprise URL: "
            'its extra needs {"config": [{"path": "<apprise url>"}]}'
        )
    return [Channel(f"{conn_id}[{i}]", url) for i, url in enumerate(urls)]


def channels(settings: Settings) -> tuple[list[Channel], list[str]]:
    """Every configured channel, and the errors of those that could not be read."""
    found: list[Channel] = []
    errors: list[str] = []
    if settings.alert_conn_id:
        try:
            found += connection_channels(settings.alert_conn_id)
        except Exception as err:
            errors.append(f"{settings.alert_conn_id}: {_first_line(err)}")
    if settings.alert_webhook_url:
        found.append(webhook_channel(settings.alert_webhook_url))
    if settings.alert_email_to and settings.smtp_host:
        found.append(email_channel(settings))
    return found, errors


class AlertNotifier(BaseNotifier):
    """Send ``title`` and ``body`` to each channel; ``delivered`` and ``errors`` say how it
    went (channel name, and Apprise's reason for each failure)."""

    template_fields = ("title", "body")

    def __init__(self, *, title: str, body: str, channels: Sequence[Channel], severity: str):
        super().__init__()
        self.title = title
        self.body = body
        self.channels = list(channels)
        self.severity = severity
        self.delivered: list[str] = []
        self.errors: list[str] = []

    def notify(self, context: Any) -> None:
        import apprise

        kind = (
            apprise.NotifyType.FAILURE
            if self.severity == "critical"
            else apprise.NotifyType.WARNING
        )
        for channel in self.channels:
            sender = apprise.Apprise()
            if not sender.add(channel.url):
                self.errors.append(f"{channel.name}: not an Apprise URL Apprise can send to")
                continue
            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = sender.notify(title=self.title, body=self.body, notify_type=kind)
            if ok:
                self.delivered.append(channel.name)
            else:
                why = _first_line(captured.getvalue()) or "Apprise reported a failure"
                self.errors.append(f"{channel.name}: {why}")
                log.warning("alert delivery to %s failed: %s", channel.name, why)


def _first_line(text: object) -> str:
    for line in redact(str(text)).splitlines():
        line = line.strip()
        if line:  # Apprise's log lines start with a timestamp and a level
            return line.split(" - ", 2)[-1][:300]
    return ""
