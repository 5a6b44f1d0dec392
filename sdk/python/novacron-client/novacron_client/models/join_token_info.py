from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="JoinTokenInfo")



@_attrs_define
class JoinTokenInfo:
    """ One join token, without its secret.

        Attributes:
            id (str): What `join-token revoke` takes.
            revoked (bool):
            single_use (bool):
            state (str): `active`, `expired`, `used` (single-use, spent) or `revoked`.
            used (bool): Whether it registered a node (a single-use token then registers no other).
            created_at (int | None | Unset):
            expires_at (int | None | Unset):
            name (None | str | Unset):
            used_by (None | str | Unset): The node it registered last.
     """

    id: str
    revoked: bool
    single_use: bool
    state: str
    used: bool
    created_at: int | None | Unset = UNSET
    expires_at: int | None | Unset = UNSET
    name: None | str | Unset = UNSET
    used_by: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = self.id

        revoked = self.revoked

        single_use = self.single_use

        state = self.state

        used = self.used

        created_at: int | None | Unset
        if isinstance(self.created_at, Unset):
            created_at = UNSET
        else:
            created_at = self.created_at

        expires_at: int | None | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        else:
            expires_at = self.expires_at

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        used_by: None | str | Unset
        if isinstance(self.used_by, Unset):
            used_by = UNSET
        else:
            used_by = self.used_by


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "revoked": revoked,
            "single_use": single_use,
            "state": state,
            "used": used,
        })
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if name is not UNSET:
            field_dict["name"] = name
        if used_by is not UNSET:
            field_dict["used_by"] = used_by

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        revoked = d.pop("revoked")

        single_use = d.pop("single_use")

        state = d.pop("state")

        used = d.pop("used")

        def _parse_created_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        created_at = _parse_created_at(d.pop("created_at", UNSET))


        def _parse_expires_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))


        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))


        def _parse_used_by(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        used_by = _parse_used_by(d.pop("used_by", UNSET))


        join_token_info = cls(
            id=id,
            revoked=revoked,
            single_use=single_use,
            state=state,
            used=used,
            created_at=created_at,
            expires_at=expires_at,
            name=name,
            used_by=used_by,
        )


        join_token_info.additional_properties = d
        return join_token_info

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
