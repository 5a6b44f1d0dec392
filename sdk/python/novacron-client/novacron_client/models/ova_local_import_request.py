from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="OvaLocalImportRequest")



@_attrs_define
class OvaLocalImportRequest:
    """ Body of `POST /api/v1/images/{name}/import-ova-local`: imports the OVA appliance handed to
    the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an upload.

        Attributes:
            ticket (str): What the local-files socket answered for the descriptor (one use, valid for a minute).
     """

    ticket: str





    def to_dict(self) -> dict[str, Any]:
        ticket = self.ticket


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "ticket": ticket,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ticket = d.pop("ticket")

        ova_local_import_request = cls(
            ticket=ticket,
        )

        return ova_local_import_request

