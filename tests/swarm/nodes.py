"""Test machines for a swarm, simulated on this one: each node is a network namespace with a
Docker engine and an SSH server of its own.

    python -m tests.swarm.nodes up [N]     create N nodes (default 3), print their inventory facts
    python -m tests.swarm.nodes down       remove every node, its engine's data included

Privileged containers are refused on these machines, so Docker-in-Docker cannot give a node
its own engine; a network namespace can (../shared/PLATFORM.md). The nodes hang off one
bridge of the host's, `clswbr`, on 10.231.0.0/24: the host is 10.231.0.1, node i is
10.231.0.(10 + i). A deploy reaches a node the way it reaches a real machine, through SSH to
that address. The nodes share this machine's filesystem, so each engine has its own data root
and socket, and a shell on a node finds its engine through DOCKER_HOST, which the node's SSH
server sets (a real machine's engine is at the default socket): that setting exists only
because of the shared filesystem, and stays here.

A node can stand for a GPU node without a GPU: the inventory puts it in the `gpu` group and
names its device, which the deploy then advertises to the swarm (ansible/roles/swarm_gpu)
as it would a real node's from `nvidia-smi -L`; placement is what the tests check. So that
the deploy's change of engine settings takes effect, each engine reads a settings file of its
own and the inventory says how to restart it:

    python -m tests.swarm.nodes restart I  restart node I's engine (it rejoins the swarm)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "clsw"
BRIDGE = f"{PREFIX}br"
HOST_ADDRESS = "10.231.0.1"
STATE = Path("/var/lib") / PREFIX          # engines' data roots and the SSH keys
RUN = Path("/run") / PREFIX                # sockets, pid files, configurations
SSH = STATE / "ssh"
MASQUERADE = ["POSTROUTING", "-s", "10.231.0.0/24", "!", "-o", BRIDGE, "-j", "MASQUERADE"]


@dataclass(frozen=True)
class Node:
    index: int
    gpus: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{PREFIX}-n{self.index}"

    @property
    def address(self) -> str:
        return f"10.231.0.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"/var/run/netns/{self.name}"

    @property
    def run(self) -> Path:
        return RUN / self.name

    @property
    def socket(self) -> str:
        return f"unix://{self.run / 'docker.sock'}"

    @property
    def engine_config(self) -> Path:
        return self.run / "daemon.json"

    @property
    def backup_dir(self) -> Path:
        return STATE / self.name / "backups"

    def docker(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this node's engine."""
        return subprocess.run(["docker", "-H", self.socket, *args], capture_output=True,
                              check=check, **{"text": True, **kwargs})


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check)


def in_netns(node: Node, *args: str) -> list[str]:
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts, and
    # dockerd refuses to start without them.
    return ["nsenter", f"--net={node.netns}", *args]


def ensure_packages() -> None:
    """The SSH server, rsync (the deploy's copy of the sources) and the engine, when missing."""
    missing = [pkg for pkg, path in (("openssh-server", "/usr/sbin/sshd"), ("rsync", "/usr/bin/rsync"),
                                     ("docker.io", "/usr/sbin/dockerd"))
               if not Path(path).exists()]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_keys() -> None:
    SSH.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key in ("host_ed25519", "id_ed25519"):
        if not (SSH / key).exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{PREFIX}-{key}", "-f", str(SSH / key))
    (SSH / "authorized_keys").write_text((SSH / "id_ed25519.pub").read_text())
    (SSH / "authorized_keys").chmod(0o600)


def ensure_bridge() -> None:
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # Docker's engine sets the FORWARD policy to DROP and filters bridged traffic: let the
    # nodes' traffic through (to each other and to the host).
    chain = "DOCKER-USER" if sh("iptables", "-n", "-L", "DOCKER-USER", check=False).returncode == 0 else "FORWARD"
    for direction in ("-i", "-o"):
        rule = [chain, direction, BRIDGE, "-j", "ACCEPT"]
        if sh("iptables", "-C", *rule, check=False).returncode != 0:
            sh("iptables", "-I", *rule)
    # Out to the host's network (its Debian mirror and DNS), as a real machine's engine reaches it.
    if sh("iptables", "-t", "nat", "-C", *MASQUERADE, check=False).returncode != 0:
        sh("iptables", "-t", "nat", "-A", *MASQUERADE)


def start_node(node: Node) -> None:
    node.run.mkdir(parents=True, exist_ok=True)
    if not Path(node.netns).exists():
        sh("ip", "netns", "add", node.name)
        host_end, node_end = f"{PREFIX}{node.index}h", f"{PREFIX}{node.index}n"
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end)
        sh("ip", "link", "set", host_end, "master", BRIDGE, "up")
        sh("ip", "link", "set", node_end, "netns", node.name)
        ns = ["ip", "netns", "exec", node.name]      # fine for `ip`, which needs no cgroups
        sh(*ns, "ip", "link", "set", node_end, "name", "eth0")
        sh(*ns, "ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
        sh(*ns, "ip", "link", "set", "eth0", "up")
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "route", "add", "default", "via", HOST_ADDRESS)
    if node.docker("version", check=False).returncode != 0:
        data = STATE / node.name / "docker"
        data.mkdir(parents=True, exist_ok=True)
        if not node.engine_config.exists():
            node.engine_config.write_text("{}\n")
        args = ["dockerd", "--config-file", str(node.engine_config), "--data-root", str(data),
                "--exec-root", str(node.run / "exec"), "-H", node.socket, "--pidfile", str(node.run / "docker.pid"),
                "--cgroup-parent", node.name, "--bip", f"172.{40 + node.index}.0.1/16"]
        # A host name of its own (a UTS namespace), which the swarm shows as the node's name.
        command = in_netns(node, "unshare", "--uts", "sh", "-c", f'hostname {node.name} && exec "$@"', "-", *args)
        with open(node.run / "dockerd.log", "ab") as log:
            subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    config = node.run / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {node.address}", "Port 22", f"HostKey {SSH / 'host_ed25519'}",
        f"PidFile {node.run / 'sshd.pid'}", f"AuthorizedKeysFile {SSH / 'authorized_keys'}",
        "PermitRootLogin prohibit-password", "Subsystem sftp /usr/lib/openssh/sftp-server", "PasswordAuthentication no", "UsePAM no", "StrictModes no",
        # A shell on the node talks to the node's engine (the filesystem, and so the default
        # socket path, is the host's).
        f"SetEnv DOCKER_HOST={node.socket}", ""]))
    if not alive(node.run / "sshd.pid"):
        Path("/run/sshd").mkdir(exist_ok=True)           # sshd's privilege-separation folder
        sh(*in_netns(node, "/usr/sbin/sshd", "-f", str(config)))


def alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().split()[0]), 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError, IndexError):
        return False


def wait_ready(node: Node, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while node.docker("version", check=False).returncode != 0 or ssh(node, "true", check=False).returncode != 0:
        if time.monotonic() > deadline:
            log = (node.run / "dockerd.log").read_text()[-3000:] if (node.run / "dockerd.log").exists() else ""
            raise RuntimeError(f"test node {node.name} did not come up in {seconds:.0f} s:\n{log}")
        time.sleep(0.5)


def ssh(node: Node, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ssh", *ssh_options(), f"root@{node.address}", command, check=check)


def ssh_options() -> list[str]:
    return ["-i", str(SSH / "id_ed25519"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def restart(node: Node) -> None:
    """Stop the node's engine and start it again with its settings file."""
    stop(node.run / "docker.pid")
    start_node(node)
    wait_ready(node)


def up(count: int = 3, gpu_nodes: tuple[int, ...] = (3,)) -> list[Node]:
    """Create (or find) nodes 1..count; the listed ones advertise one GPU each. Idempotent."""
    ensure_packages()
    ensure_keys()
    ensure_bridge()
    nodes = [Node(i, (f"GPU-{PREFIX}-n{i}-0",) if i in gpu_nodes else ()) for i in range(1, count + 1)]
    for node in nodes:
        start_node(node)
    for node in nodes:
        wait_ready(node)
    return nodes


def stop(pidfile: Path, seconds: float = 30) -> None:
    if not alive(pidfile):
        return
    pid = int(pidfile.read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while alive(pidfile) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pidfile):
        os.kill(pid, signal.SIGKILL)


def down() -> None:
    """Remove every node: containers, engines, SSH servers, namespaces, the bridge and the data."""
    for run in sorted(RUN.glob(f"{PREFIX}-n*")) if RUN.exists() else []:
        node = Node(int(run.name.rsplit("n", 1)[1]))
        if alive(run / "docker.pid"):
            node.docker("swarm", "leave", "--force", check=False)
            ids = node.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                node.docker("rm", "-f", *ids, check=False)
        stop(run / "sshd.pid")
        stop(run / "docker.pid")
        sh("ip", "netns", "del", node.name, check=False)
        sh("ip", "link", "del", f"{PREFIX}{node.index}h", check=False)
        # The engine's exec root holds mounts (netns files, overlay mounts) while it runs.
        subprocess.run(f"grep -o ' {run}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                       shell=True, check=False)
        subprocess.run(f"grep -o ' {STATE / node.name}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                       shell=True, check=False)
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(STATE / node.name, ignore_errors=True)
    chain = "DOCKER-USER" if sh("iptables", "-n", "-L", "DOCKER-USER", check=False).returncode == 0 else "FORWARD"
    for direction in ("-i", "-o"):
        while sh("iptables", "-D", chain, direction, BRIDGE, "-j", "ACCEPT", check=False).returncode == 0:
            pass
    while sh("iptables", "-t", "nat", "-D", *MASQUERADE, check=False).returncode == 0:
        pass
    sh("ip", "link", "del", BRIDGE, check=False)


def inventory(nodes: list[Node], managers: int = 1, **variables) -> dict:
    """An Ansible inventory of the nodes: the first `managers` are managers, the rest workers,
    and those with a GPU are in `gpu` too. Reached over SSH, as real machines are."""
    def host(node: Node) -> dict:
        return {"ansible_host": node.address, "ansible_user": "root",
                "ansible_ssh_private_key_file": str(SSH / "id_ed25519"),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": sys.executable,
                # The engine's socket, which the hub and the grading service mount, its settings
                # file, how to restart it, and the folder of the node's part of a backup: each
                # node's own here, because the nodes share this machine's filesystem (and its
                # /etc/docker/daemon.json).
                "docker_socket_path": node.socket.removeprefix("unix://"),
                "classroom_backup_dir": str(node.backup_dir),
                "docker_engine_config": str(node.engine_config),
                "docker_engine_restart": f"{sys.executable} {Path(__file__).resolve()} restart {node.index}"}

    def gpu_host(node: Node) -> dict:
        # The devices a real node's nvidia-smi would list; no NVIDIA runtime to make the default.
        return {"swarm_gpu_devices": list(node.gpus), "swarm_gpu_runtime": ""}
    names = {node.name: node for node in nodes}
    return {"all": {
        "vars": variables,
        "children": {
            "managers": {"hosts": {n: host(node) for n, node in list(names.items())[:managers]}},
            "workers": {"hosts": {n: host(node) for n, node in list(names.items())[managers:]}},
            "gpu": {"hosts": {n: gpu_host(node) for n, node in names.items() if node.gpus}},
        }}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up").add_argument("count", type=int, nargs="?", default=3)
    sub.add_parser("down")
    sub.add_parser("restart").add_argument("index", type=int)
    args = parser.parse_args(argv)
    if args.command == "up":
        print(json.dumps(inventory(up(args.count)), indent=2))
    elif args.command == "restart":
        restart(Node(args.index))
    else:
        down()


if __name__ == "__main__":
    main()
