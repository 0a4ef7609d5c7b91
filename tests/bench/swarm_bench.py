"""Swarm figures for `make bench` (alone: `make bench-swarm`): the same class-start burst and
grading throughput on a swarm of three nodes and on a swarm of one, each deployed from
tests/bench/classroom-swarm-bench.yml through the playbooks (tests/swarm/classroom.py).

- burst: 90 students log in at once to stopped servers (a cold class start: every server is
  started by the burst), each timed from the login form until their JupyterLab answers; with
  p50, p95, max, failures, and on which nodes the servers ran;
- grading: 120 submissions of the small lab queued at once (tests/bench/grading_bench.py), until
  all are graded; with the grading sandboxes each node's engine started.

On three nodes, students' servers and grading sandboxes run on the two workers (the manager runs
the hub); on one node, everything runs on it. The test nodes are network namespaces of this one
machine and share its cores and memory: the figures show what spreading costs or gains in
scheduling and networking, not the capacity more machines would add.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from tests.bench import grading_bench
from tests.integration.fixtures import REPO, Person
from tests.swarm import classroom as swarm_classroom

CONFIG = REPO / "tests/bench/classroom-swarm-bench.yml"
RESULTS = REPO / "build/bench-swarm.json"


def per_node(deployed: swarm_classroom.Swarm, task_prefix: str) -> dict[str, int]:
    """How many running tasks whose names start with `task_prefix` each node has."""
    counts = {}
    for node in deployed.nodes:
        names = deployed.manager.docker("node", "ps", node.name, "--filter", "desired-state=running",
                                        "--format", "{{.Name}}").stdout.split()
        counts[node.name] = sum(name.startswith(task_prefix) for name in names)
    return counts


def sandbox_starts(deployed: swarm_classroom.Swarm, since: int, name: str) -> dict[str, int]:
    """How many grading sandboxes each node's engine started since `since` (a Unix time)."""
    counts = Counter()
    for node in deployed.nodes:
        events = node.docker("events", "--since", str(since), "--until", str(int(time.time()) + 1),
                             "--filter", "event=start", "--filter", "label=org.classroom.role=sandbox",
                             "--filter", f"label=org.classroom.deployment={name}", "--format", "{{.ID}}")
        counts[node.name] = len(events.stdout.split())
    return dict(counts)


def measure(images: dict[str, str], nodes: int, students: int, submissions: int) -> dict:
    """Deploy on `nodes` fresh nodes, run the burst and the grading, remove the nodes."""
    from tests.bench.bench import burst, stop_all  # bench.py runs this module after its own figures

    settings = yaml.safe_load(CONFIG.read_text())
    name = settings["name"]
    users = [f"s{i:02d}" for i in range(1, students + 1)]
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder, \
            swarm_classroom.swarm(CONFIG, images, Path(folder), count=nodes, gpu_nodes=()) as deployed, \
            swarm_classroom.reached(CONFIG, deployed) as deployment:
        result = {"nodes": nodes, "deploy_s": round(deployed.deploy_seconds, 1)}
        print(f"  {nodes} node(s): deployed in {result['deploy_s']} s; {students} students log in at once",
              flush=True)
        result["burst"] = burst(deployment, users, timeout=900)
        result["burst"]["servers_per_node"] = per_node(deployed, f"{name}-user-")
        stop_all(deployment, users)

        print(f"  {nodes} node(s): {submissions} submissions graded at once", flush=True)
        teacher = Person(deployment, "teacher")
        teacher.login()
        teacher.create_token()
        grading_bench.release(deployment, teacher, settings["course_id"])
        grading = deployed.container(f"{name}-grading")
        copy_in = grading_bench.copy_to_inbound(grading, ("docker", "-H", deployed.manager.socket))
        since = int(time.time())
        result["grading"] = grading_bench.throughput(deployment, teacher, submissions, copy_in=copy_in)
        result["grading"]["sandboxes_per_node"] = sandbox_starts(deployed, since, name)
    return result


def run(images: dict[str, str], students: int = 90, submissions: int = 120) -> dict:
    """Both swarms, three nodes first; the results by node count."""
    return {"host_cpus": int(subprocess.check_output(["nproc"]).strip()),
            "three_nodes": measure(images, 3, students, submissions),
            "one_node": measure(images, 1, students, submissions)}


def rows(results: dict) -> list[tuple[str, str, str]]:
    """The table's rows: each figure on three nodes beside one node."""
    table = []
    for key in ("three_nodes", "one_node"):
        r = results[key]
        b, g = r["burst"], r["grading"]
        label = f"swarm, {r['nodes']} node{'s' if r['nodes'] > 1 else ''}"
        table.append((f"{label}: first deploy", f"{r['deploy_s']} s", "images seeded on the manager"))
        table.append((f"{label}: burst of {b['students']}, cold",
                      f"p50 {b['p50_s']} s  p95 {b['p95_s']} s  max {b['max_s']} s  failures {b['failures']}",
                      "servers: " + ", ".join(f"{n} {c}" for n, c in b["servers_per_node"].items())))
        table.append((f"{label}: grading {g['submissions']}",
                      f"{g['per_minute']} submissions/min ({g['seconds']} s, {len(g['wrong_or_failed'])} wrong)",
                      "sandboxes: " + ", ".join(f"{n} {c}" for n, c in g["sandboxes_per_node"].items())))
    return table


def print_table(table: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in table)
    print(f"\n{'measure':<{width}}  {'result':<62}  where")
    for measure_name, value, where in table:
        print(f"{measure_name:<{width}}  {value:<62}  {where}")


def main(argv: list[str] | None = None) -> int:
    """Alone: build the images with a single-host deploy of the bench instance, then measure."""
    from tests.bench.bench import BENCH_CONFIG
    from tests.integration.fixtures import deploy, docker, driver

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=90)
    parser.add_argument("--submissions", type=int, default=120)
    args = parser.parse_args(argv)
    deployment = deploy(BENCH_CONFIG)
    images = {"hub": docker("inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub"),
              **deployment.settings()["images"]}
    driver("remove", "--config", str(BENCH_CONFIG), "--delete-volumes")
    results = run(images, args.students, args.submissions)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(rows(results))
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
