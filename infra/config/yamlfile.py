"""Reading a stack file as YAML within fixed bounds: size, bytes, nesting, nodes and aliases.

A stack file is refused before it can cost time or memory, and every refusal is a
``StackFileError`` whose message names the file and the bound, never the file's content:

* more than ``MAX_BYTES`` (256 KiB; the largest stack here is under 2 KiB), checked on the file's
  size and again on what is read;
* binary content (a NUL byte) or bytes that are not UTF-8;
* a YAML syntax error (reported by line and column);
* more than one YAML document, nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` nodes,
  more than ``MAX_ALIASES`` aliases, or aliases that expand to more than ``MAX_NODES`` nodes
  (the "billion laughs" alias bomb) or refer to themselves.

The bounds are checked on the parser's event stream (libyaml's parser keeps its own stack, so
deep nesting cannot overflow ours) before a node graph is built, and the expansion on that graph
(aliases are shared nodes, so counting is linear) before any Python value is built. Keys that
appear twice in one mapping, merge keys (``<<``) and keys that are not plain text are reported
with their line as ``KeyIssue``s: a later duplicate would silently replace the first value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config.problems import StackFileError
from infra.config.redaction import literal, might_be_secret

MAX_BYTES = 256 * 1024
"""Largest stack file read, in bytes."""
MAX_DEPTH = 16
"""Deepest nesting of lists and maps (a stack file needs 3: document, ``config:``, a list)."""
MAX_NODES = 20_000
"""Most YAML nodes in a stack file, counted with every alias expanded."""
MAX_ALIASES = 100
"""Most aliases (``*name``) in a stack file."""

SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (fast), else the pure-Python one."""
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)


@dataclass(frozen=True)
class KeyIssue:
    """A mapping key that makes the file say something other than it seems to."""

    path: tuple[str, ...]
    """The keys leading to the mapping (``("config",)`` for the config map; ``()`` at the top)."""
    key: str
    """The key as written."""
    line: int
    """Line of the key (1-based)."""
    what: str
    """What is wrong, and the fix."""


@dataclass(frozen=True)
class YamlDocument:
    """A stack file's YAML, within bounds."""

    data: Any
    """The document as Python values (``{}`` for an empty file)."""
    issues: tuple[KeyIssue, ...]
    """Duplicate, merge and non-text keys, in file order."""


def safe_load(text: str) -> Any:
    """``yaml.safe_load``'s data, read with :data:`SAFE_LOADER`: for the repository's own data
    files (a stack file goes through :func:`load`, which bounds and checks it first)."""
    return yaml.load(text, Loader=SAFE_LOADER)


def safe_load_all(text: str) -> list[Any]:
    """``yaml.safe_load_all``'s documents, read with :data:`SAFE_LOADER`."""
    return list(yaml.load_all(text, Loader=SAFE_LOADER))


def _quiet(text: str) -> str:
    """A parser message made safe to print: it may quote the file (an alias name, a tag)."""
    return "<a message quoting the file, withheld>" if might_be_secret(text) else literal(text, 160)


def read_bytes(path: Path, source: str) -> bytes:
    """The file's bytes; refused when missing, not a file, or larger than ``MAX_BYTES``."""
    try:
        if not path.exists():
            raise StackFileError(f"{source}: no such stack file")
        if not path.is_file():
            raise StackFileError(f"{source}: not a regular file; a stack file is YAML text")
        if path.stat().st_size > MAX_BYTES:
            raise StackFileError(_too_big(source, path.stat().st_size))
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise StackFileError(f"{source}: cannot read the stack file ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise StackFileError(_too_big(source, len(data)))
    return data


def _too_big(source: str, size: int) -> str:
    return (
        f"{source}: {size:,} bytes, more than the {MAX_BYTES // 1024} KiB a stack file may have; "
        "a stack file holds a few dozen keys (defaults live in Pulumi.yaml)"
    )


def decode(data: bytes, source: str) -> str:
    """The file's text; refused when it is binary (a NUL byte) or not UTF-8."""
    if b"\0" in data:
        raise StackFileError(f"{source}: binary content (a NUL byte); a stack file is YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StackFileError(
            f"{source}: not UTF-8 text (invalid byte at offset {exc.start}); "
            "save the stack file as UTF-8"
        ) from None


def _syntax_error(source: str, exc: yaml.YAMLError) -> StackFileError:
    """A YAML error by line and column, without the snippet of the file PyYAML would quote."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return StackFileError(f"{source}: not valid YAML{where}: {_quiet(what)}")
    return StackFileError(f"{source}: not valid YAML: {_quiet(str(exc))}")


def _check_events(text: str, source: str) -> None:
    """Bounds on the event stream: one document, depth, node and alias counts."""
    depth = nodes = aliases = documents = 0
    for event in yaml.parse(text, Loader=SAFE_LOADER):
        if isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > MAX_NODES:
                raise StackFileError(f"{source}: more than {MAX_NODES:,} YAML nodes")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise StackFileError(
                    f"{source}: nested deeper than {MAX_DEPTH} levels (line {line})"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise StackFileError(f"{source}: more than {MAX_ALIASES} YAML aliases (*name)")
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise StackFileError(f"{source}: more than one YAML document (---)")


def _expanded_size(root: yaml.Node, source: str) -> None:
    """Refuse aliases that expand beyond ``MAX_NODES`` nodes, or that contain themselves."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise StackFileError(f"{source}: an alias refers to a node that contains it")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(id(node))
        if total > MAX_NODES:
            raise StackFileError(
                f"{source}: YAML aliases expand to more than {MAX_NODES:,} nodes "
                "(an alias bomb?); write the values out"
            )
        sizes[id(node)] = total
        return total

    size(root)


def _key_issues(root: yaml.Node) -> list[KeyIssue]:
    """Duplicate, merge and non-text keys of every mapping, each mapping visited once."""
    issues: list[KeyIssue] = []
    seen: set[int] = set()

    def visit(node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                visit(child, path)
            return
        if not isinstance(node, yaml.MappingNode):
            return
        first: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1 if key.start_mark else 0
            if key.tag == _MERGE:
                issues.append(KeyIssue(path, "<<", line, "a merge key (<<); write each key out"))
                continue
            if not isinstance(key, yaml.ScalarNode):
                issues.append(KeyIssue(path, "?", line, "a key that is not text"))
                continue
            name = str(key.value)
            if key.tag != _STR:
                issues.append(KeyIssue(path, name, line, "a key that is not text; quote it"))
            if name in first:
                issues.append(
                    KeyIssue(
                        path,
                        name,
                        line,
                        f"a duplicate of the key on line {first[name]} (YAML keeps only the "
                        "last one); keep one",
                    )
                )
            else:
                first[name] = line
            visit(value, (*path, name))

    visit(root, ())
    return issues


def load(text: str, source: str) -> YamlDocument:
    """Parse ``text`` within the bounds above; raises ``StackFileError`` when it is refused."""
    try:
        _check_events(text, source)
        loader = SAFE_LOADER(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return YamlDocument({}, ())
            _expanded_size(root, source)
            issues = _key_issues(root)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _syntax_error(source, exc) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # Constructors raise these for well-formed but impossible scalars (a 13th month, an
        # integer of more than 4,300 digits).
        raise StackFileError(f"{source}: a value YAML cannot read: {_quiet(str(exc))}") from None
    return YamlDocument(data, tuple(issues))
