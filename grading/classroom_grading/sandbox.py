"""Run one notebook in a throwaway sandbox container and return what it printed.

Each run gets a fresh container from the CPU image with no network, memory, CPU
and process limits, a read-only root filesystem with a small scratch folder on
/tmp, no capabilities, no way to gain privileges, and no logs on the host. No
host path is mounted at all: the submission goes in as a tar stream on the
container's standard input, and the executed notebook comes back on its standard
output, read up to a cap. A run that exceeds its time is killed; the container is
removed whatever happens.
"""
from __future__ import annotations

import io
import json
import socket
import struct
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.types import LogConfig


@dataclass
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


def run(image: str, payload: bytes, notebook_name: str, limits: Limits,
        labels: dict[str, str] | None = None, client: docker.DockerClient | None = None) -> Result:
    """Execute `notebook_name` from the tar `payload` in a fresh sandbox container."""
    client = client or docker.from_env()
    name = f"classroom-sandbox-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    container = client.containers.create(
        image,
        command=["classroom-sandbox-run", "--notebook", notebook_name,
                 "--cell-timeout", str(limits.cell_seconds),
                 "--max-cell-output", str(limits.max_cell_output)],
        name=name,
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
                     "JUPYTER_RUNTIME_DIR": "/tmp/.jupyter-runtime", "NBGRADER_EXECUTION": "autograde",
                     "OMP_NUM_THREADS": str(max(1, int(limits.cpus))),
                     "MKL_NUM_THREADS": str(max(1, int(limits.cpus)))},
        labels={"org.classroom.role": "sandbox", **(labels or {})},
        log_config=LogConfig(type="none"),
    )
    try:
        sock = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stream": 1})
        raw: socket.socket = getattr(sock, "_sock", sock)
        container.start()
        raw.sendall(payload)
        raw.shutdown(socket.SHUT_WR)
        stdout, ended = _read_frames(raw, started + limits.seconds, limits.max_result_bytes)
        raw.close()
        if ended != "eof":
            container.kill()
        state = client.api.wait(container.id, timeout=30)
        exit_code = state.get("StatusCode")
        oom = client.api.inspect_container(container.id)["State"].get("OOMKilled", False)
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    seconds = time.monotonic() - started
    if ended == "timeout":
        return Result("timeout", None, seconds, f"stopped after {limits.seconds} s", exit_code)
    if ended == "too-much-output":
        return Result("too-much-output", None, seconds, f"printed more than {limits.max_result_bytes} bytes", exit_code)
    try:
        notebook = json.loads(stdout)
        if not isinstance(notebook, dict):
            raise ValueError("not a notebook")
    except ValueError:
        status = "out-of-memory" if oom else "failed"
        return Result(status, None, seconds, f"no notebook came back (exit code {exit_code})", exit_code)
    status = str(notebook.get("metadata", {}).get("classroom_sandbox", {}).get("status", "failed"))
    if oom:
        status = "out-of-memory"
    return Result(status, notebook, seconds, "", exit_code)
