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
With `--progress-file FILE`, each step the build starts is appended to FILE as it
starts ("classroom/cpu: [packages 3/9] RUN pip install ..."), so that whoever runs
the deploy can watch a build of several minutes advance (the deploy driver prints
them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
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


# A build step as BuildKit's plain output starts it ("#12 [packages 3/9] RUN pip ..."),
# or as the classic builder does ("Step 3/9 : RUN pip ...").
STEP = re.compile(r"^#\d+ (\[[^\]]*\d+/\d+\] .*)$|^(Step \d+/\d+ : .*)$")


def step_of(line: str) -> str | None:
    """The step a line of `docker build` output starts, shortened; None for other lines."""
    match = STEP.match(line.rstrip())
    if not match:
        return None
    step = match.group(1) or match.group(2)
    return step if len(step) <= 110 else step[:107] + "..."


FINISHED = "finished in"  # the last line a build appends to the progress file


def run_build(command: list[str], env: dict[str, str], repository: str,
              progress_file: Path | None) -> tuple[int, list[str]]:
    """Run `docker build`, appending each step it starts to `progress_file`; returns the exit
    status and the output's last lines (for the error message)."""
    tail: deque[str] = deque(maxlen=40)
    progress = progress_file.open("a", buffering=1) if progress_file else None
    began = time.monotonic()
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env, bufsize=1) as process:
            assert process.stdout is not None
            for line in process.stdout:
                tail.append(line.rstrip("\n"))
                step = step_of(line)
                if progress and step and "CACHED" not in step:
                    progress.write(f"{repository}: {step}\n")
        return process.returncode, list(tail)
    finally:
        if progress:
            progress.write(f"{repository}: {FINISHED} {time.monotonic() - began:.0f} s\n")
            progress.close()


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
    parser.add_argument("--progress-file", type=Path, default=None,
                        help="append each build step to this file as it starts")
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
        env.setdefault("BUILDKIT_PROGRESS", "plain")
        returncode, log = run_build(["docker", *command, context], env, args.repository, args.progress_file)
    if returncode != 0:
        raise SystemExit(f"docker build of {tag} failed; the last lines:\n" + "\n".join(log))
    print(json.dumps({"changed": True, "image": tag, "inputs": inputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
