"""The CUDA single-user image: PyTorch's CUDA build with its libraries; a GPU step where there is a GPU."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.fixtures import execute_notebook, run_in_image

HERE = Path(__file__).resolve().parent


def host_has_gpu() -> bool:
    """Whether nvidia-smi on this host lists a GPU."""
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def test_torch_in_the_cuda_image_is_the_cuda_build_and_its_libraries_load(images):
    assert images["cuda"], "the test deployment did not build the CUDA image"
    result = run_in_image(images["cuda"], "python", "-c",
                          "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())")
    assert result.returncode == 0, result.stderr[-3000:]
    version, cuda, cudnn = result.stdout.split()
    assert version.startswith("2.13.0+cu") and cuda.startswith("13.") and int(cudnn) > 0


def test_the_smoke_notebook_runs_inside_the_cuda_image(images):
    options = ("--gpus", "all") if host_has_gpu() else ()
    executed = execute_notebook(images["cuda"], HERE / "smoke.ipynb", options=options)
    if host_has_gpu():
        assert "trained a step on" in executed
    else:
        assert "no GPU on this host" in executed
