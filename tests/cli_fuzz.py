"""Random arguments for ``sovml`` commands, and a watch on where they write.

The helpers of ``tests/test_cli_contract.py``'s fuzz test: argument lists drawn from a command's
own click parameters (``arguments_for``), a fresh working folder holding nothing of value
(``sandbox``), the repository's write-defaults moved under the temporary folder
(``redirect_repository_defaults``), an environment with no credentials or servers (``fuzz_env``)
and an audit hook that lists every write outside the temporary folder (``writes_outside``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from infra.cli import stacks as stacks_cli
from infra.config.stackfile import ROOT
from infra.gate import run as gate_run
from infra.synth import runner as synth_runner

SKIPPED: dict[tuple[str, ...], str] = {
    ("serve",): "starts a Triton server and serves until stopped",
    ("abtest",): "starts Triton and replays minutes of canary traffic",
    ("bench", "serve"): "a load benchmark against Triton (minutes)",
    ("bench", "abtest"): "tens of A/A and A/B experiments (minutes)",
    ("demo",): "every stage end to end (minutes)",
    ("pipeline", "run"): "a training run on kfp.local (torch, minutes)",
    ("images", "lock"): "asks the public registries and rewrites policies/images.lock.toml",
}
"""Commands that start servers or trainings: never fuzzed, with the reason."""
NEVER_GIVEN = {("config", "schema"): {"--write"}, ("tenant", "templates"): {"--write"}}
"""Flags that rewrite the repository's own files by design (Pulumi.yaml, stacks/templates/)."""
FILES = {
    "empty": "",
    "table.csv": "customer_id,income,grade\n1,0.5,a\n2,1.5,b\n3,2.5,a\n",
    "huge.csv": "customer_id,income,grade\n1,1e308,a\n2,-1e308,b\n3,1e308,a\n",
    "dir/file.txt": "x",
    "stacks/Pulumi.bad.yaml": "config: [\n",
    "stacks/Pulumi.partial.yaml": "config:\n  aws:region: mars-1\n",
}
"""What a fresh working folder holds: nothing of value, some of it plausible input."""
PATHS = [*FILES, "dir", "stacks", "missing", "missing/deeper/x.yaml", "empty/child",
         "../missing-sibling", "./dir/../table.csv", "build", "out.yaml", "out.enc",
         "."]  # fmt: skip
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
"""Any text without NUL (argv cannot hold one), control characters included."""
SPECIAL = ["", " ", "-", "../", "../../etc/passwd", "nan", "inf", "-1", "0", "1e308", str(2**64),
           "prod-uae", "bad", "partial", "training", "local", "cluster", "vault", "kms", "psi",
           "smb", "enterprise", "uae", "eu", "me-central-1", "credit_risk", "a@b.example",
           "[red]x[/]", "x" * 300]  # fmt: skip
STRINGS = st.one_of(st.sampled_from(SPECIAL), TEXT)
ODD_INTS = ["-1", "0", str(2**31), str(2**63), str(2**64), "1" + "0" * 40, str(-(2**63) - 1),
            "1e3", "nan", "0x10", ""]  # fmt: skip
ODD_FLOATS = ["nan", "inf", "-inf", "-1", "0", "1e308", "-1e308", "1e309", "1e-320", "0.5",
              "abc", ""]  # fmt: skip
INTS = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(ODD_INTS))
FLOATS = st.one_of(st.floats().map(repr), st.sampled_from(ODD_FLOATS))
PATH_LIKE = {"key"}
"""String options that name a file for the default (local) backend: drawn as paths."""


def _annotation(param: Any) -> Any:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", str)
    return typing.get_args(annotation)[0] if typing.get_args(annotation) else annotation


def _mostly(usual: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``usual`` four times in five, else ``odd``: junk everywhere would stop at the parser."""
    return st.integers(0, 4).flatmap(lambda i: odd if i == 0 else usual)


def _values(param: Any, cwd: Path) -> st.SearchStrategy[str]:
    """Random values for ``param``, by its type: paths stay inside the temporary folder."""
    kind = _annotation(param)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return _mostly(st.sampled_from([str(m.value) for m in kind]), STRINGS)
    if kind is int:
        return INTS
    if kind is float:
        return FLOATS
    if kind is Path or param.name in PATH_LIKE:
        named = st.sampled_from(PATHS)
        # "rnd/" keeps random text below the working folder (its ".." made harmless).
        odd = TEXT.map(lambda t: "rnd/" + t.replace("..", "__"))
        return _mostly(st.one_of(named, named.map(lambda p: str(cwd / p))), odd)
    return STRINGS


def _forced(param: Any) -> bool:
    """A path option whose default lies in the repository is always given: never write there."""
    default = param.default
    return isinstance(default, Path) and default.is_absolute() and ROOT in default.parents


@st.composite
def arguments_for(draw: st.DrawFn, path: tuple[str, ...], command: Any, cwd: Path) -> list[str]:
    """A random argument list for ``command`` from its own click parameters."""
    options: list[str] = []
    positionals: list[str] = []
    for param in command.params:
        if param.param_type_name == "argument":
            positionals.append(draw(_values(param, cwd)))
            continue
        if getattr(param, "is_flag", False):
            flags = [f for f in (*param.opts, *param.secondary_opts)
                     if f not in NEVER_GIVEN.get(path, ())]  # fmt: skip
            options += draw(st.lists(st.sampled_from(flags), max_size=1)) if flags else []
        elif _forced(param) or draw(st.booleans()):
            for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
                options += [draw(st.sampled_from(param.opts)), draw(_values(param, cwd))]
    # Now and then an argument short: the command must say so with 2.
    cut = draw(st.integers(0, 9))
    return options + (positionals[: len(positionals) - 1] if cut == 0 else positionals)


def redirect_repository_defaults(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Defaults that write into the repository (build/, the feature store) write under ``root``."""
    from pipelines.features import config as features_config
    from pipelines.training import compilation

    build = root / "build"
    monkeypatch.setattr(
        stacks_cli, "synthesize", functools.partial(synth_runner.synthesize, build_dir=build)
    )
    monkeypatch.setattr(gate_run, "run_gate", functools.partial(gate_run.run_gate, build_dir=build))
    monkeypatch.setattr(synth_runner, "BUILD", build)  # read at call time (sovml images values)
    monkeypatch.setattr(compilation, "CODE_ROOT", root)
    monkeypatch.setattr(features_config, "DEFAULT_REPO", build / "feature_store")


@contextlib.contextmanager
def sandbox(root: Path) -> Iterator[Path]:
    """A fresh working folder under ``root`` holding ``FILES``; the process works in it."""
    from pipelines.features import config as features_config

    cwd = Path(tempfile.mkdtemp(prefix="ex-", dir=root))
    for name, content in FILES.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(content)
    # The store default follows the example's folder (restored by the fixture's monkeypatch).
    features_config.DEFAULT_REPO = cwd / "build" / "feature_store"
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield cwd
    finally:
        os.chdir(before)


_WATCHES: list[tuple[str, list[str]]] = []
"""(allowed root, what was written outside it) of every active ``writes_outside``."""
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_ONE_PATH = {"os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.chmod", "os.utime",
             "shutil.rmtree", "tempfile.mkstemp", "tempfile.mkdtemp"}  # fmt: skip
_MOVES = {"os.rename", "shutil.move"}
"""Events that change both paths (the source disappears)."""
_COPIES = {"os.link", "os.symlink", "shutil.copyfile", "shutil.copymode", "shutil.copystat"}
"""Events that write only the second path (the first is read or pointed at)."""


def _targets(event: str, args: tuple[Any, ...]) -> list[Any]:
    """The paths an audit event writes, or none (a read, an event about something else)."""
    if event == "open":
        mode, flags = args[1], args[2]
        writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        return [args[0]] if writes else []
    if event in _ONE_PATH:
        return [args[0]]
    if event in _MOVES:
        return [args[0], args[1]]
    if event in _COPIES:
        return [args[1]]
    if event == "subprocess.Popen":
        return [f"<started {args[0]!r}>"]
    return []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHES:
        return
    try:  # an audit hook must never raise into the operation it watches
        for target in _targets(event, args):
            if isinstance(target, int):  # a file descriptor: opened before, judged then
                continue
            text = os.fsdecode(target)
            shown = text if text.startswith("<started") else os.path.realpath(text)
            if "__pycache__" in shown or shown == os.devnull:
                continue  # bytecode caches of imports, not the command's output
            for root, written in _WATCHES:
                if not shown.startswith(root + os.sep) and shown != root:
                    written.append(f"{event} {shown}")
    except Exception:
        pass


_HOOKED: list[bool] = []


@contextlib.contextmanager
def writes_outside(root: Path) -> Iterator[list[str]]:
    """Everything written (or a process started) outside ``root`` while the block runs."""
    if not _HOOKED:  # an audit hook cannot be removed: one for the whole session
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    watch: tuple[str, list[str]] = (os.path.realpath(root), [])
    _WATCHES.append(watch)
    try:
        yield watch[1]
    finally:
        _WATCHES.remove(watch)


def fuzz_env(home: Path, cwd: Path) -> dict[str, str | None]:
    """Nothing of the user's: home, state, caches, key services all point nowhere useful."""
    return {
        "HOME": str(cwd / "home"),
        "XDG_STATE_HOME": str(cwd / "state"),
        "XDG_CACHE_HOME": str(cwd / "cache"),
        "XDG_CONFIG_HOME": str(cwd / "config"),
        "SOVML_LOG_DIR": str(cwd / "logs"),
        "SOVML_AUDIT_LOG": str(cwd / "audit" / "lifecycle.jsonl"),
        "SOVML_AUDIT_BUCKET": None,
        "TMPDIR": str(home / "tmp"),
        "SOVML_ARTIFACT_KEY": None,
        "VAULT_ADDR": "http://127.0.0.1:9",  # the discard port: refused at once
        "SOVML_TRACKING_URI": "http://127.0.0.1:9",  # never start an MLflow server
        "VAULT_TOKEN": None,
        "SOVML_VAULT_TRANSIT_MOUNT": None,
        "SOVML_VAULT_ROLE": None,
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
        "AWS_REGION": None,
        "AWS_DEFAULT_REGION": None,
        "AWS_CONFIG_FILE": str(cwd / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "FEAST_USAGE": "False",
    }
