"""Health check of a Celery worker container: its own node answers a ping through the broker.

    python /opt/nightcast/deploy/celery-ping.py default@%h

The argument is the worker's ``--celery-hostname`` (``%h``: this container's host
name). Only Celery is imported, not Airflow, so the check answers in about a second
even while LightGBM keeps every core of the container busy.
"""

from __future__ import annotations

import os
import socket
import sys

from celery import Celery

TIMEOUT_S = 10.0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: celery-ping.py NODE (e.g. default@%h)", file=sys.stderr)
        return 2
    node = argv[0].replace("%h", socket.gethostname())
    app = Celery(broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
    if not app.control.ping(destination=[node], timeout=TIMEOUT_S):
        print(f"celery node {node} did not answer a ping within {TIMEOUT_S:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
