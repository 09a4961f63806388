#!/usr/bin/env python3
"""Writes the variant golden scenarios (see README.md) from generated ones."""
import json, sys

def load(n):
    return json.load(open(n + ".scenario.json"))

def save(n, d):
    with open(n + ".scenario.json", "w") as f:
        json.dump(d, f, sort_keys=True)
        f.write("\n")

# nova's default filters, all 13 weighers, Placement emulated
d = load("gen-h300-s8-n2-random")
del d["config"]["enabled_filters"]; d["config"]["weighers"] = "all"; d["config"]["emulate_placement"] = True
d["config"].pop("weight_multipliers", None)
save("var-defaults-placement-h300", d)
# no AZ, no extra specs: most hosts pass; all weighers with aggregate multipliers
d = load("gen-h300-s8-n2-random")
d["config"]["weighers"] = "all"
d["request"].pop("availability_zone", None)
d["request"]["flavor"]["extra_specs"] = {}
d["request"]["num_instances"] = 3
d["request"].pop("server_group", None)
d["request"].pop("scheduler_hints", None)
save("var-wide-h300", d)
# default filters only, stacking RAM, 3 instances
d = load("gen-h200-s7-n3-anti-affinity")
del d["config"]["enabled_filters"]; d["config"]["weighers"] = "all"
d["config"]["weight_multipliers"] = {"ram": -1.0, "cpu": 0.5, "io_ops": -2.0, "num_instances": 1.0}
save("var-defaults-stack-h200", d)
# every other filter, on the 150-host scenario
d = load("gen-h150-s6-n1-none")
d["config"]["enabled_filters"] = ["AggregateIoOpsFilter", "AggregateNumInstancesFilter", "AggregateTypeAffinityFilter",
    "AggregateImagePropertiesIsolation", "IsolatedHostsFilter", "SimpleCIDRAffinityFilter", "JsonFilter", "AllHostsFilter",
    "MetricsFilter", "ImagePropertiesFilter"]
d["config"]["filter_scheduler"]["isolated_hosts"] = ["cmp-00001", "cmp-00002"]
d["config"]["filter_scheduler"]["isolated_images"] = ["img-iso"]
d["config"]["metrics"] = {"weight_setting": "cpu.percent=1.0,cpu.frequency=0.5", "required": False}
d["config"]["weighers"] = "all"
for i, h in enumerate(d["hosts"]):
    h["host_ip"] = "10.0.%d.%d" % (i // 50, i % 50 + 1)
    if i % 3:
        h["metrics"] = [{"name": "cpu.percent", "value": (i % 7) / 10.0}, {"name": "cpu.frequency", "value": float(i % 11)}]
d["aggregates"].append({"name": "agg-typed", "metadata": {"instance_type": "m1.small, m1.large", "max_io_ops_per_host": "3"}})
d["aggregates"].append({"name": "agg-os", "metadata": {"os_distro": "ubuntu", "max_instances_per_host": "30"}})
for i, h in enumerate(d["hosts"]):
    if i % 4 == 0: h["aggregates"].append("agg-typed")
    if i % 5 == 0: h["aggregates"].append("agg-os")
d["request"]["image"] = {"id": "img-plain", "properties": {"os_distro": "ubuntu", "hw_architecture": "x86_64", "img_hv_requested_version": ">=7.0"}}
d["request"]["scheduler_hints"] = {"build_near_host_ip": "10.0.1.7", "cidr": "/23",
    "query": json.dumps(["and", [">=", "$free_ram_mb", 2048], ["or", ["=", "$hypervisor_type", "QEMU"], ["<", "$num_io_ops", 2]]])}
d["request"]["flavor"]["name"] = "m1.small"
save("var-other-filters-h150", d)
# forced, ignored and requested hosts; rebuild
d = load("gen-h120-s5-n2-soft-affinity")
d["request"]["ignore_hosts"] = ["CMP-00003", "cmp-00010"]
save("var-ignore-h120", d)
d = load("gen-h120-s5-n2-soft-affinity")
d["request"]["force_hosts"] = ["cmp-00005", "cmp-00007", "cmp-00011"]
save("var-force-h120", d)
d = load("gen-h120-s5-n2-soft-affinity")
d["request"]["scheduler_hints"] = {"_nova_check_type": ["rebuild"]}
d["request"]["num_instances"] = 1
d["request"]["requested_destination"] = {"host": "cmp-00004"}
save("var-rebuild-dest-h120", d)
# Placement emulation with traits, custom resources and reserved amounts
d = load("gen-h80-s3-n2-affinity")
d["config"]["enabled_filters"] = ["PlacementFilter", "CoreFilter", "RamFilter", "DiskFilter", "ComputeFilter", "ComputeCapabilitiesFilter"]
d["request"].pop("server_group", None)
for i, h in enumerate(d["hosts"]):
    h["reserved"] = {"vcpus": 2, "memory_mb": 4096, "disk_gb": 10}
    if i % 2: h["traits"] = ["HW_CPU_X86_AVX2"] + (["CUSTOM_GOLD"] if i % 6 == 1 else [])
    if i % 3 == 0: h["inventories"] = {"CUSTOM_FPGA": {"total": 2, "used": i % 2}}
d["request"]["flavor"]["extra_specs"] = {"trait:HW_CPU_X86_AVX2": "required", "trait:CUSTOM_GOLD": "forbidden",
    "resources:CUSTOM_FPGA": "1", "capabilities:cpu_info:vendor": "<or> Intel <or> AMD"}
save("var-placement-traits-h80", d)
