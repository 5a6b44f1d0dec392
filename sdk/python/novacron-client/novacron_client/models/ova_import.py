from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.image_type_0 import ImageType0
  from ..models.image_type_1 import ImageType1
  from ..models.image_type_2 import ImageType2
  from ..models.ova_nic import OvaNic





T = TypeVar("T", bound="OvaImport")



@_attrs_define
class OvaImport:
    """ Answer of `PUT /api/v1/images/{name}/import-ova` (and `POST .../import-ova-local`): the appliance's disks as images
    (`NAME`,
    `NAME-disk2`, ...) and what its OVF descriptor says about the machine.

        Attributes:
            images (list[ImageType0 | ImageType1 | ImageType2]): One disk image per OVF disk, the boot disk first.
            nics (list[OvaNic]):
            vm_create (str): The `novacron vm create` command that matches the appliance.
            appliance (None | str | Unset): The OVF's virtual system id, when it has one.
            cpus (int | None | Unset):
            disk_adds (list[str] | Unset): The `novacron vm disk add` commands that give that VM the appliance's other
                disks, in
                the OVF's order.
            memory_bytes (int | None | Unset):
            operation (None | str | Unset): The `image.import` operation that did the import.
     """

    images: list[ImageType0 | ImageType1 | ImageType2]
    nics: list[OvaNic]
    vm_create: str
    appliance: None | str | Unset = UNSET
    cpus: int | None | Unset = UNSET
    disk_adds: list[str] | Unset = UNSET
    memory_bytes: int | None | Unset = UNSET
    operation: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.image_type_0 import ImageType0 # noqa: PLC0415
        from ..models.image_type_1 import ImageType1 # noqa: PLC0415
        from ..models.image_type_2 import ImageType2 # noqa: PLC0415
        from ..models.ova_nic import OvaNic # noqa: PLC0415
        images = []
        for images_item_data in self.images:
            images_item: dict[str, Any]
            if isinstance(images_item_data, ImageType0):
                images_item = images_item_data.to_dict()
            elif isinstance(images_item_data, ImageType1):
                images_item = images_item_data.to_dict()
            else:
                images_item = images_item_data.to_dict()

            images.append(images_item)



        nics = []
        for nics_item_data in self.nics:
            nics_item = nics_item_data.to_dict()
            nics.append(nics_item)



        vm_create = self.vm_create

        appliance: None | str | Unset
        if isinstance(self.appliance, Unset):
            appliance = UNSET
        else:
            appliance = self.appliance

        cpus: int | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        disk_adds: list[str] | Unset = UNSET
        if not isinstance(self.disk_adds, Unset):
            disk_adds = self.disk_adds



        memory_bytes: int | None | Unset
        if isinstance(self.memory_bytes, Unset):
            memory_bytes = UNSET
        else:
            memory_bytes = self.memory_bytes

        operation: None | str | Unset
        if isinstance(self.operation, Unset):
            operation = UNSET
        else:
            operation = self.operation


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "images": images,
            "nics": nics,
            "vm_create": vm_create,
        })
        if appliance is not UNSET:
            field_dict["appliance"] = appliance
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if disk_adds is not UNSET:
            field_dict["disk_adds"] = disk_adds
        if memory_bytes is not UNSET:
            field_dict["memory_bytes"] = memory_bytes
        if operation is not UNSET:
            field_dict["operation"] = operation

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.image_type_0 import ImageType0 # noqa: PLC0415
        from ..models.image_type_1 import ImageType1 # noqa: PLC0415
        from ..models.image_type_2 import ImageType2 # noqa: PLC0415
        from ..models.ova_nic import OvaNic # noqa: PLC0415
        d = dict(src_dict)
        images = []
        _images = d.pop("images")
        for images_item_data in (_images):
            def _parse_images_item(data: object) -> ImageType0 | ImageType1 | ImageType2:
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
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_2 = ImageType2.from_dict(data)



                return componentsschemas_image_type_2

            images_item = _parse_images_item(images_item_data)

            images.append(images_item)


        nics = []
        _nics = d.pop("nics")
        for nics_item_data in (_nics):
            nics_item = OvaNic.from_dict(nics_item_data)



            nics.append(nics_item)


        vm_create = d.pop("vm_create")

        def _parse_appliance(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        appliance = _parse_appliance(d.pop("appliance", UNSET))


        def _parse_cpus(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpus = _parse_cpus(d.pop("cpus", UNSET))


        disk_adds = cast(list[str], d.pop("disk_adds", UNSET))


        def _parse_memory_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        memory_bytes = _parse_memory_bytes(d.pop("memory_bytes", UNSET))


        def _parse_operation(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        operation = _parse_operation(d.pop("operation", UNSET))


        ova_import = cls(
            images=images,
            nics=nics,
            vm_create=vm_create,
            appliance=appliance,
            cpus=cpus,
            disk_adds=disk_adds,
            memory_bytes=memory_bytes,
            operation=operation,
        )


        ova_import.additional_properties = d
        return ova_import

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
