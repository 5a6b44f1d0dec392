from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.accel_choice import AccelChoice
from ..models.ha_policy import HaPolicy
from ..models.power_state import PowerState
from ..models.vm_state import VmState
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.added_nic import AddedNic
  from ..models.b_tree_map import BTreeMap
  from ..models.data_disk import DataDisk
  from ..models.guest_interface import GuestInterface
  from ..models.network_type_0 import NetworkType0
  from ..models.network_type_1 import NetworkType1
  from ..models.network_type_2 import NetworkType2
  from ..models.nic import Nic
  from ..models.vm_snapshot import VmSnapshot





T = TypeVar("T", bound="Vm")



@_attrs_define
class Vm:
    """ A virtual machine: what was asked for and what is observed.

        Attributes:
            accel (AccelChoice): Which accelerator to use; `auto` picks KVM only where it really works.
            cpus (int):
            created_at (int):
            desired (PowerState): The power state an operator asked for.
            generation (int): Bumped on every change of what is asked for.
            image (str):
            memory_bytes (int):
            name (str):
            network (NetworkType0 | NetworkType1 | NetworkType2): How a VM is connected to the network.
            project (str):
            state (VmState): What a VM is doing, as last observed (or being changed to).
            uuid (str):
            accel_in_use (None | str | Unset): The accelerator the running QEMU actually uses.
            added_nics (list[AddedNic] | Unset): NICs added with `vm nic add`, each in a hot-plug port.
            bandwidth_bps (int | None | Unset): Each overlay NIC's limit in bits per second, in each direction.
            data_disks (list[DataDisk] | Unset): Disks added by `vm disk add` (`disk1`, ...), besides the boot disk `disk0`.
            description (None | str | Unset):
            disk_bytes (int | None | Unset):
            firmware (str | Unset): What the guest boots through: `uefi` (OVMF, any image), `bios` (SeaBIOS, disk images)
                or `kernel` (SeaBIOS with direct kernel boot, kernel images).
            free_disk_slots (int | Unset): How many more disks can be added: free hot-plug ports (a VM created before hot-
                plug
                gets ports when it is stopped).
            guest_interfaces (list[GuestInterface] | Unset): The guest's interfaces and addresses while it runs, as its
                qemu-guest-agent reports
                them (empty when the guest runs no agent).
            ha (HaPolicy | Unset): What happens to a VM when its node is lost.
            ha_priority (int | Unset):
            iso (None | str | Unset): The ISO image in the VM's CD-ROM drive, if any.
            labels (BTreeMap | Unset):
            nics (list[Nic] | Unset): NICs on overlay networks: network, MAC, addresses.
            node (None | str | Unset):
            pending_cpus (int | None | Unset): CPUs the VM gets when it next starts, when that differs from `cpus`.
            pending_memory_bytes (int | None | Unset): Memory the VM gets when it next starts, when that differs from
                `memory_bytes`.
            pid (int | None | Unset):
            secure_boot (bool | Unset): UEFI Secure Boot is on.
            security_groups (list[str] | Unset): Security groups that filter the VM's overlay NICs.
            snapshots (list[VmSnapshot] | Unset): Snapshots of the VM's disk, oldest first.
            state_reason (None | str | Unset): Why the VM is in this state when it is not the one asked for (e.g. a crash
                reason).
            storage (None | str | Unset):
            tpm (bool | Unset): The VM has a TPM 2.0.
            user_data (bool | Unset): Whether cloud-init user-data / vendor-data were given at create.
            vendor_data (bool | Unset):
            vnc (bool | Unset): The VM has a graphics card and a graphical console (`vm console NAME --vnc`).
     """

    accel: AccelChoice
    cpus: int
    created_at: int
    desired: PowerState
    generation: int
    image: str
    memory_bytes: int
    name: str
    network: NetworkType0 | NetworkType1 | NetworkType2
    project: str
    state: VmState
    uuid: str
    accel_in_use: None | str | Unset = UNSET
    added_nics: list[AddedNic] | Unset = UNSET
    bandwidth_bps: int | None | Unset = UNSET
    data_disks: list[DataDisk] | Unset = UNSET
    description: None | str | Unset = UNSET
    disk_bytes: int | None | Unset = UNSET
    firmware: str | Unset = UNSET
    free_disk_slots: int | Unset = UNSET
    guest_interfaces: list[GuestInterface] | Unset = UNSET
    ha: HaPolicy | Unset = UNSET
    ha_priority: int | Unset = UNSET
    iso: None | str | Unset = UNSET
    labels: BTreeMap | Unset = UNSET
    nics: list[Nic] | Unset = UNSET
    node: None | str | Unset = UNSET
    pending_cpus: int | None | Unset = UNSET
    pending_memory_bytes: int | None | Unset = UNSET
    pid: int | None | Unset = UNSET
    secure_boot: bool | Unset = UNSET
    security_groups: list[str] | Unset = UNSET
    snapshots: list[VmSnapshot] | Unset = UNSET
    state_reason: None | str | Unset = UNSET
    storage: None | str | Unset = UNSET
    tpm: bool | Unset = UNSET
    user_data: bool | Unset = UNSET
    vendor_data: bool | Unset = UNSET
    vnc: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.added_nic import AddedNic # noqa: PLC0415
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        from ..models.data_disk import DataDisk # noqa: PLC0415
        from ..models.guest_interface import GuestInterface # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic import Nic # noqa: PLC0415
        from ..models.vm_snapshot import VmSnapshot # noqa: PLC0415
        accel = self.accel.value

        cpus = self.cpus

        created_at = self.created_at

        desired = self.desired.value

        generation = self.generation

        image = self.image

        memory_bytes = self.memory_bytes

        name = self.name

        network: dict[str, Any]
        if isinstance(self.network, NetworkType0):
            network = self.network.to_dict()
        elif isinstance(self.network, NetworkType1):
            network = self.network.to_dict()
        else:
            network = self.network.to_dict()


        project = self.project

        state = self.state.value

        uuid = self.uuid

        accel_in_use: None | str | Unset
        if isinstance(self.accel_in_use, Unset):
            accel_in_use = UNSET
        else:
            accel_in_use = self.accel_in_use

        added_nics: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.added_nics, Unset):
            added_nics = []
            for added_nics_item_data in self.added_nics:
                added_nics_item = added_nics_item_data.to_dict()
                added_nics.append(added_nics_item)



        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        data_disks: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.data_disks, Unset):
            data_disks = []
            for data_disks_item_data in self.data_disks:
                data_disks_item = data_disks_item_data.to_dict()
                data_disks.append(data_disks_item)



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

        firmware = self.firmware

        free_disk_slots = self.free_disk_slots

        guest_interfaces: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.guest_interfaces, Unset):
            guest_interfaces = []
            for guest_interfaces_item_data in self.guest_interfaces:
                guest_interfaces_item = guest_interfaces_item_data.to_dict()
                guest_interfaces.append(guest_interfaces_item)



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

        pending_cpus: int | None | Unset
        if isinstance(self.pending_cpus, Unset):
            pending_cpus = UNSET
        else:
            pending_cpus = self.pending_cpus

        pending_memory_bytes: int | None | Unset
        if isinstance(self.pending_memory_bytes, Unset):
            pending_memory_bytes = UNSET
        else:
            pending_memory_bytes = self.pending_memory_bytes

        pid: int | None | Unset
        if isinstance(self.pid, Unset):
            pid = UNSET
        else:
            pid = self.pid

        secure_boot = self.secure_boot

        security_groups: list[str] | Unset = UNSET
        if not isinstance(self.security_groups, Unset):
            security_groups = self.security_groups



        snapshots: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.snapshots, Unset):
            snapshots = []
            for snapshots_item_data in self.snapshots:
                snapshots_item = snapshots_item_data.to_dict()
                snapshots.append(snapshots_item)



        state_reason: None | str | Unset
        if isinstance(self.state_reason, Unset):
            state_reason = UNSET
        else:
            state_reason = self.state_reason

        storage: None | str | Unset
        if isinstance(self.storage, Unset):
            storage = UNSET
        else:
            storage = self.storage

        tpm = self.tpm

        user_data = self.user_data

        vendor_data = self.vendor_data

        vnc = self.vnc


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "accel": accel,
            "cpus": cpus,
            "created_at": created_at,
            "desired": desired,
            "generation": generation,
            "image": image,
            "memory_bytes": memory_bytes,
            "name": name,
            "network": network,
            "project": project,
            "state": state,
            "uuid": uuid,
        })
        if accel_in_use is not UNSET:
            field_dict["accel_in_use"] = accel_in_use
        if added_nics is not UNSET:
            field_dict["added_nics"] = added_nics
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if data_disks is not UNSET:
            field_dict["data_disks"] = data_disks
        if description is not UNSET:
            field_dict["description"] = description
        if disk_bytes is not UNSET:
            field_dict["disk_bytes"] = disk_bytes
        if firmware is not UNSET:
            field_dict["firmware"] = firmware
        if free_disk_slots is not UNSET:
            field_dict["free_disk_slots"] = free_disk_slots
        if guest_interfaces is not UNSET:
            field_dict["guest_interfaces"] = guest_interfaces
        if ha is not UNSET:
            field_dict["ha"] = ha
        if ha_priority is not UNSET:
            field_dict["ha_priority"] = ha_priority
        if iso is not UNSET:
            field_dict["iso"] = iso
        if labels is not UNSET:
            field_dict["labels"] = labels
        if nics is not UNSET:
            field_dict["nics"] = nics
        if node is not UNSET:
            field_dict["node"] = node
        if pending_cpus is not UNSET:
            field_dict["pending_cpus"] = pending_cpus
        if pending_memory_bytes is not UNSET:
            field_dict["pending_memory_bytes"] = pending_memory_bytes
        if pid is not UNSET:
            field_dict["pid"] = pid
        if secure_boot is not UNSET:
            field_dict["secure_boot"] = secure_boot
        if security_groups is not UNSET:
            field_dict["security_groups"] = security_groups
        if snapshots is not UNSET:
            field_dict["snapshots"] = snapshots
        if state_reason is not UNSET:
            field_dict["state_reason"] = state_reason
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
        from ..models.added_nic import AddedNic # noqa: PLC0415
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        from ..models.data_disk import DataDisk # noqa: PLC0415
        from ..models.guest_interface import GuestInterface # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic import Nic # noqa: PLC0415
        from ..models.vm_snapshot import VmSnapshot # noqa: PLC0415
        d = dict(src_dict)
        accel = AccelChoice(d.pop("accel"))




        cpus = d.pop("cpus")

        created_at = d.pop("created_at")

        desired = PowerState(d.pop("desired"))




        generation = d.pop("generation")

        image = d.pop("image")

        memory_bytes = d.pop("memory_bytes")

        name = d.pop("name")

        def _parse_network(data: object) -> NetworkType0 | NetworkType1 | NetworkType2:
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

        network = _parse_network(d.pop("network"))


        project = d.pop("project")

        state = VmState(d.pop("state"))




        uuid = d.pop("uuid")

        def _parse_accel_in_use(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        accel_in_use = _parse_accel_in_use(d.pop("accel_in_use", UNSET))


        _added_nics = d.pop("added_nics", UNSET)
        added_nics: list[AddedNic] | Unset = UNSET
        if _added_nics is not UNSET:
            added_nics = []
            for added_nics_item_data in _added_nics:
                added_nics_item = AddedNic.from_dict(added_nics_item_data)



                added_nics.append(added_nics_item)


        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        _data_disks = d.pop("data_disks", UNSET)
        data_disks: list[DataDisk] | Unset = UNSET
        if _data_disks is not UNSET:
            data_disks = []
            for data_disks_item_data in _data_disks:
                data_disks_item = DataDisk.from_dict(data_disks_item_data)



                data_disks.append(data_disks_item)


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


        firmware = d.pop("firmware", UNSET)

        free_disk_slots = d.pop("free_disk_slots", UNSET)

        _guest_interfaces = d.pop("guest_interfaces", UNSET)
        guest_interfaces: list[GuestInterface] | Unset = UNSET
        if _guest_interfaces is not UNSET:
            guest_interfaces = []
            for guest_interfaces_item_data in _guest_interfaces:
                guest_interfaces_item = GuestInterface.from_dict(guest_interfaces_item_data)



                guest_interfaces.append(guest_interfaces_item)


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




        _nics = d.pop("nics", UNSET)
        nics: list[Nic] | Unset = UNSET
        if _nics is not UNSET:
            nics = []
            for nics_item_data in _nics:
                nics_item = Nic.from_dict(nics_item_data)



                nics.append(nics_item)


        def _parse_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node = _parse_node(d.pop("node", UNSET))


        def _parse_pending_cpus(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pending_cpus = _parse_pending_cpus(d.pop("pending_cpus", UNSET))


        def _parse_pending_memory_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pending_memory_bytes = _parse_pending_memory_bytes(d.pop("pending_memory_bytes", UNSET))


        def _parse_pid(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pid = _parse_pid(d.pop("pid", UNSET))


        secure_boot = d.pop("secure_boot", UNSET)

        security_groups = cast(list[str], d.pop("security_groups", UNSET))


        _snapshots = d.pop("snapshots", UNSET)
        snapshots: list[VmSnapshot] | Unset = UNSET
        if _snapshots is not UNSET:
            snapshots = []
            for snapshots_item_data in _snapshots:
                snapshots_item = VmSnapshot.from_dict(snapshots_item_data)



                snapshots.append(snapshots_item)


        def _parse_state_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        state_reason = _parse_state_reason(d.pop("state_reason", UNSET))


        def _parse_storage(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        storage = _parse_storage(d.pop("storage", UNSET))


        tpm = d.pop("tpm", UNSET)

        user_data = d.pop("user_data", UNSET)

        vendor_data = d.pop("vendor_data", UNSET)

        vnc = d.pop("vnc", UNSET)

        vm = cls(
            accel=accel,
            cpus=cpus,
            created_at=created_at,
            desired=desired,
            generation=generation,
            image=image,
            memory_bytes=memory_bytes,
            name=name,
            network=network,
            project=project,
            state=state,
            uuid=uuid,
            accel_in_use=accel_in_use,
            added_nics=added_nics,
            bandwidth_bps=bandwidth_bps,
            data_disks=data_disks,
            description=description,
            disk_bytes=disk_bytes,
            firmware=firmware,
            free_disk_slots=free_disk_slots,
            guest_interfaces=guest_interfaces,
            ha=ha,
            ha_priority=ha_priority,
            iso=iso,
            labels=labels,
            nics=nics,
            node=node,
            pending_cpus=pending_cpus,
            pending_memory_bytes=pending_memory_bytes,
            pid=pid,
            secure_boot=secure_boot,
            security_groups=security_groups,
            snapshots=snapshots,
            state_reason=state_reason,
            storage=storage,
            tpm=tpm,
            user_data=user_data,
            vendor_data=vendor_data,
            vnc=vnc,
        )


        vm.additional_properties = d
        return vm

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
