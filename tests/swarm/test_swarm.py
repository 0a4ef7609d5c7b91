"""One classroom across several machines, on Docker Swarm: three test nodes on this machine
(tests/swarm/nodes.py), deployed through the playbooks over SSH from an inventory.

What is proved so far: the inventory's groups form the swarm (one manager, two workers,
one of them a GPU node) with each node labelled, and the deploy advertises the GPU node's
device to the swarm; the registry runs on the manager over TLS with a password; every node
holds the classroom's images, pulled by digest; the GPU profile's placement (one whole GPU,
as a generic resource) lands on the GPU node, and a second GPU task waits rather than share
it; students' servers run on a worker with the single host's limits, and their homes stay on
their node when it is drained; `make prestart` starts servers on their home nodes; the idle
culler keeps a busy server on a worker and stops an idle one; a backup
is taken in parts, each node's on that node, and restored there; grading
runs on the workers' engines, which only the grading service reaches; the hub's services run
on the first manager, and a killed hub is restarted and found again by servers on other
nodes; a rerun changes nothing; a remove leaves the nodes empty and in the swarm.

The nodes, the deploy and the way people reach the classroom: tests/swarm/classroom.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from tests.integration.fixtures import ARTIFACTS, REPO, Person, driver, wait_for
from tests.integration import assignment as lab
from tests.integration import culler
from tests.integration.test_assignments import release, student_action, wait_graded
from tests.swarm import classroom as swarm_classroom

CONFIG = REPO / "tests/swarm/classroom-swarm.yml"
# The kind of generic resource GPU nodes advertise (one definition, the deploy's).
GPU_KIND = yaml.safe_load((REPO / "ansible/group_vars/all.yml").read_text())["swarm_gpu_kind"]


@pytest.fixture(scope="module")
def swarm(tmp_path_factory, images):
    """Three nodes (the third with one GPU), the classroom deployed across them; removed after."""
    with swarm_classroom.swarm(CONFIG, images, tmp_path_factory.mktemp("swarm")) as deployed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "swarm-deploy.txt").write_text(deployed.deploy_output)
        cost = (f"swarm test: 3 nodes up, first manager seeded in {deployed.seed_seconds:.0f} s, "
                f"first deploy {deployed.deploy_seconds:.0f} s")
        (ARTIFACTS / "swarm-cost.txt").write_text(cost + "\n")
        print(cost)
        yield {"nodes": deployed.nodes, "inventory": deployed.inventory, "deployed": deployed}


def manager(swarm, *args: str) -> str:
    return swarm["nodes"][0].docker(*args).stdout.strip()


@pytest.fixture(scope="module")
def classroom(swarm):
    """The swarm's classroom as people reach it (through this machine's loopback)."""
    with swarm_classroom.reached(CONFIG, swarm["deployed"]) as deployment:
        yield deployment


def server_task(swarm, user: str) -> dict:
    """The running task of a person's server: its node, and its container's id."""
    task = json.loads(manager(swarm, "service", "ps", f"classroom-swarm-user-{user}", "--filter",
                              "desired-state=running", "--format", "{{json .}}").splitlines()[0])
    task["Container"] = manager(swarm, "inspect", task["ID"], "--format", "{{.Status.ContainerStatus.ContainerID}}")
    return task


def to_bytes(size: str) -> int:
    """512M, 2G: the operator file's sizes."""
    return int(float(size[:-1]) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[size[-1].upper()])


def node_named(swarm, name: str):
    return next(node for node in swarm["nodes"] if node.name == name)


def test_the_inventory_forms_one_swarm_with_labelled_nodes(swarm):
    """Does the inventory make one swarm of three nodes (one manager), each labelled with its
    inventory name and whether it is a GPU node, and does each advertise what it has?"""
    listed = [json.loads(line) for line in manager(swarm, "node", "ls", "--format", "{{json .}}").splitlines()]
    assert len(listed) == 3 and all(n["Status"] == "Ready" for n in listed), listed
    assert sum(1 for n in listed if n["ManagerStatus"]) == 1, listed
    labels = {}
    for node in swarm["nodes"]:
        node_id = node.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        spec = json.loads(manager(swarm, "node", "inspect", node_id, "--format", "{{json .Spec.Labels}}"))
        labels[node.name] = spec
    assert labels == {n.name: {"org.classroom.host": n.name, "org.classroom.gpu": "true" if n.gpus else "false"}
                      for n in swarm["nodes"]}, labels


def test_every_node_holds_the_images_pulled_by_digest_from_the_registry(swarm):
    """Does every node hold the hub and CPU images under the registry's digest, and does the
    registry refuse a client without the deployment's password?"""
    address = f"{swarm['nodes'][0].address}:5000"
    for node in swarm["nodes"]:
        digests = node.docker("image", "ls", "--digests", "--format", "{{.Repository}}@{{.Digest}}").stdout.split()
        for name in ("classroom/hub", "classroom/cpu"):
            assert any(d.startswith(f"{address}/{name}@sha256:") for d in digests), (node.name, digests)
    # Without the password (a student's server could reach the address): refused.
    ca = f"/etc/docker/certs.d/{address}/ca.crt"
    anonymous = subprocess.run(["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}",
                                f"https://{address}/v2/_catalog"], capture_output=True, text=True)
    assert anonymous.stdout == "401", anonymous.stdout + anonymous.stderr


def test_a_students_server_runs_on_a_worker_with_the_single_hosts_limits(swarm, classroom):
    """Does alice's server, started by logging in, run as a service on the worker without a
    GPU (managers run the hub; GPU nodes are for the GPU profile), with the limits a single
    host's servers have (no new privileges included), and does it work through the proxy on
    the first manager?"""
    alice = Person(classroom, "alice").start_session()
    assert alice.run("print(6 * 7)").strip() == "42"
    alice.run("open('/home/jovyan/kept.txt', 'w').write('my work')")
    task = server_task(swarm, "alice")
    assert task["Node"] == "clsw-n2", task
    limits = classroom.settings()["limits"]
    inspected = json.loads(node_named(swarm, "clsw-n2").docker("inspect", task["Container"]).stdout)[0]
    host = inspected["HostConfig"]
    assert host["Memory"] == to_bytes(limits["student"]["memory"]), host["Memory"]
    assert host["NanoCpus"] == int(float(limits["student"]["cpus"]) * 1e9), host["NanoCpus"]
    assert host["PidsLimit"] == limits["pids"] and host["CapDrop"] == ["ALL"], host
    shm = next(m for m in host["Mounts"] if m["Target"] == "/dev/shm")
    assert shm["TmpfsOptions"]["SizeBytes"] == to_bytes(limits["shm_size"]), shm
    assert "NVIDIA_VISIBLE_DEVICES=void" in inspected["Config"]["Env"]
    # No process of hers gains privileges (set by the node's engine for every container).
    assert alice.run("print(next(l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')))"
                     ).split() == ["NoNewPrivs:", "1"]


def test_draining_the_home_node_loses_no_work_and_says_where_it_is(swarm, classroom):
    """When the node that holds alice's home is drained, her server stops and a new start is
    refused with a message that names the node (rather than an empty home elsewhere); once
    the node is back, her server runs there again, with her work."""
    manager(swarm, "node", "update", "--availability", "drain", "clsw-n2")
    try:
        wait_for(lambda: classroom.server("alice") is None, 120, "the hub to see alice's server stop")
        refused = classroom.api("POST", "/users/alice/server")
        assert refused.status_code == 503, refused.text
        assert "clsw-n2" in refused.json()["message"] and "drained" in refused.json()["message"], refused.text
    finally:
        manager(swarm, "node", "update", "--availability", "active", "clsw-n2")
    started = classroom.api("POST", "/users/alice/server")
    assert started.status_code in (201, 202), started.text
    alice = Person(classroom, "alice").start_session()
    assert alice.run("print(open('/home/jovyan/kept.txt').read())").strip() == "my work"
    assert server_task(swarm, "alice")["Node"] == "clsw-n2"


def sandbox_starts(swarm, since: int) -> dict[str, int]:
    """How many grading sandboxes each node's engine started since `since` (a Unix time)."""
    counts = {}
    for node in swarm["nodes"]:
        events = node.docker("events", "--since", str(since), "--until", str(int(time.time()) + 1),
                             "--filter", "type=container", "--filter", "event=start",
                             "--filter", "label=org.classroom.role=sandbox", "--format", "{{.ID}}").stdout
        counts[node.name] = len(events.split())
    return counts


def test_the_assignment_flow_grades_on_the_workers(swarm, classroom):
    """Release, fetch, submit, grade: does the solution's reference and alice's submission run
    in sandboxes on the workers' engines (none on the manager), and score 5/5?"""
    since = int(time.time())
    teacher = Person(classroom, "teacher")
    teacher.login()
    teacher.create_token()
    release(classroom, teacher, lab.ASSIGNMENT, lab.NOTEBOOK, lab.source_notebook())
    alice = Person(classroom, "alice").start_session()
    assert any(a["assignment_id"] == lab.ASSIGNMENT for a in student_action(alice, "fetch")["value"])
    saved = alice.server_api("PUT", f"/contents/{lab.ASSIGNMENT}/{lab.NOTEBOOK}.ipynb", json={
        "type": "notebook", "format": "json", "content": lab.student_notebook(lab.correct_answers())})
    assert saved.status_code == 200, saved.text
    assert student_action(alice, "submit")["success"]
    graded = wait_graded(classroom, teacher, "alice", timeout=600)
    assert graded["status"] == "done" and (graded["score"], graded["max_score"]) == (5, 5), graded
    started = sandbox_starts(swarm, since)
    assert started["clsw-n1"] == 0 and started["clsw-n2"] + started["clsw-n3"] >= 2, started


def test_only_the_grading_service_reaches_the_nodes_engines(swarm, classroom):
    """The engines serve the grading service alone: a student's server is not on their
    network, and a container on it without the grading service's certificate gets no engine."""
    alice = Person(classroom, "alice").start_session()
    reached = alice.run(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('classroom-swarm-engine-1', 2376), timeout=5); print('reached')\n"
        "except OSError as error:\n"
        "    print('refused', type(error).__name__)\n")
    assert reached.startswith("refused"), reached
    hub_image = manager(swarm, "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                        "classroom-swarm-hub")
    stranger = swarm["nodes"][0].docker(
        "run", "--rm", "--network", "classroom-swarm-engines", hub_image, "python", "-c",
        "import socket, ssl\n"
        "tls = ssl.create_default_context(); tls.check_hostname = False; tls.verify_mode = ssl.CERT_NONE\n"
        "conn = tls.wrap_socket(socket.create_connection(('classroom-swarm-engine-1', 2376), timeout=10))\n"
        "conn.sendall(b'GET /version HTTP/1.0\\r\\n\\r\\n'); print(conn.recv(4096))\n", check=False)
    assert stranger.returncode != 0 and "ApiVersion" not in stranger.stdout, stranger.stdout + stranger.stderr


def test_the_swarm_restarts_the_hub_and_servers_on_other_nodes_find_it_within_seconds(swarm, classroom):
    """The hub, the proxy, the grading service and the formgrader are swarm services on the first
    manager. When the hub's container dies, does the swarm start another, does alice's server on a
    worker resolve the hub's new address, and does her server work through the new hub within a
    minute? (Her server's HTTP client used to keep the old address for the DNS answer's 600 s:
    classroom_grading/resolver.py.)"""
    for role in ("hub", "proxy", "grading", "formgrader"):
        nodes = manager(swarm, "service", "ps", f"classroom-swarm-{role}", "--filter", "desired-state=running",
                        "--format", "{{.Node}} {{.CurrentState}}").splitlines()
        assert len(nodes) == 1 and nodes[0].startswith("clsw-n1 Running"), (role, nodes)
    alice = Person(classroom, "alice").start_session()
    task = server_task(swarm, "alice")
    worker = node_named(swarm, task["Node"])

    def hub_container() -> tuple[str, str]:
        found = swarm["deployed"].container("classroom-swarm-hub")
        address = manager(swarm, "inspect", found, "--format",
                          '{{(index .NetworkSettings.Networks "classroom-swarm-net").IPAddress}}')
        return found, address
    old, old_address = hub_container()
    manager(swarm, "kill", old)
    new, address = wait_for(lambda: (lambda c: c if c[0] != old else None)(hub_container()), 120,
                            "the swarm to start another hub")

    def resolved() -> str:
        found = worker.docker("exec", task["Container"], "getent", "hosts", "classroom-swarm-hub", check=False)
        return (found.stdout.split() or ["nothing"])[0]
    wait_for(lambda: resolved() == address, 15, f"alice's server to resolve the hub at {address} (was {old_address})")
    wait_for(lambda: classroom.api("GET", "/").status_code == 200, 120, "the new hub to answer")
    # Within aiohttp's own cache of an answer (10 s), one request may still go to the old address.
    wait_for(lambda: alice.run("print(6 * 7)").strip() == "42", 90, "alice's server to work through the new hub")


def test_make_prestart_starts_the_students_servers_on_their_home_node(swarm, classroom):
    """Does `make prestart`, run on the first manager, find the hub's task container and start
    every student's server before the class, each on the node that holds their home?"""
    classroom.stop_server("alice")
    prestart = subprocess.run(["make", "prestart", "NAME=classroom-swarm"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "DOCKER_HOST": swarm["nodes"][0].socket}, timeout=600)
    assert prestart.returncode == 0, prestart.stdout + prestart.stderr
    assert (classroom.server("alice") or {}).get("ready"), prestart.stdout + prestart.stderr
    assert server_task(swarm, "alice")["Node"] == "clsw-n2"


def test_the_culler_spares_a_silent_training_loop_on_a_worker_and_stops_an_idle_server(swarm, classroom):
    """Servers on a worker report their activity to the hub on the first manager: does the
    real culler, run in the hub's task container, keep alice's busy server and stop bob's idle
    one (tests/integration/culler.py)?"""
    hub = swarm["deployed"].container("classroom-swarm-hub")

    def hub_exec(*args: str, env: dict[str, str] | None = None) -> list[str]:
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return ["docker", "-H", swarm["nodes"][0].socket, "exec", "-i", *options, hub, *args]

    culler.spares_the_busy_and_stops_the_idle(classroom, "alice", "bob", hub_exec)


def course_marker(swarm, text: str | None = None) -> str:
    """Write (or read) a file in the course volume on the first manager (where the gradebook is)."""
    script = f"echo {text} > /course/.backup-test" if text else "cat /course/.backup-test"
    return swarm["nodes"][0].docker("run", "--rm", "-v", "classroom-swarm-course:/course", "debian:bookworm-slim",
                                    "sh", "-c", script).stdout.strip()


def test_a_backup_of_the_swarm_takes_each_nodes_part_and_restores_it_there(swarm, classroom):
    """Does `make backup` write one folder of the same name on every node (the state and the
    course on the first manager, alice's home on her worker); does `make restore` refuse, before
    anything stops, when a node's part is missing; and does it bring back her work on her node
    and the course as they were, after both changed?"""
    alice = Person(classroom, "alice").start_session()
    alice.run("open('/home/jovyan/kept.txt', 'w').write('backed up')")
    course_marker(swarm, "backed-up")
    taken = driver("backup", "--config", str(CONFIG), "--inventory", str(swarm["inventory"]))
    assert taken.returncode == 0, (taken.stdout + taken.stderr)[-6000:]
    parts = {node.name: sorted(node.backup_dir.glob("classroom-swarm-*")) for node in swarm["nodes"]}
    assert all(len(found) == 1 for found in parts.values()), parts
    assert len({found[0].name for found in parts.values()}) == 1, parts
    manifests = {name: json.loads((found[0] / "manifest.json").read_text()) for name, found in parts.items()}
    assert manifests["clsw-n1"]["state"] and "classroom-swarm-course" in manifests["clsw-n1"]["volumes"], manifests
    assert not manifests["clsw-n2"]["state"] and "classroom-swarm-home-alice" in manifests["clsw-n2"]["volumes"]
    assert not any(v.startswith("classroom-swarm-home-") for v in manifests["clsw-n1"]["volumes"]), manifests

    alice.run("open('/home/jovyan/kept.txt', 'w').write('changed later')")
    course_marker(swarm, "changed-later")
    # A node's part missing: the restore names the node and stops nothing.
    gpu_part = parts["clsw-n3"][0]
    gpu_part.rename(gpu_part.with_name(gpu_part.name + ".away"))
    try:
        refused = driver("restore", "--backup", str(parts["clsw-n1"][0]), "--config", str(CONFIG),
                         "--inventory", str(swarm["inventory"]))
    finally:
        gpu_part.with_name(gpu_part.name + ".away").rename(gpu_part)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and "no manifest.json on clsw-n3" in said, said[-3000:]
    assert alice.run("print(open('/home/jovyan/kept.txt').read())").strip() == "changed later"
    restored = driver("restore", "--backup", str(parts["clsw-n1"][0]), "--config", str(CONFIG),
                      "--inventory", str(swarm["inventory"]))
    assert restored.returncode == 0, (restored.stdout + restored.stderr)[-6000:]
    assert course_marker(swarm) == "backed-up"
    started = classroom.api("POST", "/users/alice/server")
    assert started.status_code in (201, 202), started.text
    alice = Person(classroom, "alice").start_session()
    assert alice.run("print(open('/home/jovyan/kept.txt').read())").strip() == "backed up"
    assert server_task(swarm, "alice")["Node"] == "clsw-n2"


def test_the_deploy_sets_every_engine_and_advertises_the_gpu_nodes_devices(swarm):
    """Does the deploy set no-new-privileges on every node's engine, put the GPU node's
    devices in its engine's settings, restart the engines once, and does the swarm then know
    the devices? (The test node's engine starts with no GPU; the inventory names its device
    as `nvidia-smi -L` would on a real one.)"""
    gpu_node = swarm["nodes"][2]
    settings = json.loads(gpu_node.engine_config.read_text())
    assert settings == {"node-generic-resources": [f"{GPU_KIND}=GPU-clsw-n3-0"], "no-new-privileges": True}, settings
    resources = json.loads(manager(swarm, "node", "inspect", gpu_node.name, "--format",
                                   "{{json .Description.Resources.GenericResources}}"))
    assert resources == [{"NamedResourceSpec": {"Kind": GPU_KIND, "Value": "GPU-clsw-n3-0"}}], resources
    for node in swarm["nodes"][:2]:
        assert json.loads(node.engine_config.read_text()) == {"no-new-privileges": True}, node.name


def test_the_gpu_profile_lands_on_the_gpu_node_and_never_shares_its_gpu(swarm):
    """Does a task that asks for one whole GPU land on the GPU node, with that GPU named in its
    environment where the NVIDIA runtime reads it, and does a second one wait instead of
    sharing it?"""
    image = next(d for d in swarm["nodes"][0].docker("image", "ls", "--digests", "--format",
                                                      "{{.Repository}}@{{.Digest}}").stdout.split()
                 if "/classroom/hub@" in d)
    services = []
    try:
        for name in ("gpu-a", "gpu-b"):
            manager(swarm, "service", "create", "--detach", "--name", f"clsw-{name}", "--generic-resource",
                    f"{GPU_KIND}=1", "--restart-condition", "none", image, "sleep", "600")
            services.append(f"clsw-{name}")
        deadline = time.monotonic() + 120
        while True:
            tasks = {s: json.loads(manager(swarm, "service", "ps", s, "--format", "{{json .}}").splitlines()[0])
                     for s in services}
            running = [s for s, t in tasks.items() if t["CurrentState"].startswith("Running")]
            if running or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(running) == 1, tasks
        assert tasks[running[0]]["Node"] == "clsw-n3", tasks
        time.sleep(5)   # the other stays pending: no second GPU anywhere
        other = next(s for s in services if s not in running)
        state = json.loads(manager(swarm, "service", "ps", other, "--format", "{{json .}}").splitlines()[0])
        assert state["CurrentState"].startswith("Pending"), state
        task = manager(swarm, "service", "ps", running[0], "-q", "--no-trunc").split()[0]
        container = manager(swarm, "inspect", task, "--format", "{{.Status.ContainerStatus.ContainerID}}")
        # The GPU's id reaches the container (the NVIDIA runtime reads it to pick the device).
        env = json.loads(swarm["nodes"][2].docker("inspect", container, "--format", "{{json .Config.Env}}").stdout)
        assert f"DOCKER_RESOURCE_{GPU_KIND}=GPU-clsw-n3-0" in env, env
    finally:
        for service in services:
            swarm["nodes"][0].docker("service", "rm", service, check=False)


def test_a_second_deploy_changes_nothing(swarm):
    """Does deploying the same inventory again report no changed task?"""
    again = driver("deploy", "--config", str(CONFIG), "--inventory", str(swarm["inventory"]))
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-6000:]
    changed = [block.splitlines()[0] for block in output.split("TASK [")[1:] if "changed:" in block]
    assert "0 changed task(s)" in output, changed


def test_remove_takes_the_registry_away_and_leaves_the_swarm(swarm):
    """Does `make remove --delete-volumes` with the swarm's inventory remove the registry service,
    its secrets and its images, and leave the nodes in the swarm?"""
    removed = driver("remove", "--config", str(CONFIG), "--inventory", str(swarm["inventory"]), "--delete-volumes")
    assert removed.returncode == 0, (removed.stdout + removed.stderr)[-6000:]
    assert manager(swarm, "service", "ls", "-q") == ""
    # A node's engine removes a removed service's containers on its own time: wait for them.
    for node in swarm["nodes"]:
        def left() -> str:
            return node.docker("ps", "-a", "--format", "{{.Names}} {{.Image}} {{.Status}}").stdout.strip()
        try:
            wait_for(lambda: left() == "", 120, f"{node.name}'s containers to go")
        except Exception as error:
            raise AssertionError(f"{node.name} still runs: {left()}") from error
        assert not [v for v in node.docker("volume", "ls", "-q").stdout.split() if v.startswith("classroom-swarm-")]
    assert manager(swarm, "secret", "ls", "-q") == ""
    assert "classroom-swarm-registry-data" not in manager(swarm, "volume", "ls", "-q").split()
    assert len(manager(swarm, "node", "ls", "-q").split()) == 3
