from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="BackupRestoreRequest")



@_attrs_define
class BackupRestoreRequest:
    """ Body of `POST /api/v1/backups/{id}/restore`.

        Attributes:
            as_ (None | str | Unset): Restore into a new VM of this name.
            node (None | str | Unset): Place the new VM on this node.
            over_original (bool | Unset): Restore over the original VM (it must be stopped).
            repo (None | str | Unset): Repository holding the backup (default: the one where it is found).
     """

    as_: None | str | Unset = UNSET
    node: None | str | Unset = UNSET
    over_original: bool | Unset = UNSET
    repo: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        as_: None | str | Unset
        if isinstance(self.as_, Unset):
            as_ = UNSET
        else:
            as_ = self.as_

        node: None | str | Unset
        if isinstance(self.node, Unset):
            node = UNSET
        else:
            node = self.node

        over_original = self.over_original

        repo: None | str | Unset
        if isinstance(self.repo, Unset):
            repo = UNSET
        else:
            repo = self.repo


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if as_ is not UNSET:
            field_dict["as"] = as_
        if node is not UNSET:
            field_dict["node"] = node
        if over_original is not UNSET:
            field_dict["over_original"] = over_original
        if repo is not UNSET:
            field_dict["repo"] = repo

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_as_(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        as_ = _parse_as_(d.pop("as", UNSET))


        def _parse_node(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        node = _parse_node(d.pop("node", UNSET))


        over_original = d.pop("over_original", UNSET)

        def _parse_repo(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        repo = _parse_repo(d.pop("repo", UNSET))


        backup_restore_request = cls(
            as_=as_,
            node=node,
            over_original=over_original,
            repo=repo,
        )

        return backup_restore_request

