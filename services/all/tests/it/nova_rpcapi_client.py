"""Real nova 34 RPC clients (nova.scheduler.rpcapi, nova.compute.rpcapi)
calling nova-rs services over RabbitMQ. A test tool of
services/all/tests/it/nova_clients.rs; prints one JSON line.

  nova_rpcapi_client.py URL select_destinations INSTANCE_UUID [VCPUS]
  nova_rpcapi_client.py URL build_and_run_instance HOST NODE INSTANCE_ID INSTANCE_UUID
  nova_rpcapi_client.py URL schedule_and_build_instances INSTANCE_ID INSTANCE_UUID
  nova_rpcapi_client.py URL get_instance_diagnostics HOST INSTANCE_ID INSTANCE_UUID
  nova_rpcapi_client.py URL instance_action METHOD INSTANCE_JSON [ARGS_JSON]
    METHOD: compute.rebuild_instance, compute.shelve_offload_instance,
    conductor.unshelve_instance, conductor.migrate_server (the instance as
    nova-api sends it, its fields in INSTANCE_JSON)
  nova_rpcapi_client.py URL validate_console_port HOST INSTANCE_ID INSTANCE_UUID PORT
"""
import json
import os
import sys
import tempfile

from nova import config
from nova import context as nova_context
from nova import objects

objects.register_all()


def main():
    url, op = sys.argv[1], sys.argv[2]
    # Started as nova's services are: a nova.conf and nova.config.parse_args.
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("[DEFAULT]\ntransport_url = %s\nrpc_response_timeout = 30\n"
                "long_rpc_timeout = 30\n"
                # An explicit cap: 'auto' would read service versions from nova's database.
                "[upgrade_levels]\ncompute = 6.5\n" % url)
    config.parse_args(["nova-rpcapi-client", "--config-file", f.name], configure_db=False)
    os.unlink(f.name)
    ctxt = nova_context.RequestContext(user_id="py-user", project_id="py-project", is_admin=True)
    flavor = objects.Flavor(
        id=1, flavorid="1", name="m1.tiny", vcpus=1, memory_mb=512, root_gb=1,
        ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=True, extra_specs={}, description=None,
    )
    image = {"id": "", "properties": {}, "min_ram": 0, "min_disk": 0}

    if op == "select_destinations":
        from nova.scheduler import rpcapi as scheduler_rpcapi

        uuid = sys.argv[3]
        if len(sys.argv) > 4:
            flavor.vcpus = int(sys.argv[4])
        spec = objects.RequestSpec.from_components(
            ctxt, uuid, image, flavor, None, None, {}, None, None,
            project_id="py-project", user_id="py-user",
        )
        spec.num_instances = 1
        try:
            hosts = scheduler_rpcapi.SchedulerAPI().select_destinations(
                ctxt, spec, [uuid], return_objects=True, return_alternates=True)
        except Exception as e:  # what nova's conductor would catch
            from nova import exception
            print(json.dumps({"error": type(e).__name__, "module": type(e).__module__,
                              "no_valid_host": isinstance(e, exception.NoValidHost),
                              "message": str(e)}))
            return
        print(json.dumps([[{
            "class": type(s).__name__,
            "service_host": s.service_host,
            "nodename": s.nodename,
            "compute_node_uuid": s.compute_node_uuid,
            "allocation_request": json.loads(s.allocation_request),
        } for s in alts] for alts in hosts]))
    elif op == "build_and_run_instance":
        from nova.compute import rpcapi as compute_rpcapi

        host, node, inst_id, uuid = sys.argv[3:7]
        inst = objects.Instance(
            context=ctxt, id=int(inst_id), uuid=uuid, display_name="from-python",
            project_id="py-project", user_id="py-user", vm_state="building",
            task_state="scheduling", power_state=0, host=None, node=None,
            flavor=flavor, vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0,
            image_ref="", launched_at=None,
        )
        inst.obj_reset_changes()
        spec = objects.RequestSpec.from_components(
            ctxt, uuid, image, flavor, None, None, {}, None, None,
            project_id="py-project", user_id="py-user",
        )
        compute_rpcapi.ComputeAPI().build_and_run_instance(
            ctxt, inst, host, image, spec, {}, admin_password=None,
            injected_files=[], requested_networks=objects.NetworkRequestList(objects=[]),
            security_groups=[], block_device_mapping=objects.BlockDeviceMappingList(objects=[]),
            node=node, limits=None, host_list=[], accel_uuids=[])
        print(json.dumps({"cast": "build_and_run_instance", "host": host}))
    elif op == "get_instance_diagnostics":
        from nova.compute import rpcapi as compute_rpcapi

        host, inst_id, uuid = sys.argv[3:6]
        inst = objects.Instance(
            context=ctxt, id=int(inst_id), uuid=uuid, host=host, display_name="from-python",
            project_id="py-project", user_id="py-user", vm_state="active", task_state=None,
            flavor=flavor, config_drive="", launched_at=None,
        )
        api = compute_rpcapi.ComputeAPI()
        d = api.get_instance_diagnostics(ctxt, inst)
        legacy = api.get_diagnostics(ctxt, inst)
        print(json.dumps({
            "class": type(d).__name__, "state": d.state, "driver": d.driver,
            "hypervisor": d.hypervisor, "num_cpus": d.num_cpus,
            "memory_maximum": d.memory_details.maximum, "legacy_memory": legacy.get("memory"),
        }))
    elif op == "validate_console_port":
        from nova.compute import rpcapi as compute_rpcapi

        host, inst_id, uuid, port = sys.argv[3:7]
        inst = objects.Instance(
            context=ctxt, id=int(inst_id), uuid=uuid, host=host, display_name="from-python",
            project_id="py-project", user_id="py-user", vm_state="active", task_state=None,
            flavor=flavor, launched_at=None,
        )
        # Under a 6.5 cap nova's client sends this to the 'compute-alt' topic.
        ok = compute_rpcapi.ComputeAPI().validate_console_port(ctxt, inst, port, "novnc")
        print(json.dumps({"valid": ok}))
    elif op == "schedule_and_build_instances":
        from nova.conductor import rpcapi as conductor_rpcapi

        inst_id, uuid = sys.argv[3:5]
        inst = objects.Instance(
            context=ctxt, id=int(inst_id), uuid=uuid, display_name="from-python",
            project_id="py-project", user_id="py-user", vm_state="building",
            task_state="scheduling", flavor=flavor, vcpus=1, memory_mb=512, root_gb=1,
            ephemeral_gb=0, image_ref="",
        )
        build_request = objects.BuildRequest(
            context=ctxt, instance_uuid=uuid, project_id="py-project", instance=inst,
            block_device_mappings=objects.BlockDeviceMappingList(objects=[]),
            tags=objects.TagList(objects=[]),
        )
        spec = objects.RequestSpec.from_components(
            ctxt, uuid, image, flavor, None, None, {}, None, None,
            project_id="py-project", user_id="py-user",
        )
        spec.num_instances = 1
        conductor_rpcapi.ComputeTaskAPI().schedule_and_build_instances(
            ctxt, build_requests=[build_request], request_specs=[spec], image=image,
            admin_password="", injected_files=[],
            requested_networks=objects.NetworkRequestList(objects=[]),
            block_device_mapping=objects.BlockDeviceMappingList(objects=[]),
            tags=objects.TagList(objects=[]))
        print(json.dumps({"cast": "schedule_and_build_instances"}))
    elif op == "instance_action":
        from nova.compute import rpcapi as compute_rpcapi
        from nova.conductor import rpcapi as conductor_rpcapi

        method = sys.argv[3]
        fields = json.loads(sys.argv[4])
        args = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
        inst = objects.Instance(context=ctxt, flavor=flavor, **fields)
        inst.obj_reset_changes()
        spec = objects.RequestSpec.from_components(
            ctxt, inst.uuid, image, flavor, None, None, {}, None, None,
            project_id=inst.project_id, user_id=inst.user_id,
        )
        spec.num_instances = 1
        if method == "compute.rebuild_instance":
            compute_rpcapi.ComputeAPI().rebuild_instance(
                ctxt, instance=inst, new_pass=None, injected_files=[],
                image_ref=args["image_ref"], orig_image_ref=args["orig_image_ref"],
                orig_sys_metadata={}, bdms=objects.BlockDeviceMappingList(objects=[]),
                recreate=False, on_shared_storage=False, host=inst.host, node=inst.node,
                preserve_ephemeral=False, migration=None, limits={}, request_spec=spec,
                accel_uuids=[], reimage_boot_volume=False, target_state=None)
        elif method == "compute.shelve_offload_instance":
            compute_rpcapi.ComputeAPI().shelve_offload_instance(
                ctxt, inst, clean_shutdown=True, accel_uuids=[])
        elif method == "conductor.unshelve_instance":
            conductor_rpcapi.ComputeTaskAPI().unshelve_instance(ctxt, inst, request_spec=spec)
        elif method == "conductor.migrate_server":
            # A call: it returns once our conductor has scheduled the move.
            conductor_rpcapi.ComputeTaskAPI().migrate_server(
                ctxt, inst, {}, False, False, flavor, None, None,
                clean_shutdown=True, request_spec=spec, host_list=None)
        else:
            raise SystemExit("unknown method %s" % method)
        print(json.dumps({"sent": method}))
    else:
        raise SystemExit("unknown op %s" % op)


if __name__ == "__main__":
    main()
