"""google-auth against `pushpool mock`: a service-account JWT grant and the
metadata-server credentials must yield tokens the mock's Cloud Run API takes;
a key the mock does not know must be refused with invalid_grant.

Usage: python3 google_auth.py BASE_URL SA_JSON OTHER_SA_JSON
"""
import json
import os
import sys
import urllib.request

from google.auth import exceptions
from google.auth.transport.requests import Request
from google.oauth2 import service_account


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def call_cloud_run(base, token):
    url = base + "/google/v2/projects/interop/locations/us-central1/jobs"
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.load(resp)


def credentials(path, token_uri):
    with open(path) as f:
        info = json.load(f)
    info["token_uri"] = token_uri
    return service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"])


def main():
    base, sa, other = sys.argv[1:4]
    token_uri = base + "/google/token"

    creds = credentials(sa, token_uri)
    creds.refresh(Request())
    if not creds.token or not creds.expiry:
        fail("no token or expiry after refresh")
    status, body = call_cloud_run(base, creds.token)
    if status != 200 or "jobs" not in body:
        fail("Cloud Run list with the SA token: %s %s" % (status, body))

    try:
        credentials(other, token_uri).refresh(Request())
        fail("a key unknown to the mock got a token")
    except exceptions.RefreshError as e:
        if "invalid_grant" not in str(e):
            fail("unknown key refused without invalid_grant: %s" % e)

    # The metadata server, as on Cloud Run / GCE (GCE_METADATA_ROOT in 1.5).
    os.environ["GCE_METADATA_ROOT"] = base.split("://", 1)[1]
    os.environ["GCE_METADATA_HOST"] = base.split("://", 1)[1]
    from google.auth import compute_engine
    meta = compute_engine.Credentials()
    meta.refresh(Request())
    status, _ = call_cloud_run(base, meta.token)
    if status != 200:
        fail("Cloud Run list with the metadata token: %s" % status)
    print("ok: google-auth interop (service account and metadata server)")


if __name__ == "__main__":
    main()
