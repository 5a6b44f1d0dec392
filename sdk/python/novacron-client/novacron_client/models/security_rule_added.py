from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.security_group import SecurityGroup
  from ..models.security_rule import SecurityRule





T = TypeVar("T", bound="SecurityRuleAdded")



@_attrs_define
class SecurityRuleAdded:
    """ Answer of `POST /api/v1/security-groups/{name}/rules`: the group and the rule added.

        Attributes:
            group (SecurityGroup): A security group: what `security-group show` prints and what the store keeps.
            rule (SecurityRule): One rule of a group, as stored and shown.
     """

    group: SecurityGroup
    rule: SecurityRule
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.security_group import SecurityGroup # noqa: PLC0415
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        group = self.group.to_dict()

        rule = self.rule.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "group": group,
            "rule": rule,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.security_group import SecurityGroup # noqa: PLC0415
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        d = dict(src_dict)
        group = SecurityGroup.from_dict(d.pop("group"))




        rule = SecurityRule.from_dict(d.pop("rule"))




        security_rule_added = cls(
            group=group,
            rule=rule,
        )


        security_rule_added.additional_properties = d
        return security_rule_added

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
