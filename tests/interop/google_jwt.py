"""Verify pushpool's service-account JWT assertion with google-auth.

Usage: python3 google_jwt.py ASSERTION_FILE CERT_PEM SA_JSON

- google.auth.jwt.decode must accept it with the key's certificate, and
  reject it with a tampered signature;
- header (alg RS256, typ JWT, kid) and claims (iss, scope, aud, iat, exp =
  iat + 3600) must match what google-auth's own Credentials put in the
  assertion it makes for the same key file.
"""
import base64
import json
import sys
import time

from google.auth import crypt, jwt
from google.oauth2 import service_account

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def header_of(token):
    seg = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def main():
    assertion_file, cert_file, sa_file = sys.argv[1:4]
    with open(assertion_file) as f:
        ours = f.read().strip()
    with open(cert_file) as f:
        cert = f.read()
    with open(sa_file) as f:
        info = json.load(f)

    claims = jwt.decode(ours, certs=cert)
    head = header_of(ours)

    # The same key file through google-auth itself.
    creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    theirs = creds._make_authorization_grant_assertion()
    if isinstance(theirs, bytes):
        theirs = theirs.decode()
    want_claims = jwt.decode(theirs, certs=cert)
    want_head = header_of(theirs)

    if head.get("alg") != "RS256" or head.get("kid") != info["private_key_id"]:
        fail("header %r" % head)
    if head.get("typ", "JWT") != "JWT":
        fail("typ %r" % head)
    if set(head) - {"typ"} != set(want_head) - {"typ"}:
        fail("header fields %s, google-auth has %s" % (sorted(head), sorted(want_head)))
    if set(claims) != set(want_claims):
        fail("claims %s, google-auth has %s" % (sorted(claims), sorted(want_claims)))
    for k in ("iss", "scope", "aud"):
        if claims[k] != want_claims[k]:
            fail("claim %s: ours %r, google-auth %r" % (k, claims[k], want_claims[k]))
    if claims["iss"] != info["client_email"] or claims["scope"] != SCOPE:
        fail("iss/scope %r" % claims)
    if claims["exp"] - claims["iat"] != 3600:
        fail("lifetime %d s, want 3600" % (claims["exp"] - claims["iat"]))
    if abs(claims["iat"] - time.time()) > 120:
        fail("iat %d is not now" % claims["iat"])

    # A changed signature must not verify: the check above can fail.
    body, sig = ours.rsplit(".", 1)
    bad = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    try:
        jwt.decode(bad, certs=cert)
        fail("a tampered assertion verified")
    except ValueError:
        pass
    signer_ok = crypt.RSAVerifier.from_string(cert).verify(
        body.encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    if not signer_ok:
        fail("RSAVerifier rejected the signature")
    print("ok: google-auth verifies pushpool's service-account assertion "
          "(claims %s)" % ", ".join(sorted(claims)))


if __name__ == "__main__":
    main()
