"""Log in against the roster: rostered usernames with bcrypt-hashed passwords."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import bcrypt
from jupyterhub.auth import Authenticator
from traitlets import Unicode

# Checked against when the username is unknown, so that a wrong name costs as much
# time as a wrong password and response times do not reveal who is rostered.
_DUMMY_HASH = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=10))


class RosterAuthenticator(Authenticator):
    """Lets in only the people in the roster file, each with their own password.

    The roster file is written by the deploy (`classroom-roster`) and holds, per
    username, a bcrypt hash and a role. Passwords are never stored in clear. The
    file is re-read when it changes, so someone removed from the roster cannot
    log in even before the hub restarts. Groups (`students`, `instructors`) come
    from the same file, loaded by jupyterhub_config.py.
    """

    roster_file = Unicode(
        "/srv/classroom/roster.json",
        config=True,
        help="""JSON file with {"users": {name: {"hash": bcrypt, "role": "student"|"instructor"|"admin"}}}.

        Written by the deploy from the operator file; change the roster there, not here.
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._roster: dict[str, dict[str, str]] = {}
        self._roster_mtime: float = -1.0

    def roster(self) -> dict[str, dict[str, str]]:
        """Return the roster, re-reading the file when it has changed."""
        try:
            mtime = os.stat(self.roster_file).st_mtime
        except FileNotFoundError:
            self.log.error("Roster file %s is missing: nobody can log in. Run the deploy again.",
                           self.roster_file)
            return {}
        if mtime != self._roster_mtime:
            with open(self.roster_file) as handle:
                self._roster = json.load(handle)["users"]
            self._roster_mtime = mtime
            self.log.info("Loaded roster with %d people from %s", len(self._roster), self.roster_file)
        return self._roster

    def check_allowed(self, username: str, authentication: dict | None = None) -> bool:
        """Only rostered people are allowed, also for sessions that predate a roster change."""
        return username in self.roster()

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict | None:
        """Return the user model for a right username and password, else None."""
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "").encode()
        entry = self.roster().get(username)
        stored = entry["hash"].encode() if entry else _DUMMY_HASH
        # bcrypt releases the GIL: hashing in a thread keeps the hub responsive
        # while a whole class logs in at once.
        matches = await asyncio.to_thread(bcrypt.checkpw, password, stored)
        if not (entry and matches):
            self.log.warning("Failed login for %r", username)
            return None
        return {"name": username}
