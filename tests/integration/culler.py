"""The idle culler's check, shared by the single host's test and the swarm's: a kernel busy
for longer than the idle timeout, printing nothing, keeps its server; a server whose kernel
sits idle is stopped. The real culler, with a 30 s timeout, runs in the hub's container
against the hub (servers report activity every 10 s: `culler.activity_seconds`)."""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Callable

import websocket

from tests.integration.fixtures import Person, wait_for

ONLY = '''
def only_these(*, inactive, inactive_limit, server, **kwargs):
    """Cull as usual, but only the test's two people (other tests' servers stay up)."""
    mine = server["url"].rstrip("/").endswith({suffixes!r})
    return mine and inactive.total_seconds() >= inactive_limit

c.IdleCuller.cull_arbiter_hook = only_these
'''


def spares_the_busy_and_stops_the_idle(deployment, busy: str, idle: str, hub_exec: Callable[..., list[str]]) -> None:
    """`hub_exec(*args, env=...)`: the command line that runs `args` in the hub's container."""
    trainer = Person(deployment, busy).start_session()
    sleeper = Person(deployment, idle).start_session()
    sleeper.server_api("POST", "/kernels", json={"name": "python3"}).raise_for_status()
    kernel = trainer.server_api("POST", "/kernels", json={"name": "python3"}).json()["id"]
    ws_url = deployment.user_url(busy).replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    connection = websocket.create_connection(ws_url, header=[f"Authorization: token {trainer.token}"])
    connection.send(json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "username": busy, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "import time\nfor epoch in range(240):\n    time.sleep(0.5)",
                    "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    connection.close()  # the trainer closes the laptop; the loop goes on, silent
    wait_for(lambda: trainer.server_api("GET", f"/kernels/{kernel}").json()["execution_state"] == "busy",
             30, f"{busy}'s kernel to be busy")
    time.sleep(45)  # both servers' last request is now older than the culler's 30 s
    hook = ONLY.format(suffixes=(f"/user/{busy}", f"/user/{idle}"))
    subprocess.run(hub_exec("sh", "-c", "cat > /tmp/culler_test_config.py"), input=hook, text=True, check=True)
    culled = subprocess.run(
        hub_exec("timeout", "20", "python", "-m", "jupyterhub_idle_culler", "--timeout=30", "--cull-every=5",
                 "--url=http://127.0.0.1:8081/hub/api", "--config=/tmp/culler_test_config.py",
                 env={"JUPYTERHUB_API_TOKEN": deployment.service_token()}),
        capture_output=True, text=True)
    log = culled.stdout + culled.stderr
    wait_for(lambda: deployment.server(idle) is None, 60, f"the culler to stop {idle}'s idle server:\n{log}")
    assert f"Culling server {busy}" not in log, log
    assert (deployment.server(busy) or {}).get("ready"), log
    assert trainer.server_api("GET", f"/kernels/{kernel}").json()["execution_state"] == "busy"
    trainer.server_api("DELETE", f"/kernels/{kernel}")
    deployment.stop_server(busy)
