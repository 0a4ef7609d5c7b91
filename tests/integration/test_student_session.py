"""A student's first session, end to end, against a real hub spawning real containers."""
import pytest
import requests

from tests.integration.fixtures import Person, docker, wait_for

pytestmark = pytest.mark.usefixtures("explain")

TRAIN_A_TINY_MODEL = r"""
import os, torch, tensorflow as tf, keras, nncourse
torch.manual_seed(0)
X = torch.randn(256, 2); y = (X[:, 0] * X[:, 1] > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=0.05)
for _ in range(200):
    opt.zero_grad(); loss = torch.nn.functional.cross_entropy(model(X), y); loss.backward(); opt.step()
accuracy = (model(X).argmax(1) == y).float().mean().item()
tf_sum = float(tf.reduce_sum(tf.ones((3, 3))))
print(f"torch {torch.__version__} tf {tf.__version__} keras {keras.__version__} accuracy {accuracy:.2f} tf_sum {tf_sum}")
with open(os.path.expanduser("~/work-survives.txt"), "w") as f:
    f.write("trained to %.2f" % accuracy)
"""


@pytest.fixture(scope="module")
def alice(deployment):
    """Alice, logged in through the form, with her server running."""
    person = Person(deployment, "alice").start_session()
    return person


def test_a_rostered_student_logs_in_through_the_form_and_gets_a_server(alice, deployment):
    server = deployment.server("alice")
    assert server["ready"]
    assert docker("inspect", "--format", "{{.State.Running}}", deployment.container("alice")) == "true"


def test_the_course_notebooks_are_in_the_students_home(alice):
    listing = alice.server_api("GET", "/contents/course/00-welcome").json()
    names = [item["name"] for item in listing["content"]]
    assert "welcome.ipynb" in names


def test_torch_tensorflow_and_the_helper_package_train_a_tiny_model_in_a_kernel(alice):
    output = alice.run(TRAIN_A_TINY_MODEL)
    assert "torch 2.13.0" in output and "tf 2.21.0" in output
    accuracy = float(output.split("accuracy ")[1].split()[0])
    assert accuracy > 0.9, output
    assert "tf_sum 9.0" in output


def test_a_file_written_in_the_kernel_survives_stopping_and_restarting_the_server(alice, deployment):
    alice.run("open('/home/jovyan/restart-check.txt', 'w').write('still here')")
    before = docker("inspect", "--format", "{{.Id}}", deployment.container("alice"))
    deployment.stop_server("alice")
    deployment.api("POST", "/users/alice/server")
    alice.wait_ready()
    after = docker("inspect", "--format", "{{.Id}}", deployment.container("alice"))
    assert before != after, "the server was not really restarted"
    content = alice.server_api("GET", "/contents/restart-check.txt").json()["content"]
    assert content == "still here"


def test_the_server_runs_with_the_students_limits(alice, deployment):
    assert deployment.limits("alice") == {"memory": 2 * 1024**3, "cpus": 1.0, "shm": 512 * 1024**2, "pids": 512}
    # frameworks use as many threads as the CPU limit allows, not one per host core
    assert alice.run("import os, torch; print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads())").split() == ["1", "1"]


def test_the_installed_environment_is_read_only_but_user_installs_work(alice):
    output = alice.run(r"""
import subprocess, sys
plain = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "/tmp/pkg"],
                       capture_output=True, text=True)
print("PLAIN", plain.returncode)
user = subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--no-index", "--no-build-isolation", "/tmp/pkg"],
                      capture_output=True, text=True)
print("USER", user.returncode, user.stderr[-300:])
""".replace("import subprocess, sys", """import subprocess, sys, os
os.makedirs("/tmp/pkg/tinypkg", exist_ok=True)
open("/tmp/pkg/tinypkg/__init__.py", "w").write("VALUE = 42\\n")
open("/tmp/pkg/pyproject.toml", "w").write('[build-system]\\nrequires=["setuptools"]\\nbuild-backend="setuptools.build_meta"\\n[project]\\nname="tinypkg"\\nversion="1.0"\\n')"""))
    assert "PLAIN 1" in output, output
    assert "USER 0" in output, output
    assert alice.run("import tinypkg, site; print(tinypkg.VALUE, tinypkg.__file__.startswith(site.USER_SITE))").split() == ["42", "True"]


def test_tensorboard_opens_through_the_hub_and_shows_the_students_runs(alice, deployment):
    """A run logged from the kernel shows in TensorBoard at /user/NAME/tensorboard/, through the
    hub's proxy (jupyter-server-proxy starts TensorBoard on first use), and nobody else's token opens it."""
    alice.run("from torch.utils.tensorboard import SummaryWriter\n"
              "w = SummaryWriter('/home/jovyan/runs/tb-test')\n"
              "[w.add_scalar('loss', 1.0 / (s + 1), s) for s in range(3)]\nw.close()")
    base = f"{deployment.user_url('alice')}/tensorboard"
    headers = {"Authorization": f"token {alice.token}"}

    def page():
        response = alice.session.get(f"{base}/", headers=headers, timeout=120)
        return response if response.status_code == 200 else None
    html = wait_for(page, 180, "TensorBoard to answer through the hub")
    assert "tensorboard" in html.text.lower()
    runs = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 and "runs/tb-test" in r.text else None)(
        alice.session.get(f"{base}/data/runs", headers=headers, timeout=60)), 120, "the run to show in TensorBoard")
    assert "runs/tb-test" in runs
    bob = Person(deployment, "bob")
    bob.login()
    bob.create_token()
    other = requests.get(f"{base}/data/runs", headers={"Authorization": f"token {bob.token}"}, timeout=60,
                         allow_redirects=False)
    assert other.status_code in (302, 403), other.status_code


SERVED_APP = '''
from fastapi import FastAPI
app = FastAPI()

@app.get("/predict")
def predict(x: float = 1.0):
    return {"y": 2 * x}
'''

SERVE_THE_APP = f"""
import pathlib, subprocess, sys
pathlib.Path("/home/jovyan/served.py").write_text({SERVED_APP!r})
process = subprocess.Popen([sys.executable, "-m", "uvicorn", "served:app", "--host", "127.0.0.1",
                            "--port", "8765", "--log-level", "warning"], cwd="/home/jovyan",
                           start_new_session=True)
print(process.pid)
"""


def test_a_web_app_served_from_the_students_server_opens_through_the_hub(alice, deployment):
    """Unit 18 serves a FastAPI app on localhost inside the student's server; the student's
    browser reaches it at /user/NAME/proxy/PORT/ through the hub (jupyter-server-proxy, loaded
    on first use), and nobody else's token does."""
    pid = alice.run(SERVE_THE_APP).strip()
    url = f"{deployment.user_url('alice')}/proxy/8765/predict?x=3"
    headers = {"Authorization": f"token {alice.token}"}
    try:
        answer = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            alice.session.get(url, headers=headers, timeout=60)), 120, "the app to answer through the hub")
        assert answer == {"y": 6.0}
        bob = Person(deployment, "bob")
        bob.login()
        bob.create_token()
        other = requests.get(url, headers={"Authorization": f"token {bob.token}"}, timeout=60,
                             allow_redirects=False)
        assert other.status_code in (302, 403), other.status_code
    finally:
        alice.run(f"import os, signal\nos.killpg({pid}, signal.SIGTERM)")
