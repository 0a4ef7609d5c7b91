#!/usr/bin/env python3
"""Download the wheels of a pinned requirements file into a wheelhouse folder.

The images install Python packages from such a folder with `--no-index`, so that
a build needs no network and no certificates inside the build, and gives the same
packages every time. The download runs on the host with the host's own pip
configuration (campus mirrors, proxies, certificates).

    python3 images/wheelhouse.py --requirements images/cpu/requirements-torch.txt \
        --dest /var/cache/classroom/wheels/torch-cpu [--extra-index-url URL] [--ignore-find-links]

Only what is missing is downloaded; prints one JSON line {"changed": bool, "missing": N}.
Uses only the standard library and the host's pip.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# The images run Debian bookworm's Python: CPython 3.11.2 on x86_64, glibc 2.36.
PYTHON_VERSION = "3.11.2"
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(5, 37)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(requirements: Path) -> dict[str, str]:
    """Return {canonical name: version} of the `name==version` lines of a requirements file."""
    pins = {}
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise SystemExit(f"{requirements}:{number}: expected a pin like 'name==1.2.3', got {raw!r}. "
                             "Every package the images install is pinned; run `make lock`.")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def present(dest: Path) -> dict[str, set[str]]:
    """Return {canonical name: versions} of the wheel files already in `dest`."""
    found: dict[str, set[str]] = {}
    for wheel in dest.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found.setdefault(canonical(name), set()).add(version.replace("_", "-"))
    return found


def missing_pins(pins: dict[str, str], dest: Path) -> list[str]:
    """Return the `name==version` pins that have no wheel in `dest` yet."""
    have = present(dest)
    return [f"{name}=={version}" for name, version in sorted(pins.items())
            if version not in have.get(name, set())]


def download(pins: list[str], dest: Path, extra_index_url: str, ignore_find_links: bool) -> None:
    """Download the wheels of `pins` for the images' platform into `dest`."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as empty, tempfile.NamedTemporaryFile("w", suffix=".txt") as reqs:
        if ignore_find_links:
            # A local find-links folder may hold a different build with the same
            # version (PyTorch's +cpu wheels); point it at an empty folder instead.
            env["PIP_FIND_LINKS"] = empty
        reqs.write("\n".join(pins) + "\n")
        reqs.flush()
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                   "--implementation", "cp", "--dest", str(dest), "-r", reqs.name]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        if extra_index_url:
            command += ["--extra-index-url", extra_index_url]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING")]
        raise SystemExit("pip could not download the pinned wheels into "
                         f"{dest}:\n" + "\n".join(errors[-15:]) +
                         "\nCheck the host's pip configuration (index, proxy, certificates).")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, required=True, action="append")
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--extra-index-url", default="")
    parser.add_argument("--ignore-find-links", action="store_true")
    args = parser.parse_args(argv)
    pins: dict[str, str] = {}
    for requirements in args.requirements:
        pins.update(read_pins(requirements))
    args.dest.mkdir(parents=True, exist_ok=True)
    missing = missing_pins(pins, args.dest)
    if missing:
        download(missing, args.dest, args.extra_index_url, args.ignore_find_links)
        still = missing_pins(pins, args.dest)
        if still:
            raise SystemExit(f"after downloading, {args.dest} still lacks: {', '.join(still)}")
    print(json.dumps({"changed": bool(missing), "missing": len(missing)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
