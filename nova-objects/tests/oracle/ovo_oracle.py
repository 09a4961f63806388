#!/usr/bin/env python3
"""Decision oracle for nova-objects: the real nova 34 objects.

Reads a JSON list on stdin; each item is
  {"primitive": <nova object primitive>, "manifest": {name: "X.Y"}, "targets": ["X.Y", ...]}
and for each writes (one JSON list on stdout)
  {"name": ..., "reencoded": <obj_to_primitive() after obj_from_primitive>,
   "backports": {"X.Y": <obj_to_primitive(target, manifest with name=target)>
                 or {"error": "..."}}}
or {"error": "..."} when nova cannot decode the primitive.
"""
import json
import sys
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

    def wire(p):
        return json.loads(jsonutils.dumps(p))

    out = []
    for item in json.load(sys.stdin):
        prim = item["primitive"]
        try:
            obj = ser.deserialize_entity(None, prim)
        except Exception as e:  # noqa: BLE001 - report any failure to the test
            out.append({"error": "%s: %s" % (type(e).__name__, e)})
            continue
        res = {"name": obj.obj_name(), "reencoded": wire(obj.obj_to_primitive()),
               "backports": {}}
        for t in item["targets"]:
            manifest = dict(item["manifest"])
            manifest[obj.obj_name()] = t
            try:
                res["backports"][t] = wire(obj.obj_to_primitive(
                    target_version=t, version_manifest=manifest))
            except Exception as e:  # noqa: BLE001
                res["backports"][t] = {"error": "%s: %s" % (type(e).__name__, e)}
        out.append(res)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
