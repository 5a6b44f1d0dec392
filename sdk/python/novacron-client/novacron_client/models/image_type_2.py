from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.firmware import Firmware
from ..models.image_type_2_kind import ImageType2Kind
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.image_file import ImageFile





T = TypeVar("T", bound="ImageType2")



@_attrs_define
class ImageType2:
    """ An ISO 9660 medium (file role `iso`): installation media, not a bootable disk.

        Attributes:
            created_at (int):
            files (list[ImageFile]): Files of the image, e.g. `kernel`, `initrd` or `disk`, with their BLAKE3 checksums.
            kind (ImageType2Kind):
            name (str):
            project (str):
            size_bytes (int): Bytes stored (all files of the image).
            firmware (Firmware | None | Unset):
            origin (None | str | Unset): The control-plane replica that holds the files (others fetch them from it).
            virtual_size_bytes (int | None | Unset): For disk images: the guest-visible size.
     """

    created_at: int
    files: list[ImageFile]
    kind: ImageType2Kind
    name: str
    project: str
    size_bytes: int
    firmware: Firmware | None | Unset = UNSET
    origin: None | str | Unset = UNSET
    virtual_size_bytes: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.image_file import ImageFile # noqa: PLC0415
        created_at = self.created_at

        files = []
        for files_item_data in self.files:
            files_item = files_item_data.to_dict()
            files.append(files_item)



        kind = self.kind.value

        name = self.name

        project = self.project

        size_bytes = self.size_bytes

        firmware: None | str | Unset
        if isinstance(self.firmware, Unset):
            firmware = UNSET
        elif isinstance(self.firmware, Firmware):
            firmware = self.firmware.value
        else:
            firmware = self.firmware

        origin: None | str | Unset
        if isinstance(self.origin, Unset):
            origin = UNSET
        else:
            origin = self.origin

        virtual_size_bytes: int | None | Unset
        if isinstance(self.virtual_size_bytes, Unset):
            virtual_size_bytes = UNSET
        else:
            virtual_size_bytes = self.virtual_size_bytes


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "files": files,
            "kind": kind,
            "name": name,
            "project": project,
            "size_bytes": size_bytes,
        })
        if firmware is not UNSET:
            field_dict["firmware"] = firmware
        if origin is not UNSET:
            field_dict["origin"] = origin
        if virtual_size_bytes is not UNSET:
            field_dict["virtual_size_bytes"] = virtual_size_bytes

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.image_file import ImageFile # noqa: PLC0415
        d = dict(src_dict)
        created_at = d.pop("created_at")

        files = []
        _files = d.pop("files")
        for files_item_data in (_files):
            files_item = ImageFile.from_dict(files_item_data)



            files.append(files_item)


        kind = ImageType2Kind(d.pop("kind"))




        name = d.pop("name")

        project = d.pop("project")

        size_bytes = d.pop("size_bytes")

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


        def _parse_origin(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        origin = _parse_origin(d.pop("origin", UNSET))


        def _parse_virtual_size_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        virtual_size_bytes = _parse_virtual_size_bytes(d.pop("virtual_size_bytes", UNSET))


        image_type_2 = cls(
            created_at=created_at,
            files=files,
            kind=kind,
            name=name,
            project=project,
            size_bytes=size_bytes,
            firmware=firmware,
            origin=origin,
            virtual_size_bytes=virtual_size_bytes,
        )


        image_type_2.additional_properties = d
        return image_type_2

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
