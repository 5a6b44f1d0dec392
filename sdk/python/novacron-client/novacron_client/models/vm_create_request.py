from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.accel_choice import AccelChoice
from ..models.firmware import Firmware
from ..models.ha_policy import HaPolicy
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.b_tree_map import BTreeMap
  from ..models.network_type_0 import NetworkType0
  from ..models.network_type_1 import NetworkType1
  from ..models.network_type_2 import NetworkType2
  from ..models.nic_request import NicRequest





T = TypeVar("T", bound="VmCreateRequest")



@_attrs_define
class VmCreateRequest:
    """ Body of `POST /api/v1/vms`.

        Attributes:
            cpus (int):
            image (str):
            memory_bytes (int):
            name (str):
            accel (AccelChoice | Unset): Which accelerator to use; `auto` picks KVM only where it really works.
            bandwidth_bps (int | None | Unset): Limit each overlay NIC to this many bits per second in each direction
                (`--bandwidth 200mbit`); absent: no limit.
            description (None | str | Unset): Free text shown by `vm show`.
            disk_bytes (int | None | Unset): Size of the VM's disk; defaults to the image's size for disk images, none for
                kernel images.
            firmware (Firmware | None | Unset):
            ha (HaPolicy | Unset): What happens to a VM when its node is lost.
            ha_priority (int | Unset): Higher restarts first when several VMs must move.
            iso (None | str | Unset): An ISO image (`image import NAME FILE.iso`) attached as a read-only CD-ROM, booted
                after the disk. When `image` is itself an ISO image, the VM is an installer: a blank
                disk of `disk_bytes` (required) and that ISO.
            labels (BTreeMap | Unset):
            network (NetworkType0 | NetworkType1 | NetworkType2 | Unset): How a VM is connected to the network.
            nics (list[NicRequest] | Unset): NICs on overlay networks (`--network NET [--ip A] [--mac M]`), in addition to
                `network`.
            node (None | str | Unset): Place on this node; otherwise the scheduler chooses.
            secure_boot (bool | Unset): UEFI Secure Boot (with `firmware: uefi`): OVMF's Secure Boot build, Microsoft's keys
                enrolled, so shim-signed installers and OSes boot and unsigned ones are refused.
            security_groups (list[str] | Unset): Security groups (of the VM's project) that filter its overlay NICs
                (`--security-group web`); none leaves them unfiltered.
            ssh_keys (list[str] | Unset): SSH public keys put into the cloud-init seed (disk images only).
            start (bool | Unset): Start the VM after creating it (default true).
            storage (None | str | Unset): Keep the VM's disk in this storage pool (shared by every node) instead of the
                node's
                local disk.
            tpm (bool | Unset): A TPM 2.0 (swtpm, QEMU's `tpm-crb`) whose state is the VM's own and follows it through
                migrations, backups, restores and clones.
            user_data (None | str | Unset): cloud-init user-data (a `#cloud-config` YAML document, at most 64 KiB) put into
                the
                NoCloud seed as it is; disk images only.
            vendor_data (None | str | Unset): cloud-init vendor-data, checked like `user_data`.
            vnc (bool | Unset): Give the VM a graphics card and a graphical console (VNC), reached only through the API
                (`vm console NAME --vnc`); never a port on the node.
     """

    cpus: int
    image: str
    memory_bytes: int
    name: str
    accel: AccelChoice | Unset = UNSET
    bandwidth_bps: int | None | Unset = UNSET
    description: None | str | Unset = UNSET
    disk_bytes: int | None | Unset = UNSET
    firmware: Firmware | None | Unset = UNSET
    ha: HaPolicy | Unset = UNSET
    ha_priority: int | Unset = UNSET
    iso: None | str | Unset = UNSET
    labels: BTreeMap | Unset = UNSET
    network: NetworkType0 | NetworkType1 | NetworkType2 | Unset = UNSET
    nics: list[NicRequest] | Unset = UNSET
    node: None | str | Unset = UNSET
    secure_boot: bool | Unset = UNSET
    security_groups: list[str] | Unset = UNSET
    ssh_keys: list[str] | Unset = UNSET
    start: bool | Unset = UNSET
    storage: None | str | Unset = UNSET
    tpm: bool | Unset = UNSET
    user_data: None | str | Unset = UNSET
    vendor_data: None | str | Unset = UNSET
    vnc: bool | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic_request import NicRequest # noqa: PLC0415
        cpus = self.cpus

        image = self.image

        memory_bytes = self.memory_bytes

        name = self.name

        accel: str | Unset = UNSET
        if not isinstance(self.accel, Unset):
            accel = self.accel.value


        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        disk_bytes: int | None | Unset
        if isinstance(self.disk_bytes, Unset):
            disk_bytes = UNSET
        else:
            disk_bytes = self.disk_bytes

        firmware: None | str | Unset
        if isinstance(self.firmware, Unset):
            firmware = UNSET
        elif isinstance(self.firmware, Firmware):
            firmware = self.firmware.value
        else:
            firmware = self.firmware

        ha: str | Unset = UNSET
        if not isinstance(self.ha, Unset):
            ha = self.ha.value


        ha_priority = self.ha_priority

        iso: None | str | Unset
        if isinstance(self.iso, Unset):
            iso = UNSET
        else:
            iso = self.iso

        labels: dict[str, Any] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels.to_dict()

        network: dict[str, Any] | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        elif isinstance(self.network, NetworkType0):
            network = self.network.to_dict()
        elif isinstance(self.network, NetworkType1):
            network = self.network.to_dict()
        else:
            network = self.network.to_dict()


        nics: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.nics, Unset):
            nics = []
            for nics_item_data in self.nics:
                nics_item = nics_item_data.to_dict()
                nics.append(nics_item)



        node: None | str | Unset
        if isinstance(self.node, Unset):
            node = UNSET
        else:
            node = self.node

        secure_boot = self.secure_boot

        security_groups: list[str] | Unset = UNSET
        if not isinstance(self.security_groups, Unset):
            security_groups = self.security_groups



        ssh_keys: list[str] | Unset = UNSET
        if not isinstance(self.ssh_keys, Unset):
            ssh_keys = self.ssh_keys



        start = self.start

        storage: None | str | Unset
        if isinstance(self.storage, Unset):
            storage = UNSET
        else:
            storage = self.storage

        tpm = self.tpm

        user_data: None | str | Unset
        if isinstance(self.user_data, Unset):
            user_data = UNSET
        else:
            user_data = self.user_data

        vendor_data: None | str | Unset
        if isinstance(self.vendor_data, Unset):
            vendor_data = UNSET
        else:
            vendor_data = self.vendor_data

        vnc = self.vnc


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "cpus": cpus,
            "image": image,
            "memory_bytes": memory_bytes,
            "name": name,
        })
        if accel is not UNSET:
            field_dict["accel"] = accel
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if description is not UNSET:
            field_dict["description"] = description
        if disk_bytes is not UNSET:
            field_dict["disk_bytes"] = disk_bytes
        if firmware is not UNSET:
            field_dict["firmware"] = firmware
        if ha is not UNSET:
            field_dict["ha"] = ha
        if ha_priority is not UNSET:
            field_dict["ha_priority"] = ha_priority
        if iso is not UNSET:
            field_dict["iso"] = iso
        if labels is not UNSET:
            field_dict["labels"] = labels
        if network is not UNSET:
            field_dict["network"] = network
        if nics is not UNSET:
            field_dict["nics"] = nics
        if node is not UNSET:
            field_dict["node"] = node
        if secure_boot is not UNSET:
            field_dict["secure_boot"] = secure_boot
        if security_groups is not UNSET:
            field_dict["security_groups"] = security_groups
        if ssh_keys is not UNSET:
            field_dict["ssh_keys"] = ssh_keys
        if start is not UNSET:
            field_dict["start"] = start
        if storage is not UNSET:
            field_dict["storage"] = storage
        if tpm is not UNSET:
            field_dict["tpm"] = tpm
        if user_data is not UNSET:
            field_dict["user_data"] = user_data
        if vendor_data is not UNSET:
            field_dict["vendor_data"] = vendor_data
        if vnc is not UNSET:
            field_dict["vnc"] = vnc

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic_request import NicRequest # noqa: PLC0415
        d = dict(src_dict)
        cpus = d.pop("cpus")

        image = d.pop("image")

        memory_bytes = d.pop("memory_bytes")

        name = d.pop("name")

        _accel = d.pop("accel", UNSET)
        accel: AccelChoice | Unset
        if isinstance(_accel,  Unset):
            accel = UNSET
        else:
            accel = AccelChoice(_accel)




        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        def _parse_disk_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        disk_bytes = _parse_disk_bytes(d.pop("disk_bytes", UNSET))


        def _parse_firmware(data: object) -> Firmware | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                firmware_type_0 = Firmware(data)



                return firmware_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Firmware | None | Unset, data)

        firmware = _parse_firmware(d.pop("firmware", UNSET))


        _ha = d.pop("ha", UNSET)
        ha: HaPolicy | Unset
        if isinstance(_ha,  Unset):
            ha = UNSET
        else:
            ha = HaPolicy(_ha)




        ha_priority = d.pop("ha_priority", UNSET)

        def _parse_iso(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        iso = _parse_iso(d.pop("iso", UNSET))


        _labels = d.pop("labels", UNSET)
        labels: BTreeMap | Unset
        if isinstance(_labels,  Unset):
            labels = UNSET
        else:
            labels = BTreeMap.from_dict(_labels)




        def _parse_network(data: object) -> NetworkType0 | NetworkType1 | NetworkType2 | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_network_type_0 = NetworkType0.from_dict(data)



                return componentsschemas_network_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_network_type_1 = NetworkType1.from_dict(data)



                return componentsschemas_network_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_network_type_2 = NetworkType2.from_dict(data)



            return componentsschemas_network_type_2

        network = _parse_network(d.pop("network", UNSET))


        _nics = d.pop("nics", UNSET)
        nics: list[NicRequest] | Unset = UNSET
        if _nics is not UNSET:
            nics = []
            for nics_item_data in _nics:
                nics_item = NicRequest.from_dict(nics_item_data)



                nics.append(nics_item)


        def _parse_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node = _parse_node(d.pop("node", UNSET))


        secure_boot = d.pop("secure_boot", UNSET)

        security_groups = cast(list[str], d.pop("security_groups", UNSET))


        ssh_keys = cast(list[str], d.pop("ssh_keys", UNSET))


        start = d.pop("start", UNSET)

        def _parse_storage(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        storage = _parse_storage(d.pop("storage", UNSET))


        tpm = d.pop("tpm", UNSET)

        def _parse_user_data(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user_data = _parse_user_data(d.pop("user_data", UNSET))


        def _parse_vendor_data(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        vendor_data = _parse_vendor_data(d.pop("vendor_data", UNSET))


        vnc = d.pop("vnc", UNSET)

        vm_create_request = cls(
            cpus=cpus,
            image=image,
            memory_bytes=memory_bytes,
            name=name,
            accel=accel,
            bandwidth_bps=bandwidth_bps,
            description=description,
            disk_bytes=disk_bytes,
            firmware=firmware,
            ha=ha,
            ha_priority=ha_priority,
            iso=iso,
            labels=labels,
            network=network,
            nics=nics,
            node=node,
            secure_boot=secure_boot,
            security_groups=security_groups,
            ssh_keys=ssh_keys,
            start=start,
            storage=storage,
            tpm=tpm,
            user_data=user_data,
            vendor_data=vendor_data,
            vnc=vnc,
        )

        return vm_create_request

