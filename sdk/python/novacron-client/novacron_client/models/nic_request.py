from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="NicRequest")



@_attrs_define
class NicRequest:
    """ A NIC on an overlay network, as `vm create --network NET [--ip A] [--mac M]` asks for it.

        Attributes:
            network (str): The overlay network (in the VM's project).
            ip (None | str | Unset): A fixed IPv4 address in the network's subnet; otherwise the lowest free one.
            mac (None | str | Unset): A fixed MAC; otherwise a generated locally administered one.
     """

    network: str
    ip: None | str | Unset = UNSET
    mac: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        network = self.network

        ip: None | str | Unset
        if isinstance(self.ip, Unset):
            ip = UNSET
        else:
            ip = self.ip

        mac: None | str | Unset
        if isinstance(self.mac, Unset):
            mac = UNSET
        else:
            mac = self.mac


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "network": network,
        })
        if ip is not UNSET:
            field_dict["ip"] = ip
        if mac is not UNSET:
            field_dict["mac"] = mac

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        network = d.pop("network")

        def _parse_ip(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ip = _parse_ip(d.pop("ip", UNSET))


        def _parse_mac(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        mac = _parse_mac(d.pop("mac", UNSET))


        nic_request = cls(
            network=network,
            ip=ip,
            mac=mac,
        )

        return nic_request

