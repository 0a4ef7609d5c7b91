"""A swarm node's engine settings, as Ansible filters.

    nvidia_devices   the devices a GPU node gives out, from `nvidia-smi -L`: each GPU's UUID,
                     or the UUIDs of its MIG devices where the GPU is partitioned (each MIG
                     device then goes to one server, as a whole GPU does)
    engine_settings  the engine's configuration file with the swarm's settings: no container
                     gains privileges, and on a GPU node its devices advertised as swarm
                     generic resources (`node-generic-resources`), with the runtime that hands
                     a container the device the swarm gave it as the default
"""
from __future__ import annotations

import json
import re

GPU = re.compile(r"^GPU \d+: .*\(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$")
MIG = re.compile(r"^\s+MIG .*\(UUID: (MIG-[0-9A-Za-z/-]+)\)\s*$")


def nvidia_devices(smi_list: str) -> list[str]:
    devices: list[list[str]] = []        # per GPU: its own UUID, then its MIG devices' UUIDs
    for line in smi_list.splitlines():
        if gpu := GPU.match(line):
            devices.append([gpu.group(1)])
        elif (mig := MIG.match(line)) and devices:
            devices[-1].append(mig.group(1))
    return [uuid for gpu in devices for uuid in (gpu[1:] or gpu)]


def engine_settings(existing: str, path: str, kind: str, devices: list[str], runtime: str,
                    no_new_privileges: bool = True) -> dict:
    """`existing` (the file's text, empty when there is none) with the swarm's settings set.

    Every other setting is kept, and so are advertised resources of other kinds; a node with
    no device advertises none of `kind`."""
    try:
        settings = json.loads(existing) if existing.strip() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): fix or remove it, then deploy again") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold a JSON object of the engine's settings: fix it, then deploy again")
    resources = [r for r in settings.pop("node-generic-resources", []) if not r.startswith(f"{kind}=")]
    resources += [f"{kind}={device}" for device in devices]
    if resources:
        settings["node-generic-resources"] = resources
    if runtime:
        settings["default-runtime"] = runtime
    if no_new_privileges:
        settings["no-new-privileges"] = True
    return settings


class FilterModule:
    def filters(self):
        return {"nvidia_devices": nvidia_devices, "engine_settings": engine_settings}
