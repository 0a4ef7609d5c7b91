"""Do the wheel and build tools find what is missing and notice every changed input?"""
import pytest

import build
import wheelhouse


def test_pins_are_read_and_unpinned_lines_are_refused(tmp_path):
    reqs = tmp_path / "r.txt"
    reqs.write_text("# comment\nTorch==2.13.0+cpu\nnumpy==2.4.6  # why\n")
    assert wheelhouse.read_pins(reqs) == {"torch": "2.13.0+cpu", "numpy": "2.4.6"}
    reqs.write_text("numpy>=2\n")
    with pytest.raises(SystemExit, match=r"r.txt:1: expected a pin"):
        wheelhouse.read_pins(reqs)


def test_only_wheels_not_yet_in_the_wheelhouse_are_missing(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_text("")
    (tmp_path / "jupyter_server-2.21.1-py3-none-any.whl").write_text("")
    pins = {"torch": "2.13.0+cpu", "jupyter-server": "2.21.1", "numpy": "2.4.6"}
    assert wheelhouse.missing_pins(pins, tmp_path) == ["numpy==2.4.6"]
    assert wheelhouse.missing_pins({"torch": "2.13.0"}, tmp_path) == ["torch==2.13.0"]


def test_the_fingerprint_changes_with_content_names_arguments_and_base(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x")
    (tmp_path / "w").mkdir()
    (tmp_path / "w/a-1-py3-none-any.whl").write_text("1234")
    files = build.context_files([("Dockerfile", tmp_path / "Dockerfile"), ("wheels", tmp_path / "w")])
    base = build.fingerprint(files, [], "sha256:1")
    assert build.fingerprint(files, [], "sha256:1") == base
    assert build.fingerprint(files, ["A=1"], "sha256:1") != base
    assert build.fingerprint(files, [], "sha256:2") != base
    (tmp_path / "Dockerfile").write_text("FROM y")
    assert build.fingerprint(files, [], "sha256:1") != base


def test_build_steps_are_read_from_buildkit_and_classic_output():
    """Does the progress file get the lines that start a step, and nothing else?"""
    assert build.step_of("#12 [packages 3/9] RUN pip install x\n") == "[packages 3/9] RUN pip install x"
    assert build.step_of("Step 3/9 : RUN echo hi") == "Step 3/9 : RUN echo hi"
    for other in ("#12 12.3 Collecting numpy", "#5 DONE 0.1s", "#1 [internal] load build definition"):
        assert build.step_of(other) is None
    assert len(build.step_of("#2 [a 1/2] RUN " + "x" * 300)) == 110


def test_the_driver_prints_each_step_once_and_reminds_of_a_long_one(tmp_path, capsys):
    """A cold deploy's builds show as they go: new steps, then a reminder while one runs long."""
    from classroom_driver import BUILD_FINISHED, BuildProgress

    assert BUILD_FINISHED == build.FINISHED
    progress_file = tmp_path / "progress"
    follower = BuildProgress(progress_file, remind_after=0.0)
    assert follower.poll() == []  # no build yet: nothing, no error
    progress_file.write_text("classroom/cpu: [packages 1/9] FROM base\nclassroom/cpu: [packages 2/9] RUN pip")
    assert [line.split("] ", 1)[1] for line in follower.poll()] == [
        "building classroom/cpu: [packages 1/9] FROM base"]  # the half-written line waits
    with progress_file.open("a") as handle:
        handle.write(" install torch\n")
    assert follower.poll()[0].endswith("building classroom/cpu: [packages 2/9] RUN pip install torch")
    assert "still building classroom/cpu: [packages 2/9]" in follower.poll()[0]
    with progress_file.open("a") as handle:
        handle.write(f"classroom/cpu: {BUILD_FINISHED} 312 s\n")
    assert follower.poll()[0].endswith(f"building classroom/cpu: {BUILD_FINISHED} 312 s")
    assert follower.poll() == []  # finished: no more reminders
    assert "still building" in capsys.readouterr().out
