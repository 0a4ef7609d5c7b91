"""A real classroom for the integration tests, the images it runs, and the people who use it.

`deployment` deploys the test instance (tests/integration/classroom-test.yml) through
the same driver and playbooks as `make deploy`, once per test session, and removes
it with its volumes at the end (KEEP_DEPLOYMENT=1 keeps it for debugging). `Person`
logs in through the login form, as a browser does, and drives the Jupyter Server
API of their own server.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
import yaml

REPO = Path(__file__).resolve().parents[2]


def _resolve_localhost_subdomains() -> None:
    """Resolve every *.localhost name to the loopback in this process, as browsers do
    (RFC 6761): people reach their own servers at <user>.localhost. glibc resolves
    only `localhost` itself, so the tests' HTTP clients get this one rule."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    if not getattr(resolve, "classroom_localhost", False):
        getaddrinfo.classroom_localhost = True
        socket.getaddrinfo = getaddrinfo


_resolve_localhost_subdomains()
TEST_CONFIG = REPO / "tests/integration/classroom-test.yml"
ARTIFACTS = REPO / "build/test-artifacts"


def driver(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run the deploy driver (ansible/classroom.py) as `make deploy` does."""
    return subprocess.run([sys.executable, str(REPO / "ansible/classroom.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def docker(*args: str) -> str:
    """Run a docker command and return its standard output."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class Deployment:
    """A deployed classroom: where it is and what it was deployed with."""

    config_file: Path
    config: dict[str, Any]
    deploy_output: str
    deploy_seconds: float
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def url(self) -> str:
        """The hub's origin: the name people type (`hub.domain`), not an address."""
        scheme = "https" if self.config.get("tls", {}).get("enabled") else "http"
        return f"{scheme}://{self.config['hub'].get('domain', 'localhost')}:{self.config['hub']['port']}"

    def origin(self, label: str) -> str:
        """The origin of a person's server (label: their name) or a service ("NAME--service")."""
        return self.url.replace("://", f"://{label}.", 1)

    def user_url(self, user: str) -> str:
        """Where a person's server is, on their own origin."""
        return f"{self.origin(user)}/user/{user}"

    def service_url(self, service: str) -> str:
        """Where a service is, on its own origin."""
        return f"{self.origin(service + '--service')}/services/{service}"

    @property
    def state_dir(self) -> Path:
        return Path(self.config["state_dir"]) / "hub"

    def settings(self) -> dict[str, Any]:
        """The hub settings the deploy rendered (images in use, limits, GPUs)."""
        return json.loads((self.state_dir / "hub.json").read_text())

    def service_token(self) -> str:
        """The prestart service's token: start and stop any server, read users."""
        return (self.state_dir / "secrets/prestart_token").read_text().strip()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub's REST API with the service token."""
        headers = {"Authorization": f"token {self.service_token()}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs)

    def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the hub reports it, or None."""
        return self.api("GET", f"/users/{user}").json().get("servers", {}).get("")

    def stop_server(self, user: str, timeout: float = 120) -> None:
        """Stop a user's server and wait until the hub says it is gone."""
        self.api("DELETE", f"/users/{user}/server")
        wait_for(lambda: self.server(user) is None, timeout, f"{user}'s server to stop")

    def container(self, user: str) -> str:
        """The name of the user's server container."""
        return f"{self.name}-user-{user}"

    def limits(self, user: str) -> dict[str, float]:
        """Memory (bytes), CPUs, /dev/shm (bytes) and process limit of the user's server."""
        fields = docker("inspect", "--format",
                        "{{.HostConfig.Memory}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} "
                        "{{.HostConfig.NanoCpus}} {{.HostConfig.ShmSize}} {{.HostConfig.PidsLimit}}",
                        self.container(user)).split()
        memory, quota, period, nano, shm, pids = (int(f) for f in fields)
        cpus = quota / period if quota > 0 else nano / 1e9
        return {"memory": memory, "cpus": cpus, "shm": shm, "pids": pids}

    def logs(self) -> str:
        """The hub's and the proxy's recent logs, to explain a failure."""
        parts = []
        for role in ("hub", "proxy"):
            result = subprocess.run(["docker", "logs", "--tail", "80", f"{self.name}-{role}"],
                                    capture_output=True, text=True)
            parts.append(f"--- {self.name}-{role} ---\n{result.stdout}{result.stderr}")
        return "\n".join(parts)


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def read_passwords(state_dir: Path) -> dict[str, str]:
    """The generated passwords the deploy wrote for the operator."""
    lines = (state_dir / "initial-passwords").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if line and not line.startswith("#"))


def deploy(config_file: Path) -> Deployment:
    """Deploy the classroom described by `config_file`; fail with the deploy's output."""
    began = time.monotonic()
    result = driver("deploy", "--config", str(config_file))
    seconds = time.monotonic() - began
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"make deploy failed (exit {result.returncode}):\n{output[-6000:]}")
    config = yaml.safe_load(config_file.read_text())
    deployment = Deployment(config_file, config, output, seconds)
    deployment.passwords = read_passwords(deployment.state_dir)
    return deployment


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    """The test instance of the classroom, deployed once for the whole session."""
    deployed = deploy(TEST_CONFIG)
    yield deployed
    if os.environ.get("KEEP_DEPLOYMENT") != "1":
        result = driver("remove", "--config", str(TEST_CONFIG), "--delete-volumes")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def explain(deployment: Deployment, request):
    """On failure, print the hub's and proxy's logs after the test's own output."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(deployment.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, for `explain`."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def run_in_image(image: str, *command: str, mounts: dict[Path, str] | None = None,
                 options: tuple[str, ...] = (), timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `command` in a throwaway container of `image`, with read-only mounts."""
    args = ["docker", "run", "--rm", "--network", "none", "--shm-size", "512m", *options]
    for source, target in (mounts or {}).items():
        args += ["-v", f"{source}:{target}:ro"]
    return subprocess.run([*args, image, *command], capture_output=True, text=True, timeout=timeout)


def execute_notebook(image: str, notebook: Path, options: tuple[str, ...] = ()) -> str:
    """Execute a notebook inside `image`; fail with the cell's error when any cell fails."""
    result = run_in_image(
        image, "jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout",
        "--ExecutePreprocessor.timeout=600", f"/tests/{notebook.name}",
        mounts={notebook.parent: "/tests"}, options=options)
    if result.returncode != 0:
        pytest.fail(f"{notebook.name} failed in {image}:\n{result.stderr[-5000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def images(deployment):
    """The images the test deployment built and runs: {"hub": ..., "cpu": ..., "cuda": ...}."""
    settings = deployment.settings()
    hub = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return {"hub": hub, **settings["images"]}


class Person:
    """Someone using the classroom the way a browser does: login form, then their server."""

    def __init__(self, deployment: Deployment, name: str, password: str | None = None) -> None:
        self.deployment = deployment
        self.name = name
        self.password = password if password is not None else deployment.passwords.get(name, "")
        self.session = requests.Session()
        self.token: str | None = None

    def login(self) -> requests.Response:
        """Submit the hub's login form; returns the final response after redirects."""
        url = self.deployment.url
        page = self.session.get(f"{url}/hub/login", timeout=60)
        match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {"username": self.name, "password": self.password}
        if match:
            data["_xsrf"] = match.group(1)
        return self.session.post(f"{url}/hub/login?next=", data=data, timeout=300)

    @property
    def logged_in(self) -> bool:
        return "jupyterhub-session-id" in self.session.cookies or any(
            c.name.startswith("jupyterhub-hub-login") for c in self.session.cookies)

    def xsrf_headers(self) -> dict[str, str]:
        """Headers that let a cookie-authenticated request through JupyterHub's XSRF check."""
        host = self.deployment.config["hub"].get("domain", "localhost")
        tokens = [c.value for c in self.session.cookies
                  if c.name == "_xsrf" and c.path == "/hub/" and c.domain.lstrip(".") in (host, host + ".local")]
        return {"X-XSRFToken": tokens[-1] if tokens else "", "Referer": f"{self.deployment.url}/hub/"}

    def create_token(self) -> str:
        """Make an API token of their own through the hub, with their login session."""
        response = self.session.post(f"{self.deployment.url}/hub/api/users/{self.name}/tokens",
                                     json={"note": "integration test", "expires_in": 3600},
                                     headers=self.xsrf_headers(), timeout=60)
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def start_session(self) -> "Person":
        """Log in through the form, take an API token and wait for the server: a working session."""
        self.login()
        assert self.logged_in, f"{self.name} could not log in with their password"
        self.create_token()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 300) -> None:
        """Wait until their server is ready."""
        wait_for(lambda: (self.deployment.server(self.name) or {}).get("ready"), timeout,
                 f"{self.name}'s server to be ready")

    def server_api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """Call the Jupyter Server API of this person's server through the proxy."""
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(method, f"{self.deployment.user_url(self.name)}/api{path}",
                                headers=headers, timeout=120, **kwargs)

    def run(self, code: str, timeout: float = 300) -> str:
        """Run `code` in a new kernel on their server; return its output, fail on an error."""
        kernel = self.server_api("POST", "/kernels", json={"name": "python3"})
        kernel.raise_for_status()
        kernel_id = kernel.json()["id"]
        ws_url = self.deployment.user_url(self.name).replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        try:
            return execute(ws_url, self.token, code, timeout)
        finally:
            self.server_api("DELETE", f"/kernels/{kernel_id}")


def execute(ws_url: str, token: str, code: str, timeout: float) -> str:
    """Send an execute_request over a kernel's websocket; collect its output until idle."""
    conn = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    msg_id = uuid.uuid4().hex
    conn.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    output: list[str] = []
    error: str | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = json.loads(conn.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                output.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        else:
            raise AssertionError(f"code did not finish within {timeout} s:\n{code}")
    finally:
        conn.close()
    if error:
        raise AssertionError(f"code failed in the kernel:\n{code}\n{error}")
    return "".join(output)
