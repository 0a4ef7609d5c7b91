"""Who cannot get in, and what one student cannot reach of another's."""
import pytest
import requests

from tests.integration.fixtures import Person

pytestmark = pytest.mark.usefixtures("explain")


@pytest.fixture(scope="module")
def alice(deployment):
    person = Person(deployment, "alice").start_session()
    person.run("open('/home/jovyan/alice-secret.txt', 'w').write('alice only')")
    return person


@pytest.fixture(scope="module")
def bob(deployment):
    person = Person(deployment, "bob").start_session()
    return person


@pytest.mark.parametrize("name,password", [("mallory", "whatever-password"), ("alice", "wrong-password"), ("alice", "")])
def test_an_unrostered_name_or_a_wrong_password_cannot_log_in(deployment, name, password):
    person = Person(deployment, name, password)
    response = person.login()
    assert not person.logged_in
    assert response.status_code == 403
    assert "Invalid username or password" in response.text


def test_bob_cannot_use_alices_server_through_the_proxy(alice, bob, deployment):
    with_token = requests.get(f"{deployment.user_url('alice')}/api/contents/alice-secret.txt",
                              headers={"Authorization": f"token {bob.token}"}, timeout=60)
    assert with_token.status_code == 403
    assert alice.server_api("GET", "/contents/alice-secret.txt").status_code == 200
    with_session = bob.session.get(f"{deployment.user_url('alice')}/api/contents/alice-secret.txt",
                                   allow_redirects=True, timeout=60)
    assert "alice only" not in with_session.text
    assert with_session.status_code in (403, 404) or "/hub/login" in with_session.url


def test_bob_cannot_reach_alices_server_directly_over_the_network(alice, bob, deployment):
    output = bob.run(f"""
import urllib.request, urllib.error
try:
    urllib.request.urlopen("http://{deployment.container('alice')}:8888/user/alice/api/contents/alice-secret.txt", timeout=10)
    print("READ")
except urllib.error.HTTPError as e:
    print("HTTP", e.code)
except OSError as e:
    print("NOROUTE", e)
""")
    assert "READ" not in output and ("HTTP 403" in output or "NOROUTE" in output), output


def test_bobs_code_sees_neither_alices_files_nor_the_docker_socket(alice, bob):
    output = bob.run("""
import os
print("home:", sorted(os.listdir("/home")))
found = [os.path.join(d, f) for top in ("/home", "/srv", "/mnt", "/tmp", "/opt", "/var", "/media")
         for d, _, files in os.walk(top) for f in files if f == "alice-secret.txt"]
print("secret:", found)
print("socket:", os.path.exists("/var/run/docker.sock"))
print("uid:", os.getuid())
""")
    assert "home: ['jovyan']" in output
    assert "secret: []" in output
    assert "socket: False" in output
    assert "uid: 1000" in output


def test_bobs_server_token_cannot_use_the_hubs_admin_api(bob, deployment):
    output = bob.run(f"""
import os, urllib.request, urllib.error
token = os.environ["JUPYTERHUB_API_TOKEN"]
for path in ["/users", "/users/alice", "/users/alice/server"]:
    method = "DELETE" if path.endswith("server") else "GET"
    request = urllib.request.Request(os.environ["JUPYTERHUB_API_URL"] + path, method=method,
                                     headers={{"Authorization": "token " + token}})
    try:
        urllib.request.urlopen(request, timeout=10); print(path, "ALLOWED")
    except urllib.error.HTTPError as e:
        print(path, e.code)
""")
    assert "ALLOWED" not in output, output
    assert deployment.server("alice")["ready"], "bob stopped alice's server"
