"""Writes nova's flavor extra-spec registry (the validators nova 34 applies
since microversion 2.86) as data: services/api/src/extra_specs.json.

Run with the oracle virtualenv's Python (nova 34 installed):
    /var/tmp/nova-rs/venv-oracles/bin/python scripts/extra_specs_table.py [OUT]
(`OUT` defaults to the file in the tree; services/api/tests/extra_specs_table.rs
writes it elsewhere and checks the tree's copy is nova's).
nova-api's `extra_specs.rs` interprets the table; only names, value types,
enums, patterns and bounds are taken, no code.
"""
import json
import pathlib
import sys
import warnings

warnings.simplefilter("ignore")
from nova.api.validation.extra_specs import validators  # noqa: E402

validators.load_validators()
rows = []
for name, v in sorted(validators.VALIDATORS.items()):
    row = {"name": v.name_regex, "type": v.value["type"].__name__}
    if v.value["type"] is str and v.value.get("pattern"):
        row["pattern"] = v.value_regex
    elif "enum" in v.value:
        row["enum"] = [str(x) for x in v.value["enum"]]
    for k in ("min", "max"):
        if k in v.value:
            row[k] = v.value[k]
    rows.append(row)
out = (pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else
       pathlib.Path(__file__).resolve().parent.parent / "services/api/src/extra_specs.json")
out.write_text(json.dumps(
    {"source": "nova 34 nova.api.validation.extra_specs",
     "namespaces": sorted(validators.NAMESPACES), "validators": rows},
    separators=(",", ":"), sort_keys=True) + "\n")
print(f"{len(rows)} validators, {len(validators.NAMESPACES)} namespaces -> {out}")
