from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.accel_choice import AccelChoice
from ..models.firmware import Firmware
from ..models.ha_policy import HaPolicy
from ..models.power_state import PowerState
from ..models.vm_action import VmAction
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.added_nic import AddedNic
  from ..models.clone_source import CloneSource
  from ..models.data_disk import DataDisk
  from ..models.image_type_0 import ImageType0
  from ..models.image_type_1 import ImageType1
  from ..models.image_type_2 import ImageType2
  from ..models.network_type_0 import NetworkType0
  from ..models.network_type_1 import NetworkType1
  from ..models.network_type_2 import NetworkType2
  from ..models.nic import Nic
  from ..models.restore_source import RestoreSource
  from ..models.storage_pool import StoragePool





T = TypeVar("T", bound="DesiredVm")



@_attrs_define
class DesiredVm:
    """ A VM as the agent of its node must make it be.

        Attributes:
            accel (AccelChoice): Which accelerator to use; `auto` picks KVM only where it really works.
            cpus (int):
            generation (int): Bumped on every change; the agent acts once per generation.
            memory_bytes (int):
            name (str):
            network (NetworkType0 | NetworkType1 | NetworkType2): How a VM is connected to the network.
            power (PowerState): The power state an operator asked for.
            project (str):
            uuid (str):
            action (None | Unset | VmAction):
            added_nics (list[AddedNic] | Unset): NICs added by `vm nic add`, each in its port.
            clone_of (CloneSource | None | Unset):
            data_disks (list[DataDisk] | Unset): Disks added by `vm disk add`, each in its port.
            deleting (bool | Unset): The VM is being deleted: stop it and remove its files.
            disk_bytes (int | None | Unset):
            firmware (Firmware | Unset): The firmware a VM boots through.
            force (bool | Unset): With `power: stopped`: kill instead of a graceful ACPI shutdown.
            ha (HaPolicy | Unset): What happens to a VM when its node is lost.
            hotplug_ports (int | Unset): Spare PCIe root ports the machine has for hot-plugged disks (0: a VM from before
                hot-plug, whose machine keeps the shape it was started with).
            image (ImageType0 | ImageType1 | ImageType2 | None | Unset):
            iso (ImageType0 | ImageType1 | ImageType2 | None | Unset):
            nics (list[Nic] | Unset): NICs on overlay networks: each a tap on the network's bridge `ncbr<vni>`.
            restore (None | RestoreSource | Unset):
            secure_boot (bool | Unset):
            ssh_keys (list[str] | Unset):
            storage (None | StoragePool | Unset):
            tpm (bool | Unset): A TPM 2.0 through swtpm; its state lives beside the disks (`tpm/<node>/`).
            user_data (None | str | Unset): cloud-init user-data for the NoCloud seed (replaces the generated one).
            vendor_data (None | str | Unset): cloud-init vendor-data for the NoCloud seed.
            vnc (bool | Unset): A graphics card and QEMU's VNC server on a unix socket in the VM's run directory.
     """

    accel: AccelChoice
    cpus: int
    generation: int
    memory_bytes: int
    name: str
    network: NetworkType0 | NetworkType1 | NetworkType2
    power: PowerState
    project: str
    uuid: str
    action: None | Unset | VmAction = UNSET
    added_nics: list[AddedNic] | Unset = UNSET
    clone_of: CloneSource | None | Unset = UNSET
    data_disks: list[DataDisk] | Unset = UNSET
    deleting: bool | Unset = UNSET
    disk_bytes: int | None | Unset = UNSET
    firmware: Firmware | Unset = UNSET
    force: bool | Unset = UNSET
    ha: HaPolicy | Unset = UNSET
    hotplug_ports: int | Unset = UNSET
    image: ImageType0 | ImageType1 | ImageType2 | None | Unset = UNSET
    iso: ImageType0 | ImageType1 | ImageType2 | None | Unset = UNSET
    nics: list[Nic] | Unset = UNSET
    restore: None | RestoreSource | Unset = UNSET
    secure_boot: bool | Unset = UNSET
    ssh_keys: list[str] | Unset = UNSET
    storage: None | StoragePool | Unset = UNSET
    tpm: bool | Unset = UNSET
    user_data: None | str | Unset = UNSET
    vendor_data: None | str | Unset = UNSET
    vnc: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.added_nic import AddedNic # noqa: PLC0415
        from ..models.clone_source import CloneSource # noqa: PLC0415
        from ..models.data_disk import DataDisk # noqa: PLC0415
        from ..models.image_type_0 import ImageType0 # noqa: PLC0415
        from ..models.image_type_1 import ImageType1 # noqa: PLC0415
        from ..models.image_type_2 import ImageType2 # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic import Nic # noqa: PLC0415
        from ..models.restore_source import RestoreSource # noqa: PLC0415
        from ..models.storage_pool import StoragePool # noqa: PLC0415
        accel = self.accel.value

        cpus = self.cpus

        generation = self.generation

        memory_bytes = self.memory_bytes

        name = self.name

        network: dict[str, Any]
        if isinstance(self.network, NetworkType0):
            network = self.network.to_dict()
        elif isinstance(self.network, NetworkType1):
            network = self.network.to_dict()
        else:
            network = self.network.to_dict()


        power = self.power.value

        project = self.project

        uuid = self.uuid

        action: None | str | Unset
        if isinstance(self.action, Unset):
            action = UNSET
        elif isinstance(self.action, VmAction):
            action = self.action.value
        else:
            action = self.action

        added_nics: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.added_nics, Unset):
            added_nics = []
            for added_nics_item_data in self.added_nics:
                added_nics_item = added_nics_item_data.to_dict()
                added_nics.append(added_nics_item)



        clone_of: dict[str, Any] | None | Unset
        if isinstance(self.clone_of, Unset):
            clone_of = UNSET
        elif isinstance(self.clone_of, CloneSource):
            clone_of = self.clone_of.to_dict()
        else:
            clone_of = self.clone_of

        data_disks: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.data_disks, Unset):
            data_disks = []
            for data_disks_item_data in self.data_disks:
                data_disks_item = data_disks_item_data.to_dict()
                data_disks.append(data_disks_item)



        deleting = self.deleting

        disk_bytes: int | None | Unset
        if isinstance(self.disk_bytes, Unset):
            disk_bytes = UNSET
        else:
            disk_bytes = self.disk_bytes

        firmware: str | Unset = UNSET
        if not isinstance(self.firmware, Unset):
            firmware = self.firmware.value


        force = self.force

        ha: str | Unset = UNSET
        if not isinstance(self.ha, Unset):
            ha = self.ha.value


        hotplug_ports = self.hotplug_ports

        image: dict[str, Any] | None | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        elif isinstance(self.image, ImageType0):
            image = self.image.to_dict()
        elif isinstance(self.image, ImageType1):
            image = self.image.to_dict()
        elif isinstance(self.image, ImageType2):
            image = self.image.to_dict()
        else:
            image = self.image

        iso: dict[str, Any] | None | Unset
        if isinstance(self.iso, Unset):
            iso = UNSET
        elif isinstance(self.iso, ImageType0):
            iso = self.iso.to_dict()
        elif isinstance(self.iso, ImageType1):
            iso = self.iso.to_dict()
        elif isinstance(self.iso, ImageType2):
            iso = self.iso.to_dict()
        else:
            iso = self.iso

        nics: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.nics, Unset):
            nics = []
            for nics_item_data in self.nics:
                nics_item = nics_item_data.to_dict()
                nics.append(nics_item)



        restore: dict[str, Any] | None | Unset
        if isinstance(self.restore, Unset):
            restore = UNSET
        elif isinstance(self.restore, RestoreSource):
            restore = self.restore.to_dict()
        else:
            restore = self.restore

        secure_boot = self.secure_boot

        ssh_keys: list[str] | Unset = UNSET
        if not isinstance(self.ssh_keys, Unset):
            ssh_keys = self.ssh_keys



        storage: dict[str, Any] | None | Unset
        if isinstance(self.storage, Unset):
            storage = UNSET
        elif isinstance(self.storage, StoragePool):
            storage = self.storage.to_dict()
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
        field_dict.update(self.additional_properties)
        field_dict.update({
            "accel": accel,
            "cpus": cpus,
            "generation": generation,
            "memory_bytes": memory_bytes,
            "name": name,
            "network": network,
            "power": power,
            "project": project,
            "uuid": uuid,
        })
        if action is not UNSET:
            field_dict["action"] = action
        if added_nics is not UNSET:
            field_dict["added_nics"] = added_nics
        if clone_of is not UNSET:
            field_dict["clone_of"] = clone_of
        if data_disks is not UNSET:
            field_dict["data_disks"] = data_disks
        if deleting is not UNSET:
            field_dict["deleting"] = deleting
        if disk_bytes is not UNSET:
            field_dict["disk_bytes"] = disk_bytes
        if firmware is not UNSET:
            field_dict["firmware"] = firmware
        if force is not UNSET:
            field_dict["force"] = force
        if ha is not UNSET:
            field_dict["ha"] = ha
        if hotplug_ports is not UNSET:
            field_dict["hotplug_ports"] = hotplug_ports
        if image is not UNSET:
            field_dict["image"] = image
        if iso is not UNSET:
            field_dict["iso"] = iso
        if nics is not UNSET:
            field_dict["nics"] = nics
        if restore is not UNSET:
            field_dict["restore"] = restore
        if secure_boot is not UNSET:
            field_dict["secure_boot"] = secure_boot
        if ssh_keys is not UNSET:
            field_dict["ssh_keys"] = ssh_keys
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
        from ..models.clone_source import CloneSource # noqa: PLC0415
        from ..models.data_disk import DataDisk # noqa: PLC0415
        from ..models.image_type_0 import ImageType0 # noqa: PLC0415
        from ..models.image_type_1 import ImageType1 # noqa: PLC0415
        from ..models.image_type_2 import ImageType2 # noqa: PLC0415
        from ..models.network_type_0 import NetworkType0 # noqa: PLC0415
        from ..models.network_type_1 import NetworkType1 # noqa: PLC0415
        from ..models.network_type_2 import NetworkType2 # noqa: PLC0415
        from ..models.nic import Nic # noqa: PLC0415
        from ..models.restore_source import RestoreSource # noqa: PLC0415
        from ..models.storage_pool import StoragePool # noqa: PLC0415
        d = dict(src_dict)
        accel = AccelChoice(d.pop("accel"))




        cpus = d.pop("cpus")

        generation = d.pop("generation")

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


        power = PowerState(d.pop("power"))




        project = d.pop("project")

        uuid = d.pop("uuid")

        def _parse_action(data: object) -> None | Unset | VmAction:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                action_type_0 = VmAction(data)



                return action_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | VmAction, data)

        action = _parse_action(d.pop("action", UNSET))


        _added_nics = d.pop("added_nics", UNSET)
        added_nics: list[AddedNic] | Unset = UNSET
        if _added_nics is not UNSET:
            added_nics = []
            for added_nics_item_data in _added_nics:
                added_nics_item = AddedNic.from_dict(added_nics_item_data)



                added_nics.append(added_nics_item)


        def _parse_clone_of(data: object) -> CloneSource | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                clone_of_type_0 = CloneSource.from_dict(data)



                return clone_of_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CloneSource | None | Unset, data)

        clone_of = _parse_clone_of(d.pop("clone_of", UNSET))


        _data_disks = d.pop("data_disks", UNSET)
        data_disks: list[DataDisk] | Unset = UNSET
        if _data_disks is not UNSET:
            data_disks = []
            for data_disks_item_data in _data_disks:
                data_disks_item = DataDisk.from_dict(data_disks_item_data)



                data_disks.append(data_disks_item)


        deleting = d.pop("deleting", UNSET)

        def _parse_disk_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        disk_bytes = _parse_disk_bytes(d.pop("disk_bytes", UNSET))


        _firmware = d.pop("firmware", UNSET)
        firmware: Firmware | Unset
        if isinstance(_firmware,  Unset):
            firmware = UNSET
        else:
            firmware = Firmware(_firmware)




        force = d.pop("force", UNSET)

        _ha = d.pop("ha", UNSET)
        ha: HaPolicy | Unset
        if isinstance(_ha,  Unset):
            ha = UNSET
        else:
            ha = HaPolicy(_ha)




        hotplug_ports = d.pop("hotplug_ports", UNSET)

        def _parse_image(data: object) -> ImageType0 | ImageType1 | ImageType2 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_0 = ImageType0.from_dict(data)



                return componentsschemas_image_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_1 = ImageType1.from_dict(data)



                return componentsschemas_image_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_2 = ImageType2.from_dict(data)



                return componentsschemas_image_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ImageType0 | ImageType1 | ImageType2 | None | Unset, data)

        image = _parse_image(d.pop("image", UNSET))


        def _parse_iso(data: object) -> ImageType0 | ImageType1 | ImageType2 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_0 = ImageType0.from_dict(data)



                return componentsschemas_image_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_1 = ImageType1.from_dict(data)



                return componentsschemas_image_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_2 = ImageType2.from_dict(data)



                return componentsschemas_image_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ImageType0 | ImageType1 | ImageType2 | None | Unset, data)

        iso = _parse_iso(d.pop("iso", UNSET))


        _nics = d.pop("nics", UNSET)
        nics: list[Nic] | Unset = UNSET
        if _nics is not UNSET:
            nics = []
            for nics_item_data in _nics:
                nics_item = Nic.from_dict(nics_item_data)



                nics.append(nics_item)


        def _parse_restore(data: object) -> None | RestoreSource | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                restore_type_0 = RestoreSource.from_dict(data)



                return restore_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RestoreSource | Unset, data)

        restore = _parse_restore(d.pop("restore", UNSET))


        secure_boot = d.pop("secure_boot", UNSET)

        ssh_keys = cast(list[str], d.pop("ssh_keys", UNSET))


        def _parse_storage(data: object) -> None | StoragePool | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                storage_type_0 = StoragePool.from_dict(data)



                return storage_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StoragePool | Unset, data)

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

        desired_vm = cls(
            accel=accel,
            cpus=cpus,
            generation=generation,
            memory_bytes=memory_bytes,
            name=name,
            network=network,
            power=power,
            project=project,
            uuid=uuid,
            action=action,
            added_nics=added_nics,
            clone_of=clone_of,
            data_disks=data_disks,
            deleting=deleting,
            disk_bytes=disk_bytes,
            firmware=firmware,
            force=force,
            ha=ha,
            hotplug_ports=hotplug_ports,
            image=image,
            iso=iso,
            nics=nics,
            restore=restore,
            secure_boot=secure_boot,
            ssh_keys=ssh_keys,
            storage=storage,
            tpm=tpm,
            user_data=user_data,
            vendor_data=vendor_data,
            vnc=vnc,
        )


        desired_vm.additional_properties = d
        return desired_vm

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
