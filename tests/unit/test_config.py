"""Does the operator file fail before anything changes, naming the key and what was expected?"""
from pathlib import Path

import pytest

from classroom_driver import ConfigError, load_config, merge


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "classroom.yml"
    path.write_text(text)
    return path


def test_defaults_alone_are_a_valid_config():
    config = load_config(None)
    assert config["name"] == "classroom"
    assert config["hub"]["port"] == 8000
    assert config["roster"] == []


def test_an_operator_value_overrides_only_its_own_key(tmp_path):
    config = load_config(write(tmp_path, "hub:\n  port: 9000\nroster:\n  - username: ada\n"))
    assert config["hub"]["port"] == 9000
    assert config["hub"]["bind_address"] == "0.0.0.0"
    assert config["roster"] == [{"username": "ada", "role": "student"}]


def test_an_unknown_key_is_named_with_its_path_and_the_allowed_keys(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "limits:\n  student:\n    memroy: 2G\n"))
    message = str(error.value)
    assert "limits.student: unknown key(s) memroy" in message
    assert "expected one of: cpus, memory" in message


def test_a_wrong_value_names_its_path_and_what_was_expected(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "hub:\n  port: 80000\nroster:\n  - username: Bad Name\n"))
    message = str(error.value)
    assert "hub.port: got 80000" in message
    assert "roster[0].username: got \"Bad Name\", expected lowercase letters" in message
    assert "2 problem(s)" in message


def test_a_duplicate_roster_entry_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[1\].username: 'ada' is listed twice"):
        load_config(write(tmp_path, "roster:\n  - username: ada\n  - username: ada\n"))


def test_the_operator_account_name_is_reserved(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[0\].username"):
        load_config(write(tmp_path, "roster:\n  - username: admin\n"))


def test_a_password_hash_must_be_bcrypt(tmp_path):
    with pytest.raises(ConfigError, match=r"roster\[0\].password_hash: .*bcrypt"):
        load_config(write(tmp_path, "roster:\n  - username: ada\n    password_hash: secret\n"))


def test_tls_without_files_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tls: enabled is true but cert_file or key_file is empty"):
        load_config(write(tmp_path, "tls:\n  enabled: true\n"))


def test_a_plain_http_port_needs_tls_and_a_port_of_its_own(tmp_path):
    with pytest.raises(ConfigError, match="tls.http_port: 8080 redirects plain HTTP to HTTPS, which needs"):
        load_config(write(tmp_path, "tls:\n  http_port: 8080\n"))
    with pytest.raises(ConfigError, match="tls.http_port: 443 is hub.port too"):
        load_config(write(tmp_path, "hub:\n  port: 443\ntls:\n  enabled: true\n  cert_file: /c.pem\n"
                                    "  key_file: /k.pem\n  http_port: 443\n"))


def test_broken_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3, column 9"):
        load_config(write(tmp_path, "hub:\n  port: 1\n  bind: : x\n"))


def test_a_missing_file_says_how_to_pass_one(tmp_path):
    with pytest.raises(ConfigError, match="CONFIG="):
        load_config(tmp_path / "nope.yml")


def test_merge_replaces_lists_and_merges_mappings():
    assert merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]}) == {"a": {"b": 1, "c": 3}, "l": [2]}


def test_a_prestart_schedule_entry_must_be_days_and_a_time(tmp_path):
    assert load_config(write(tmp_path, "prestart:\n  schedule: ['mon,wed 09:50', 'daily 13:05']\n"))["prestart"]["schedule"]
    with pytest.raises(ConfigError, match=r"prestart.schedule\[0\]: got \"monday 9am\", expected DAYS HH:MM"):
        load_config(write(tmp_path, "prestart:\n  schedule: ['monday 9am']\n"))


def certificate(tmp_path: Path, names: list[str]) -> Path:
    """A self-signed PEM certificate for `names` (subject alternative names)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    path = tmp_path / f"{len(names)}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_text("unused")
    return path


def test_per_user_subdomains_are_on_by_default_on_localhost():
    hub = load_config(None)["hub"]
    assert hub["user_subdomains"] is True and hub["domain"] == "localhost"


def test_per_user_subdomains_need_a_host_name_not_an_address(tmp_path):
    with pytest.raises(ConfigError, match=r"hub.domain: '10.1.2.3' is an IP address.*wildcard DNS"):
        load_config(write(tmp_path, "hub:\n  domain: 10.1.2.3\n"))
    assert load_config(write(tmp_path, "hub:\n  domain: 10.1.2.3\n  user_subdomains: false\n"))
    with pytest.raises(ConfigError, match=r"hub.domain: got \"Class_Room\""):
        load_config(write(tmp_path, "hub:\n  domain: Class_Room\n"))


def test_the_public_url_must_name_the_domain(tmp_path):
    with pytest.raises(ConfigError, match=r"hub.public_url: its host 'other.example.org' is not hub.domain"):
        load_config(write(tmp_path, "hub:\n  domain: nn.example.org\n  public_url: https://other.example.org/\n"))


def test_a_certificate_must_cover_the_domain_and_its_wildcard(tmp_path):
    narrow = certificate(tmp_path, ["nn.example.org"])
    text = f"hub:\n  domain: nn.example.org\ntls:\n  enabled: true\n  cert_file: {narrow}\n  key_file: {tmp_path}/key.pem\n"
    with pytest.raises(ConfigError, match=r"does not cover \*.nn.example.org; per-user subdomains need"):
        load_config(write(tmp_path, text))
    wide = certificate(tmp_path, ["nn.example.org", "*.nn.example.org"])
    assert load_config(write(tmp_path, text.replace(str(narrow), str(wide))))["tls"]["enabled"]
