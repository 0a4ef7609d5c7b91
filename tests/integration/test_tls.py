"""HTTPS end to end: a classroom deployed with a certificate (a test CA's wildcard), plain HTTP
redirected to HTTPS on every origin, a login and a student's server on their own subdomain over
verified TLS, and the browser test over HTTPS.

A second, small deployment beside the main test instance (its own name, ports and state folder),
removed with its volumes at the end.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest
import requests
import yaml

from .fixtures import ARTIFACTS, Person, deploy, driver, wait_for

NAME = "classroom-tls"
DOMAIN = "classroom-tls.localhost"
HTTPS_PORT, HTTP_PORT = 18443, 18081
STATE = Path("/var/lib/classroom-tls")


def make_certificates(folder: Path) -> tuple[Path, Path, Path, str]:
    """A test CA, and a certificate it signs for DOMAIN and *.DOMAIN; returns the CA file, the
    certificate, its key and the base64 SHA-256 of the certificate's public key (for Chromium)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "classroom test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN), x509.DNSName(f"*.{DOMAIN}")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return ca_file, cert_file, key_file, base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """The HTTPS classroom; requests and websockets in this process trust the test CA meanwhile."""
    ca_file, cert_file, key_file, spki = make_certificates(STATE / "certs")
    config_file = tmp_path_factory.mktemp("tls") / "classroom-tls.yml"
    config_file.write_text(yaml.safe_dump({
        "course_id": "tls-course", "name": NAME, "state_dir": str(STATE),
        "hub": {"port": HTTPS_PORT, "bind_address": "127.0.0.1", "domain": DOMAIN},
        "tls": {"enabled": True, "cert_file": str(cert_file), "key_file": str(key_file), "http_port": HTTP_PORT},
        "roster": [{"username": "ada"}],
        "limits": {"student": {"memory": "1G", "cpus": 1.0}, "instructor": {"memory": "1G", "cpus": 1.0},
                   "shm_size": "256M", "pids": 256},
        "culler": {"enabled": False, "timeout_seconds": 3600, "every_seconds": 300, "activity_seconds": 300},
        "grading": {"workers": 1},
    }))
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "WEBSOCKET_CLIENT_CA_BUNDLE")}
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["WEBSOCKET_CLIENT_CA_BUNDLE"] = str(ca_file)
    try:
        deployment = deploy(config_file)
        deployment.spki = spki
        yield deployment
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if os.environ.get("KEEP_DEPLOYMENT") != "1":
            removed = driver("remove", "--config", str(config_file), "--delete-volumes")
            assert removed.returncode == 0, removed.stdout[-3000:]


def test_plain_http_is_redirected_to_https_on_every_origin(secure):
    """The hub's origin and a person's own subdomain each answer plain HTTP with a redirect to
    the same place over HTTPS; nothing is served in the clear."""
    for host, path in ((DOMAIN, "/hub/login?next=%2Fhub%2F"), (f"ada.{DOMAIN}", "/user/ada/lab")):
        response = requests.get(f"http://{host}:{HTTP_PORT}{path}", allow_redirects=False, timeout=30)
        assert response.status_code == 301, (host, response.status_code, response.text[:300])
        assert response.headers["Location"] == f"https://{host}:{HTTPS_PORT}{path}"
    with pytest.raises(requests.exceptions.ConnectionError):  # the HTTPS port speaks only TLS
        requests.get(f"http://{DOMAIN}:{HTTPS_PORT}/hub/login", timeout=30)


def test_a_student_logs_in_and_works_on_their_subdomain_over_verified_tls(secure):
    """Certificate checks on (the test CA): login, the server on ada's own origin, a kernel
    over a TLS websocket; the login cookie is Secure."""
    assert secure.url == f"https://{DOMAIN}:{HTTPS_PORT}"
    ada = Person(secure, "ada").start_session()
    assert all(cookie.secure for cookie in ada.session.cookies if cookie.name.startswith("jupyterhub"))
    assert ada.run("print(6 * 7)").strip() == "42"
    with pytest.raises(requests.exceptions.SSLError):  # and a client without the CA refuses it
        requests.get(f"{secure.url}/hub/login", verify=requests.certs.where(), timeout=30)


def test_the_browser_logs_in_over_https_and_shows_jupyterlab(secure):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            # trust exactly this deployment's key, as a browser with the campus CA would
            args=["--no-sandbox", "--disable-gpu", f"--ignore-certificate-errors-spki-list={secure.spki}",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(f"http://{DOMAIN}:{HTTP_PORT}/hub/login")  # typed without https://
            assert page.url.startswith(f"https://{DOMAIN}:{HTTPS_PORT}/hub/login")
            page.fill("#username_input", "ada")
            page.fill("#password_input", secure.passwords["ada"])
            page.click("#login_submit")
            page.wait_for_url(f"https://ada.{DOMAIN}:{HTTPS_PORT}/user/ada/lab**", timeout=300_000)
            page.locator(".jp-DirListing-item", has_text="00-welcome").wait_for(timeout=120_000)
            wait_for(lambda: page.evaluate("location.protocol") == "https:", 10, "an https page")
        finally:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-https.png"))
            browser.close()
