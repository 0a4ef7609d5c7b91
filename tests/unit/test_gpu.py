"""Does each GPU go to one server at a time unless sharing is allowed?"""
import pytest

from classroom_hub.gpu import NoGPUAvailable, choose_gpu


def test_a_free_gpu_is_chosen_lowest_first():
    assert choose_gpu(["0", "1"], [], sharing=False) == "0"
    assert choose_gpu(["0", "1"], ["0"], sharing=False) == "1"


def test_no_two_servers_get_the_same_gpu_without_sharing():
    with pytest.raises(NoGPUAvailable, match="All 2 GPU"):
        choose_gpu(["0", "1"], ["0", "1"], sharing=False)


def test_with_sharing_the_least_used_gpu_is_chosen():
    assert choose_gpu(["0", "1"], ["0", "1", "0"], sharing=True) == "1"


def test_a_host_without_gpus_says_to_use_the_cpu_profile():
    with pytest.raises(NoGPUAvailable, match="CPU profile"):
        choose_gpu([], [], sharing=True)
