#!/usr/bin/env python3
"""Build one of the classroom's images, only when its inputs have changed.

    python3 images/build.py --repository classroom/cpu --dockerfile images/singleuser/Dockerfile \
        --add requirements.txt=images/singleuser/requirements.txt --add wheels/common=/var/cache/... \
        [--build-arg BASE_IMAGE=debian:bookworm-slim]

Each `--add DEST=SOURCE` puts a file or folder into the build context at DEST. The
inputs' fingerprint (every context file's path and content, the build arguments
and the base image's id) names the image: REPOSITORY:<first 16 hex digits>, also
tagged `latest`. When that tag exists nothing is built, so a deployment runs
exactly the images its inputs describe and an older deployment keeps its own.
Wheels are fingerprinted by name and size (a wheel's name pins its version),
everything else by content. Prints one JSON line:
{"changed": bool, "image": "REPOSITORY:TAG", "inputs": HASH}.

Builds with the `docker` command, so it works with the classic builder and BuildKit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LABEL = "org.classroom.inputs"


def context_files(additions: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Expand the `--add` pairs into (context path, source file) pairs, sorted."""
    files = []
    for dest, source in additions:
        if source.is_dir():
            for path in source.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    files.append((f"{dest}/{path.relative_to(source).as_posix()}", path))
        elif source.is_file():
            files.append((dest, source))
        else:
            raise SystemExit(f"build input {source} (for {dest}) does not exist")
    return sorted(files)


def fingerprint(files: list[tuple[str, Path]], build_args: list[str], base_id: str) -> str:
    """Hash of everything that decides what the build produces."""
    sha = hashlib.sha256()
    sha.update(json.dumps([sorted(build_args), base_id]).encode())
    for dest, source in files:
        sha.update(dest.encode() + b"\0")
        if source.suffix == ".whl":
            sha.update(str(source.stat().st_size).encode())
        else:
            sha.update(hashlib.sha256(source.read_bytes()).digest())
    return sha.hexdigest()


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a docker command and capture its output."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def image_exists(tag: str) -> bool:
    """Whether the engine has an image with this tag."""
    return docker("image", "inspect", "--format", "{{.Id}}", tag, check=False).returncode == 0


def assemble(files: list[tuple[str, Path]], context: Path) -> None:
    """Lay the files out as a build context, hard-linking where the filesystem allows."""
    for dest, source in files:
        target = context / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", required=True, help="image name without tag, e.g. classroom/cpu")
    parser.add_argument("--dockerfile", type=Path, required=True)
    parser.add_argument("--add", action="append", default=[], metavar="DEST=SOURCE")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--base", required=True, help="base image, for the fingerprint")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to assemble the context (same filesystem as the wheels is fastest)")
    parser.add_argument("--force", action="store_true", help="build even when the inputs are unchanged")
    args = parser.parse_args(argv)

    additions = [(d, Path(s)) for d, _, s in (a.partition("=") for a in args.add)]
    files = context_files([("Dockerfile", args.dockerfile)] + additions)
    base = docker("image", "inspect", "--format", "{{.Id}}", args.base, check=False)
    if base.returncode != 0:
        raise SystemExit(f"base image {args.base} is missing: ensure the base images first "
                         "(the deploy's base_image role does)")
    inputs = fingerprint(files, args.build_arg, base.stdout.strip())
    tag = f"{args.repository}:{inputs[:16]}"
    if not args.force and image_exists(tag):
        print(json.dumps({"changed": False, "image": tag, "inputs": inputs}))
        return 0

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="context-", dir=args.workdir) as context:
        assemble(files, Path(context))
        command = ["build", "--tag", tag, "--tag", f"{args.repository}:latest",
                   "--label", f"{LABEL}={inputs}", "--rm"]
        for build_arg in args.build_arg:
            command += ["--build-arg", build_arg]
        env = dict(os.environ)
        env.setdefault("DOCKER_CLI_HINTS", "false")
        result = subprocess.run(["docker", *command, context], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log = (result.stdout + result.stderr).splitlines()
        raise SystemExit(f"docker build of {tag} failed; the last lines:\n" + "\n".join(log[-40:]))
    print(json.dumps({"changed": True, "image": tag, "inputs": inputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
