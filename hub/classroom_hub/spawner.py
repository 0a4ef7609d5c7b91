"""DockerSpawner with the classroom's profiles (CPU, GPU) and per-group limits."""
from __future__ import annotations

import asyncio
import html
from typing import Any

from dockerspawner import DockerSpawner
from traitlets import Bool, Dict, List, Unicode

from .gpu import NoGPUAvailable, choose_gpu

GPU_LABEL = "org.classroom.gpu"


class ClassroomSpawner(DockerSpawner):
    """Spawns each person's server from the CPU or CUDA image with their group's limits.

    With one profile the spawn page is skipped (a class starting at once should
    not wait on a form). A GPU profile is offered only when the host has GPUs;
    each GPU goes to one server at a time unless `gpu_sharing` is on.
    """

    profiles = List(
        Dict(),
        config=True,
        help="""Profiles a person may choose from, first is the default.

        Each is {"name": "cpu", "display_name": "CPU", "image": "classroom-cpu:latest", "gpu": false}.
        A profile with "gpu": true gets one of `gpu_devices`.
        """,
    )

    group_limits = Dict(
        config=True,
        help="""Resource limits by group: {"instructors": {"mem_limit": "4G", "cpu_limit": 2.0}}.

        A person in several listed groups gets the largest of each limit; a person
        in none keeps `mem_limit` and `cpu_limit`. Groups come from the roster.
        """,
    )

    gpu_devices = List(
        Unicode(),
        config=True,
        help="GPU ids of the host (as nvidia-smi numbers them); empty when it has none.",
    )

    gpu_sharing = Bool(
        False,
        config=True,
        help="Let several servers use the same GPU. Off: a GPU serves one server at a time.",
    )

    deployment_label = Unicode(
        "classroom",
        config=True,
        help="Value of the org.classroom.deployment label on this hub's containers, to count its GPUs apart from other deployments'.",
    )

    identity_secret = Unicode(
        "",
        config=True,
        help="""The deployment's identity secret. With it, each server gets NNCOURSE_IDENTITY, the
        person's name and key for personalised labs (classroom_grading.identity); empty: none.""",
    )

    identity_term = Unicode(
        "",
        config=True,
        help="The term, part of every identity: change it to give every student new lab configurations.",
    )

    _gpu_lock = asyncio.Lock()

    def _options_form_default(self) -> str:
        if len(self.profiles) < 2:
            return ""
        choices = []
        for index, profile in enumerate(self.profiles):
            checked = " checked" if index == 0 else ""
            name = html.escape(profile["name"])
            label = html.escape(profile.get("display_name", profile["name"]))
            choices.append(f'<label class="form-check"><input class="form-check-input" type="radio" '
                           f'name="profile" value="{name}"{checked}> {label}</label>')
        return "<p>Where should your server run?</p>" + "\n".join(choices)

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        """Keep only a known profile name from the submitted form."""
        wanted = formdata.get("profile", [""])[0]
        names = [p["name"] for p in self.profiles]
        return {"profile": wanted if wanted in names else (names[0] if names else "")}

    def selected_profile(self) -> dict[str, Any]:
        """The profile this spawn uses: the chosen one, else the first."""
        wanted = (self.user_options or {}).get("profile")
        for profile in self.profiles:
            if profile["name"] == wanted:
                return profile
        return self.profiles[0] if self.profiles else {}

    def apply_group_limits(self) -> None:
        """Raise memory and CPU limits to the largest granted by the person's groups."""
        groups = {group.name for group in self.user.groups}
        for group, limits in self.group_limits.items():
            if group not in groups:
                continue
            if "mem_limit" in limits:
                mem = self._mem_to_bytes(limits["mem_limit"])
                if self.mem_limit is None or mem > self.mem_limit:
                    self.mem_limit = mem
            if "cpu_limit" in limits and (self.cpu_limit is None or limits["cpu_limit"] > self.cpu_limit):
                self.cpu_limit = float(limits["cpu_limit"])

    @staticmethod
    def _mem_to_bytes(value: str | int) -> int:
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        if isinstance(value, int):
            return value
        return int(float(value[:-1]) * units[value[-1].upper()])

    async def _gpus_in_use(self) -> list[str]:
        containers = await self.docker(
            "containers", filters={"label": [f"{GPU_LABEL}", f"org.classroom.deployment={self.deployment_label}"]})
        return [c["Labels"][GPU_LABEL] for c in containers if c["Labels"].get(GPU_LABEL)]

    def thread_environment(self) -> dict[str, str]:
        """Thread counts that match the CPU limit.

        Without them PyTorch, NumPy and TensorFlow start one thread per host core
        while the container may use only `cpu_limit` of them, and small models run
        several times slower from the contention.
        """
        threads = str(max(1, int(self.cpu_limit))) if self.cpu_limit else None
        if threads is None:
            return {}
        return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "TF_NUM_INTRAOP_THREADS")}

    def identity_environment(self) -> dict[str, str]:
        """NNCOURSE_IDENTITY: this person's own identity, from which nncourse.personal derives their
        configuration of each personalised lab. It holds their key, never the secret."""
        if not self.identity_secret:
            return {}
        from classroom_grading.identity import identity_json

        return {"NNCOURSE_IDENTITY": identity_json(self.identity_secret, self.identity_term, self.user.name)}

    def prepare(self, profile: dict[str, Any]) -> dict[str, str]:
        """Apply the profile's image, the group limits and the environment; return the labels
        every server of this deployment carries."""
        if profile.get("image"):
            self.image = profile["image"]
        self.apply_group_limits()
        self.environment = {**self.environment, **self.thread_environment(), **self.identity_environment()}
        labels = dict(self.extra_create_kwargs.get("labels", {}))
        labels["org.classroom.deployment"] = self.deployment_label
        return labels

    async def start(self) -> Any:
        """Apply the profile and limits, then start the container."""
        profile = self.selected_profile()
        labels = self.prepare(profile)
        self.extra_create_kwargs = dict(self.extra_create_kwargs)
        host_config = dict(self.extra_host_config)
        host_config.pop("device_requests", None)
        labels.pop(GPU_LABEL, None)
        if not profile.get("gpu"):
            self.extra_create_kwargs["labels"] = labels
            self.extra_host_config = host_config
            return await super().start()
        # Choosing a GPU and creating the container that holds it happen under one
        # lock, so two students starting together never get the same GPU.
        async with self._gpu_lock:
            try:
                device = choose_gpu(self.gpu_devices, await self._gpus_in_use(), self.gpu_sharing)
            except NoGPUAvailable as exc:
                raise RuntimeError(str(exc)) from exc
            labels[GPU_LABEL] = device
            host_config["device_requests"] = [
                {"Driver": "nvidia", "DeviceIDs": [device], "Capabilities": [["gpu"]]}]
            self.extra_create_kwargs["labels"] = labels
            self.extra_host_config = host_config
            self.log.info("Giving GPU %s to %s", device, self.user.name)
            return await super().start()
