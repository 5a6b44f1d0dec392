from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.security_rule import SecurityRule





T = TypeVar("T", bound="NodeSecurityGroup")



@_attrs_define
class NodeSecurityGroup:
    """ The rules of one group as a node's firewall needs them, with the addresses of its
    members when another rule names it (`--from-group`).

        Attributes:
            members (list[str]): IPv4 addresses of the overlay NICs of the VMs in the group, anywhere in the cluster.
            name (str):
            project (str):
            rules (list[SecurityRule]):
     """

    members: list[str]
    name: str
    project: str
    rules: list[SecurityRule]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        members = self.members



        name = self.name

        project = self.project

        rules = []
        for rules_item_data in self.rules:
            rules_item = rules_item_data.to_dict()
            rules.append(rules_item)




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "members": members,
            "name": name,
            "project": project,
            "rules": rules,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        d = dict(src_dict)
        members = cast(list[str], d.pop("members"))


        name = d.pop("name")

        project = d.pop("project")

        rules = []
        _rules = d.pop("rules")
        for rules_item_data in (_rules):
            rules_item = SecurityRule.from_dict(rules_item_data)



            rules.append(rules_item)


        node_security_group = cls(
            members=members,
            name=name,
            project=project,
            rules=rules,
        )


        node_security_group.additional_properties = d
        return node_security_group

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
