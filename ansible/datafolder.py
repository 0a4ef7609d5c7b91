"""Fill the deployment's read-only data folder: `make data FROM=folder-or-URL`.

For each file of `config/datasets.yml` it looks in the source (a local folder, or a
mirror's base URL), checks the MD5 sum its publisher gives, and copies it into the
data folder (an archive with `unpack` is unpacked there instead, through a staging
folder, so a half-written set never appears). Files already in place and verified are
skipped. It reports each set as installed, already there, or missing, with why, and
exits 1 when something the source had was corrupt. Standard library only.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

CATALOGUE = Path(__file__).resolve().parent / "config" / "datasets.yml"
STAMP = ".verified.json"


@dataclass
class Report:
    installed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    corrupt: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"installed  {name}" for name in self.installed] + [f"present    {name}" for name in self.present]
        out += [f"missing    {name}: {', '.join(files)} not in the source" for name, files in self.missing.items()]
        out += [f"CORRUPT    {name}: {why}" for name, why in self.corrupt.items()]
        return out


def md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - the publishers' checksums are MD5
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(source: str, name: str, dest: Path) -> bool:
    """Copy `name` from a folder or a base URL to dest; False when the source does not have it."""
    if "://" in source:
        try:
            with urllib.request.urlopen(f"{source.rstrip('/')}/{name}", timeout=60) as response, dest.open("wb") as out:
                shutil.copyfileobj(response, out)
            return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
    path = Path(source) / name
    if not path.is_file():
        return False
    shutil.copyfile(path, dest)
    return True


def safe_unpack(archive: Path, dest: Path, expected_top: str) -> None:
    """Unpack a tar.gz whose members all lie under `expected_top`, plain files and folders only."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != expected_top or ".." in parts or PurePosixPath(member.name).is_absolute() \
                    or not (member.isfile() or member.isdir()):
                raise ValueError(f"{archive.name}: unexpected member {member.name!r}")
        tar.extractall(dest, filter="data")


def fill(data_dir: Path, source: str, catalogue: dict[str, Any] | None = None) -> Report:
    """Install every set of the catalogue that the source has into data_dir."""
    catalogue = catalogue or yaml.safe_load(CATALOGUE.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    stamp_file = data_dir / STAMP
    verified = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
    report = Report()
    for name, entry in catalogue.items():
        folder = data_dir / entry["folder"]
        todo = [f for f in entry["files"] if verified.get(f"{name}/{f['name']}") != f["md5"]
                or not (folder / f.get("unpack", f["name"])).exists()]
        if not todo:
            report.present.append(name)
            continue
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".staging-") as staging:
            staging_dir = Path(staging)
            absent, bad = [], None
            for item in todo:
                target = staging_dir / item["name"]
                if not fetch(source, item["name"], target):
                    absent.append(item["name"])
                elif (got := md5(target)) != item["md5"]:
                    bad = f"{item['name']} has MD5 {got}, expected {item['md5']}: the copy in the source is damaged"
                    break
            if bad:
                report.corrupt[name] = bad
                continue
            if absent:
                report.missing[name] = absent
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for item in todo:
                if item.get("unpack"):
                    safe_unpack(staging_dir / item["name"], staging_dir / "unpacked", item["unpack"])
                    final = folder / item["unpack"]
                    shutil.rmtree(final, ignore_errors=True)
                    (staging_dir / "unpacked" / item["unpack"]).replace(final)
                else:
                    (staging_dir / item["name"]).replace(folder / item["name"])
                verified[f"{name}/{item['name']}"] = item["md5"]
        stamp_file.write_text(json.dumps(verified, indent=1, sort_keys=True) + "\n")
        report.installed.append(name)
    return report
