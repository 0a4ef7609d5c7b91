"""Integrity artifacts the grading service signs, and the command that verifies them.

After grading a submission the service writes what it graded (the student, the
assignment, the submission's time, a SHA-256 of every submitted notebook, the
configuration of a personalised lab, each test cell's score and the values it
recorded) and signs it with an Ed25519 key derived from a secret of the
deployment. The student's own `submission_<student>.json` is their copy and proves
nothing; this one does. Anyone with the public key verifies an artifact later, and
a forged or edited one fails:

    python -m classroom_grading.integrity verify ARTIFACT.json... --public-key HEX
    make verify-artifact ARTIFACT=file.json      (on the deployment's host)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

KIND = "classroom graded submission"


class BadArtifact(ValueError):
    """An artifact that is not one this deployment signed, as it signed it."""


def private_key(secret: str):
    """The signing key (Ed25519), derived from the deployment's `artifact_secret`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not secret:
        raise ValueError("the artifact secret is empty; the deploy generates it in "
                         "STATE_DIR/hub/secrets/artifact_secret")
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"classroom-artifact\0{secret}".encode()).digest())


def public_key(secret: str) -> str:
    """The verifying key as 64 hex digits (publish it; it cannot sign)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(body: dict[str, Any], secret: str) -> dict[str, Any]:
    """The signed artifact: {"artifact": body, "signature": hex, "public_key": hex}."""
    key = private_key(secret)
    return {"artifact": body, "signature": key.sign(canonical(body)).hex(), "public_key": public_key(secret)}


def verify(document: Any, public_key_hex: str) -> dict[str, Any]:
    """The artifact's body when `document` was signed by the holder of `public_key_hex`;
    raises BadArtifact otherwise. The key inside the document is not trusted: a forger
    would put their own there."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(document, dict) or not isinstance(document.get("artifact"), dict) \
            or not isinstance(document.get("signature"), str):
        raise BadArtifact("not a signed artifact: expected {\"artifact\": {...}, \"signature\": HEX}")
    if document["artifact"].get("kind") != KIND:
        raise BadArtifact(f"not a graded-submission artifact (kind {document['artifact'].get('kind')!r})")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        signature = bytes.fromhex(document["signature"])
    except ValueError as error:
        raise BadArtifact(f"malformed key or signature ({error})") from None
    try:
        key.verify(signature, canonical(document["artifact"]))
    except InvalidSignature:
        raise BadArtifact("the signature does not match: the artifact was edited, or another key signed it") from None
    return document["artifact"]


def recorded_figures(outputs: list[Any]) -> dict[str, Any]:
    """The single numbers and short texts a test cell recorded: the figures an auditor reads."""
    from .records import from_outputs

    found = {}
    for name, recs in from_outputs(outputs).items():
        short = [r for r in recs if len(r["values"]) == 1 and (r["dtype"] != "text" or len(r["values"][0]) <= 400)]
        if len(short) == len(recs):
            values = [r["values"][0] for r in short]
            found[name] = values[0] if len(values) == 1 else values
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify artifacts signed by the grading service.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify signed artifacts (exit 1 if any fails)")
    check.add_argument("artifacts", nargs="+", type=Path)
    how = check.add_mutually_exclusive_group(required=True)
    how.add_argument("--public-key", help="the deployment's public key (64 hex digits; the grading page shows it)")
    how.add_argument("--secret-file", type=Path, help="the deployment's artifact_secret file (on its host)")
    args = parser.parse_args(argv)
    key = args.public_key or public_key(args.secret_file.read_text().strip())
    failed = 0
    for path in args.artifacts:
        try:
            body = verify(json.loads(path.read_text()), key)
        except (OSError, ValueError) as error:  # BadArtifact and JSON errors are ValueErrors
            print(f"FAIL {path}: {error}")
            failed += 1
            continue
        print(f"ok   {path}: {body.get('student')} / {body.get('assignment')} submitted {body.get('submitted_at')}, "
              f"score {body.get('score')} of {body.get('max_score')}, hash {body.get('short_hash')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
