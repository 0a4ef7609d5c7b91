"""Load heavy server extensions on first use instead of at server start.

- nbgrader's assignment list, course list and validate extensions import most of
  nbgrader (and through it SQLAlchemy, nbconvert, ...) when the server starts: about
  37 MiB in every student's server, most of which never opens the Assignments tab.
- jupyter-server-proxy (TensorBoard at /tensorboard/, a student's own web app at
  /proxy/PORT/, the launcher's list of proxied servers) imports aiohttp and its
  process supervisor.

This extension registers their URLs instead; the first request to one of a group's
URLs loads that group's real extensions, drops its placeholder routes and redirects
(307 keeps the method and body) to the same URL, which the real handlers then serve.
"""
from __future__ import annotations

import importlib
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

# Each group: the extensions it loads, and the URL patterns (under the base URL) that load it.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "nbgrader": (["nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.course_list",
                  "nbgrader.server_extensions.validate_assignment"],
                 [r"/assignments", r"/assignments/.*", r"/courses", r"/formgraders", r"/nbgrader_version"]),
    "server-proxy": (["jupyter_server_proxy"], [r"/tensorboard", r"/tensorboard/.*", r"/server-proxy/.*",
                                              r"/proxy/.*"]),
}


class LazyHandler(JupyterHandler):
    """Placeholder for a group's routes until the first request loads them."""

    group = ""
    loaded = False

    def _load(self) -> None:
        serverapp = self.settings["classroom_serverapp"]
        for name in GROUPS[self.group][0]:
            module = importlib.import_module(name)
            load = getattr(module, "_load_jupyter_server_extension", None) or module.load_jupyter_server_extension
            load(serverapp)
        router = self.application.default_router
        router.rules = [rule for rule in router.rules if not _is_placeholder(rule, type(self))]
        type(self).loaded = True
        self.log.info("Loaded the %s server extensions on first use", self.group)

    @web.authenticated
    def _relay(self, *args: Any) -> None:
        if not type(self).loaded:
            self._load()
        self.redirect(self.request.uri, status=307)

    get = post = put = delete = _relay


HANDLERS = {group: type(f"Lazy{group.title().replace('-', '')}Handler", (LazyHandler,), {"group": group})
            for group in GROUPS}


def _is_placeholder(rule: Any, handler: type) -> bool:
    target = getattr(rule, "target", None)
    inner = getattr(target, "rules", [])
    return bool(inner) and all(getattr(r, "target", None) is handler for r in inner)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "classroom_lazy"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    webapp = serverapp.web_app
    webapp.settings["classroom_serverapp"] = serverapp
    base_url = webapp.settings["base_url"]
    for group, (_, patterns) in GROUPS.items():
        webapp.add_handlers(".*$", [(url_path_join(base_url, pattern), HANDLERS[group]) for pattern in patterns])
