"""Load nbgrader's student server extensions on first use instead of at server start.

nbgrader's assignment list, course list and validate extensions import most of
nbgrader (and through it SQLAlchemy, nbconvert, ...) when the server starts: about
37 MiB in every student's server, most of which never opens the Assignments tab.
This extension registers their URLs instead; the first request to one loads the
real extensions, drops these placeholder routes and redirects (307 keeps the
method and body) to the same URL, which the real handlers then serve.
"""
from __future__ import annotations

import importlib
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

EXTENSIONS = [
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "nbgrader.server_extensions.validate_assignment",
]
PATTERNS = [r"/assignments", r"/assignments/.*", r"/courses", r"/formgraders", r"/nbgrader_version"]


class LazyNbgraderHandler(JupyterHandler):
    """Placeholder for nbgrader's routes until the first request loads them."""

    loaded = False

    def _load(self) -> None:
        serverapp = self.settings["classroom_serverapp"]
        for name in EXTENSIONS:
            importlib.import_module(name).load_jupyter_server_extension(serverapp)
        router = self.application.default_router
        router.rules = [rule for rule in router.rules if not _is_placeholder(rule)]
        LazyNbgraderHandler.loaded = True
        self.log.info("Loaded nbgrader's server extensions on first use")

    @web.authenticated
    def _relay(self, *args: Any) -> None:
        if not LazyNbgraderHandler.loaded:
            self._load()
        self.redirect(self.request.uri, status=307)

    get = post = put = delete = _relay


def _is_placeholder(rule: Any) -> bool:
    target = getattr(rule, "target", None)
    inner = getattr(target, "rules", [])
    return bool(inner) and all(getattr(r, "target", None) is LazyNbgraderHandler for r in inner)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "classroom_lazy_nbgrader"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    webapp = serverapp.web_app
    webapp.settings["classroom_serverapp"] = serverapp
    base_url = webapp.settings["base_url"]
    webapp.add_handlers(".*$", [(url_path_join(base_url, pattern), LazyNbgraderHandler) for pattern in PATTERNS])
