from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="LocalFiles")



@_attrs_define
class LocalFiles:
    """ Answer of `GET /api/v1/local-files`: where a client on this control plane's own host hands
    it an open file (a unix socket taking one descriptor, SCM_RIGHTS), so that `image import` of
    a local file is read from the disk instead of sent over TLS. See docs/images.md.

        Attributes:
            server (str): The replica that listens on it (its member id): the socket answers the same id, so a
                client never hands a file to another server that happens to use the same path.
            socket (str): The socket's path on the control plane's host.
     """

    server: str
    socket: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        server = self.server

        socket = self.socket


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "server": server,
            "socket": socket,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        server = d.pop("server")

        socket = d.pop("socket")

        local_files = cls(
            server=server,
            socket=socket,
        )


        local_files.additional_properties = d
        return local_files

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
