"""The swarm spawner's service specification, built in the hub image (where JupyterHub,
dockerspawner and docker-py are): what a student's server asks the swarm for. The swarm
suite (tests/swarm) runs such servers on real nodes; this checks each setting, including
those no test node can show (a GPU profile's request)."""
import json

from tests.integration.fixtures import run_in_image

SCRIPT = r'''
import json
from types import SimpleNamespace
from classroom_hub.swarm import ClassroomSwarmSpawner

def spec(username, gpu, home_node="", **settings):
    user = SimpleNamespace(name=username, groups=[], id=1, url=f"/user/{username}/", server=None,
                           escaped_name=username, settings={}, orm_user=None)
    spawner = ClassroomSwarmSpawner(
        user=user, name="", network_name="c-net", name_template="c-user-{username}",
        volumes={"c-home-{username}": "/home/jovyan", "/srv/data": {"bind": "/srv/course-data", "mode": "ro"}},
        shm_size="1G", pids_limit=512, mem_limit="2G", cpu_limit=2.0, deployment_label="c",
        cpu_constraints=["node.role==worker"], gpu_kind="GPU", **settings)
    spawner.load_state({"home_node": home_node} if home_node else {})
    out = spawner.service_spec({"A": "1"}, ["classroom-start"], {"org.classroom.deployment": "c"}, gpu)
    out["state"] = spawner.get_state()
    return out

print(json.dumps({
    "cpu": spec("alice", False),
    "gpu": spec("alice", True),
    "shared": spec("alice", True, gpu_sharing=True),
    "pinned": spec("alice", False, home_node="node-2"),
    "long": spec("a.very.long.name_with-every.escaped.character.in-it", False),
}, default=str))
'''


def specs(images):
    result = run_in_image(images["hub"], "python", "-c", SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_a_cpu_server_keeps_the_single_hosts_limits_and_sees_no_gpu(images):
    """Does a CPU server's service carry the memory, CPU, process and /dev/shm limits, drop
    every capability, keep its home in its named volume, never restart behind the hub's back,
    stay off GPU nodes and see no GPU even on one?"""
    cpu = specs(images)["cpu"]
    task = cpu["task_template"]
    container = task["ContainerSpec"]
    assert task["Resources"]["Limits"] == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 2 << 30, "Pids": 512}
    assert container["CapabilityDrop"] == ["ALL"]
    assert "NVIDIA_VISIBLE_DEVICES=void" in container["Env"]
    mounts = {m["Target"]: m for m in container["Mounts"]}
    assert mounts["/home/jovyan"]["Type"] == "volume" and mounts["/home/jovyan"]["Source"] == "c-home-alice"
    assert mounts["/srv/course-data"]["Type"] == "bind" and mounts["/srv/course-data"]["ReadOnly"] is True
    assert mounts["/dev/shm"]["Type"] == "tmpfs" and mounts["/dev/shm"]["TmpfsOptions"]["SizeBytes"] == 1 << 30
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Placement"]["Constraints"] == ["node.labels.org.classroom.gpu==false", "node.role==worker"]
    assert task["Networks"] == [{"Target": "c-net"}] and cpu["endpoint_spec"] == {"Mode": "dnsrr"}
    # The deployment's label on the service and on its container: `make remove` finds both.
    assert cpu["labels"] == container["Labels"] == {"org.classroom.deployment": "c"}


def test_a_gpu_server_asks_the_swarm_for_one_whole_gpu_on_a_gpu_node(images):
    gpu = specs(images)["gpu"]["task_template"]
    assert gpu["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "GPU", "Value": 1}}]
    assert gpu["Placement"]["Constraints"] == ["node.labels.org.classroom.gpu==true"]
    assert "NVIDIA_VISIBLE_DEVICES=void" not in gpu["ContainerSpec"]["Env"]


def test_with_sharing_a_gpu_server_reserves_no_gpu_and_sees_its_nodes_gpus(images):
    """gpu.sharing on a swarm: placed on a GPU node, no device of its own, every GPU there."""
    shared = specs(images)["shared"]["task_template"]
    assert "Reservations" not in shared["Resources"] or not shared["Resources"]["Reservations"].get("GenericResources")
    assert shared["Placement"]["Constraints"] == ["node.labels.org.classroom.gpu==true"]
    assert "NVIDIA_VISIBLE_DEVICES=all" in shared["ContainerSpec"]["Env"]


def test_a_person_with_a_home_returns_to_its_node_and_the_state_keeps_it(images):
    pinned = specs(images)["pinned"]
    assert pinned["task_template"]["Placement"]["Constraints"] == ["node.labels.org.classroom.host==node-2"]
    assert pinned["state"]["home_node"] == "node-2"


def test_a_long_user_name_still_gives_a_valid_service_name(images):
    """Swarm refuses a service name over 63 characters; escaping can triple a name's length."""
    name = specs(images)["long"]["name"]
    assert len(name) <= 63 and name[0].isalnum() and name[-1].isalnum(), name
    assert name.startswith("c-user-a-2every-2elong"), name
