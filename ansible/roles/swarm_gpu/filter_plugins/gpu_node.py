"""What a GPU node's Docker engine tells the swarm, as Ansible filters.

    nvidia_devices   the devices a node gives out, from `nvidia-smi -L`: each GPU's UUID, or
                     the UUIDs of its MIG devices where the GPU is partitioned (each MIG device
                     then goes to one server, as a whole GPU does)
    engine_settings  the engine's configuration file with the node's devices advertised as
                     swarm generic resources (`node-generic-resources`) and the runtime that
                     hands a container the device the swarm gave it made the default
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


def engine_settings(existing: str, path: str, kind: str, devices: list[str], runtime: str) -> dict:
    """`existing` (the file's text, empty when there is none) with the GPU settings set.

    Every other setting is kept; advertised devices of other kinds are kept too."""
    try:
        settings = json.loads(existing) if existing.strip() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): fix or remove it, then deploy again") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold a JSON object of the engine's settings: fix it, then deploy again")
    others = [r for r in settings.get("node-generic-resources", []) if not r.startswith(f"{kind}=")]
    settings["node-generic-resources"] = others + [f"{kind}={device}" for device in devices]
    if runtime:
        settings["default-runtime"] = runtime
    return settings


class FilterModule:
    def filters(self):
        return {"nvidia_devices": nvidia_devices, "engine_settings": engine_settings}
