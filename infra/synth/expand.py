"""Objects declared as YAML, recorded one by one like every other Kubernetes resource.

``kubernetes:yaml/v2:ConfigGroup`` and ``ConfigFile`` are components the Kubernetes provider
expands on the engine side: it parses the manifests and registers each object as a child
resource, so CrossGuard judges the children. Under the SDK mocks nothing expands them, so
``expand_yaml`` does it offline, the provider's way: manifests from ``files`` (globs allowed,
read relative to the program, never outside the repository), then ``yaml``, then ``objs``;
lists split into their items; namespaced objects without a namespace put in the provider's
default namespace; each object a custom resource of type ``kubernetes:<group>/<version>:<Kind>``
named ``<prefix>:<namespace>/<name>`` (the prefix defaults to the group's name), child of the
group and marked ``"expandedFrom": <group URN>``. Rules, schema validation and checkov then see
them like any other object. The v1 ``ConfigGroup``/``ConfigFile`` expand in the SDK itself
through the ``kubernetes:yaml:decode`` invoke, which ``decode_invoke`` answers with the same
bounded parser.

Parsing is bounded (size, aliases, expanded nodes, depth, object count): a manifest that
exceeds a bound, is not UTF-8 YAML or names a file outside the repository stops the synth with
a ``SynthError`` that names the group and the source, never a value.
"""

from __future__ import annotations

import copy
import glob
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.config.stackfile import REDACTED, ROOT
from policies.rules.kubernetes import CLUSTER_SCOPED

YAML_V2 = ("kubernetes:yaml/v2:ConfigGroup", "kubernetes:yaml/v2:ConfigFile")
"""The component types expanded here."""
MAX_SOURCE_BYTES = 1 << 20
"""Largest manifest text (one file or one ``yaml`` literal): 1 MiB."""
MAX_ALIASES = 64
"""Most YAML aliases in one manifest text (Kubernetes manifests rarely use any)."""
MAX_NODES = 200_000
"""Most values one manifest may expand to, aliases followed (an alias bomb stops here)."""
MAX_DEPTH = 64
"""Deepest nesting of one manifest."""
MAX_OBJECTS = 2_000
"""Most objects one group may declare."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"(?:^|[^\\])[*?\[]")


class ManifestError(ValueError):
    """A manifest that cannot be examined; the message names the source, never a value."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, counting aliases so an alias bomb is refused while it is composed."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """PyYAML's hook for each node; an alias beyond the bound stops the parse."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ManifestError(f"more than {MAX_ALIASES} YAML aliases")
        return super().compose_node(parent, index)


# Kubernetes reads YAML as JSON: a timestamp-looking scalar stays a string.
_BoundedLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _plain(value: Any, budget: list[int], depth: int = 0) -> Any:
    """``value`` as JSON data (string keys), counting every node against ``budget``."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ManifestError(f"expands to more than {MAX_NODES} values (aliases followed)")
    if depth > MAX_DEPTH:
        raise ManifestError(f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, budget, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def load_manifests(text: str, source: str) -> list[Any]:
    """The documents of one manifest text, bounded; empty documents dropped.

    Raises ManifestError naming ``source`` (and the line, for a syntax error).
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise ManifestError(f"{source}: larger than {MAX_SOURCE_BYTES} bytes")
    loader = _BoundedLoader(text)
    budget = [MAX_NODES]
    docs = []
    try:
        while loader.check_data():
            doc = _plain(loader.get_data(), budget)
            if doc not in (None, {}):
                docs.append(doc)
    except ManifestError as exc:
        raise ManifestError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ManifestError(f"{source}: {problem}{where}") from None
    except RecursionError:
        raise ManifestError(f"{source}: nests too deeply to parse") from None
    finally:
        loader.dispose()
    return docs


def _read(path: Path, source: str) -> str:
    """A manifest file's text: inside the repository, bounded, UTF-8."""
    resolved = path.resolve()
    if not resolved.is_relative_to(ROOT):
        raise ManifestError(f"{source}: outside the repository; vendor the manifest into it")
    if not resolved.is_file():
        raise ManifestError(f"{source}: no such file")
    if resolved.stat().st_size > MAX_SOURCE_BYTES:
        raise ManifestError(f"{source}: larger than {MAX_SOURCE_BYTES} bytes")
    try:
        return resolved.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{source}: not UTF-8 text") from None


def _files(patterns: list[Any], program_dir: Path) -> Iterator[tuple[str, str]]:
    """(source label, text) of each file named by ``patterns``, globs sorted as the provider."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ManifestError(f"files entry {pattern!r} is not a path")
        if _URL.match(pattern):
            raise ManifestError(
                f"{pattern}: a URL cannot be examined offline; vendor the manifest into the "
                "repository and name the file"
            )
        base = Path(pattern) if Path(pattern).is_absolute() else program_dir / pattern
        if _GLOB.search(pattern):
            matches = sorted(glob.glob(str(base)))
            for match in matches:
                yield pattern, _read(Path(match), match)
        else:
            yield pattern, _read(base, pattern)


def _texts(inputs: Mapping[str, Any], group_type: str) -> list[Any]:
    """The ``yaml`` input(s) of a group as a list of texts (the v2 SDK sends one string)."""
    if group_type.endswith("ConfigFile"):
        return []
    value = inputs.get("yaml")
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _objects(
    inputs: Mapping[str, Any], group_type: str, program_dir: Path
) -> Iterator[tuple[str, Any]]:
    """(source, document) of every object a group declares, in the provider's order."""
    files = [inputs.get("file")] if group_type.endswith("ConfigFile") else inputs.get("files")
    for source, text in _files(list(files or []), program_dir):
        for doc in load_manifests(text, source):
            yield source, doc
    for i, text in enumerate(_texts(inputs, group_type)):
        if not isinstance(text, str):
            raise ManifestError(f"yaml[{i}] is not text")
        for doc in load_manifests(text, "yaml"):
            yield "yaml", doc
    objs = inputs.get("objs")
    if objs is not None and not isinstance(objs, list):
        raise ManifestError("objs is not a list")
    budget = [MAX_NODES]
    for i, obj in enumerate(objs or []):
        yield f"objs[{i}]", _plain(obj, budget)


def _items(source: str, doc: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects in one document: itself, or the items of a ``*List`` (recursively)."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: a document is not a mapping (an object)")
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api, str) or not api or not isinstance(kind, str) or not kind:
        raise ManifestError(f"{source}: an object without apiVersion and kind")
    if kind.endswith("List") and "items" in doc:
        items = doc.get("items")
        if not isinstance(items, list):
            raise ManifestError(f"{source}: {kind} items is not a list")
        for item in items:
            yield from _items(source, item)
        return
    name = (
        (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    )
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{source}: a {kind} without metadata.name")
    yield source, doc


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type token of an object: ``v1`` is the ``core`` group."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def _redact_secret(obj: dict[str, Any]) -> bool:
    """Redact a Secret's data in place (the provider marks it secret); True if it had any."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") not in ("v1", "core/v1"):
        return False
    found = False
    for key in ("data", "stringData"):
        value = obj.get(key)
        if isinstance(value, dict):
            obj[key] = {str(k): REDACTED for k in value}
            found = True
        elif value is not None:
            obj[key] = REDACTED
            found = True
    return found


def _custom_kinds(objects: list[dict[str, Any]]) -> dict[str, bool]:
    """Kinds the group's own CustomResourceDefinitions define: kind -> namespaced."""
    out = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
            if isinstance(names.get("kind"), str):
                out[names["kind"]] = spec.get("scope") != "Cluster"
    return out


def _child_urn(group_urn: str, token: str, name: str) -> str:
    """The URN the engine gives a child of ``group_urn``: the parent's type chain, then ours."""
    head, qualified, _ = group_urn.rsplit("::", 2)
    return f"{head}::{qualified}${token}::{name}"


def expand_group(
    group: Mapping[str, Any], provider_namespace: str | None, program_dir: Path
) -> list[dict[str, Any]]:
    """The record entries of every object one v2 ConfigGroup/ConfigFile declares.

    Raises ManifestError (message prefixed by the group) when a manifest cannot be examined.
    """
    inputs = group.get("inputs") or {}
    prefix = inputs.get("resourcePrefix", group["name"])
    label = f"{group['type'].rsplit(':', 1)[-1]} {group['name']}"
    try:
        objects = [
            (source, item)
            for source, doc in _objects(inputs, group["type"], program_dir)
            for source, item in _items(source, doc)
        ]
    except ManifestError as exc:
        raise ManifestError(f"{label}: {exc}") from None
    if len(objects) > MAX_OBJECTS:
        raise ManifestError(f"{label}: more than {MAX_OBJECTS} objects")
    custom = _custom_kinds([o for _, o in objects])
    entries = []
    for source, original in objects:
        obj = copy.deepcopy(original)
        api, kind = obj["apiVersion"], obj["kind"]
        if api.startswith("core/"):
            obj["apiVersion"] = api = api.removeprefix("core/")
        meta = obj["metadata"]
        namespaced = custom.get(kind, kind not in CLUSTER_SCOPED)
        if namespaced and not meta.get("namespace"):
            meta["namespace"] = provider_namespace or "default"
        name = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        if prefix:
            name = f"{prefix}:{name}"
        _redact_secret(obj)
        token = type_token(api, kind)
        entries.append(
            {
                "urn": _child_urn(group["urn"], token, name),
                "type": token,
                "name": name,
                "custom": True,
                "id": None,
                "parent": group["urn"],
                "provider": group.get("provider"),
                "dependencies": list(group.get("dependencies") or []),
                "propertyDependencies": {},
                "protect": bool(group.get("protect")),
                "retainOnDelete": bool(group.get("retainOnDelete")),
                "ignoreChanges": [],
                "aliases": [],
                "inputs": obj,
                "outputs": {},
                "expandedFrom": group["urn"],
                "manifestSource": source,
            }
        )
    return entries


def _redact_group(group: dict[str, Any], children: list[dict[str, Any]]) -> None:
    """Keep a Secret declared in a group's literal inputs out of the record: its objects'
    data is redacted, and YAML text that declared a Secret with data is replaced."""
    inputs = group.get("inputs") or {}
    for obj in inputs.get("objs") or []:
        if isinstance(obj, dict):
            _redact_secret(obj)
    if any(c["manifestSource"] == "yaml" and c["inputs"].get("kind") == "Secret" for c in children):
        inputs["yaml"] = REDACTED


def expand_yaml(resources: list[dict[str, Any]], *, program_dir: Path) -> list[dict[str, Any]]:
    """``resources`` with each v2 ConfigGroup/ConfigFile followed by the objects it declares.

    Raises ``infra.synth.runner.SynthError`` when a group's manifests cannot be examined.
    """
    providers = {r["urn"]: r for r in resources if r["type"] == "pulumi:providers:kubernetes"}
    out: list[dict[str, Any]] = []
    for r in resources:
        out.append(r)
        if r["type"] not in YAML_V2:
            continue
        provider = providers.get(r.get("provider") or "") or {}
        namespace = (provider.get("inputs") or {}).get("namespace")
        try:
            children = expand_group(
                r, namespace if isinstance(namespace, str) else None, program_dir
            )
        except ManifestError as exc:
            # Imported here: the runner imports this module, and owns the error type.
            from infra.synth.runner import SynthError

            raise SynthError(f"{exc}; nothing was written") from None
        _redact_group(r, children)
        out.extend(children)
    return out


def decode_invoke(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The answer to ``kubernetes:yaml:decode`` (the v1 ConfigGroup/ConfigFile parser).

    The v1 SDK registers each decoded object itself; this only parses, with the same bounds.
    """
    text = args.get("text")
    try:
        if not isinstance(text, str):
            raise ManifestError("kubernetes:yaml:decode: text is not a string")
        docs = load_manifests(text, "kubernetes:yaml:decode")
        for doc in docs:
            for _ in _items("kubernetes:yaml:decode", doc):
                pass
    except ManifestError as exc:
        from infra.synth.runner import SynthError

        raise SynthError(f"yaml ConfigGroup/ConfigFile: {exc}; nothing was written") from None
    return {"result": docs}
