"""Back up a whole classroom, and restore one: everything a course cannot lose.

    classroom-backup create   --name N [--state /srv/state] --dest /srv/backups --host-dest DIR --image IMG
                              [--keep K] [--stamp STAMP]
    classroom-backup restore  --name N [--state /srv/state] --source /srv/backups/N-STAMP --host-dest DIR --image IMG
    classroom-backup schedule --schedule "daily 02:30" --timezone Europe/Paris  (and the create options)
    classroom-backup verify   --name N --source /srv/backups/N-STAMP

A backup is one folder, `<dest>/<name>-<UTC stamp>/`:

    manifest.json             what is inside, with each archive's size and SHA-256
    state.tar.gz              the hub's state folder: secrets, roster, initial passwords
    volume-<volume>.tar.gz    each volume of the deployment: students' homes, the course
                              (sources, releases, submissions, feedback, gradebook) and the
                              hub's data (its database)

SQLite databases (the hub's, the gradebook) are copied with SQLite's online backup API, so a
backup taken while the classroom runs holds a consistent copy of each, never a half-written
file; every other file is copied as it is. A backup is written under a `.partial` name and
renamed when complete, so an interrupted one is never mistaken for a good one. After each new
backup, only the newest `--keep` of this classroom are kept.

On a swarm, each node backs up the deployment's volumes it holds (the homes of the students
whose servers run there) into a folder of the same name, the stamp given by `--stamp`; only the
first manager's part has the state (no `--state` elsewhere), and each part's manifest says
whether it does. Each node restores its own part.

A restore checks every archive against the manifest before it touches anything, then replaces
the deployment's volumes and state with the backup's. The deployment must be stopped first
(`make restore` does that, and deploys again afterwards).

Runs in a container of the hub image with the Docker socket, the state folder and the backup
folder mounted (`make backup`, `make restore`, and the `{name}-backup` service that runs the
operator file's `backup.schedule`). Each volume is read or written by a throwaway container of
the same image, with no network. Ownership and permissions are kept.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

FORMAT = 1
STAMP = "%Y%m%dT%H%M%SZ"
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message names the input and the fix."""


# --- inside a throwaway container: one volume <-> one archive ----------------------------

def is_sqlite(path: Path) -> bool:
    """Whether `path` is an SQLite database (by its header)."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == SQLITE_HEADER
    except OSError:
        return False


def online_copy(database: Path, copy: Path) -> bool:
    """Copy a live SQLite database with the online backup API; False when SQLite cannot."""
    try:
        source = sqlite3.connect(database, timeout=60)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        return True
    except sqlite3.Error:
        copy.unlink(missing_ok=True)
        return False


def archive_folder(folder: Path, archive: Path) -> dict[str, int]:
    """Write `folder` to a gzipped tar: SQLite databases through the online backup API
    (their journal files left out), everything else as it is. Returns counts."""
    databases = {path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()
                 and is_sqlite(path)}
    side_files = {Path(str(db) + suffix) for db in databases for suffix in SQLITE_SIDE_FILES}
    counts = {"files": 0, "databases": 0}
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(archive, "w:gz") as tar:
        # the folder itself first: a volume's owner and mode (a home belongs to its student)
        tar.add(str(folder), arcname=".", recursive=False)
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path in side_files:
                continue
            if path in databases:
                copy = Path(scratch) / "copy.sqlite"
                if online_copy(path, copy):
                    info = tar.gettarinfo(str(path), arcname=name)
                    info.size = copy.stat().st_size
                    with copy.open("rb") as handle:
                        tar.addfile(info, handle)
                    copy.unlink()
                    counts["databases"] += 1
                    continue
                # not a database SQLite can read (a student's file that only looks like
                # one): kept as it is, with its side files, rather than failing the backup
                for side in (Path(str(path) + suffix) for suffix in SQLITE_SIDE_FILES):
                    if side.exists():
                        tar.add(str(side), arcname=side.relative_to(folder).as_posix(), recursive=False)
            tar.add(str(path), arcname=name, recursive=False)
            counts["files"] += path.is_file()
    return counts


def extract_folder(archive: Path, folder: Path) -> None:
    """Unpack an archive made by `archive_folder` into `folder`, owners and modes kept.

    Homes hold what students made, symlinks included: a member that would land outside
    `folder` (an absolute name, `..`, or a path through a symlink that leads out), a hard link
    to outside it, or a device is refused, and set-id bits are dropped. (The hub image's
    Python predates tarfile's extraction filters.) The throwaway container that runs this has
    nothing but the one volume to write to anyway."""
    root = os.path.realpath(folder)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            target = os.path.realpath(os.path.join(root, member.name))
            inside = target == root or target.startswith(root + os.sep)
            if member.islnk():
                link = os.path.realpath(os.path.join(root, member.linkname))
                inside = inside and link.startswith(root + os.sep)
            if not inside or member.isdev():
                raise BackupError(f"{archive}: refusing {member.name!r}, which would be written "
                                  f"outside {folder} or is a device; the archive is not one of ours.")
            member.mode &= 0o777 if not member.isdir() else 0o1777
            tar.extract(member, root, numeric_owner=True)


# --- the orchestrator: a backup folder, its manifest, retention ---------------------------

def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deployment_volumes(client, name: str) -> list[str]:
    """The volumes a deployment keeps: homes, the course and the hub's data."""
    pattern = re.compile(rf"^{re.escape(name)}-(home-.+|hub-data|course)$")
    return sorted(v.name for v in client.volumes.list() if pattern.match(v.name))


def in_container(client, image: str, command: list[str], mounts: dict[str, str]) -> None:
    """Run one of this module's commands in a throwaway container; fail with its output."""
    volumes = {source: {"bind": target, "mode": "rw"} for source, target in mounts.items()}
    container = client.containers.run(image, ["python", "-m", "classroom_hub.backup", *command],
                                      volumes=volumes, network_mode="none", user="0:0",
                                      entrypoint=[], detach=True)
    try:
        status = container.wait()["StatusCode"]
        if status != 0:
            log = container.logs().decode(errors="replace")[-3000:]
            raise BackupError(f"{' '.join(command[:1])} of {list(mounts)[0]} failed:\n{log}")
    finally:
        container.remove(force=True)


def complete_backups(dest: Path, name: str) -> list[Path]:
    """This classroom's complete backups in `dest`, oldest first."""
    pattern = re.compile(rf"^{re.escape(name)}-\d{{8}}T\d{{6}}Z$")
    return sorted(p for p in dest.iterdir() if p.is_dir() and pattern.match(p.name)
                  and (p / "manifest.json").is_file())


def create(client, name: str, state: Path | None, dest: Path, host_dest: str, image: str, keep: int,
           now: dt.datetime | None = None, stamp: str | None = None) -> Path:
    """Take a backup of deployment `name` (without the state folder when `state` is None: a
    swarm node's part); returns its folder (seen from here)."""
    if stamp is not None:
        try:
            dt.datetime.strptime(stamp, STAMP)
        except ValueError:
            raise BackupError(f"--stamp {stamp!r} is not a UTC stamp such as 20261130T214500Z.") from None
    stamp = stamp or (now or dt.datetime.now(dt.timezone.utc)).strftime(STAMP)
    final = dest / f"{name}-{stamp}"
    if final.exists():
        raise BackupError(f"{final} exists already: wait a second and run the backup again.")
    for stale in dest.glob(f"{name}-*.partial"):  # from an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    partial = dest / f"{final.name}.partial"
    partial.mkdir(parents=True)
    archives: dict[str, dict[str, object]] = {}
    try:
        if state is not None:
            if not state.is_dir():
                raise BackupError(f"no state folder at {state}: is {name} deployed on this host?")
            archive_folder(state, partial / "state.tar.gz")
        volumes = deployment_volumes(client, name)
        for volume in volumes:
            in_container(client, image, ["archive-volume", "/data", f"/backup/volume-{volume}.tar.gz"],
                         {volume: "/data", f"{host_dest}/{partial.name}": "/backup"})
        for archive in sorted(partial.glob("*.tar.gz")):
            archives[archive.name] = {"bytes": archive.stat().st_size, "sha256": sha256(archive)}
        manifest = {"format": FORMAT, "classroom": name, "created": stamp, "volumes": volumes,
                    "state": state is not None, "archives": archives}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for old in complete_backups(dest, name)[:-keep]:
        shutil.rmtree(old)
    return final


def read_manifest(source: Path, name: str) -> dict:
    """The backup's manifest, after checking that every archive it lists is intact."""
    manifest_file = source / "manifest.json"
    if not manifest_file.is_file():
        raise BackupError(f"{source} has no manifest.json: give BACKUP=<the folder of one backup>, "
                          f"e.g. a folder named {name}-YYYYMMDDTHHMMSSZ.")
    try:
        manifest = json.loads(manifest_file.read_text())
        archives = manifest["archives"]
        volumes = manifest["volumes"]
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(f"{manifest_file} is not a classroom backup manifest ({error}).") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{manifest_file}: backup format {manifest.get('format')!r}, "
                          f"this version reads format {FORMAT}.")
    if manifest.get("classroom") != name:
        raise BackupError(f"{source} is a backup of {manifest.get('classroom')!r}, not of {name!r}: "
                          "restore it with the operator file of that classroom.")
    # Backups from before swarm parts always had the state.
    expected = {*(["state.tar.gz"] if manifest.get("state", True) else []), *(f"volume-{v}.tar.gz" for v in volumes)}
    if set(archives) != expected:
        raise BackupError(f"{manifest_file} lists {sorted(archives)}, expected {sorted(expected)}.")
    for archive, facts in sorted(archives.items()):
        path = source / archive
        if not path.is_file() or sha256(path) != facts["sha256"]:
            raise BackupError(f"{path} is missing or damaged (its SHA-256 does not match the "
                              "manifest); nothing was restored. Use another backup.")
    return manifest


def restore(client, name: str, state: Path | None, source: Path, host_dest: str, image: str) -> dict:
    """Replace deployment `name`'s volumes and state with the backup's (a swarm node's part:
    its volumes only)."""
    manifest = read_manifest(source, name)
    has_state = manifest.get("state", True)
    if has_state != (state is not None):
        raise BackupError(f"{source} {'holds' if has_state else 'does not hold'} the classroom's state, "
                          f"but this host's part {'does not' if has_state else 'does'}: restore each "
                          "node's part on that node (make restore with the swarm's inventory).")
    running = [c.name for c in client.containers.list(all=True)
               if c.name.startswith(f"{name}-") and any(
                   m.get("Name") in manifest["volumes"] for m in c.attrs.get("Mounts", []))]
    if running:
        raise BackupError(f"containers still use the volumes: {', '.join(sorted(running))}; "
                          "remove the classroom first (make restore does).")
    for volume in manifest["volumes"]:
        for old in client.volumes.list(filters={"name": volume}):
            if old.name == volume:
                old.remove()
        client.volumes.create(volume)
        in_container(client, image, ["extract-volume", f"/backup/volume-{volume}.tar.gz", "/data"],
                     {volume: "/data", f"{host_dest}/{source.name}": "/backup"})
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        for child in state.iterdir():  # the fresh deployment's secrets give way to the backup's
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        extract_folder(source / "state.tar.gz", state)
    return manifest


# --- the schedule (the {name}-backup service) -----------------------------------------------

def run_schedule(entries: list[str], zone: ZoneInfo, take) -> None:
    """Take a backup at every scheduled time, forever; a failed one is logged and retried at
    the next time."""
    from .prestart import next_run

    while True:
        due = next_run(dt.datetime.now(zone), entries)
        print(f"next backup at {due.isoformat()}", flush=True)
        time.sleep(max(0.0, (due - dt.datetime.now(zone)).total_seconds()))
        try:
            print(f"backup written: {take()}", flush=True)
        except Exception as error:  # noqa: BLE001 - the service must outlive one failure
            print(f"backup FAILED: {error}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("create", "restore", "schedule"):
        sub = commands.add_parser(command)
        sub.add_argument("--name", required=True, help="the deployment's name (operator file: name)")
        sub.add_argument("--state", type=Path, required=command == "schedule",
                         help="the hub's state folder, as mounted here (none: a swarm node's part)")
        sub.add_argument("--host-dest", required=True, help="the backup folder's path on the host")
        sub.add_argument("--image", required=True, help="image for the throwaway volume containers")
        if command == "restore":
            sub.add_argument("--source", type=Path, required=True, help="the backup's folder, as mounted here")
        else:
            sub.add_argument("--dest", type=Path, required=True, help="the backup folder, as mounted here")
            sub.add_argument("--keep", type=int, default=7, help="how many backups to keep")
            sub.add_argument("--stamp", help="the backup's UTC stamp (a swarm's parts share one)")
        if command == "schedule":
            sub.add_argument("--schedule", action="append", required=True, help='"DAYS HH:MM"')
            sub.add_argument("--timezone", default="UTC")
    verify = commands.add_parser("verify")
    verify.add_argument("--name", required=True)
    verify.add_argument("--source", type=Path, required=True)
    for command in ("archive-volume", "extract-volume"):
        sub = commands.add_parser(command)
        sub.add_argument("source", type=Path)
        sub.add_argument("target", type=Path)
    args = parser.parse_args(argv)

    if args.command == "archive-volume":
        print(json.dumps(archive_folder(args.source, args.target)))
        return 0
    if args.command == "extract-volume":
        extract_folder(args.source, args.target)
        return 0
    if args.command == "verify":
        try:
            manifest = read_manifest(args.source, args.name)
        except BackupError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{args.source.name}: intact, {len(manifest['archives'])} archives, taken {manifest['created']}")
        return 0
    import docker

    client = docker.from_env()
    try:
        if args.command == "create":
            print(create(client, args.name, args.state, args.dest, args.host_dest, args.image, args.keep,
                         stamp=args.stamp))
        elif args.command == "restore":
            manifest = restore(client, args.name, args.state, args.source, args.host_dest, args.image)
            print(f"restored {args.name} from {args.source.name} (taken {manifest['created']}): "
                  f"{len(manifest['volumes'])} volumes" + (" and the state folder" if args.state else ""))
        else:
            run_schedule(args.schedule, ZoneInfo(args.timezone),
                         lambda: create(client, args.name, args.state, args.dest, args.host_dest,
                                        args.image, args.keep))
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
