#!/usr/bin/env python3
"""Lists, creates and deletes a VM through the generated Python SDK against a running server.

Run by the Rust e2e test crates/novacron/tests/sdk_python.rs, which starts the server and
checks afterwards, through the Rust client, that the VM is gone. It can also be run by hand:

    NOVACRON_URL=https://127.0.0.1:9440 NOVACRON_TOKEN=... NOVACRON_CA_CERT=ca.pem \\
    PYTHONPATH=sdk/python/novacron-client python3 sdk/python/tests/vm_lifecycle.py VM_NAME IMAGE

TLS is verified against the cluster CA in NOVACRON_CA_CERT. Prints one line per step; any
failure exits non-zero with the reason.
"""

import os
import ssl
import sys
import time

from novacron_client import AuthenticatedClient
from novacron_client.api.operations import operations_show
from novacron_client.api.vms import vms_create, vms_delete, vms_list, vms_show
from novacron_client.models import AccelChoice, ApiError, OperationState, VmCreateRequest


def fail(why):
    print(f"FAIL: {why}", file=sys.stderr)
    sys.exit(1)


def wait_operation(client, ref, what):
    """Waits for the operation `ref` (an OperationRef) to finish; fails unless it succeeded."""
    op = ref.operation
    deadline = time.monotonic() + 180
    while op.state == OperationState.RUNNING:
        if time.monotonic() > deadline:
            fail(f"{what}: operation {op.id} still running after 180 s")
        got = operations_show.sync(op.id, client=client, wait_seconds=10)
        if not hasattr(got, "state"):
            fail(f"{what}: cannot read operation {op.id}: {got}")
        op = got
    if op.state != OperationState.SUCCEEDED:
        fail(f"{what}: operation {op.id} {op.state}: {op.message}")
    return op


def names(client):
    vms = vms_list.sync(client=client)
    if not isinstance(vms, list):
        fail(f"vms_list answered {vms}")
    return sorted(vm.name for vm in vms)


def main():
    if len(sys.argv) != 3:
        fail("usage: vm_lifecycle.py VM_NAME IMAGE")
    name, image = sys.argv[1], sys.argv[2]
    url = os.environ["NOVACRON_URL"]
    token = os.environ["NOVACRON_TOKEN"]
    ca = os.environ["NOVACRON_CA_CERT"]
    tls = ssl.create_default_context(cafile=ca)

    with AuthenticatedClient(base_url=url, token=token, verify_ssl=tls) as client:
        before = names(client)
        if name in before:
            fail(f"{name} exists before it is created: {before}")
        print(f"listed {len(before)} VMs")

        body = VmCreateRequest(
            name=name,
            image=image,
            cpus=1,
            memory_bytes=128 * 1024 * 1024,
            accel=AccelChoice.TCG,
        )
        ref = vms_create.sync(client=client, body=body)
        if isinstance(ref, ApiError) or ref is None:
            fail(f"vms_create answered {ref}")
        wait_operation(client, ref, "create")
        vm = vms_show.sync(name, client=client)
        if isinstance(vm, ApiError) or vm is None:
            fail(f"vms_show answered {vm}")
        print(f"created {vm.name}: {vm.state}")

        listed = names(client)
        if name not in listed:
            fail(f"{name} is not in the list after create: {listed}")
        print(f"listed {name}")

        ref = vms_delete.sync(name, client=client, force=True)
        if isinstance(ref, ApiError) or ref is None:
            fail(f"vms_delete answered {ref}")
        wait_operation(client, ref, "delete")
        after = names(client)
        if name in after:
            fail(f"{name} is still listed after delete: {after}")
        gone = vms_show.sync(name, client=client)
        if not isinstance(gone, ApiError):
            fail(f"vms_show of the deleted VM answered {gone}")
        print(f"deleted {name} ({gone.code})")


if __name__ == "__main__":
    main()
