from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.security_rule import SecurityRule





T = TypeVar("T", bound="SecurityGroup")



@_attrs_define
class SecurityGroup:
    """ A security group: what `security-group show` prints and what the store keeps.

        Attributes:
            created_at (int):
            name (str):
            project (str):
            description (None | str | Unset):
            next_rule_id (int | Unset): The id the next rule gets.
            rules (list[SecurityRule] | Unset):
     """

    created_at: int
    name: str
    project: str
    description: None | str | Unset = UNSET
    next_rule_id: int | Unset = UNSET
    rules: list[SecurityRule] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        created_at = self.created_at

        name = self.name

        project = self.project

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        next_rule_id = self.next_rule_id

        rules: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.rules, Unset):
            rules = []
            for rules_item_data in self.rules:
                rules_item = rules_item_data.to_dict()
                rules.append(rules_item)




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "name": name,
            "project": project,
        })
        if description is not UNSET:
            field_dict["description"] = description
        if next_rule_id is not UNSET:
            field_dict["next_rule_id"] = next_rule_id
        if rules is not UNSET:
            field_dict["rules"] = rules

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.security_rule import SecurityRule # noqa: PLC0415
        d = dict(src_dict)
        created_at = d.pop("created_at")

        name = d.pop("name")

        project = d.pop("project")

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        next_rule_id = d.pop("next_rule_id", UNSET)

        _rules = d.pop("rules", UNSET)
        rules: list[SecurityRule] | Unset = UNSET
        if _rules is not UNSET:
            rules = []
            for rules_item_data in _rules:
                rules_item = SecurityRule.from_dict(rules_item_data)



                rules.append(rules_item)


        security_group = cls(
            created_at=created_at,
            name=name,
            project=project,
            description=description,
            next_rule_id=next_rule_id,
            rules=rules,
        )


        security_group.additional_properties = d
        return security_group

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
