"""Credentials never leave the process in text: :func:`redact` at every boundary.

The boundaries are where text leaves for a person or a store: alerts
(``monitoring.alerts``: the page, the log line, ``ops.alerts``, the run's message),
the ``nightcast`` command's error handler, and every message built from a URL
(warehouse and ERP connections). In Airflow tasks the same secrets are also handed to
Airflow's own masker (``orchestration.mask_secrets``), which covers the task log.
"""

from __future__ import annotations

import re

from nightcast.config import configured_secrets

MASK = "***"
# scheme://user:password@ — the password runs to the LAST '@' before a space or quote,
# so a raw '@', ':' or '/' in it is masked too.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):[^\s'\"]*@")


def redact(text: object) -> str:
    """``text`` with every URL password and every configured secret replaced by ``***``."""
    out = _URL_PASSWORD.sub(rf"\1:{MASK}@", str(text))
    for secret in sorted(configured_secrets(), key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out
