"""Helpers for each image's own tests: run a command or a notebook inside an image."""
import subprocess
from pathlib import Path

import pytest


def run_in_image(image: str, *command: str, mounts: dict[Path, str] | None = None,
                 options: tuple[str, ...] = (), timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `command` in a throwaway container of `image`, with read-only mounts."""
    args = ["docker", "run", "--rm", "--network", "none", "--shm-size", "512m", *options]
    for source, target in (mounts or {}).items():
        args += ["-v", f"{source}:{target}:ro"]
    return subprocess.run([*args, image, *command], capture_output=True, text=True, timeout=timeout)


def execute_notebook(image: str, notebook: Path, options: tuple[str, ...] = ()) -> str:
    """Execute a notebook inside `image`; fail with the cell's error when any cell fails."""
    result = run_in_image(
        image, "jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout",
        "--ExecutePreprocessor.timeout=600", f"/tests/{notebook.name}",
        mounts={notebook.parent: "/tests"}, options=options)
    if result.returncode != 0:
        pytest.fail(f"{notebook.name} failed in {image}:\n{result.stderr[-5000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def images(deployment):
    """The images the test deployment built and runs: {"hub": ..., "cpu": ..., "cuda": ...}."""
    settings = deployment.settings()
    hub = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return {"hub": hub, **settings["images"]}
