#!/usr/bin/env python3
"""Bring the course files from the image into a student's home, never losing their work.

    sync_course.py SOURCE DEST

Run at every server start. For each file under SOURCE:

- absent from DEST: copied (a file the student deleted comes back, as with nbgitpuller);
- present and unchanged since it was last copied: replaced by the image's version, so
  course fixes reach students;
- present and changed by the student: left alone.

What was last copied is remembered in DEST/.course-manifest.json (path -> sha256).
Files the student created are never touched. Uses only the standard library.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

MANIFEST = ".course-manifest.json"


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.course-tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def sync(source: Path, dest: Path) -> dict[str, list[str]]:
    """Synchronise `source` into `dest`; return the relative paths copied, updated and kept."""
    manifest_file = dest / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_file.read_text())
    except (FileNotFoundError, ValueError):
        manifest = {}
    report: dict[str, list[str]] = {"copied": [], "updated": [], "kept": []}
    for src in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = src.relative_to(source).as_posix()
        target = dest / rel
        new = digest(src)
        if not target.exists():
            _copy(src, target)
            report["copied"].append(rel)
        elif target.is_file() and manifest.get(rel) == digest(target):
            if new != manifest[rel]:
                _copy(src, target)
                report["updated"].append(rel)
        else:
            report["kept"].append(rel)
            continue
        manifest[rel] = new
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, manifest_file)
    return report


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = sync(Path(argv[0]), Path(argv[1]))
    print("course sync: " + ", ".join(f"{len(v)} {k}" for k, v in report.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
