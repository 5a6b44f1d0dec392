from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="RepoSyncRequest")



@_attrs_define
class RepoSyncRequest:
    """ Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to another location (another
    site), blob for blob; the copy opens with the same key file.

        Attributes:
            as_ (None | str | Unset): Register the copy as a repository of this name (when it is not one yet).
            path (None | str | Unset):
            prune_target (bool | Unset): Also remove from the copy the backups the source no longer has.
            s3 (None | str | Unset):
     """

    as_: None | str | Unset = UNSET
    path: None | str | Unset = UNSET
    prune_target: bool | Unset = UNSET
    s3: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        as_: None | str | Unset
        if isinstance(self.as_, Unset):
            as_ = UNSET
        else:
            as_ = self.as_

        path: None | str | Unset
        if isinstance(self.path, Unset):
            path = UNSET
        else:
            path = self.path

        prune_target = self.prune_target

        s3: None | str | Unset
        if isinstance(self.s3, Unset):
            s3 = UNSET
        else:
            s3 = self.s3


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if as_ is not UNSET:
            field_dict["as"] = as_
        if path is not UNSET:
            field_dict["path"] = path
        if prune_target is not UNSET:
            field_dict["prune_target"] = prune_target
        if s3 is not UNSET:
            field_dict["s3"] = s3

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


        def _parse_path(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        path = _parse_path(d.pop("path", UNSET))


        prune_target = d.pop("prune_target", UNSET)

        def _parse_s3(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        s3 = _parse_s3(d.pop("s3", UNSET))


        repo_sync_request = cls(
            as_=as_,
            path=path,
            prune_target=prune_target,
            s3=s3,
        )

        return repo_sync_request

