"""A classroom deployed across test nodes (tests/swarm/nodes.py) through the playbooks, over SSH,
from an inventory, as people reach it: the swarm tests and the swarm benchmark use it.

The first manager's engine is seeded with images built from the same sources on this machine
(`docker save | docker load`), as a redeploy finds them; a first deploy builds them there (the
same images role, minutes longer). The proxy listens on the first manager's address; its port is
forwarded to this machine's loopback, where <user>.<domain> resolves as the single host's names
do (browsers resolve *.localhost to the loopback).
"""
from __future__ import annotations

import socket
import socketserver
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from tests.integration.fixtures import Deployment, driver, read_passwords
from tests.swarm import nodes as test_nodes


@dataclass
class Swarm:
    nodes: list[test_nodes.Node]
    inventory: Path
    deploy_output: str
    deploy_seconds: float
    seed_seconds: float

    @property
    def manager(self) -> test_nodes.Node:
        return self.nodes[0]

    def container(self, service: str) -> str:
        """The id of the running container of a service's task on the first manager (hub, grading…)."""
        return self.manager.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"
                                   ).stdout.split()[0]


def seed_images(config: Path, images: dict[str, str]) -> list[str]:
    """The images the first manager is seeded with: the base image, and the hub and CPU images
    built on this machine from the same sources (so with the same tags)."""
    settings = yaml.safe_load(config.read_text())
    return [settings.get("images", {}).get("base", "debian:bookworm-slim"), images["hub"], images["cpu"]]


@contextmanager
def swarm(config: Path, images: dict[str, str], folder: Path, count: int = 3,
          gpu_nodes: tuple[int, ...] = (3,)) -> Iterator[Swarm]:
    """`count` fresh nodes (the first a manager, the rest workers), the classroom of `config`
    deployed across them; every node is removed afterwards. A failed deploy raises with its output."""
    test_nodes.down()
    nodes = test_nodes.up(count, gpu_nodes=gpu_nodes)
    try:
        began = time.monotonic()
        save = subprocess.Popen(["docker", "save", *seed_images(config, images)], stdout=subprocess.PIPE)
        nodes[0].docker("load", "-q", stdin=save.stdout, text=False)
        if save.wait() != 0:
            raise RuntimeError("docker save of the seed images failed")
        seeded = time.monotonic() - began
        inventory = folder / "inventory.yml"
        inventory.write_text(yaml.safe_dump(test_nodes.inventory(nodes)))
        began = time.monotonic()
        first = driver("deploy", "--config", str(config), "--inventory", str(inventory))
        output = first.stdout + first.stderr
        if first.returncode != 0:
            raise RuntimeError(f"the swarm deploy of {config.name} failed:\n{output[-6000:]}")
        yield Swarm(nodes, inventory, output, time.monotonic() - began, seeded)
    finally:
        test_nodes.down()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _forward(listen: tuple[str, int], target: tuple[str, int]) -> socketserver.ThreadingTCPServer:
    """Forward a port of this machine's loopback to a node's port, both ways, until shut down."""
    class Connection(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(target) as upstream:
                back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                back.start()
                _pump(self.request, upstream)
                back.join()

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 256

    server = Server(listen, Connection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def reached(config: Path, deployed: Swarm) -> Iterator[Deployment]:
    """The swarm's classroom as people reach it, through this machine's loopback."""
    settings = yaml.safe_load(config.read_text())
    port = settings["hub"]["port"]
    forwarder = _forward(("127.0.0.1", port), (deployed.manager.address, port))
    try:
        yield Deployment(config, settings, deployed.deploy_output, deployed.deploy_seconds,
                         passwords=read_passwords(Path(settings["state_dir"]) / "hub"))
    finally:
        forwarder.shutdown()
        forwarder.server_close()
