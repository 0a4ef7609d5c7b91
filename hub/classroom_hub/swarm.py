"""Students' servers as Docker Swarm services, placed across the swarm's nodes.

Built on dockerspawner's SwarmSpawner, which runs one service per server, with what it lacks
for this classroom:

- the limits of a single host's servers: memory and CPUs (as upstream), and also the process
  limit (`Resources.Limits.Pids`), /dev/shm (a tmpfs mount: services have no shm size) and
  no capabilities; upstream ignores `extra_host_config`, so these are settings of their own
  here and nothing is dropped silently;
- GPUs: a GPU server asks the swarm for one device of `gpu_kind` (a generic resource that
  GPU nodes advertise, ansible/roles/swarm_gpu), so the swarm gives each GPU to one server
  at a time; with `gpu_sharing` on, it asks for none and sees every GPU of the GPU node it
  lands on, shared with the others there; a CPU server runs with
  `NVIDIA_VISIBLE_DEVICES=void`, so it never sees a GPU even on a GPU node;
- homes pinned to a node: a home is a named volume, which lives on one node; the node a
  person's first server ran on is kept in their spawner state, and every later server of
  theirs runs there, so they always find their work (a node that is down or drained keeps it
  until it is back, and the spawn page says so rather than start an empty home elsewhere);
- no restarts behind the hub's back (restart condition none) and quick, clear failures:
  a task the swarm rejects fails the spawn with the swarm's reason, and a server that no
  node has room for (all GPUs in use) fails after `placement_timeout` seconds;
- the hub reaches the server at its task's address on the classroom's overlay network
  (the routing mesh's virtual addresses are not used: endpoint mode dnsrr);
- service names within the swarm's 63 characters.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from docker.types import ContainerSpec, EndpointSpec, Mount, Placement, Resources, RestartPolicy, TaskTemplate
from dockerspawner import DockerSpawner, SwarmSpawner
from tornado import web
from traitlets import Int, List, Unicode, default

from .spawner import ClassroomSpawner

HOST_LABEL = "org.classroom.host"     # the node's inventory name (ansible/roles/swarm)
GPU_NODE_LABEL = "org.classroom.gpu"  # "true" on GPU nodes
ENDED = {"rejected", "failed", "shutdown", "complete", "orphaned", "remove"}
MAX_SERVICE_NAME = 63                 # swarmkit's limit on a service's name
NODE_STATES = {"drain": "drained for maintenance", "pause": "paused", "down": "down",
               "disconnected": "disconnected", "unknown": "not answering"}


class Unavailable(web.HTTPError):
    """The server cannot start now, for a reason the person (or the API's caller) is told:
    the hub shows the message on the spawn page and the API answers 503 with it."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message.replace("%", "%%"))


def service_name(rendered: str) -> str:
    """A service name within the swarm's limit: the rendered name, or its start and a hash."""
    if len(rendered) <= MAX_SERVICE_NAME:
        return rendered
    digest = hashlib.sha1(rendered.encode()).hexdigest()[:8]
    return rendered[:MAX_SERVICE_NAME - 9].rstrip("-_") + "-" + digest


class ClassroomSwarmSpawner(ClassroomSpawner, SwarmSpawner):
    """Each person's server as a swarm service, with the classroom's profiles and limits."""

    pids_limit = Int(0, config=True, help="Most processes in a server (0: no limit).")
    shm_size = Unicode("", config=True, help="Size of /dev/shm in a server, such as 1G (empty: the default).")
    placement_timeout = Int(
        20, config=True,
        help="Seconds a server may wait for a node with room (a free GPU) before its start fails.")
    cpu_constraints = List(
        Unicode(), config=True,
        help="More placement constraints of a CPU server's first start, such as node.role==worker.")
    gpu_kind = Unicode(
        "", config=True,
        help="The kind of swarm generic resource GPU nodes advertise and a GPU server asks for one of.")
    home_node = Unicode("", help="The node that holds this person's home volume (kept in the state).")

    @default("object_name")
    def _object_name_default(self) -> str:
        return service_name(self._render_templates(self.name_template))

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.home_node = state.get("home_node", "")

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.home_node:
            state["home_node"] = self.home_node
        return state

    @property
    def mounts(self) -> list[Mount]:
        """The home as a named volume (upstream makes every volume a bind mount), folders of
        the node as bind mounts, and /dev/shm as a tmpfs of `shm_size`."""
        mounts = [Mount(target=spec["bind"], source=source, read_only=spec["mode"] == "ro",
                        type="bind" if source.startswith("/") else "volume")
                  for source, spec in self.volume_binds.items()]
        if self.shm_size:
            mounts.append(Mount(target="/dev/shm", source=None, type="tmpfs",
                                tmpfs_size=self._mem_to_bytes(self.shm_size), tmpfs_mode=0o1777))
        return mounts

    def constraints(self, gpu: bool) -> list[str]:
        """Where this server may run: its home's node once it has one, else a node of its kind."""
        if self.home_node:
            return [f"node.labels.{HOST_LABEL}=={self.home_node}"]
        return [f"node.labels.{GPU_NODE_LABEL}=={'true' if gpu else 'false'}"] + ([] if gpu else self.cpu_constraints)

    def service_spec(self, env: dict[str, str], args: list[str], labels: dict[str, str], gpu: bool) -> dict[str, Any]:
        """The keyword arguments of docker's create_service for this server."""
        shared = gpu and self.gpu_sharing
        if not gpu or shared:
            env = {**env, "NVIDIA_VISIBLE_DEVICES": "all" if shared else "void"}
        container = ContainerSpec(image=self.image, env=env, args=args, mounts=self.mounts,
                                  labels=labels, cap_drop=["ALL"])
        resources = Resources(
            mem_limit=self.mem_limit, mem_reservation=self.mem_guarantee,
            cpu_limit=int(self.cpu_limit * 1e9) if self.cpu_limit else None,
            cpu_reservation=int(self.cpu_guarantee * 1e9) if self.cpu_guarantee else None,
            generic_resources={self.gpu_kind: 1} if gpu and not shared else None)
        if self.pids_limit:
            # API 1.41 (Engine 20.10); docker-py has no keyword for it.
            resources.setdefault("Limits", {})["Pids"] = self.pids_limit
        task = TaskTemplate(container_spec=container, resources=resources,
                            networks=[self.network_name] if self.network_name else [],
                            placement=Placement(constraints=self.constraints(gpu)),
                            restart_policy=RestartPolicy(condition="none"))
        return {"name": self.service_name, "task_template": task, "endpoint_spec": EndpointSpec(mode="dnsrr"),
                "labels": labels}

    async def check_home_node(self, gpu: bool) -> None:
        """Fail with a clear message when the home's node cannot take the server now."""
        if not self.home_node:
            return
        nodes = await self.docker("nodes")
        node = next((n for n in nodes if n["Spec"].get("Labels", {}).get(HOST_LABEL) == self.home_node), None)
        if node is None:
            raise Unavailable(
                f"Your home folder is on the node {self.home_node}, which has left the swarm. "
                "Ask the operator to bring it back; your work is kept on it.")
        state, availability = node["Status"]["State"], node["Spec"]["Availability"]
        if state != "ready" or availability != "active":
            raise Unavailable(
                f"Your home folder is on the node {self.home_node}, which is "
                f"{NODE_STATES.get(availability if state == 'ready' else state, state)} now; your work is kept there. "
                "Start your server again once the node is back.")
        if gpu and node["Spec"].get("Labels", {}).get(GPU_NODE_LABEL) != "true":
            raise Unavailable(
                f"Your home folder is on the node {self.home_node}, which has no GPU. "
                "Start the CPU profile, or ask the operator to move your home to a GPU node.")

    async def start(self) -> Any:
        """Apply the profile and limits, check the home's node, then create the service."""
        profile = self.selected_profile()
        self._gpu = bool(profile.get("gpu"))
        self._labels = self.prepare(profile)
        await self.check_home_node(self._gpu)
        # DockerSpawner's start (pull policy, remove an old service, create, wait), not the
        # single host's GPU lock: the swarm accounts for GPUs itself.
        return await DockerSpawner.start(self)

    async def create_object(self) -> dict[str, Any]:
        spec = self.service_spec(self.get_env(), await self.get_command(), self._labels, self._gpu)
        service = await self.docker("create_service", **spec)
        while not await self.docker("tasks", filters={"service": self.service_name}):
            await asyncio.sleep(0.5)
        return service

    async def start_object(self) -> None:
        """Wait until the task runs; fail at once when the swarm rejects it, and after
        `placement_timeout` seconds when no node has room for it."""
        began = time.monotonic()
        while True:
            task = await self.get_task()
            if not task:
                raise RuntimeError(f"The service {self.service_name} has gone.")
            status = task["Status"]
            state = status["State"]
            if state == "running":
                break
            reason = status.get("Err") or status.get("Message", "")
            if state in ENDED:
                raise RuntimeError(f"Your server could not start: {reason}")
            if "no suitable node" in reason and time.monotonic() - began > self.placement_timeout:
                raise Unavailable(
                    "All GPUs are in use; try again later or start the CPU profile." if self._gpu else
                    f"No node of the classroom has room for your server now ({reason}).")
            await asyncio.sleep(1)
        if not self.home_node:
            node = await self.docker("inspect_node", task["NodeID"])
            self.home_node = node["Spec"].get("Labels", {}).get(HOST_LABEL, "")
            self.log.info("%s's home is on the node %s", self.user.name, self.home_node)

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The task's address on the classroom's network: no virtual address, no DNS delay."""
        task = await self.get_task()
        for attachment in (task or {}).get("NetworksAttachments", []):
            if attachment["Network"]["Spec"]["Name"] == self.network_name and attachment.get("Addresses"):
                return attachment["Addresses"][0].split("/")[0], self.port
        return self.service_name, self.port
