#!/usr/bin/python3
"""Cross-check our SigV4 signer against botocore's SigV4Auth.

Random requests (methods, paths with odd characters and dot segments,
queries, headers with messy whitespace and duplicates, bodies, session
tokens) are signed at a fixed time by botocore and by tests/interop/sigv4_cli;
the Authorization headers must be equal.

usage: botocore_sigv4.py CLI [COUNT] [SEED]
"""
import datetime
import json
import random
import subprocess
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2015, 8, 30, 12, 36, 0)
EPOCH = int(FIXED.replace(tzinfo=datetime.timezone.utc).timestamp())
PATH_CHARS = "abcXYZ019-._~ +=:@!$'()*,;%é\u1234/"
VALUE_CHARS = "abcXYZ019-._~ +=:@!$'()*,;/?&#%\"é\u1234"
HEADER_VALUE_CHARS = "abcXYZ019-._~=:@!$'()*,;/?&#%\"<>[]{}|\\^`"


def rand_text(rng, chars, lo, hi):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def rand_path(rng):
    segs = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.1:
            segs.append("..")
        elif r < 0.2:
            segs.append(".")
        elif r < 0.3:
            segs.append("")
        elif r < 0.4:
            segs.append(quote(rand_text(rng, PATH_CHARS, 1, 6), safe=""))
        else:
            segs.append(rand_text(rng, PATH_CHARS.replace("/", ""), 1, 8))
    path = "/" + "/".join(segs)
    if rng.random() < 0.3:
        path += "/"
    return path


def rand_query(rng):
    if rng.random() < 0.3:
        return ""
    pairs = []
    keys = [quote(rand_text(rng, VALUE_CHARS, 1, 6), safe="-_.~") for _ in range(3)]
    for _ in range(rng.randint(1, 6)):
        key = rng.choice(keys)
        r = rng.random()
        if r < 0.15:
            pairs.append(key)
        elif r < 0.3:
            pairs.append(key + "=")
        else:
            pairs.append(key + "=" + quote(rand_text(rng, VALUE_CHARS, 0, 10), safe="-_.~"))
    return "&".join(pairs)


def rand_header_value(rng):
    words = [rand_text(rng, HEADER_VALUE_CHARS, 0, 8) for _ in range(rng.randint(0, 4))]
    out = ""
    for w in words:
        out += rng.choice(["", " ", "  ", "\t", " \t "]) + w
    return out + rng.choice(["", " ", "\t"])


def rand_headers(rng):
    headers = []
    names = ["X-Amz-Meta-" + rand_text(rng, "abcxyz019", 1, 4) for _ in range(2)]
    names += ["Content-Type", "X-Amz-Target", "My-Header", "ETag", "If-Match", "x-custom"]
    for _ in range(rng.randint(0, 6)):
        name = rng.choice(names)
        if rng.random() < 0.5:
            name = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
        headers.append((name, rand_header_value(rng)))
    return headers


def rand_creds(rng):
    akid = "AKID" + rand_text(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 12, 16)
    secret = rand_text(rng, "abcdefABCDEF0123456789+/", 40, 40)
    token = None
    if rng.random() < 0.4:
        token = rand_text(rng, "abcdefABCDEF0123456789+/=", 40, 300)
    return akid, secret, token


def botocore_sign(method, url, headers, body, akid, secret, token, region, service):
    req = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        req.headers[name] = value
    auth = SigV4Auth(Credentials(akid, secret, token), service, region)
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = FIXED
        auth.add_auth(req)
        canonical = auth.canonical_request(req)
    return req, canonical


def main():
    cli = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 20150830
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        akid, secret, token = rand_creds(rng)
        region = rng.choice(["us-east-1", "eu-west-3", "ap-southeast-2", "cn-north-1"])
        body = rand_text(rng, VALUE_CHARS + "\n{}", 0, 40).encode() if rng.random() < 0.6 else b""
        if i % 4 == 3:
            # ECS-style JSON 1.1 call through pp_aws_sign_request.
            service = "ecs"
            host = rng.choice(["ecs.%s.amazonaws.com" % region,
                               "ecs.%s.amazonaws.com:443" % region, "127.0.0.1:8443",
                               "ECS.%s.AmazonAWS.com" % region])
            url = "https://%s/" % host
            action = rng.choice(["RunTask", "DescribeTasks", "RegisterTaskDefinition"])
            headers = [("Content-Type", "application/x-amz-json-1.1"),
                       ("X-Amz-Target", "AmazonEC2ContainerServiceV20141113." + action),
                       ("User-Agent", "pushpool/interop")]
            body = json.dumps({"cluster": "c", "n": i}).encode()
            req, canonical = botocore_sign("POST", url, headers, body, akid, secret, token,
                                           region, service)
            ours = {"mode": "request", "method": "POST", "url": url, "headers": headers}
        else:
            service = rng.choice(["service", "ecs", "sts", "execute-api"])
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
            path, query = rand_path(rng), rand_query(rng)
            url = "https://example.amazonaws.com" + path + ("?" + query if query else "")
            req, canonical = botocore_sign(method, url, rand_headers(rng), body, akid, secret,
                                           token, region, service)
            parts = urlsplit(url)
            signed = [(n, v) for n, v in req.headers.items()
                      if n.lower() not in SIGNED_HEADERS_BLACKLIST and n.lower() != "authorization"]
            if not any(n.lower() == "host" for n, _ in signed):
                signed.append(("host", parts.netloc))
            ours = {"mode": "sign", "method": method, "path": parts.path,
                    "query": parts.query, "headers": signed}
        ours.update({"body": body.decode(), "akid": akid, "secret": secret, "token": token,
                     "region": region, "service": service, "time": EPOCH})
        cases.append((ours, req.headers["Authorization"], canonical))

    stdin = "".join(json.dumps(c[0]) + "\n" for c in cases)
    proc = subprocess.run([cli], input=stdin.encode(), stdout=subprocess.PIPE, check=False)
    got = proc.stdout.decode().splitlines()
    if len(got) != len(cases):
        print("sigv4 interop: %d answers for %d requests" % (len(got), len(cases)))
        return 1
    bad = 0
    for (ours, want, canonical), have in zip(cases, got):
        if have != want:
            bad += 1
            if bad <= 5:
                print("MISMATCH for %s" % json.dumps(ours))
                print("  botocore: %s\n  ours:     %s\n  botocore canonical request:\n%s\n"
                      % (want, have, canonical))
    modes = {}
    for ours, _, _ in cases:
        modes[ours["mode"]] = modes.get(ours["mode"], 0) + 1
    print("sigv4 interop: %d/%d Authorization headers equal to botocore's (%s; seed %d)"
          % (len(cases) - bad, len(cases),
             ", ".join("%d %s" % (n, m) for m, n in sorted(modes.items())), seed))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
