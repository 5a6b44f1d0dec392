from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ExecRequest")



@_attrs_define
class ExecRequest:
    """ Body of `POST /api/v1/vms/{name}/exec`.

        Attributes:
            command (list[str]): The program and its arguments, not parsed by a shell; the program is looked up on the
                guest's PATH. Use `["sh", "-c", "..."]` for a shell line.
            stdin_base64 (None | str | Unset): Bytes for the command's standard input, base64-encoded (at most 1 MiB
                decoded).
            timeout_s (int | None | Unset): Seconds to wait for the command to end (default 60, at most 240). A command
                still
                running then keeps running in the guest; the error names its pid there.
     """

    command: list[str]
    stdin_base64: None | str | Unset = UNSET
    timeout_s: int | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        command = self.command



        stdin_base64: None | str | Unset
        if isinstance(self.stdin_base64, Unset):
            stdin_base64 = UNSET
        else:
            stdin_base64 = self.stdin_base64

        timeout_s: int | None | Unset
        if isinstance(self.timeout_s, Unset):
            timeout_s = UNSET
        else:
            timeout_s = self.timeout_s


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "command": command,
        })
        if stdin_base64 is not UNSET:
            field_dict["stdin_base64"] = stdin_base64
        if timeout_s is not UNSET:
            field_dict["timeout_s"] = timeout_s

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        command = cast(list[str], d.pop("command"))


        def _parse_stdin_base64(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stdin_base64 = _parse_stdin_base64(d.pop("stdin_base64", UNSET))


        def _parse_timeout_s(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_s = _parse_timeout_s(d.pop("timeout_s", UNSET))


        exec_request = cls(
            command=command,
            stdin_base64=stdin_base64,
            timeout_s=timeout_s,
        )

        return exec_request

