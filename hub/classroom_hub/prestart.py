"""Start a class's servers before the class arrives.

    classroom-prestart [--group students] [--concurrency 4] [--timeout 600]

Starting 30 servers at once takes tens of seconds on a small host; a server that is
already running is ready the moment its student logs in. Run this a few minutes
before a lecture (by hand, from cron, or from the admin page's "Start all"). It asks
the hub, through its REST API and the `prestart` service's token, to start every
server of the group that is not running yet, a few at a time, and waits until each
is ready. Servers started early are stopped by the idle culler if nobody comes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

DEFAULT_API = "http://127.0.0.1:8081/hub/api"
TOKEN_FILE = Path("/srv/classroom/secrets/prestart_token")


class HubAPI:
    """The few hub REST API calls prestart needs."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str) -> tuple[int, Any]:
        """Make one request; return (status, decoded JSON or None)."""
        request = Request(self.url + path, method=method, headers={"Authorization": f"token {self.token}"})
        try:
            with urlopen(request, timeout=60) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except HTTPError as exc:
            return exc.code, None

    def group_members(self, group: str) -> list[str]:
        """Usernames in a group."""
        status, data = self.call("GET", f"/groups/{group}")
        if status != 200:
            raise SystemExit(f"group {group!r} not found on the hub (HTTP {status}); "
                             "groups are 'students' and 'instructors'")
        return sorted(data["users"])

    def server_ready(self, user: str) -> bool:
        """Whether the user's default server is running and ready."""
        status, data = self.call("GET", f"/users/{user}")
        server = (data or {}).get("servers", {}).get("")
        return bool(server and server.get("ready"))


async def start_one(api: HubAPI, user: str, timeout: float) -> tuple[str, str, float]:
    """Start one user's server and wait until it is ready; returns (user, outcome, seconds)."""
    began = time.monotonic()
    if await asyncio.to_thread(api.server_ready, user):
        return user, "already running", 0.0
    status, _ = await asyncio.to_thread(api.call, "POST", f"/users/{user}/server")
    if status not in (201, 202, 400):  # 400: a start is already pending
        return user, f"failed (HTTP {status})", time.monotonic() - began
    while time.monotonic() - began < timeout:
        if await asyncio.to_thread(api.server_ready, user):
            return user, "started", time.monotonic() - began
        await asyncio.sleep(0.5)
    return user, "timed out", time.monotonic() - began


async def prestart(api: HubAPI, users: list[str], concurrency: int, timeout: float) -> list[tuple[str, str, float]]:
    """Start all `users`' servers, at most `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(user: str) -> tuple[str, str, float]:
        async with gate:
            return await start_one(api, user, timeout)

    return await asyncio.gather(*(gated(user) for user in users))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; non-zero when any server did not start."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", default="students")
    parser.add_argument("--users", nargs="*", help="these users instead of a whole group")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="servers started at once (about the host's core count is best)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each server")
    parser.add_argument("--api-url", default=os.environ.get("JUPYTERHUB_API_URL", DEFAULT_API))
    args = parser.parse_args(argv)
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or TOKEN_FILE.read_text().strip()
    api = HubAPI(args.api_url, token)
    users = args.users or api.group_members(args.group)
    began = time.monotonic()
    results = asyncio.run(prestart(api, users, args.concurrency, args.timeout))
    for user, outcome, seconds in results:
        print(f"{user:<24} {outcome:<18} {seconds:6.1f} s")
    bad = [user for user, outcome, _ in results if outcome not in ("started", "already running")]
    print(f"{len(results) - len(bad)}/{len(results)} servers ready in {time.monotonic() - began:.1f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
