"""Count a busy kernel as activity, so that the idle culler spares a training loop.

Jupyter Server counts a kernel as active only when it sends a message, so a
training loop that prints nothing looks idle to the hub, and the idle culler
would stop the server mid-run and lose the student's work. Jupyter Server
counts every setting whose name ends in ``_last_activity`` in the activity it
reports; this extension sets one to "now" whenever a kernel is busy.

It looks every half of ``JUPYTERHUB_ACTIVITY_INTERVAL`` (the interval at which
the server reports its activity to the hub, set by the hub from the
operator's ``culler.activity_seconds``), so a busy kernel reaches the hub
within about one interval.
"""
from __future__ import annotations

import os
from typing import Any

from jupyter_server._tz import utcnow
from tornado.ioloop import PeriodicCallback

SETTING = "classroom_busy_kernels_last_activity"
DEFAULT_INTERVAL = 300


def busy_kernels(kernel_manager: Any) -> list[str]:
    """The ids of the kernels now running code."""
    return [kernel_id for kernel_id in kernel_manager.list_kernel_ids()
            if getattr(kernel_manager.get_kernel(kernel_id), "execution_state", "") == "busy"]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    kernel_manager = serverapp.kernel_manager

    def mark() -> None:
        if busy_kernels(kernel_manager):
            settings[SETTING] = utcnow()

    try:
        interval = int(os.environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or DEFAULT_INTERVAL)
    except ValueError:
        interval = DEFAULT_INTERVAL
    callback = PeriodicCallback(mark, 1000 * max(interval, 2) / 2)
    callback.start()
    settings["classroom_busy_callback"] = callback
    serverapp.log.info("Busy kernels count as activity (checked every %s s)", max(interval, 2) / 2)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "classroom_busy"}]
