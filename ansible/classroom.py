#!/usr/bin/env python3
"""The classroom's deploy driver: validate the operator file, then run Ansible.

Every `make deploy`, `make remove` and the integration tests go through here, so
there is one way the playbooks are run:

    python ansible/classroom.py validate [--config FILE]
    python ansible/classroom.py deploy   [--config FILE] [--inventory FILE]
    python ansible/classroom.py remove   [--config FILE] [--inventory FILE] [--delete-volumes]
    python ansible/classroom.py backup   [--config FILE] [--inventory FILE]
    python ansible/classroom.py restore  --backup FOLDER [--config FILE] [--inventory FILE]
    python ansible/classroom.py hash-password
    python ansible/classroom.py verify-artifact FILE... [--config FILE]
    python ansible/classroom.py data --source FOLDER-OR-URL [--config FILE]

The operator file is merged over `config/defaults.yml` and checked against
`config/schema.yml` before Ansible starts, so a wrong key or value changes
nothing on any host.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import getpass
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parent
REPO_DIR = ANSIBLE_DIR.parent
DEFAULTS_FILE = ANSIBLE_DIR / "config" / "defaults.yml"
SCHEMA_FILE = ANSIBLE_DIR / "config" / "schema.yml"
LOCAL_INVENTORY = ANSIBLE_DIR / "inventory" / "local.yml"


class ConfigError(Exception):
    """The operator file cannot be used; the message says where and why."""


def merge(defaults: Any, overrides: Any) -> Any:
    """Return `defaults` with `overrides` laid over it.

    Mappings merge key by key, recursively; any other value (lists included)
    replaces the default whole. Unknown keys are kept so that validation can
    name them.
    """
    if isinstance(defaults, dict) and isinstance(overrides, dict):
        merged = copy.deepcopy(defaults)
        for key, value in overrides.items():
            merged[key] = merge(defaults.get(key), value) if key in defaults else value
        return merged
    return copy.deepcopy(overrides)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the operator file ({exc.strerror}). "
                          "Pass an existing file with CONFIG=path/to/classroom.yml.") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}. "
                          "Fix the syntax (indentation, quotes, colons) and run again.") from exc


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path)
    path = path.replace(".[", "[") or "(top level)"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        allowed = ", ".join(sorted(schema.get("properties", {})))
        return f"{path}: unknown key(s) {', '.join(extra)}; expected one of: {allowed}"
    if error.validator == "required":
        return f"{path}: {error.message}"
    expected = schema.get("description")
    if expected is None and error.validator == "enum":
        expected = "one of " + ", ".join(json.dumps(v) for v in error.validator_value)
    if expected is None and error.validator == "type":
        expected = f"a value of type {error.validator_value}"
    if expected is None:
        expected = error.message
    return f"{path}: got {json.dumps(error.instance)}, expected {expected}"


def check_origins(config: dict[str, Any]) -> list[str]:
    """Problems with where people reach the classroom that a schema cannot express."""
    import ipaddress
    from urllib.parse import urlparse

    hub, tls, problems = config["hub"], config["tls"], []
    domain = hub["domain"]
    try:
        ipaddress.ip_address(domain)
        is_ip = True
    except ValueError:
        is_ip = False
    if is_ip and hub["user_subdomains"]:
        problems.append(f"hub.domain: {domain!r} is an IP address, and per-user subdomains need a host name "
                        "with a wildcard DNS record (*.<domain>); give one, or use localhost on this machine")
    if hub["public_url"] and urlparse(hub["public_url"]).hostname != domain:
        problems.append(f"hub.public_url: its host {urlparse(hub['public_url']).hostname!r} is not hub.domain "
                        f"{domain!r}; browsers must reach the hub by the name its cookies and subdomains use")
    cert = Path(tls["cert_file"]) if tls["enabled"] and tls["cert_file"] else None
    if cert is not None and cert.is_file() and hub["user_subdomains"]:
        missing = certificate_misses(cert, [domain, f"*.{domain}"])
        if missing:
            problems.append(f"tls.cert_file: {cert} does not cover {', '.join(missing)}; per-user subdomains need "
                            f"a certificate for both {domain} and *.{domain}")
    if tls["http_port"] and not tls["enabled"]:
        problems.append(f"tls.http_port: {tls['http_port']} redirects plain HTTP to HTTPS, which needs "
                        "tls.enabled: true (with cert_file and key_file); set it to 0 without TLS")
    if tls["http_port"] and tls["http_port"] == hub["port"]:
        problems.append(f"tls.http_port: {tls['http_port']} is hub.port too; give plain HTTP a port of its own "
                        "(80 on a real server)")
    return problems


def certificate_misses(cert_file: Path, names: list[str]) -> list[str]:
    """The names that the PEM certificate's subject alternative names do not cover."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        covered = set(certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except (ValueError, x509.ExtensionNotFound) as error:
        return [f"anything ({error})"]
    return [name for name in names if name not in covered]


def check_roster(config: dict[str, Any]) -> list[str]:
    """Return problems with the roster that a schema cannot express."""
    seen: dict[str, int] = {}
    problems = []
    for index, person in enumerate(config["roster"]):
        name = person["username"]
        if name in seen:
            problems.append(f"roster[{index}].username: {name!r} is listed twice "
                            f"(first at roster[{seen[name]}]); keep one entry per person")
        seen.setdefault(name, index)
    tls = config["tls"]
    if tls["enabled"] and not (tls["cert_file"] and tls["key_file"]):
        problems.append("tls: enabled is true but cert_file or key_file is empty; "
                        "give both paths, or set tls.enabled: false")
    return problems


def load_config(path: Path | None) -> dict[str, Any]:
    """Read the operator file (or none), merge it over the defaults and validate it.

    Raises ConfigError listing every problem, each with its key path.
    """
    defaults = _read_yaml(DEFAULTS_FILE)
    overrides: Any = {}
    if path is not None:
        overrides = _read_yaml(path)
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: the operator file must be a mapping of keys to values, "
                              f"not {type(overrides).__name__}")
    config = merge(defaults, overrides)
    for person in config.get("roster") or []:
        if isinstance(person, dict):
            person.setdefault("role", "student")
    schema = _read_yaml(SCHEMA_FILE)
    validator = jsonschema.Draft202012Validator(schema)
    problems = [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))]
    if not problems:
        problems = check_roster(config) + check_origins(config)
    if problems:
        source = path or DEFAULTS_FILE
        raise ConfigError(f"{source}: {len(problems)} problem(s) in the operator file, nothing was changed:\n  - "
                          + "\n  - ".join(problems))
    # Values whose default depends on another key, decided here once for every playbook.
    config["backup"]["dir"] = config["backup"]["dir"] or f"{config['state_dir'].rstrip('/')}/backups"
    return config


@dataclass
class RunResult:
    """What one playbook run did, summed over all hosts."""

    ok: bool
    changed: int
    failed_hosts: list[str]
    facts: dict[str, Any]


BUILD_FINISHED = "finished in"  # how images/build.py's last progress line for an image begins


class BuildProgress:
    """Print the image builds' steps as they start, from the file the builds append to
    (images/build.py --progress-file), and every minute a reminder of the step a long
    build is still on: a cold deploy spends many minutes there."""

    def __init__(self, path: Path, every: float = 2.0, remind_after: float = 60.0) -> None:
        self.path, self.every, self.remind_after = path, every, remind_after
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._read = 0
        self._last_line, self._last_print = "", 0.0

    def __enter__(self) -> "BuildProgress":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()

    def _clock(self) -> str:
        minutes, seconds = divmod(int(time.monotonic() - self.began), 60)
        return f"{minutes}:{seconds:02d}"

    def poll(self) -> list[str]:
        """Print the lines added since the last poll (and a reminder when a step runs long)."""
        if not self.path.exists():
            return []
        with self.path.open() as handle:
            handle.seek(self._read)
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        self._read += len(complete.encode())
        printed = [f"  [{self._clock()}] building {line}" for line in complete.splitlines() if line]
        if printed:
            self._last_line = complete.splitlines()[-1]
        elif (self._last_line and BUILD_FINISHED not in self._last_line
              and time.monotonic() - self._last_print >= self.remind_after):
            printed = [f"  [{self._clock()}] still building {self._last_line}"]
        for line in printed:
            print(line, flush=True)
            self._last_print = time.monotonic()
        return printed

    def _follow(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()


def run_playbook(playbook: str, config: dict[str, Any], inventory: Path | None,
                 extravars: dict[str, Any] | None = None, quiet: bool = False) -> RunResult:
    """Run one playbook of this folder through ansible-runner and sum up its stats."""
    import ansible_runner  # imported here so that `validate` works without Ansible

    # ansible-runner starts `ansible-playbook` from PATH: use the one beside this Python
    # (the deploy's virtual environment), whatever the caller's PATH holds.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    variables = {"classroom": config, "classroom_repo_dir": str(REPO_DIR)}
    variables.update(extravars or {})
    with tempfile.TemporaryDirectory(prefix="classroom-runner-") as private_dir:
        progress_file = Path(private_dir) / "build-progress"
        variables["classroom_progress_file"] = str(progress_file)
        with BuildProgress(progress_file) if not quiet else contextlib.nullcontext():
            runner = ansible_runner.run(
                private_data_dir=private_dir,
                project_dir=str(ANSIBLE_DIR),
                playbook=playbook,
                inventory=str(inventory or LOCAL_INVENTORY),
                extravars=variables,
                quiet=quiet,
                envvars={"ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg")},
            )
        stats = runner.stats or {}
        failed = sorted(set(stats.get("failures", {})) | set(stats.get("dark", {})))
        facts: dict[str, Any] = {}
        for event in runner.events:
            data = event.get("event_data", {})
            if data.get("task") == "Report the deployment" and event.get("event") == "runner_on_ok":
                facts[data.get("host", "")] = data.get("res", {}).get("msg")
        return RunResult(
            ok=runner.rc == 0 and not failed,
            changed=sum(stats.get("changed", {}).values()),
            failed_hosts=failed,
            facts=facts,
        )


def _print_summary(action: str, result: RunResult) -> None:
    for host, report in result.facts.items():
        if isinstance(report, list):
            report = "\n    ".join(report)
        print(f"\n{host}:\n    {report}")
    state = "succeeded" if result.ok else f"FAILED on {', '.join(result.failed_hosts) or 'a host'}"
    print(f"\nclassroom {action} {state}: {result.changed} changed task(s).")


def fill_data(source: str, config_file: Path | None) -> int:
    """Fill this host's data folder (`data_dir`) from `source`, verifying every file's checksum."""
    import datafolder

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not config["data_dir"]:
        print("error: data_dir is empty in the operator file: set it to a host folder (for example "
              "/srv/classroom-data), deploy, then run make data again", file=sys.stderr)
        return 2
    if "://" not in source and not Path(source).is_dir():
        print(f"error: {source} is neither a folder nor a URL: give FROM=/path/to/files or FROM=https://mirror/",
              file=sys.stderr)
        return 2
    report = datafolder.fill(Path(config["data_dir"]), source)
    print("\n".join(report.lines()))
    print(f"data folder {config['data_dir']}: {len(report.installed)} installed, {len(report.present)} already there, "
          f"{len(report.missing)} missing (notebooks use their packaged fallback), {len(report.corrupt)} corrupt.")
    return 1 if report.corrupt else 0


def verify_artifacts(paths: list[Path], config_file: Path | None) -> int:
    """Verify signed artifacts with the public half of this deployment's artifact secret."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    secret_file = Path(config["state_dir"]) / "hub" / "secrets" / "artifact_secret"
    if not secret_file.is_file():
        print(f"error: {secret_file} does not exist: deploy first, or verify elsewhere with "
              "python -m classroom_grading.integrity verify FILE --public-key KEY (the grading page shows it)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "grading"))
    from classroom_grading import integrity

    return integrity.main(["verify", *map(str, paths), "--secret-file", str(secret_file)])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("validate", "deploy", "remove", "backup", "restore"):
        command = sub.add_parser(name)
        command.add_argument("--config", type=Path, help="operator file (YAML); default: the defaults")
        if name != "validate":
            command.add_argument("--inventory", type=Path,
                                 help="Ansible inventory; default: this machine, local connection")
        if name == "remove":
            command.add_argument("--delete-volumes", action="store_true",
                                 help="also delete every student's home volume and the hub's data")
        if name == "restore":
            command.add_argument("--backup", type=Path, required=True,
                                 help="the folder of one backup, on the host (its manifest.json inside)")
    sub.add_parser("hash-password", help="read a password and print its bcrypt hash for the roster")
    data = sub.add_parser("data", help="fill the data folder (data_dir) from a folder or mirror URL, checksums verified")
    data.add_argument("--source", required=True, help="a local folder or a mirror's base URL holding the files")
    data.add_argument("--config", type=Path, help="operator file (YAML); default: the defaults")
    check = sub.add_parser("verify-artifact", help="verify artifacts signed by this deployment's grading service")
    check.add_argument("artifacts", nargs="+", type=Path)
    check.add_argument("--config", type=Path, help="operator file (YAML); default: the defaults")
    args = parser.parse_args(argv)

    if args.command == "verify-artifact":
        return verify_artifacts(args.artifacts, args.config)
    if args.command == "data":
        return fill_data(args.source, args.config)

    if args.command == "hash-password":
        import bcrypt

        password = getpass.getpass("Password: ")
        if len(password) < 8 or password != getpass.getpass("Again: "):
            print("The two entries differ or are shorter than 8 characters; nothing printed.", file=sys.stderr)
            return 2
        print(bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode())
        return 0

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(f"{args.config or DEFAULTS_FILE}: valid ({len(config['roster'])} people on the roster).")
        return 0
    if args.command == "deploy":
        result = run_playbook("deploy.yml", config, args.inventory)
    elif args.command == "backup":
        result = run_playbook("backup.yml", config, args.inventory)
    elif args.command == "restore":
        result = run_playbook("restore.yml", config, args.inventory,
                              {"classroom_backup": str(args.backup.absolute()).rstrip("/")})
    else:
        result = run_playbook("remove.yml", config, args.inventory,
                              {"classroom_delete_volumes": args.delete_volumes})
    _print_summary(args.command, result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
