"""Execute one notebook inside a sandbox container: `classroom-sandbox-run`.

The grading service starts a throwaway container (no network, limits, read-only
root, scratch on /tmp) with this command, ahead of need: the harness starts a
fresh kernel and then waits. The service then writes one line of JSON naming the
notebook and a one-time key, followed by the submission folder as a tar stream, to
its standard input. The harness unpacks it on the scratch folder, executes the
notebook with that kernel, and prints the executed notebook as JSON on its standard
output behind a line that authenticates it (`seal`). It caps each cell's time and
output; when the kernel dies or a cell times out, the cells after it stay
unexecuted.

The result channel is the harness's alone. Other processes of the same user (the
kernel, and tini as PID 1) can write to the container's standard output through
/proc, but not forge the seal: the key arrives after the kernel started, is read
before any student code runs, and stays in this non-dumpable process. Nothing the
harness prints is trusted beyond that: the grading service takes only the cells'
outputs and decides every verdict itself (see `records`).
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import hmac
import io
import json
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_header(stream: io.BufferedReader) -> dict[str, str]:
    """The line before the tar: {"notebook": path inside the submission, "key": one-time hex key,
    and optionally "identity": the submitting student's identity as JSON text}."""
    line = stream.readline(4096)
    if not line:
        raise SystemExit(0)  # the service let this spare sandbox go unused
    header = json.loads(line)
    if not isinstance(header, dict) or not all(isinstance(header.get(k), str) for k in ("notebook", "key")):
        raise SystemExit("sandbox: the first line must be {\"notebook\": \"<path>\", \"key\": \"<hex>\"}")
    if not isinstance(header.get("identity", ""), str):
        raise SystemExit("sandbox: \"identity\" must be the identity's JSON text")
    return header


def write_identity(identity: str) -> None:
    """Give the notebook the submitting student's identity (`nncourse.personal` reads it from
    ~/.nncourse/identity.json, before the hub's variable): a personalised lab computes that
    student's configuration, whatever the submission says."""
    folder = Path(os.path.expanduser("~")) / ".nncourse"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "identity.json").write_text(identity)


def seal(body: bytes, key: str) -> bytes:
    """The result as sent: a JSON line with the body's length and HMAC-SHA256 under key, then the body."""
    mac = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    return json.dumps({"length": len(body), "mac": mac}).encode() + b"\n" + body


def unseal(data: bytes, key: str) -> bytes | None:
    """The body of a sealed result, or None when anything about it is not the harness's."""
    line, newline, rest = data.partition(b"\n")
    try:
        head = json.loads(line) if newline else None
    except ValueError:
        return None
    if not isinstance(head, dict) or not isinstance(head.get("length"), int) or not isinstance(head.get("mac"), str):
        return None
    body = rest[:head["length"]]
    if len(body) != head["length"]:
        return None
    expected = hmac.new(bytes.fromhex(key), body, hashlib.sha256).hexdigest()
    return body if hmac.compare_digest(expected, head["mac"]) else None


def read_submission(stream: io.BufferedReader, dest: Path, size: int | None = None) -> None:
    """Unpack a tar stream of plain files and folders into dest (`size` bytes of it, or up to
    the end of input); refuse anything else."""
    if size is not None and not (isinstance(size, int) and 0 <= size <= MAX_INPUT_BYTES):
        raise SystemExit(f"sandbox: the submission's size must be 0 to {MAX_INPUT_BYTES} bytes")
    data = stream.read(MAX_INPUT_BYTES + 1 if size is None else size)
    if len(data) > MAX_INPUT_BYTES:
        raise SystemExit(f"sandbox: the submission is larger than {MAX_INPUT_BYTES} bytes")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts:
                raise SystemExit(f"sandbox: refusing the path {member.name!r}")
            target = dest.joinpath(*path.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
            # links, devices and fifos are skipped


def start_kernel(workdir: Path):
    """A fresh kernel in workdir, started before the submission arrives.

    An asynchronous manager, as nbclient expects: with a synchronous one, a blocking
    wait for a message stalls nbclient's event loop, so a kernel that dies or a cell
    that never ends holds the sandbox until the notebook's whole time limit instead of
    ending at once or at the cell's limit."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    km = AsyncKernelManager(kernel_name="python3")
    run_sync(km.start_kernel)(cwd=str(workdir))
    return km


def make_client(nb, workdir: Path, cell_timeout: int, max_output: int, km=None):
    from nbclient import NotebookClient
    from nbformat import NotebookNode

    class CappedClient(NotebookClient):
        """A client that stops recording a cell's output past `max_output` bytes."""

        def output(self, outs, msg, display_id, cell_index):  # noqa: D102
            spent = self.__dict__.setdefault("_classroom_spent", {})
            size = len(json.dumps(msg.get("content", {}), default=str))
            total = spent.get(cell_index, 0) + size
            spent[cell_index] = total
            if total > max_output:
                if total - size <= max_output:
                    outs.append(NotebookNode(output_type="stream", name="stderr", text=(
                        f"[sandbox: output beyond {max_output} bytes was dropped]\n")))
                return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient(
        nb, km=km, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=False, record_timing=False,
        resources={"metadata": {"path": str(workdir)}})


def no_dumps() -> None:
    """Make this process non-dumpable: the kernel (same user) cannot ptrace it or open its fds."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds a cell may run")
    parser.add_argument("--max-cell-output", type=int, default=1_000_000, help="bytes of output kept per cell")
    parser.add_argument("--workdir", default="/tmp/submission")
    args = parser.parse_args(argv)

    # The result goes out on a private copy of stdout; the kernel inherits /dev/null.
    result = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    no_dumps()

    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    km = start_kernel(workdir)
    header = read_header(sys.stdin.buffer)
    read_submission(sys.stdin.buffer, workdir, header.get("size"))
    if header.get("identity"):
        write_identity(header["identity"])
    name = PurePosixPath(header["notebook"])
    notebook = workdir / name
    if name.is_absolute() or ".." in name.parts or not notebook.is_file():
        raise SystemExit(f"sandbox: the submission has no notebook {header['notebook']!r}")
    if notebook.parent != workdir:  # the kernel was started in the submission's top folder
        from jupyter_core.utils import run_sync

        run_sync(km.shutdown_kernel)(now=True)
        km = None

    nb = nbformat.read(notebook, as_version=4)
    client = make_client(nb, notebook.parent, args.cell_timeout, args.max_cell_output, km)
    status = "completed"
    try:
        client.execute()
    except CellTimeoutError:
        status = "cell-timeout"
    except DeadKernelError:
        status = "kernel-died"
    except Exception as error:  # noqa: BLE001 - any failure leaves the rest unexecuted
        status = f"error: {type(error).__name__}"
    nb.metadata["classroom_sandbox"] = {"status": status}
    result.write(seal(json.dumps(nb).encode(), header["key"]))
    result.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
