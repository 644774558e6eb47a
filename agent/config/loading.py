"""Sequence files: YAML read with line numbers, validated into the model, every problem reported at once.

Each problem is reported as `FILE:LINE: key.path: message`, because a user fixing a file at the
mount should not have to run `obsagent validate` once per typo. Line numbers come from the YAML
node tree, composed alongside the plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config.model import Sequence, not_in_catalogue
from agent.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a sequence file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class SequenceError(ConfigError):
    """A sequence file is invalid; `problems` lists every problem found."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        count = len(problems)
        head = f"{filename}: {count} problem{'s' if count != 1 else ''}; fix the sequence file and run `obsagent validate {filename}`"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


# Limits on what a sequence file may be: a real one is a few kilobytes, a few levels deep and uses
# an alias or two; anything past these is a mistake or an alias bomb ("billion laughs"), which would
# otherwise take minutes and gigabytes to walk.
MAX_FILE_BYTES = 256 * 1024
MAX_VALUES = 20_000  # values in the document with every alias expanded
MAX_DEPTH = 32  # nesting of mappings and lists


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 sexagesimal numbers: '22:30' and '05:35:17' stay text."""


_Loader.yaml_implicit_resolvers = {
    key: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

_Path = tuple[str | int, ...]


def _index_lines(
    node: yaml.Node, path: _Path, lines: dict[_Path, int], duplicates: list[tuple[_Path, int]]
) -> None:
    """Map every key path to the 1-based line where it is written; note duplicated keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                duplicates.append((child, key_node.start_mark.line + 1))
                continue
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines, duplicates)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, duplicates)


def _line_of(path: _Path, lines: dict[_Path, int]) -> int:
    """Line of the deepest written part of `path` (a missing key points at its parent)."""
    for cut in range(len(path), -1, -1):
        prefix = path[:cut]
        if prefix in lines:
            return lines[prefix]
    return 1


def _dotted(path: _Path) -> str:
    return ".".join(str(part) for part in path)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against docs/sequence-file.md)"
    if kind == "literal_error" and error["loc"] and error["loc"][-1] == "version":
        return "unsupported version; this obsagent reads version: 1"
    message = str(error["msg"])
    if kind == "obsagent":
        return message
    return message[0].lower() + message[1:] if message else message


def _error_path(error: Any) -> _Path:
    """Location of a pydantic error, without union/tag noise, extended by our own `at` hint."""
    loc: list[str | int] = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
    at = (error.get("ctx") or {}).get("at")
    if at:
        loc.extend(int(part) if part.isdigit() else part for part in str(at).split("."))
    return tuple(loc)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _cross_checks(data: dict[str, Any]) -> list[tuple[_Path, str]]:
    """Checks across sections, run on the raw data so they are reported even beside other errors."""
    found: list[tuple[_Path, str]] = []
    filters = data.get("filters")
    # an empty or broken list is reported by the model; judging exposures by it would only repeat that
    names = [f for f in filters if isinstance(f, str)] or None if isinstance(filters, list) else None
    devices = _section(_section(data, "indi"), "devices")
    if names is not None and len(names) > 1 and devices and not devices.get("wheel"):
        found.append(
            (("indi", "devices", "wheel"), f"{len(names)} filters are listed but no filter wheel is named")
        )
    targets = data.get("targets")
    if isinstance(targets, list):
        seen_names: dict[str, int] = {}
        for t_index, target in enumerate(targets):
            if not isinstance(target, dict):
                continue
            tname = target.get("name")
            if isinstance(tname, str) and "ra" not in target and "dec" not in target:
                from agent.sky.catalogue import lookup

                if lookup(tname) is None:
                    found.append((("targets", t_index, "name"), not_in_catalogue(tname)))
            if isinstance(tname, str):
                if tname in seen_names:
                    found.append(
                        (
                            ("targets", t_index, "name"),
                            f"target {tname!r} is listed twice (also targets.{seen_names[tname]})",
                        )
                    )
                seen_names.setdefault(tname, t_index)
            exposures = target.get("exposures")
            if not isinstance(exposures, list):
                continue
            for e_index, exposure in enumerate(exposures):
                if (
                    names is not None
                    and isinstance(exposure, dict)
                    and isinstance(exposure.get("filter"), str)
                    and exposure["filter"] not in names
                ):
                    found.append(
                        (
                            ("targets", t_index, "exposures", e_index, "filter"),
                            f"filter {exposure['filter']!r} is not in the wheel (filters: {', '.join(names)})",
                        )
                    )
    flats = _section(_section(data, "calibration"), "flats")
    if flats.get("source", "panel") == "panel" and devices and not devices.get("flat_panel"):
        found.append(
            (
                ("calibration", "flats", "source"),
                "flats come from the panel but indi.devices.flat_panel is not set; name the panel or use sky flats",
            )
        )
    if _section(data, "housekeeping").get("prune_synced") is True and not data.get("sync"):
        found.append(
            (
                ("housekeeping", "prune_synced"),
                "prune_synced deletes raw frames only once their master is verified upstream, but no sync: "
                "target is set; add sync.url or set prune_synced: false",
            )
        )
    darks = _section(_section(data, "calibration"), "darks")
    if darks.get("by_day") is True and devices and not (devices.get("flat_panel") or devices.get("dust_cap")):
        found.append(
            (
                ("calibration", "darks", "by_day"),
                "darks by day need the cap closed, but indi.devices names no flat_panel or dust_cap; "
                "name the cap or set by_day: false",
            )
        )
    cadences = flats.get("filter_cadence")
    if isinstance(cadences, dict) and names is not None:
        for name in cadences:
            if name not in names:
                where = ("calibration", "flats", "filter_cadence", str(name))
                found.append((where, f"filter {name!r} is not in the wheel (filters: {', '.join(names)})"))
    return found


def _too_big(root: yaml.Node) -> tuple[int, str] | None:
    """Line and reason when the document, aliases expanded, is too large, too deep or refers to
    itself; found on the node graph (aliases are shared nodes) before anything walks it expanded."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, depth)
    open_nodes: set[int] = set()
    # iterative post-order walk: no recursion, every shared node measured once
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if ident in sizes and not children_done:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not children_done:
            if ident in open_nodes:
                return node.start_mark.line + 1, "an alias refers to the value that contains it"
            open_nodes.add(ident)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    return child.start_mark.line + 1, "an alias refers to the value that contains it"
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        open_nodes.discard(ident)
        count = 1 + sum(sizes[id(c)][0] for c in children)
        depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
        if depth > MAX_DEPTH:
            return node.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; sequence files nest a few levels"
        if count > MAX_VALUES:
            return (
                node.start_mark.line + 1,
                f"expands to more than {MAX_VALUES} values (aliases within aliases?); write the values out",
            )
        sizes[ident] = (count, depth)
    return None


def _compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the plain data of `text`, refused early when it is too big to walk."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise SequenceError(
                filename, [Problem(filename, 1, "", f"not valid YAML: nested more than {MAX_DEPTH} levels deep")]
            ) from None
        if root is None:
            return None, None
        found = _too_big(root)
        if found is not None:
            raise SequenceError(filename, [Problem(filename, found[0], "", f"refused: {found[1]}")])
        return root, loader.construct_document(root)
    finally:
        loader.dispose()


def parse_sequence(text: str, filename: str = "<sequence>") -> Sequence:
    """Validate sequence-file text; raise SequenceError listing every problem with file:line."""
    if len(text) > MAX_FILE_BYTES:
        raise SequenceError(filename, [Problem(filename, 1, "", _too_long())])
    try:
        root, data = _compose(text, filename)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = str(exc.problem or "syntax error")
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        elif exc.context:
            what += f" ({exc.context})"
        raise SequenceError(filename, [Problem(filename, line, "", f"not valid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise SequenceError(filename, [Problem(filename, 1, "", f"not valid YAML: {exc}")]) from None
    if root is None:
        raise SequenceError(
            filename, [Problem(filename, 1, "", "the file is empty; start from examples/night.yaml")]
        )
    if not isinstance(data, dict):
        raise SequenceError(
            filename,
            [
                Problem(
                    filename, 1, "", "the file must be a mapping of sections (version:, site:, indi:, ...)"
                )
            ],
        )

    lines: dict[_Path, int] = {}
    duplicates: list[tuple[_Path, int]] = []
    _index_lines(root, (), lines, duplicates)
    found: list[tuple[int, str, str]] = []
    for path, line in duplicates:
        found.append((line, _dotted(path), "key is given twice; keep one"))
    sequence: Sequence | None = None
    try:
        sequence = Sequence.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _error_path(error)
            found.append((_line_of(path, lines), _dotted(path), _message(error)))
    for path, message in _cross_checks(data):
        found.append((_line_of(path, lines), _dotted(path), message))
    if found:
        unique = sorted(set(found), key=lambda item: (item[0], item[1], item[2]))
        raise SequenceError(
            filename, [Problem(filename, line, path, message) for line, path, message in unique]
        )
    assert sequence is not None
    return sequence


def load_sequence(path: str | Path) -> Sequence:
    """Read and validate a sequence file."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{file}: is a folder; name the sequence file in it (e.g. {file / 'night.yaml'})")
    try:
        with file.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)  # never more: a device or a huge file is refused unread
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such sequence file; check the path") from None
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot read the sequence file ({exc.strerror or exc}); check its permissions"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{file}: {_too_long()}")
    if b"\x00" in raw:
        raise ConfigError(f"{file}: a binary file, not a sequence file (YAML text); check the path")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: not UTF-8 text (byte {exc.start}); save the sequence file as UTF-8"
        ) from None
    return parse_sequence(text, str(file))


def _too_long() -> str:
    return (
        f"larger than {MAX_FILE_BYTES // 1024} KiB; "
        "a sequence file is a few kilobytes of YAML: is this the right file?"
    )
