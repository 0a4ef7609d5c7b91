"""The hub image: JupyterHub, the proxy and the classroom's hub package, as deployed."""
import json

from tests.integration.fixtures import run_in_image


def test_the_hub_image_has_jupyterhub_dockerspawner_and_the_proxy(images):
    result = run_in_image(images["hub"], "sh", "-c",
                          "jupyterhub --version; configurable-http-proxy --version; "
                          "python -c 'import dockerspawner, jupyterhub_idle_culler, nbgrader; print(dockerspawner.__version__)'")
    assert result.returncode == 0, result.stderr
    jupyterhub, proxy, dockerspawner = result.stdout.split()
    assert jupyterhub.startswith("6.1.") and dockerspawner.startswith("14.")
    assert proxy.split(".")[0].isdigit()


def test_the_hub_configuration_loads_with_the_classroom_classes(images, deployment):
    """Does jupyterhub_config.py, with the deployed settings, select the classroom's classes?"""
    result = run_in_image(
        images["hub"], "python", "-c",
        "import json; from traitlets.config import PyFileConfigLoader as L; "
        "c = L('jupyterhub_config.py', path='/srv/jupyterhub').load_config(); "
        "print(json.dumps([c.JupyterHub.authenticator_class, c.JupyterHub.spawner_class, "
        "c.JupyterHub.cleanup_servers, c.ClassroomSpawner.profiles[0]['image']]))",
        mounts={deployment.state_dir: "/srv/classroom"})
    assert result.returncode == 0, result.stderr[-3000:]
    authenticator, spawner, cleanup, image = json.loads(result.stdout)
    assert authenticator.endswith("RosterAuthenticator") and spawner.endswith("ClassroomSpawner")
    assert cleanup is False
    assert image == deployment.settings()["images"]["cpu"]
