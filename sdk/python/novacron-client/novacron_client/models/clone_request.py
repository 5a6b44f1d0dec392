from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="CloneRequest")



@_attrs_define
class CloneRequest:
    """ Body of `POST /api/v1/vms/{name}/clone`.

        Attributes:
            name (str): The new VM's name.
            linked (bool | Unset): Share the source's disk, frozen, as the backing file of both instead of copying it
                (docs/disks.md: such local disks are not live-migrated).
            node (None | str | Unset): The node to place the clone on: the source's node (its disk is there).
     """

    name: str
    linked: bool | Unset = UNSET
    node: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        linked = self.linked

        node: None | str | Unset
        if isinstance(self.node, Unset):
            node = UNSET
        else:
            node = self.node


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
        })
        if linked is not UNSET:
            field_dict["linked"] = linked
        if node is not UNSET:
            field_dict["node"] = node

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        linked = d.pop("linked", UNSET)

        def _parse_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node = _parse_node(d.pop("node", UNSET))


        clone_request = cls(
            name=name,
            linked=linked,
            node=node,
        )

        return clone_request

