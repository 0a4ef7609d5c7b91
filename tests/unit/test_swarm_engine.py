"""A swarm node's engine settings: no container gains privileges; a GPU node gives out the
devices `nvidia-smi -L` lists, and advertises them (ansible/filter_plugins/swarm_engine.py)."""
import json

import pytest

from swarm_engine import engine_settings, nvidia_devices

TWO_GPUS = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-7af7a99b-1c2d-4e5f-8a9b-0c1d2e3f4a5b)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-e934c858-6a7b-4c8d-9e0f-1a2b3c4d5e6f)
"""

ONE_SPLIT = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
  MIG 3g.20gb     Device  1: (UUID: MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7)
"""


def test_each_whole_gpu_is_one_device():
    assert nvidia_devices(TWO_GPUS) == ["GPU-7af7a99b-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                                        "GPU-e934c858-6a7b-4c8d-9e0f-1a2b3c4d5e6f"]


def test_a_split_gpu_gives_its_mig_devices_instead_of_itself():
    assert nvidia_devices(ONE_SPLIT) == ["MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",
                                         "MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb",
                                         "GPU-0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"]


def test_no_gpu_and_an_error_message_give_no_device():
    assert nvidia_devices("") == []
    assert nvidia_devices("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") == []


def test_the_devices_are_advertised_and_the_other_settings_kept():
    existing = json.dumps({"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
                           "log-driver": "journald", "node-generic-resources": ["FPGA=fpga0", "GPU=GPU-old"]})
    settings = engine_settings(existing, "/etc/docker/daemon.json", "GPU", ["GPU-a", "GPU-b"], "nvidia")
    assert settings == {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
                        "log-driver": "journald", "default-runtime": "nvidia", "no-new-privileges": True,
                        "node-generic-resources": ["FPGA=fpga0", "GPU=GPU-a", "GPU=GPU-b"]}


def test_a_node_without_gpus_gets_only_no_new_privileges():
    assert engine_settings("", "/etc/docker/daemon.json", "GPU", [], "") == {"no-new-privileges": True}
    # A node taken out of the gpu group stops advertising its devices; other kinds stay.
    was_gpu = json.dumps({"node-generic-resources": ["GPU=GPU-a"], "debug": True})
    assert engine_settings(was_gpu, "daemon.json", "GPU", [], "") == {"debug": True, "no-new-privileges": True}


def test_the_same_settings_twice_are_unchanged():
    once = engine_settings("{}", "daemon.json", "GPU", ["GPU-a"], "nvidia")
    assert engine_settings(json.dumps(once), "daemon.json", "GPU", ["GPU-a"], "nvidia") == once


@pytest.mark.parametrize("text, complaint", [("{\"debug\": true,", "is not valid JSON"),
                                             ("[]", "must hold a JSON object")])
def test_a_broken_settings_file_is_named_and_left_alone(text, complaint):
    with pytest.raises(ValueError, match=f"/etc/docker/daemon.json {complaint}.*deploy again"):
        engine_settings(text, "/etc/docker/daemon.json", "GPU", ["GPU-a"], "nvidia")
