#!/usr/bin/env python3
"""Anchor for benches/objects.rs: nova 34's object serializer with JSON on
one primitive (the file named on the command line, bare or {"primitive": ...}).
Prints one JSON line: microseconds per encode+decode (median of 7 runs)."""
import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def main():
    import nova.conf
    nova.conf.CONF([], project="nova")
    from nova import objects
    from nova.objects import base as obj_base
    from oslo_serialization import jsonutils
    objects.register_all()
    ser = obj_base.NovaObjectSerializer()
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    wire = jsonutils.dumps(doc.get("primitive", doc))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(n):
            obj = ser.deserialize_entity(None, jsonutils.loads(wire))
            jsonutils.dumps(ser.serialize_entity(None, obj))
        runs.append((time.perf_counter() - t) / n * 1e6)
    runs.sort()
    print(json.dumps({"impl": "nova 34 NovaObjectSerializer + jsonutils",
                      "us_per_encode_decode": round(runs[3], 1)}))


if __name__ == "__main__":
    main()
