"""Make the project's modules importable by the unit tests.

The folders are named for the architecture (`ansible/`, `hub/`, `images/`), not as
Python packages (`ansible` would even shadow Ansible itself), so their modules are
loaded from their paths here.
"""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hub"))
sys.path.insert(0, str(REPO / "images"))
sys.path.insert(0, str(REPO / "grading"))


def load(name: str, path: str):
    """Import the module at REPO/path under `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


load("classroom_driver", "ansible/classroom.py")
load("datafolder", "ansible/datafolder.py")
load("sync_course", "images/singleuser/sync_course.py")
load("swarm_engine", "ansible/filter_plugins/swarm_engine.py")
