"""Benchmarks of the classroom (`make bench`): printed as a table and written to build/bench.json.

- single-spawn latency: one student logs in to a stopped server, until JupyterLab answers;
- class-start bursts: N students log in at once (all within the same second, well inside the
  10 s window of the target), each timed from submitting the login form until their JupyterLab
  page answers, with p50, p95, max and failures; once with servers prestarted before the class
  (the way to run a class), once cold (the plain DockerSpawner experience, for comparison);
- idle memory per student server (no kernel running);
- image sizes;
- `make deploy` of the bench instance from a cold Docker cache (its images, their build
  stages and dangling layers removed; the base image and the downloaded wheels kept) and from a
  warm one (images present); each is a first deploy of the instance, removed before;
- grading throughput against nbgrader's serial autograde, and submit-to-feedback latency;
- a whole class under load (tests/bench/class_bench.py): 60 students at once through login,
  fetch, edit, submit and feedback, with p50/p95 of each step and a check of the gradebook;
- on Docker Swarm (tests/bench/swarm_bench.py): a cold burst of 90 students and the grading of
  120 submissions on a swarm of three test nodes, beside the same on one node.

Targets on a 2-core machine: burst of 30 prestarted p95 <= 10 s with no failures; idle server
<= 100 MiB; next, 60 students with p95 <= 5 s. The bench deploys its own instance
(tests/bench/classroom-bench.yml) and removes it afterwards.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench import class_bench, grading_bench, swarm_bench
from tests.integration.fixtures import REPO, Person, deploy, docker, driver, wait_for

BENCH_CONFIG = REPO / "tests/bench/classroom-bench.yml"
RESULTS = REPO / "build/bench.json"


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0 < fraction <= 1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def time_to_lab(person: Person, timeout: float = 300) -> float:
    """Seconds from submitting the login form until the person's JupyterLab page answers."""
    began = time.monotonic()
    person.login()
    url = f"{person.deployment.user_url(person.name)}/lab"
    while time.monotonic() - began < timeout:
        response = person.session.get(url, timeout=timeout)
        if response.status_code == 200 and response.url.startswith(url) and "JupyterLab" in response.text:
            return time.monotonic() - began
        time.sleep(0.25)
    raise TimeoutError(f"{person.name}: no JupyterLab after {timeout} s")


def burst(deployment, users: list[str], timeout: float = 300) -> dict:
    """Log all `users` in at once; return the latency summary."""
    def one(user: str) -> float | None:
        try:
            return time_to_lab(Person(deployment, user), timeout)
        except Exception as exc:  # noqa: BLE001 - a failure is a figure here
            print(f"  {user}: {exc}", file=sys.stderr)
            return None

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        results = list(pool.map(one, users))
    times = [t for t in results if t is not None]
    return {"students": len(users), "failures": len(users) - len(times),
            "p50_s": round(statistics.median(times), 2) if times else None,
            "p95_s": round(percentile(times, 0.95), 2) if times else None,
            "max_s": round(max(times), 2) if times else None}


def stop_all(deployment, users: list[str]) -> None:
    """Stop the users' servers and wait until they are gone."""
    for user in users:
        deployment.api("DELETE", f"/users/{user}/server")
    for user in users:
        wait_for(lambda u=user: deployment.server(u) is None, 180, f"{user}'s server to stop")


def prestart(deployment, users: list[str]) -> float:
    """Start the users' servers ahead of the class with classroom-prestart; return its seconds."""
    began = time.monotonic()
    subprocess.run(["docker", "exec", f"{deployment.name}-hub", "classroom-prestart", "--concurrency", "4",
                    "--users", *users], check=True, capture_output=True, text=True)
    return time.monotonic() - began


def idle_memory(deployment) -> dict:
    """Memory of running student servers with no kernel, in MiB."""
    names = docker("ps", "--filter", f"label=org.classroom.deployment={deployment.name}",
                   "--format", "{{.Names}}").split()
    usage = []
    for line in docker("stats", "--no-stream", "--format", "{{.MemUsage}}", *names).splitlines():
        value, unit = line.split("/")[0].strip()[:-3], line.split("/")[0].strip()[-3:]
        usage.append(float(value) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit])
    return {"servers": len(usage), "mean_mib": round(statistics.mean(usage), 1), "max_mib": round(max(usage), 1)}


def image_sizes(deployment) -> dict:
    """Sizes of the deployment's images, in MB."""
    images = dict(deployment.settings()["images"])
    images["hub"] = docker("inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub")
    return {kind: round(int(docker("image", "inspect", "--format", "{{.Size}}", image)) / 1e6)
            for kind, image in images.items() if image}


def deploy_times():
    """Seconds of a first deploy of the bench instance with a cold Docker cache, then a warm one;
    returns them and the deployment the warm one left running."""
    deployed = deploy(BENCH_CONFIG)  # to learn which images this tree builds
    images = [image for image in deployed.settings()["images"].values() if image]
    images.append(docker("inspect", "--format", "{{.Config.Image}}", f"{deployed.name}-hub"))
    times = {}
    for kind in ("cold", "warm"):
        driver("remove", "--config", str(BENCH_CONFIG), "--delete-volumes")
        if kind == "cold":
            subprocess.run(["docker", "rmi", "-f", *images], capture_output=True)
            subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
        deployed = deploy(BENCH_CONFIG)
        times[f"{kind}_s"] = round(deployed.deploy_seconds, 1)
    return times, deployed


def main() -> int:
    """Deploy the bench instance, measure, print, write JSON, remove the instance; then the
    same images on a swarm of three nodes and of one (tests/bench/swarm_bench.py)."""
    deploy_seconds, deployment = deploy_times()
    images = {"hub": docker("inspect", "--format", "{{.Config.Image}}", f"{deployment.name}-hub"),
              **deployment.settings()["images"]}
    students = [f"s{i:02d}" for i in range(1, 61)]
    results: dict = {"host_cpus": int(subprocess.check_output(["nproc"]).strip()), "deploy": deploy_seconds}
    try:
        singles = []
        for _ in range(3):
            singles.append(time_to_lab(Person(deployment, "s01")))
            stop_all(deployment, ["s01"])
        results["single_spawn"] = {"cold_median_s": round(statistics.median(singles), 2),
                                   "runs_s": [round(s, 2) for s in singles]}

        results["prestart_30_s"] = round(prestart(deployment, students[:30]), 1)
        results["burst_30_prestarted"] = burst(deployment, students[:30])
        results["idle_memory"] = idle_memory(deployment)

        results["prestart_60_s"] = round(prestart(deployment, students), 1)
        results["burst_60_prestarted"] = burst(deployment, students)
        results["class_60"] = class_bench.run(deployment, students)
        stop_all(deployment, students)

        results["burst_30_cold"] = burst(deployment, students[:30])
        stop_all(deployment, students[:30])
        results["image_sizes_mb"] = image_sizes(deployment)
        results["grading"] = grading_bench.run(deployment)
    finally:
        driver("remove", "--config", str(BENCH_CONFIG), "--delete-volumes")
    results["swarm"] = swarm_bench.run(images)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("make deploy, cold Docker cache", f"{results['deploy']['cold_s']} s", "images built"),
        ("make deploy, warm Docker cache", f"{results['deploy']['warm_s']} s", "images present"),
        ("single spawn, cold (median of 3)", f"{results['single_spawn']['cold_median_s']} s", ""),
        ("prestart 30 servers", f"{results['prestart_30_s']} s", "before the class"),
    ]
    for key, target in [("burst_30_prestarted", "p95 <= 10 s, 0 failures"),
                        ("burst_60_prestarted", "p95 <= 5 s (next target)"), ("burst_30_cold", "for comparison")]:
        b = results[key]
        rows.append((key.replace("_", " "), f"p50 {b['p50_s']} s  p95 {b['p95_s']} s  max {b['max_s']} s  "
                     f"failures {b['failures']}/{b['students']}", target))
    whole = results["class_60"]
    rows.append(("a class of 60 at once: completed", f"{whole['completed']}/{whole['students']} in "
                 f"{whole['wall_s']} s; gradebook one right score each: "
                 f"{whole['gradebook_exactly_one_right_score']}", "all, and True"))
    for step, figures in whole["steps"].items():
        rows.append((f"  {step}", f"p50 {figures['p50_s']} s  p95 {figures['p95_s']} s  "
                     f"({figures['done']} done)", ""))
    memory = results["idle_memory"]
    rows.append(("idle server memory", f"mean {memory['mean_mib']} MiB  max {memory['max_mib']} MiB "
                 f"({memory['servers']} servers)", "<= 100 MiB"))
    for kind, size in results["image_sizes_mb"].items():
        rows.append((f"image size: {kind}", f"{size} MB", ""))
    grading = results["grading"]
    rows.append(("grading throughput, service", f"{grading['service']['per_minute']} submissions/min "
                 f"({grading['service']['submissions']} in {grading['service']['seconds']} s, "
                 f"{len(grading['service']['wrong_or_failed'])} wrong)", ">= 1.5x nbgrader serial"))
    rows.append(("grading throughput, nbgrader serial", f"{grading['nbgrader_serial']['per_minute']} submissions/min",
                 f"speedup {grading['speedup']}x"))
    rows.append(("submit to feedback, empty queue", f"p50 {grading['latency']['p50_s']} s  "
                 f"p95 {grading['latency']['p95_s']} s", ""))
    flood = grading["submit_under_flood"]
    rows.append(("submit while another student floods", f"p50 {flood['p50_s']} s  p95 {flood['p95_s']} s "
                 f"({flood['flood_requests']} flood uploads refused: {flood['flood_statuses']})", ""))
    rows += swarm_bench.rows(results["swarm"])
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'result':<60}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<60}  {target}")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
