"""Run one notebook in a throwaway sandbox container and return what it printed.

Each run gets a fresh container from the CPU image with no network, memory, CPU
and process limits, a read-only root filesystem with a small scratch folder on
/tmp, no capabilities, no way to gain privileges, and no logs on the host. No
host path is mounted at all: the submission goes in as a tar stream on the
container's standard input, and the executed notebook comes back on its standard
output, read up to a cap. A run that exceeds its time is killed; the container is
removed whatever happens.

Containers are started ahead of need: each worker keeps one started sandbox whose
kernel is up and waiting (`Spares`), so a notebook does not wait for a container
and a kernel to start. A spare is still used once, for one notebook, and one left
idle for 30 s is removed.
"""
from __future__ import annotations

import io
import json
import logging
import os
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.types import LogConfig

from .harness import unseal

log = logging.getLogger("classroom_grading.sandbox")


@dataclass(frozen=True)
class Limits:
    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 256
    seconds: int = 300          # the whole notebook
    cell_seconds: int = 120     # one cell
    scratch: str = "256m"       # the tmpfs on /tmp
    max_cell_output: int = 1_000_000
    max_result_bytes: int = 32 * 1024 * 1024


@dataclass
class Result:
    status: str                      # completed, cell-timeout, kernel-died, timeout, out-of-memory, too-much-output, failed
    notebook: dict[str, Any] | None  # the executed notebook as the sandbox printed it (untrusted)
    seconds: float = 0.0
    detail: str = ""
    exit_code: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


def pack(folder: Path, notebook_name: str, notebook: dict[str, Any], max_bytes: int = 64 * 1024 * 1024) -> bytes:
    """A tar of the submission folder's plain files, with `notebook` in place of `notebook_name`."""
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if relative == notebook_name or path.is_symlink() or not path.is_file():
                continue
            total += path.stat().st_size
            if total > max_bytes:
                raise ValueError(f"the submission folder {folder} is larger than {max_bytes} bytes")
            archive.add(path, arcname=relative, recursive=False)
        data = json.dumps(notebook).encode()
        info = tarfile.TarInfo(notebook_name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_frames(sock: socket.socket, deadline: float, cap: int) -> tuple[bytes, str]:
    """Read Docker's multiplexed attach stream; keep stdout. Returns (stdout, why it ended)."""
    stdout = bytearray()
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(stdout), "timeout"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(stdout), "timeout"
        except ssl.SSLEOFError:    # a TLS stream cut without its closing message
            chunk = b""
        if not chunk:
            return bytes(stdout), "eof"
        buffer += chunk
        while len(buffer) >= 8:
            stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
            if len(buffer) < 8 + size:
                break
            payload, buffer = buffer[8:8 + size], buffer[8 + size:]
            if stream == 1:
                stdout += payload
                if len(stdout) > cap:
                    return bytes(stdout), "too-much-output"


def grading_environment(limits: Limits) -> dict[str, str]:
    """What every graded notebook runs with: nbgrader's autograde flag, and the course's
    fast mode (small data, few epochs), so that the solution's reference run and every
    submission run the same sizes, well inside the grading limits."""
    threads = str(max(1, int(limits.cpus)))
    # as students' servers get (hub/classroom_hub/spawner.py, thread_environment)
    return {"NBGRADER_EXECUTION": "autograde", "NNCOURSE_FAST_MODE": "1",
            **{name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "TF_NUM_INTRAOP_THREADS")}}


def request(notebook_name: str, payload: bytes, identity: str = "") -> tuple[bytes, str]:
    """What the harness reads on its standard input, and the one-time key its result is sealed with.
    `identity` is the submitting student's (`identity.identity_json`), for personalised labs."""
    key = secrets.token_hex(32)
    # The size lets the harness stop reading without an end of input: a swarm node's engine
    # is reached over TLS, where the sender cannot close just its own half of the stream.
    header = {"notebook": notebook_name, "key": key, "size": len(payload), **({"identity": identity} if identity else {})}
    return json.dumps(header).encode() + b"\n" + payload, key


def result(stdout: bytes, key: str, seconds: float, exit_code: int | None, oom: bool) -> Result:
    """Decide what a finished run gave: only a result sealed with this run's key counts."""
    body = unseal(stdout, key)
    try:
        notebook = json.loads(body) if body is not None else None
        if not isinstance(notebook, dict):
            raise ValueError("not a notebook")
    except ValueError:
        status = "out-of-memory" if oom else "failed"
        why = "no notebook came back" if body is None and not stdout else (
            "the result was not the harness's own" if body is None else "the result is not a notebook")
        return Result(status, None, seconds, f"{why} (exit code {exit_code})", exit_code)
    status = str(notebook.get("metadata", {}).get("classroom_sandbox", {}).get("status", "failed"))
    if oom:
        status = "out-of-memory"
    return Result(status, notebook, seconds, "", exit_code)


@dataclass(frozen=True)
class Engine:
    """A Docker engine that runs sandboxes: this host's (url empty: the environment's, the
    mounted socket), or a swarm node's, reached over TLS with the grading service's client
    certificate (tls: a folder with ca.pem, cert.pem and key.pem)."""

    url: str = ""
    tls: str = ""

    def client(self) -> docker.DockerClient:
        if not self.url:
            return docker.from_env()
        folder = Path(self.tls)
        tls = docker.tls.TLSConfig(client_cert=(str(folder / "cert.pem"), str(folder / "key.pem")),
                                   ca_cert=str(folder / "ca.pem"), verify=True)
        return docker.DockerClient(base_url=self.url, tls=tls)


ENGINE = Engine()   # this process's engine (a grading worker is given one: use_engine)
_clients: dict[Engine, docker.DockerClient] = {}


def use_engine(engine: Engine) -> None:
    """Run this process's sandboxes on `engine`."""
    global ENGINE
    ENGINE = engine


def engine_client(engine: Engine | None = None) -> docker.DockerClient:
    """A client of `engine` (default: this process's), made once."""
    engine = engine or ENGINE
    if engine not in _clients:
        _clients[engine] = engine.client()
    return _clients[engine]


@dataclass
class Sandbox:
    """A started sandbox container, its kernel warming up, waiting for a submission."""

    container: Any
    sock: socket.socket


def start(image: str, limits: Limits, labels: dict[str, str] | None = None,
          client: docker.DockerClient | None = None) -> Sandbox:
    """Create and start a fresh sandbox container, attached to its standard input and output."""
    client = client or engine_client()
    container = client.containers.create(
        image,
        command=["classroom-sandbox-run",
                 "--cell-timeout", str(limits.cell_seconds),
                 "--max-cell-output", str(limits.max_cell_output)],
        name=f"classroom-sandbox-{uuid.uuid4().hex[:12]}",
        stdin_open=True, tty=False,  # docker-py sets StdinOnce with stdin_open
        network_mode="none",
        mem_limit=limits.memory, memswap_limit=limits.memory,
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        read_only=True,
        tmpfs={"/tmp": f"size={limits.scratch},mode=1777,exec"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        user="1000:1000",
        working_dir="/tmp",
        environment={"HOME": "/tmp", "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
                     "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter-runtime", **grading_environment(limits)},
        labels={"org.classroom.role": "sandbox", **(labels or {})},
        log_config=LogConfig(type="none"),
    )
    try:
        sock = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        container.start()
    except Exception:
        container.remove(force=True)
        raise
    return Sandbox(container, getattr(sock, "_sock", sock))


def discard(box: Sandbox) -> None:
    """Remove a sandbox container whatever state it is in."""
    try:
        box.sock.close()
        box.container.remove(force=True)
    except docker.errors.NotFound:
        pass


class Spares:
    """One started sandbox kept ready per kind, so the next notebook does not wait for a
    container and a kernel to start. Each is used once; one left idle is removed."""

    def __init__(self, idle_seconds: float = 30.0) -> None:
        self.idle_seconds = idle_seconds
        self.lock = threading.Lock()
        self.ready: dict[tuple, tuple[Sandbox, threading.Timer]] = {}

    def take(self, key: tuple) -> Sandbox | None:
        with self.lock:
            entry = self.ready.pop(key, None)
        if entry is None:
            return None
        box, timer = entry
        timer.cancel()
        box.container.reload()
        if box.container.status != "running":  # it died waiting (or was removed)
            discard(box)
            return None
        return box

    def put(self, key: tuple, box: Sandbox) -> None:
        timer = threading.Timer(self.idle_seconds, self._expire, (key, box))
        timer.daemon = True
        with self.lock:
            old = self.ready.pop(key, None)
            self.ready[key] = (box, timer)
        timer.start()
        if old is not None:
            old[1].cancel()
            discard(old[0])

    def _expire(self, key: tuple, box: Sandbox) -> None:
        with self.lock:
            if self.ready.get(key, (None,))[0] is not box:
                return
            del self.ready[key]
        discard(box)


SPARES = Spares()


def _refill(key: tuple, image: str, limits: Limits, labels: dict[str, str] | None) -> None:
    try:
        SPARES.put(key, start(image, limits, labels))
    except docker.errors.DockerException as error:
        log.warning("could not start a spare sandbox (the next run starts its own): %s", error)


def remove_all(deployment: str, client: docker.DockerClient | None = None, exited_only: bool = False) -> int:
    """Remove the deployment's sandbox containers: at service start every one (none can be
    in use), after a worker died the exited ones it left. Returns how many."""
    client = client or engine_client()
    filters: dict[str, Any] = {"label": ["org.classroom.role=sandbox", f"org.classroom.deployment={deployment}"]}
    if exited_only:
        filters["status"] = "exited"
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    return removed


def run(image: str, payload: bytes, notebook_name: str, limits: Limits,
        labels: dict[str, str] | None = None, client: docker.DockerClient | None = None,
        spare: bool = True, identity: str = "") -> Result:
    """Execute `notebook_name` from the tar `payload` in a fresh sandbox container.

    With `spare`, a sandbox started earlier for the same image, limits and labels is
    used when there is one, and the next one is started as soon as this one is done.
    """
    client = client or engine_client()
    spare_key = (image, limits, tuple(sorted((labels or {}).items())))
    box = (SPARES.take(spare_key) if spare else None) or start(image, limits, labels, client)
    started = time.monotonic()
    data, key = request(notebook_name, payload, identity)
    try:
        raw = box.sock
        raw.sendall(data)
        if not isinstance(raw, ssl.SSLSocket):
            raw.shutdown(socket.SHUT_WR)
        stdout, ended = _read_frames(raw, started + limits.seconds, limits.max_result_bytes)
        if ended != "eof":
            box.container.kill()
        state = client.api.wait(box.container.id, timeout=30)
        exit_code = state.get("StatusCode")
        oom = client.api.inspect_container(box.container.id)["State"].get("OOMKilled", False)
    finally:
        discard(box)
        seconds = time.monotonic() - started
        if spare:
            threading.Thread(target=_refill, args=(spare_key, image, limits, labels), daemon=True).start()
    if ended == "timeout":
        return Result("timeout", None, seconds, f"stopped after {limits.seconds} s", exit_code)
    if ended == "too-much-output":
        return Result("too-much-output", None, seconds, f"printed more than {limits.max_result_bytes} bytes", exit_code)
    return result(stdout, key, seconds, exit_code, oom)


def run_local(payload: bytes, notebook_name: str, limits: Limits, identity: str = "") -> Result:
    """Execute a notebook with the same harness as a plain subprocess, in a temporary folder.

    For course authors without Docker (`course/prove.py --executor local`): there is no
    isolation at all and no memory or process limit, so never use it on submissions.
    """
    data, key = request(notebook_name, payload, identity)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-local-") as folder:
        env = {**os.environ, "HOME": folder, "IPYTHONDIR": f"{folder}/.ipython", **grading_environment(limits)}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "classroom_grading.harness", "--workdir", f"{folder}/submission",
                 "--cell-timeout", str(limits.cell_seconds), "--max-cell-output", str(limits.max_cell_output)],
                input=data, capture_output=True, timeout=limits.seconds, env=env, cwd=folder)
        except subprocess.TimeoutExpired:
            return Result("timeout", None, time.monotonic() - started, f"stopped after {limits.seconds} s")
    return result(done.stdout, key, time.monotonic() - started, done.returncode, False)
