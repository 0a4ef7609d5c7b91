"""Each person's identity for personalised labs, derived from a per-course secret.

The hub gives every server `NNCOURSE_IDENTITY` = {"student": NAME, "key": KEY}, and
the grading service hands the submitting student's identity to the sandbox (see
`nncourse.personal`, which turns a key into a lab's configuration). The key is an
HMAC of the person's hub name under the deployment's secret and the term: a student
knows their own key, never the secret, so nobody computes another's configuration,
and changing the term (`grading.term` in the operator file) gives everyone new ones.
One definition, used by the hub and the grading service alike.
"""
from __future__ import annotations

import hashlib
import hmac
import json


def personal_key(secret: str, term: str, student: str) -> str:
    """The 64-hex-digit key of `student` in `term` under the deployment's `secret`."""
    if not secret:
        raise ValueError("personal_key: the identity secret is empty; the deploy generates it in "
                         "STATE_DIR/hub/secrets/identity_secret")
    message = f"nncourse-identity\0{term}\0{student}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_json(secret: str, term: str, student: str) -> str:
    """What `nncourse.personal` reads: {"student": NAME, "key": KEY} as JSON."""
    return json.dumps({"student": student, "key": personal_key(secret, term, student)})
