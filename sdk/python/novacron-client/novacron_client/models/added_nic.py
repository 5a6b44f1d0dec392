from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.nic_link_type_0 import NicLinkType0
  from ..models.nic_link_type_1 import NicLinkType1
  from ..models.nic_link_type_2 import NicLinkType2





T = TypeVar("T", bound="AddedNic")



@_attrs_define
class AddedNic:
    """ A NIC `vm nic add` attached to a VM, in hot-plug port `port`.

        Attributes:
            link (NicLinkType0 | NicLinkType1 | NicLinkType2): What an added NIC is attached to.
            mac (str):
            name (str): `nic<N>`: how `vm show` and `vm nic remove` name it.
            port (int):
     """

    link: NicLinkType0 | NicLinkType1 | NicLinkType2
    mac: str
    name: str
    port: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.nic_link_type_0 import NicLinkType0 # noqa: PLC0415
        from ..models.nic_link_type_1 import NicLinkType1 # noqa: PLC0415
        from ..models.nic_link_type_2 import NicLinkType2 # noqa: PLC0415
        link: dict[str, Any]
        if isinstance(self.link, NicLinkType0):
            link = self.link.to_dict()
        elif isinstance(self.link, NicLinkType1):
            link = self.link.to_dict()
        else:
            link = self.link.to_dict()


        mac = self.mac

        name = self.name

        port = self.port


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "link": link,
            "mac": mac,
            "name": name,
            "port": port,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.nic_link_type_0 import NicLinkType0 # noqa: PLC0415
        from ..models.nic_link_type_1 import NicLinkType1 # noqa: PLC0415
        from ..models.nic_link_type_2 import NicLinkType2 # noqa: PLC0415
        d = dict(src_dict)
        def _parse_link(data: object) -> NicLinkType0 | NicLinkType1 | NicLinkType2:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_nic_link_type_0 = NicLinkType0.from_dict(data)



                return componentsschemas_nic_link_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_nic_link_type_1 = NicLinkType1.from_dict(data)



                return componentsschemas_nic_link_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_nic_link_type_2 = NicLinkType2.from_dict(data)



            return componentsschemas_nic_link_type_2

        link = _parse_link(d.pop("link"))


        mac = d.pop("mac")

        name = d.pop("name")

        port = d.pop("port")

        added_nic = cls(
            link=link,
            mac=mac,
            name=name,
            port=port,
        )


        added_nic.additional_properties = d
        return added_nic

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
