"""Judge the request bodies pushpool-mock saw (PUSHPOOL_MOCK_BODY_DIR) with
the clouds' own libraries, independently of the mock's C validators:

- ECS and CloudWatch Logs (*-ecs-<Operation>.json, *-logs-<Operation>.json):
  botocore's ParamValidator over the vendored botocore 1.43.11 models (not
  Debian's older ones), plus every `pattern` of
  the model matched in full with the `regex` module (botocore's validator
  does not check patterns; \\p{L} needs Unicode properties).
- Cloud Run (*-cloudrun-<Method>.json): json_format.Parse into the method's
  message (CreateJob: google.cloud.run.v2.Job; RunJob/CancelExecution and
  Cloud Logging's ListLogEntries: the request), unknown fields refused, from a descriptor set protoc compiled
  from the vendored protos.
- Modal (*-modal-<Rpc>.bin): `protoc --decode` of the RPC's request type
  against api.proto; a field protoc cannot name is a failure.
- The provisioning APIs (*-gcpinfra-<Method>.json): json_format.Parse into
  the HTTP body's message (the request for body "*", the Repository for
  CreateRepository) from a second descriptor set (Service Usage, IAM,
  Resource Manager, Artifact Registry).

Usage: spec_bodies.py BODY_DIR SPEC_DIR RUN_DESCRIPTOR_SET GCPINFRA_DESCRIPTOR_SET
Prints one line per body; exits 1 when any fails, 2 when there is none.
"""
import json
import os
import re
import subprocess
import sys

import botocore.model
import botocore.validate
import regex
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

body_dir, spec_dir, run_set, gcpinfra_set = sys.argv[1:5]


def botocore_checker(service_name):
    with open(os.path.join(spec_dir, f"aws/{service_name}/service-2.json")) as f:
        model = json.load(f)
    service = botocore.model.ServiceModel(model, service_name)
    validator = botocore.validate.ParamValidator()

    def patterns(shape, value, path, out):
        if shape.type_name == "structure" and isinstance(value, dict):
            for name, v in value.items():
                if name in shape.members:
                    patterns(shape.members[name], v, f"{path}.{name}" if path else name, out)
        elif shape.type_name == "list" and isinstance(value, list):
            for i, v in enumerate(value):
                patterns(shape.member, v, f"{path}[{i}]", out)
        elif shape.type_name == "map" and isinstance(value, dict):
            for k, v in value.items():
                patterns(shape.key, k, f"{path}.{k}(key)", out)
                patterns(shape.value, v, f"{path}.{k}", out)
        elif shape.type_name == "string" and isinstance(value, str):
            pattern = shape.metadata.get("pattern")
            if pattern and not regex.fullmatch(pattern, value):
                out.append(f"{path}: {value!r} does not match {pattern}")

    def check(op_name, params):
        op = service.operation_model(op_name)
        report = validator.validate(params, op.input_shape)
        problems = [report.generate_report()] if report.has_errors() else []
        patterns(op.input_shape, params, "", problems)
        return problems

    return check


def json_checker(descriptor_set, types):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)

    def check(method, text):
        if method not in types:
            return [f"no message type known for {method}"]
        cls = factory.GetPrototype(pool.FindMessageTypeByName(types[method]))
        try:
            json_format.Parse(text or "{}", cls(), ignore_unknown_fields=False)
        except json_format.ParseError as e:
            return [f"{types[method]}: {e}"]
        return []

    return check


def run_checker():
    return json_checker(run_set, {
        "CreateJob": "google.cloud.run.v2.Job",
        "RunJob": "google.cloud.run.v2.RunJobRequest",
        "CancelExecution": "google.cloud.run.v2.CancelExecutionRequest",
        "ListLogEntries": "google.logging.v2.ListLogEntriesRequest",
    })


def gcpinfra_checker():
    return json_checker(gcpinfra_set, {
        "EnableService": "google.api.serviceusage.v1.EnableServiceRequest",
        "DisableService": "google.api.serviceusage.v1.DisableServiceRequest",
        "CreateServiceAccount": "google.iam.admin.v1.CreateServiceAccountRequest",
        "CreateServiceAccountKey": "google.iam.admin.v1.CreateServiceAccountKeyRequest",
        "GetIamPolicy": "google.iam.v1.GetIamPolicyRequest",
        "SetIamPolicy": "google.iam.v1.SetIamPolicyRequest",
        "CreateRepository": "google.devtools.artifactregistry.v1.Repository",
    })


def modal_checker():
    with open(os.path.join(spec_dir, "modal/modal_proto/api.proto")) as f:
        rpcs = dict(re.findall(r"rpc\s+(\w+)\s*\(\s*(?:stream\s+)?([\w.]+)\s*\)", f.read()))

    def check(rpc, data):
        if rpc not in rpcs:
            return [f"api.proto has no rpc {rpc}"]
        t = rpcs[rpc]
        t = t if "." in t else f"modal.client.{t}"
        p = subprocess.run(
            ["protoc", "-I", spec_dir, f"--decode={t}", "modal/modal_proto/api.proto"],
            input=data, capture_output=True)
        if p.returncode != 0:
            return [f"protoc --decode={t}: {p.stderr.decode().strip()}"]
        unknown = [l for l in p.stdout.decode().splitlines() if re.match(r"\s*\d+\s*[:{]", l)]
        return [f"{t}: fields api.proto does not declare: {unknown}"] if unknown else []

    return check


ecs, logs = botocore_checker("ecs"), botocore_checker("logs")
run, modal, gcpinfra = run_checker(), modal_checker(), gcpinfra_checker()
counts, failed = {}, 0
for name in sorted(os.listdir(body_dir)):
    m = re.fullmatch(r"\d+-(\w+)-(\w+)\.(json|bin)", name)
    if not m:
        continue
    api, action, _ = m.groups()
    with open(os.path.join(body_dir, name), "rb") as f:
        raw = f.read()
    if api == "ecs":
        problems = ecs(action, json.loads(raw))
    elif api == "logs":
        problems = logs(action, json.loads(raw))
    elif api == "cloudrun":
        problems = run(action, raw.decode())
    elif api == "modal":
        problems = modal(action, raw)
    elif api == "gcpinfra":
        problems = gcpinfra(action, raw.decode())
    else:
        continue
    counts[api] = counts.get(api, 0) + 1
    for p in problems:
        print(f"FAIL: {name}: {p}")
    failed += bool(problems)
if not counts:
    print(f"FAIL: no bodies in {body_dir}")
    sys.exit(2)
summary = ", ".join(f"{n} {api}" for api, n in sorted(counts.items()))
print(f"{summary} bodies judged, {failed} refused")
sys.exit(1 if failed else 0)
