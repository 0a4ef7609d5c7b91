"""`make data`: the data folder filled from a folder or a mirror URL, every file checked."""
import functools
import hashlib
import http.server
import io
import tarfile
import threading

import pytest
import yaml

import datafolder
from classroom_driver import main


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324


def cifar_like() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("set-batches/data_batch_1", b"one"), ("set-batches/test_batch", b"two")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    files = {"digits-a.gz": b"digits a", "digits-b.gz": b"digits b", "set.tar.gz": cifar_like()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    catalogue = {
        "digits": {"folder": "digits", "files": [{"name": n, "md5": md5(files[n])} for n in ("digits-a.gz", "digits-b.gz")]},
        "set": {"folder": ".", "files": [{"name": "set.tar.gz", "md5": md5(files["set.tar.gz"]), "unpack": "set-batches"}]},
        "absent": {"folder": "absent", "files": [{"name": "nowhere.gz", "md5": "0" * 32}]},
    }
    return folder, catalogue


def test_sets_are_copied_unpacked_and_reported(tmp_path, source):
    folder, catalogue = source
    data = tmp_path / "data"
    report = datafolder.fill(data, str(folder), catalogue)
    assert sorted(report.installed) == ["digits", "set"] and report.missing == {"absent": ["nowhere.gz"]}
    assert (data / "digits" / "digits-a.gz").read_bytes() == b"digits a"
    assert (data / "set-batches" / "test_batch").read_bytes() == b"two"
    assert not list(data.glob(".staging-*"))
    again = datafolder.fill(data, str(folder), catalogue)
    assert sorted(again.present) == ["digits", "set"] and not again.installed


def test_a_damaged_file_is_refused_and_nothing_of_its_set_is_installed(tmp_path, source):
    folder, catalogue = source
    (folder / "digits-b.gz").write_bytes(b"truncated")
    report = datafolder.fill(tmp_path / "data", str(folder), catalogue)
    assert "digits" in report.corrupt and "expected" in report.corrupt["digits"]
    assert not (tmp_path / "data" / "digits").exists()


def test_an_archive_that_escapes_its_folder_is_refused(tmp_path, source):
    folder, catalogue = source
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("set-batches/../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (folder / "set.tar.gz").write_bytes(buffer.getvalue())
    catalogue["set"]["files"][0]["md5"] = md5(buffer.getvalue())
    with pytest.raises(ValueError, match="unexpected member"):
        datafolder.fill(tmp_path / "data", str(folder), {"set": catalogue["set"]})
    assert not (tmp_path / "escaped").exists()


def test_a_mirror_url_works_like_a_folder(tmp_path, source):
    folder, catalogue = source
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        report = datafolder.fill(tmp_path / "data", f"http://127.0.0.1:{server.server_address[1]}/", catalogue)
    finally:
        server.shutdown()
    assert sorted(report.installed) == ["digits", "set"] and "absent" in report.missing


def test_the_catalogue_names_the_files_the_course_reads():
    catalogue = yaml.safe_load(datafolder.CATALOGUE.read_text())
    assert {f["name"] for f in catalogue["mnist"]["files"]} == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz"}
    assert catalogue["mnist"]["folder"] == "mnist"
    assert catalogue["cifar10"]["files"][0]["unpack"] == "cifar-10-batches-py"


def test_make_data_needs_a_data_folder_and_a_real_source(tmp_path, capsys):
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({"data_dir": ""}))
    assert main(["data", "--source", str(tmp_path), "--config", str(config)]) == 2
    assert "data_dir is empty" in capsys.readouterr().err
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    assert main(["data", "--source", str(tmp_path / "nope"), "--config", str(config)]) == 2
    assert "neither a folder nor a URL" in capsys.readouterr().err
    assert main(["data", "--source", str(tmp_path), "--config", str(config)]) == 0
    assert "2 missing" in capsys.readouterr().out
