"""Start a class's servers before the class arrives.

    classroom-prestart [--group students] [--concurrency 4] [--timeout 600]
    classroom-prestart --schedule "mon,wed 09:50" --schedule "daily 13:50" --timezone Europe/Paris

Starting 30 servers at once takes tens of seconds on a small host; a server that is
already running is ready the moment its student logs in. Run this a few minutes
before a lecture: by hand (`make prestart`), from the admin page's "Start all", or on
the operator file's `prestart.schedule`, which runs this as a hub service that waits
for each scheduled time. It asks
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
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo
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


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_schedule(entry: str) -> tuple[set[int], int, int]:
    """Parse "mon,wed 09:50" or "daily 13:50" into (weekdays, hour, minute)."""
    try:
        days, clock = entry.strip().lower().split()
        hour, minute = (int(part) for part in clock.split(":"))
        weekdays = set(range(7)) if days == "daily" else {DAYS.index(day) for day in days.split(",")}
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise SystemExit(f"prestart schedule entry {entry!r}: expected DAYS HH:MM, "
                         "DAYS being 'daily' or days like 'mon,wed'") from None
    return weekdays, hour, minute


def next_run(now: datetime, entries: list[str]) -> datetime:
    """The first scheduled time strictly after `now` (in `now`'s time zone)."""
    candidates = []
    for weekdays, hour, minute in map(parse_schedule, entries):
        for ahead in range(8):
            day = now + timedelta(days=ahead)
            moment = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if moment.weekday() in weekdays and moment > now:
                candidates.append(moment)
                break
    return min(candidates)


def run_schedule(api: HubAPI, group: str, entries: list[str], zone: ZoneInfo, concurrency: int,
                 timeout: float) -> None:
    """Prestart the group at every scheduled time, forever (a hub service)."""
    while True:
        when = next_run(datetime.now(zone), entries)
        print(f"next prestart of {group!r}: {when.isoformat()}", flush=True)
        time.sleep(max(0.0, (when - datetime.now(zone)).total_seconds()))
        results = asyncio.run(prestart(api, api.group_members(group), concurrency, timeout))
        ready = sum(outcome in ("started", "already running") for _, outcome, _ in results)
        print(f"prestart at {when.isoformat()}: {ready}/{len(results)} servers ready", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; non-zero when any server did not start."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", default="students")
    parser.add_argument("--users", nargs="*", help="these users instead of a whole group")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="servers started at once (about the host's core count is best)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each server")
    parser.add_argument("--api-url", default=os.environ.get("JUPYTERHUB_API_URL", DEFAULT_API))
    parser.add_argument("--schedule", action="append", default=[],
                        help="run at these times instead of now, forever: 'mon,wed 09:50' or 'daily 13:50'")
    parser.add_argument("--timezone", default="UTC", help="time zone of the schedule, e.g. Europe/Paris")
    args = parser.parse_args(argv)
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or TOKEN_FILE.read_text().strip()
    api = HubAPI(args.api_url, token)
    if args.schedule:
        run_schedule(api, args.group, args.schedule, ZoneInfo(args.timezone), args.concurrency, args.timeout)
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
