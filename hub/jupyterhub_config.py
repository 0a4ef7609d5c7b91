# JupyterHub configuration of the classroom.
#
# Nothing here is edited per site: every value an operator changes comes from the
# operator file, which the deploy validates and renders into /srv/classroom/hub.json.
# Each setting below says why it is set.
import json
import sys
from pathlib import Path

from classroom_grading.resolver import use_system_resolver

c = get_config()  # noqa: F821  (provided by JupyterHub)

STATE = Path("/srv/classroom")
settings = json.loads((STATE / "hub.json").read_text())
name = settings["name"]


def secret(filename):
    """A secret the deploy generated on the host (mode 0600, stable across redeploys)."""
    return (STATE / "secrets" / filename).read_text().strip()


# --- Hub and proxy -----------------------------------------------------------
# The proxy runs in its own container, so a hub restart or upgrade never drops
# students' connections to their running servers.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{name}-proxy:8001"
c.ConfigurableHTTPProxy.auth_token = secret("proxy_auth_token")
# The proxy and the services are reached by name: look names up afresh each time,
# so that one whose container was replaced is found at once (classroom_grading/resolver.py).
use_system_resolver()
# Listen on the private Docker network, where the proxy and the servers reach us
# by container name.
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = 8081
c.JupyterHub.hub_connect_ip = f"{name}-hub"
# The database lives on the hub's named volume and survives redeploys.
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
c.JupyterHub.cookie_secret = bytes.fromhex(secret("cookie_secret"))
# A hub restart must leave students' servers running: they are found again from
# the database when the hub comes back.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.template_vars = {"announcement_login": f"Course {settings['course_id']}"}

# --- Origins ------------------------------------------------------------------
# Students are untrusted, and a page served from a student's server runs with the
# rights of whoever opens it on that origin. So every server gets an origin of its
# own (<user>.<domain>) and so does every service (<service>--service.<domain>): a
# student's page can then neither read hub pages, nor mint tokens, nor reach a
# service as its visitor. The proxy routes by host name (--host-routing).
origins = settings["origins"]
if origins["user_subdomains"]:
    c.JupyterHub.subdomain_host = origins["public_url"]
    # `__Host-` cookies cannot be set by a subdomain (no cookie tossing); browsers
    # accept them over HTTPS only.
    c.JupyterHub.cookie_host_prefix_enabled = origins["https"]

# --- Who logs in --------------------------------------------------------------
# Only the roster, against bcrypt hashes.
c.JupyterHub.authenticator_class = "classroom_hub.authenticator.RosterAuthenticator"
c.RosterAuthenticator.roster_file = str(STATE / "roster.json")
roster = json.loads((STATE / "roster.json").read_text())["users"]
# Everyone on the roster exists in the hub from the start, in the group of their
# role, so that an instructor or a schedule can start a class's servers before
# anyone logs in. The deploy restarts the hub when the roster changes.
c.Authenticator.allowed_users = set(roster)
c.Authenticator.admin_users = {"admin"}
c.JupyterHub.load_groups = {
    group: {"users": sorted(n for n, entry in roster.items() if entry["role"] == role)}
    for group, role in (("students", "student"), ("instructors", "instructor"))
}
# Admins run the hub; they do not get into students' servers.
c.JupyterHub.admin_access = False

# Instructors start and stop their students' servers (for example, the whole
# class before a lecture) from the admin page, without being hub admins.
c.JupyterHub.load_roles = [
    {
        "name": "instructor",
        "groups": ["instructors"],
        "scopes": ["self", "admin-ui", "list:users", "read:users!group=students",
                   "read:servers!group=students", "servers!group=students",
                   "access:services!service=formgrader", "access:services!service=grading"],
    },
    # Everyone's server reaches the grading service as its owner (fetch, submit,
    # feedback); the service itself decides what each person may see.
    {"name": "user", "scopes": ["self", "access:services!service=grading"]},
    # The grading service asks the hub who the instructors are, and who the students
    # are (it prepares personalised labs' references for each ahead of the deadline).
    {"name": "grading", "services": ["grading"], "scopes": ["read:groups", "read:users:groups"]},
    {
        "name": "prestart",
        "services": ["prestart"],
        "scopes": ["list:users", "read:users", "read:servers", "servers", "read:groups"],
    },
]

# --- Services -------------------------------------------------------------------
# Starts a class's servers ahead of time: `classroom-prestart` in the hub
# container uses this token, and with a schedule the hub runs it as a service.
prestart_service = {"name": "prestart", "api_token": secret("prestart_token")}
schedule = settings["prestart"]["schedule"]
if schedule:
    prestart_service["command"] = (
        ["classroom-prestart", "--group", "students", "--timezone", settings["prestart"]["timezone"]]
        + [arg for entry in schedule for arg in ("--schedule", entry)])
services = [
    prestart_service,
    # Assignments: the grading service (exchange API, sandboxed autograding,
    # progress, export) and nbgrader's formgrader for instructors, each in its own
    # container, opened in a tab of its own (the hub forbids framing).
    {"name": "grading", "url": f"http://{name}-grading:8000", "api_token": secret("grading_token"),
     "oauth_no_confirm": True, "display": True, "info": {"description": "Grading progress and export"}},
    {"name": "formgrader", "url": f"http://{name}-formgrader:8888", "api_token": secret("formgrader_token"),
     "oauth_no_confirm": True, "display": True, "info": {"description": "nbgrader formgrader"}},
]
culler = settings["culler"]
if culler["enabled"]:
    # Stops servers idle for longer than the timeout. A kernel running code counts
    # as activity even when it prints nothing (the image's classroom_busy
    # extension), so a silent training loop is spared.
    services.append({
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                    f"--timeout={culler['timeout_seconds']}",
                    f"--cull-every={culler['every_seconds']}"],
    })
    c.JupyterHub.load_roles.append({
        "name": "idle-culler",
        "services": ["idle-culler"],
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    })
c.JupyterHub.services = services

# --- Servers --------------------------------------------------------------------
# On a swarm, each server is a service that the swarm places on one of its nodes
# (classroom_hub.swarm); on one host, a container of this host's engine.
swarm = settings["swarm"]
c.JupyterHub.spawner_class = ("classroom_hub.swarm.ClassroomSwarmSpawner" if swarm["enabled"]
                              else "classroom_hub.spawner.ClassroomSpawner")
c.ClassroomSpawner.deployment_label = name
profiles = [{"name": "cpu", "display_name": "CPU", "image": settings["images"]["cpu"], "gpu": False}]
if settings["gpu"]["devices"] or swarm["gpu_nodes"]:
    profiles.append({"name": "gpu", "display_name": "GPU (NVIDIA, CUDA)",
                     "image": settings["images"]["cuda"], "gpu": True})
c.ClassroomSpawner.profiles = profiles
c.ClassroomSpawner.gpu_devices = settings["gpu"]["devices"]
c.ClassroomSpawner.gpu_sharing = settings["gpu"]["sharing"]
# Each server carries its person's identity for personalised labs: their name and a
# key derived from this secret and the term (the grading service derives the same).
c.ClassroomSpawner.identity_secret = secret("identity_secret")
c.ClassroomSpawner.identity_term = settings["term"]
# Servers join the private network and are reached by their internal address.
c.DockerSpawner.network_name = f"{name}-net"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.name_template = f"{name}-user-{{username}}"
# A stopped server's container is removed (a swarm service always is); the person's
# work lives in their own named volume, mounted as home, and survives.
if not swarm["enabled"]:
    c.DockerSpawner.remove = True
volumes = {f"{name}-home-{{username}}": "/home/jovyan"}
if settings["data_dir"]:
    # The course's data sets, read-only for everyone.
    volumes[settings["data_dir"]] = {"bind": "/srv/course-data", "mode": "ro"}
c.DockerSpawner.volumes = volumes
c.DockerSpawner.notebook_dir = "/home/jovyan"
c.Spawner.default_url = "/lab/tree/course"
# Students' limits by default, instructors' by group.
limits = settings["limits"]
c.Spawner.mem_limit = limits["student"]["memory"]
c.Spawner.cpu_limit = float(limits["student"]["cpus"])
c.ClassroomSpawner.group_limits = {
    "instructors": {"mem_limit": limits["instructor"]["memory"], "cpu_limit": float(limits["instructor"]["cpus"])},
}
# PyTorch DataLoader workers share tensors through /dev/shm (64M by default), and a
# fork bomb stops at the process limit. Student code gets no way to gain privileges inside
# its container. On a swarm, services have no shm size and no per-service no-new-privileges
# (Engine 20.10): /dev/shm is a tmpfs mount, and every node's engine sets no-new-privileges
# for all its containers (ansible/roles/swarm).
if swarm["enabled"]:
    # The managers run the hub and the registry; students' CPU servers go to the workers.
    c.ClassroomSwarmSpawner.cpu_constraints = ["node.role==worker"] if swarm["workers"] else []
    c.ClassroomSwarmSpawner.shm_size = limits["shm_size"]
    c.ClassroomSwarmSpawner.pids_limit = limits["pids"]
    c.ClassroomSwarmSpawner.gpu_kind = swarm["gpu_kind"]
else:
    c.DockerSpawner.extra_host_config = {
        "shm_size": limits["shm_size"],
        "pids_limit": limits["pids"],
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
    }
c.DockerSpawner.environment = {
    "NNCOURSE_DATA_DIR": "/srv/course-data",
    "CLASSROOM_COURSE_ID": settings["course_id"],
    "CLASSROOM_GRADING_URL": f"http://{name}-grading:8000/services/grading/",
    # How often the server reports its activity (busy kernels included) to the hub.
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(culler["activity_seconds"]),
}
if not origins["user_subdomains"]:
    # The single-origin fallback: a server serves JupyterLab extensions' files
    # without login, so none may come from a folder the student writes (their
    # Jupyter data folder moves to the image's read-only one; runtime files stay
    # in home). It closes that hole only: see `hub.user_subdomains`.
    c.DockerSpawner.environment.update({
        "JUPYTER_DATA_DIR": "/opt/venv/share/jupyter",
        "JUPYTER_RUNTIME_DIR": "/home/jovyan/.local/share/jupyter/runtime",
    })
# A server's own token identifies its owner to the grading service, and no more.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                 "access:services!service=grading"]
# First starts of many servers at once are slow on small hosts; don't give up early.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 180
