#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*)
from real fixtures: the oslo.messaging wire capture and the nova object
primitives in $NOVA_RS_SHARED/fixtures, and nova 34's API samples (the
installed nova package's functional api_samples). Needs `msgpack`
(in the test virtualenv). Run: $NOVA_RS_PYTHON fuzz/make_corpus.py"""
import glob
import hashlib
import json
import os
import re
import sys

import msgpack

here = os.path.dirname(os.path.abspath(__file__))
shared = os.environ.get("NOVA_RS_SHARED", os.path.join(here, "..", "..", "shared"))
corpus = os.path.join(here, "corpus")


def put(target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- rpc_envelope: selector byte (bit 0 codec, rest mod 3 kind) + body.
cap = json.load(open(os.path.join(shared, "fixtures", "oslo-wire", "capture.json")))
bodies = set()


def walk(x):
    if isinstance(x, dict):
        for v in x.values():
            walk(v)
    elif isinstance(x, list):
        for v in x:
            walk(v)
    elif isinstance(x, str) and x.startswith("{") and "oslo.version" in x:
        bodies.add(x)


walk(cap)
for body in sorted(bodies):
    inner = json.loads(json.loads(body)["oslo.message"])
    kind = 0 if "method" in inner else (2 if "event_type" in inner else 1)
    put("rpc_envelope", bytes([kind << 1]) + body.encode())
    put("rpc_envelope", bytes([(kind << 1) | 1]) + msgpack.packb(inner))
    if kind == 2:  # v1 notifications are not enveloped
        put("rpc_envelope", bytes([kind << 1]) + json.dumps(inner).encode())

# --- object_json / object_msgpack: every primitive of the object fixtures
# (and the ones inside the captured RPC messages).
prims = []


def objects(x):
    if isinstance(x, dict):
        if "nova_object.name" in x:
            prims.append(x)
        for v in x.values():
            objects(v)
    elif isinstance(x, list):
        for v in x:
            objects(v)


for p in sorted(glob.glob(os.path.join(shared, "fixtures", "nova-objects", "*.json"))):
    objects(json.load(open(p)))
for body in sorted(bodies):
    objects(json.loads(json.loads(body)["oslo.message"]))
for prim in prims:
    put("object_json", json.dumps(prim).encode())
    put("object_msgpack", msgpack.packb(prim))

# --- api_body: kind byte (index in nova_fuzz::api::KINDS), 2.x minor, body.
KINDS = ["server_create", "server_update", "server_action", "flavor_create", "flavor_update",
         "flavor_action", "extra_specs", "keypair_create", "service_update"]
samples = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nova", "tests",
                                 "functional", "api_sample_tests", "api_samples"))
root = samples[0] if samples else None


def kind_of(path):
    base = os.path.basename(path)
    if "-req" not in base and "action" not in base and "-post" not in base and "-put" not in base:
        return None
    if "server-create-req" in base or base.startswith("server-post-req"):
        return "server_create"
    if "server-update-req" in base:
        return "server_update"
    if "/servers/" in path and "action" in base or "os-" in path and "-req" in base and "server" in base:
        return "server_action"
    if "flavor-create" in base:
        return "flavor_create"
    if "flavor-update" in base or "flavor-description" in base:
        return "flavor_update"
    if "flavor-access-add" in base or "flavor-access-remove" in base:
        return "flavor_action"
    if "flavor-extra-specs-create" in base or "flavor-extra-specs-update" in base:
        return "extra_specs"
    if "keypairs-post" in base or "keypairs-import" in base:
        return "keypair_create"
    if "os-services" in path and "-put-" in base or "service-disable" in base or "service-enable" in base \
            or "service-force-down" in base:
        return "service_update"
    return None


def fill(tpl):
    # nova's templates: "%(name)s" placeholders.
    tpl = re.sub(r'"%\((\w+)\)s"', lambda m: '"' + {"uuid": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                                    "image_id": "70a599e0-31e7-49b7-b260-868f441e862b",
                                                    "host": "compute1", "glance_host": "http://glance"}
                 .get(m.group(1), "x1") + '"', tpl)
    return re.sub(r"%\((\w+)\)s", "1", tpl)


if root:
    for p in sorted(glob.glob(os.path.join(root, "**", "*.json.tpl"), recursive=True)):
        k = kind_of(p)
        if k is None:
            continue
        m = re.search(r"/v2\.(\d+)/", p)
        minor = int(m.group(1)) if m else 1
        try:
            body = json.loads(fill(open(p).read()))
        except ValueError:
            continue
        put("api_body", bytes([KINDS.index(k), min(minor, 255)]) + json.dumps(body).encode())

# --- microversion: header values as clients send them.
for s in ["2.1", "2.0", "2.95", "2.100", "3.0", "latest", "LATEST", "2.01", "02.1", "1.0", "2.", ".1",
          "compute 2.60", "placement 1.39, compute 2.79", "2.65536", "\u00bd.1", " 2.37 "]:
    put("microversion", s.encode())
