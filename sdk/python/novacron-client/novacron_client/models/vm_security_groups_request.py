from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast






T = TypeVar("T", bound="VmSecurityGroupsRequest")



@_attrs_define
class VmSecurityGroupsRequest:
    """ Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's whole list (empty: none).

        Attributes:
            security_groups (list[str]):
     """

    security_groups: list[str]





    def to_dict(self) -> dict[str, Any]:
        security_groups = self.security_groups




        field_dict: dict[str, Any] = {}

        field_dict.update({
            "security_groups": security_groups,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        security_groups = cast(list[str], d.pop("security_groups"))


        vm_security_groups_request = cls(
            security_groups=security_groups,
        )

        return vm_security_groups_request

