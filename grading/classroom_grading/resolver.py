"""Name lookups that find a replaced container at its new address at once.

JupyterHub makes every request between the hub, the proxy, the services and the servers with
aiohttp, and aiohttp resolves names with c-ares when aiodns is installed (JupyterHub requires
it). c-ares keeps each answer for its time to live, and Docker's DNS answers with 600 s: a hub,
proxy or service whose container was replaced (the swarm restarting it, an upgrade recreating
it) was looked for at its old address for up to ten minutes, and students' servers could not
reach the hub. The system's resolver asks Docker's DNS every time.

Called where each process starts, before its first request: the hub (hub/jupyterhub_config.py),
the grading service (service.main), and students' servers and the formgrader
(images/singleuser/jupyter/jupyter_server_config.py).
"""
from __future__ import annotations


def use_system_resolver() -> None:
    """Make aiohttp's connectors that are given no resolver use the system's (getaddrinfo)."""
    import aiohttp.connector
    import aiohttp.resolver

    aiohttp.connector.DefaultResolver = aiohttp.resolver.ThreadedResolver
