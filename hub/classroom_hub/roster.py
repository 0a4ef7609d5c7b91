"""Turn the operator's roster into the hashed roster file that the hub reads.

Run by the deploy inside the hub image, so the host needs no Python packages:

    classroom-roster --spec roster-spec.json --state /srv/classroom

For each person without a `password_hash` in the operator file, a password is
generated once and written to `initial-passwords` (mode 0600) for the operator
to hand out; only its bcrypt hash goes into `roster.json`, which is what the hub
checks. Later runs keep every hash, so redeploys never change anyone's password,
whatever the operator did to `initial-passwords`: a deleted line stays deleted
(the password stays as it was), and a line edited since the last run is checked
against its hash and dropped, with a warning, when it no longer matches. People
removed from the roster lose their entries. Prints one JSON line:
{"changed": bool, "new_passwords": [...], "dropped_lines": [...]}.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import bcrypt

ADMIN_USER = "admin"
HASH_ROUNDS = 10  # about 50 ms a check: a class of 60 logging in at once stays fast


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_initial_passwords(path: Path) -> dict[str, str]:
    """Read `username password` lines; a missing file is empty."""
    if not path.exists():
        return {}
    result = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, password = line.partition(" ")
            result[name] = password
    return result


def build_roster(people: list[dict[str, Any]], old_roster: dict[str, dict[str, str]],
                 initial: dict[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str], list[str]]:
    """Return (new roster, new initial passwords, names given a new password).

    `people` are the operator's entries (username, role, optional password_hash);
    the operator account `admin` is added. A generated hash, once made, is kept for
    as long as the person stays on the roster: `initial` (the file's lines) only says
    which plaintexts the operator still has on file, never what a password is.
    """
    people = [{"username": ADMIN_USER, "role": "admin"}] + list(people)
    roster: dict[str, dict[str, str]] = {}
    passwords: dict[str, str] = {}
    created: list[str] = []
    for person in people:
        name, role = person["username"], person.get("role", "student")
        if person.get("password_hash"):
            roster[name] = {"hash": person["password_hash"], "role": role, "source": "operator"}
            continue
        old = old_roster.get(name, {})
        if old.get("source") == "generated":
            roster[name] = {"hash": old["hash"], "role": role, "source": "generated"}
            if name in initial:
                passwords[name] = initial[name]
            continue
        password = secrets.token_urlsafe(12)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=HASH_ROUNDS)).decode()
        roster[name] = {"hash": hashed, "role": role, "source": "generated"}
        passwords[name] = password
        created.append(name)
    return roster, passwords, created


def edited_since(passwords_file: Path, roster_file: Path) -> bool:
    """Whether `initial-passwords` changed after this tool last wrote both files."""
    if not passwords_file.exists() or not roster_file.exists():
        return False
    return passwords_file.stat().st_mtime_ns > roster_file.stat().st_mtime_ns


def matching_lines(lines: dict[str, str], roster: dict[str, dict[str, str]]) -> dict[str, str]:
    """The lines whose password verifies against that person's stored hash."""
    return {name: password for name, password in lines.items()
            if name in roster and bcrypt.checkpw(password.encode(), roster[name]["hash"].encode())}


def sync(spec_file: Path, state_dir: Path) -> dict[str, Any]:
    """Bring `roster.json` and `initial-passwords` in `state_dir` in line with the spec."""
    people = json.loads(spec_file.read_text())
    roster_file = state_dir / "roster.json"
    passwords_file = state_dir / "initial-passwords"
    old_roster = json.loads(roster_file.read_text())["users"] if roster_file.exists() else {}
    old_passwords = read_initial_passwords(passwords_file)
    on_file = old_passwords
    if edited_since(passwords_file, roster_file):
        # the operator edited the file: keep only lines that are still true
        on_file = matching_lines(old_passwords, old_roster)
        os.utime(roster_file)  # checked once per edit, not at every deploy
    dropped = sorted(name for name in old_passwords if name not in on_file and name in old_roster)
    roster, passwords, created = build_roster(people, old_roster, on_file)
    changed = roster != old_roster or passwords != old_passwords
    if changed:
        lines = ["# Generated passwords: hand each to its owner. Deleting a line (or the whole",
                 "# file) is safe: the hub stores only bcrypt hashes, and no edit here changes",
                 "# a password."]
        lines += [f"{name} {password}" for name, password in sorted(passwords.items())]
        _write_private(passwords_file, "\n".join(lines) + "\n")
        _write_private(roster_file, json.dumps({"users": roster}, indent=1, sort_keys=True) + "\n")
    # the hub runs as root in its container and reads the roster; nobody else may
    os.chmod(roster_file, 0o600)
    return {"changed": changed, "new_passwords": created, "dropped_lines": dropped}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON list of roster entries")
    parser.add_argument("--state", type=Path, required=True, help="folder of roster.json and initial-passwords")
    args = parser.parse_args(argv)
    print(json.dumps(sync(args.spec, args.state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
