"""Workload logs: the Fluent Bit component under mocks, its config text, and the gate on it."""

from __future__ import annotations

import functools
import importlib
import json
import shutil
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.workload_logs import (
    DEFAULT_MASKED_FIELDS,
    WorkloadLogs,
    WorkloadLogsArgs,
    fluent_bit_config,
    mask_script,
)
from infra.config.parsing import parse
from policies.inventory import load_lock, mirror_sources, registry_host
from policies.rules import Context, Resource, evaluate
from policies.rules.logs import output_settings
from tests.component_mocks import ACCESS, KEY, children_named_after, of_type, record

HELM = "kubernetes:helm.sh/v3:Release"


def _logs(**kw: Any) -> WorkloadLogs:
    args: dict[str, Any] = {
        "name_prefix": "sovml-t",
        "region": "me-central-1",
        "logs_key_arn": KEY,
        "retention_days": 365,
        "cluster_access": ACCESS,
        "tenants": ["acme"],
        "protect": True,
    }
    return WorkloadLogs("logs", WorkloadLogsArgs(**{**args, **kw}))


def _sections(text: str) -> list[dict[str, list[str]]]:
    """Each ``[SECTION]`` of a classic-mode text as {key: [values]} (keys lower-cased)."""
    out: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        if line.strip().startswith("["):
            out.append({"@": [line.strip()]})
        elif line.strip():
            key, value = line.split(None, 1)
            out[-1].setdefault(key.lower(), []).append(value.strip())
    return out


def test_log_groups_are_encrypted_retained_and_protected() -> None:
    res = record(_logs)
    groups = of_type(res, "aws:cloudwatch/logGroup:LogGroup")
    assert sorted(g["inputs"]["name"] for g in groups) == [
        "/aws/eks/sovml-t/workloads/platform",
        "/aws/eks/sovml-t/workloads/tenants",
    ]
    for g in groups:
        assert g["inputs"]["kmsKeyId"] == KEY, g["urn"]
        assert g["inputs"]["retentionInDays"] == 365, g["urn"]
        assert g["protect"] is True, g["urn"]
    children_named_after(res, "sovereign-ml:workload_logs:WorkloadLogs", "logs")


def test_irsa_policy_writes_only_its_own_groups() -> None:
    res = record(_logs)
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    (stmt,) = json.loads(inline["inputs"]["policy"])["Statement"]
    assert stmt["Action"] == [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    ]
    assert all("*" not in a for a in stmt["Action"])
    for arn in stmt["Resource"]:
        assert arn.startswith("arn:aws:logs:me-central-1:123456789012:log-group:/aws/eks/sovml-t/")
        assert arn.removesuffix(":*").count("*") == 0, arn
    (role,) = of_type(res, "aws:iam/role:Role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"][0]["Condition"]
    (sub,) = [v for k, v in trust["StringEquals"].items() if k.endswith(":sub")]
    assert sub == "system:serviceaccount:kube-system:fluent-bit"


def test_release_ships_in_region_and_masks_every_configured_field() -> None:
    res = record(lambda: _logs(masked_fields=["password", "api_key"]))
    (release,) = of_type(res, HELM)
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"], inputs["namespace"]) == (
        "fluent-bit",
        "0.40.0",
        "kube-system",
    )
    values = inputs["values"]
    assert values["daemonSetVolumeMounts"] == [
        {"name": "varlog", "mountPath": "/var/log", "readOnly": True}
    ]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::123456789012:role/logs-irsa"
    )
    outputs = _sections(values["config"]["outputs"])
    assert [o["region"] for o in outputs] == [["me-central-1"], ["me-central-1"]]
    assert all("endpoint" not in o and "host" not in o for o in outputs)
    (lua,) = [f for f in _sections(values["config"]["filters"]) if f["name"] == ["lua"]]
    assert lua["script"] == ["/fluent-bit/scripts/mask.lua"]
    assert lua["call"] == ["mask_record"]
    assert values["luaScripts"] == {"mask.lua": mask_script(["password", "api_key"])}
    assert 'MASKED_KEYS = { ["password"] = true, ["api_key"] = true }' in (
        values["luaScripts"]["mask.lua"]
    )


def test_config_text_masks_after_the_kubernetes_merge_and_before_the_re_tag() -> None:
    config = fluent_bit_config("me-central-1", "p", ["acme", "beta"])
    filters = _sections(config["filters"])
    names = [f["name"][0] for f in filters]
    # The merge must come first: the Lua filter then sees a JSON log's fields as record keys.
    assert names == ["kubernetes", "lua", "rewrite_tag"]
    assert filters[0]["merge_log"] == ["On"]
    assert filters[1]["match"] == ["*"]
    assert filters[2]["rule"] == ["$kubernetes['namespace_name'] ^(acme|beta)$ tenants.$TAG false"]
    (tail,) = _sections(config["inputs"])
    assert tail["path"] == ["/var/log/containers/*.log"]
    assert tail["multiline.parser"] == ["cri"]


def test_no_tenants_no_rewrite_and_the_gate_reads_the_outputs() -> None:
    config = fluent_bit_config("me-central-1", "p")
    assert "rewrite_tag" not in config["filters"]
    settings = list(output_settings(config["outputs"]))
    assert (1, "region", "me-central-1") in settings
    assert (2, "log_group_name", "/aws/eks/p/workloads/tenants") in settings


def test_component_refuses_a_field_name_with_spaces() -> None:
    with pytest.raises(ValueError, match=r"WorkloadLogsArgs.masked_fields: \['api key'\]"):
        _logs(masked_fields=["api key"])


def _violations(values: dict[str, Any], ns: str = "kube-system") -> list[str]:
    release = Resource(
        HELM,
        "logs-fluent-bit",
        {
            "name": "fluent-bit",
            "chart": "fluent-bit",
            "version": "0.40.0",
            "namespace": ns,
            "repositoryOpts": {"repo": "https://fluent.github.io/helm-charts"},
            "values": values,
        },
    )
    return [f"{v.rule_id} {v.message}" for v in evaluate([release], Context(zone="uae"))]


def test_the_components_own_release_passes_the_gate() -> None:
    """On the zone's mirror, as production pulls, the component's own release breaks no rule
    but the reviewed one: its image has no locked digest yet (SOV-SUP-002, suppressed by id)."""
    pins = load_lock()
    mirror = mirror_sources(registry_host("111122223333", "me-central-1"), pins)
    (release,) = of_type(record(functools.partial(_logs, sources=mirror)), HELM)
    found = evaluate(
        [Resource(HELM, release["name"], release["inputs"])],
        Context(zone="uae", allowed_account_ids=("111122223333",)),
    )
    unpinned = [] if "fluent-bit-image" in pins else ["SOV-SUP-002"]
    # SOV-SUP-003 judges the whole stack (its admission policy), which this one release is not.
    ids = [v.rule_id for v in found if v.rule_id != "SOV-SUP-003"]
    assert ids == unpinned, [v.message for v in found]


def test_gate_refuses_an_out_of_zone_region_naming_path_value_and_fix() -> None:
    config = fluent_bit_config("eu-west-1", "p")
    msgs = [m for m in _violations({"config": config}) if m.startswith("SOV-RES-005")]
    assert len(msgs) == 2, msgs  # the platform and the tenants output
    assert (
        "Helm release fluent-bit: values config.outputs [OUTPUT #1] region = 'eu-west-1'" in msgs[0]
    )
    assert "outside residency zone 'uae' (me-central-1): set it to me-central-1" in msgs[0]


def test_gate_refuses_a_custom_endpoint_outside_the_zone() -> None:
    outputs = fluent_bit_config("me-central-1", "p")["outputs"].replace(
        "auto_create_group Off\n",
        "auto_create_group Off\n    endpoint logs.us-east-1.amazonaws.com\n",
        1,
    )
    msgs = [m for m in _violations({"config": {"outputs": outputs}}) if m.startswith("SOV-RES-005")]
    assert len(msgs) == 1
    assert "[OUTPUT #1] endpoint = 'logs.us-east-1.amazonaws.com' is not an AWS endpoint" in msgs[0]


def test_config_key_defaults_and_refuses_bad_field_names() -> None:
    base = {
        "aws:region": "me-central-1",
        "owner": "ml-platform",
        "costCenter": "cc-1",
        "alertWebhookUrl": "https://itsm.example.ae/alertmanager",
        "gatewayOidcIssuer": "https://login.example.ae/realms/ml",
        "gatewayOidcJwksUri": "https://login.example.ae/realms/ml/certs",
    }
    cfg = parse(base, stack="test", source="Pulumi.test.yaml")
    assert not isinstance(cfg, list), cfg
    assert cfg.log_masked_fields == DEFAULT_MASKED_FIELDS
    problems = parse({**base, "logMaskedFields": ["ok", "bad field"]}, stack="dev", source="s")
    assert isinstance(problems, list)
    assert any("logMaskedFields" in str(p) and "bad field" in str(p) for p in problems)


@pytest.mark.skipif(shutil.which("fluent-bit") is None, reason="no fluent-bit binary here")
def test_fluent_bit_dry_run(tmp_path: Any) -> None:  # pragma: no cover - needs the binary
    import subprocess

    config = fluent_bit_config("me-central-1", "p", ["acme"])
    (tmp_path / "mask.lua").write_text(mask_script(DEFAULT_MASKED_FIELDS))
    filters = config["filters"].replace("/fluent-bit/scripts/mask.lua", str(tmp_path / "mask.lua"))
    conf = tmp_path / "fluent-bit.conf"
    conf.write_text(config["inputs"] + "\n" + filters + "\n" + config["outputs"])
    done = subprocess.run(["fluent-bit", "-c", str(conf), "--dry-run"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


# --- The Lua filter, run by a real Lua interpreter (lupa): LuaJIT 2.1, which Fluent Bit embeds,
# and Lua 5.4. Records go in as Lua tables built from Python values, as Fluent Bit builds them
# from msgpack (maps and 1-based arrays).

RUNTIMES = ("luajit21", "lua54")
MASK = "<masked>"


@functools.cache
def _mask_function(runtime: str, script: str) -> Any:
    """``mask_record`` of ``script`` loaded into a fresh interpreter of the named kind."""
    module = importlib.import_module(f"lupa.{runtime}")
    lua = module.LuaRuntime(unpack_returned_tuples=True)
    lua.execute(script)
    return module, lua, lua.globals().mask_record


def _to_python(module: Any, value: Any) -> Any:
    """A Lua table back as a dict, or a list when its keys are exactly 1..n."""
    if module.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and sorted(items) == list(range(1, len(items) + 1)):
        return [_to_python(module, items[i]) for i in range(1, len(items) + 1)]
    return {k: _to_python(module, v) for k, v in items.items()}


def _run(
    record: dict[str, Any], runtime: str = "luajit21", script: str | None = None
) -> tuple[int, Any, Any]:
    """Fluent Bit's call: ``code, timestamp, record = mask_record(tag, timestamp, record)``."""
    module, lua, fn = _mask_function(runtime, script or mask_script(DEFAULT_MASKED_FIELDS))
    table = lua.table_from(record, recursive=True)
    code, ts, out = fn("kube.var.log.containers.x", 1700000000.25, table)
    return int(code), ts, _to_python(module, out)


def _nest(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """``leaf`` at ``depth`` (1 = the record itself), alternately inside maps and arrays."""
    node: Any = leaf
    for level in range(depth - 1):
        node = {"level": level, "inner": node} if level % 2 else [{"n": 1}, node]
    return node if isinstance(node, dict) else {"items": node}


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_lua_masks_configured_keys_at_every_depth(runtime: str, depth: int) -> None:
    leaf = {"password": "hunter2", "Token": ["t1", "t2"], "secret": {"k": "v"}, "keep": "me"}
    code, ts, out = _run(_nest(depth, leaf), runtime)
    want = {"password": MASK, "Token": MASK, "secret": MASK, "keep": "me"}
    assert (code, ts) == (2, 1700000000.25)
    assert out == _nest(depth, want)
    assert "hunter2" not in repr(out) and "t1" not in repr(out)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lua_compares_keys_case_insensitively_and_exactly(runtime: str) -> None:
    record = {
        "PASSWORD": "a",
        "AuThOrIzAtIoN": "Basic Zm9v",
        "Emirates_ID": 784198712345671,
        "token": True,
        "passwords": "not a listed key",
        "my_token": "nor this",
        "kubernetes": {"labels": {"SECRET": 3.5}},
    }
    code, _, out = _run(record, runtime)
    assert code == 2
    assert out == {
        "PASSWORD": MASK,
        "AuThOrIzAtIoN": MASK,
        "Emirates_ID": MASK,
        "token": MASK,
        "passwords": "not a listed key",
        "my_token": "nor this",
        "kubernetes": {"labels": {"SECRET": MASK}},
    }


LOG_LINES = [
    ("login ok password=hunter2 user=bob", "hunter2", "password=<masked> user=bob"),
    ('db: PASSWORD: "s3cr et" host=db', "s3cr et", 'PASSWORD: "<masked>" host=db'),
    ("GET /x Authorization: Bearer eyJhbGc.eyJzdWI-x_y", "eyJhbGc", "Authorization: <masked>"),
    ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "authorization=<masked>"),
    ("retry with bearer tok_123/xyz== now", "tok_123", "bearer <masked> now"),
    ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "key <masked> used"),
    ("sts ASIAY34FZKBOKMUTVV7A expires", "ASIAY34FZKBOKMUTVV7A", "sts <masked> expires"),
    ("citizen 784-1987-1234567-1 verified", "1234567", "citizen <masked> verified"),
    ("id=784198712345671;", "784198712345671", "<masked>;"),
    ("connect postgres://app:hunter2@db:5432/x", "hunter2", "postgres://app:<masked>@db:5432/x"),
    ('body {"api_key": "k-123", "n": 1}', "k-123", '"api_key": "<masked>", "n": 1'),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "secret_access_key=<masked>"),
    ("x-token: abc123, ok", "abc123", "token: <masked>, ok"),
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(("line", "secret", "masked"), LOG_LINES)
def test_lua_masks_each_credential_shape_in_the_log_line(
    runtime: str, line: str, secret: str, masked: str
) -> None:
    code, _, out = _run({"log": line, "stream": "stdout"}, runtime)
    assert code == 2, out
    assert secret not in out["log"], out["log"]
    assert masked in out["log"], out["log"]
    assert out["stream"] == "stdout"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lua_leaves_a_clean_record_alone_with_code_0(runtime: str) -> None:
    record = {
        "log": "passwordless=true tokens 5 id 784-1987-1234567 AKIA123 1784198712345671",
        "stream": "stderr",
        "n": 42,
        "ratio": 0.5,
        "ok": False,
        "kubernetes": {"namespace_name": "acme", "labels": {"app": "api"}},
        "spans": [{"name": "a", "ms": 3}, ["x", 1, True]],
    }
    code, ts, out = _run(record, runtime)
    assert (code, ts, out) == (0, 1700000000.25, record)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lua_masks_non_string_values_and_skips_a_non_string_log(runtime: str) -> None:
    record = {"log": 12345, "secret": {"a": [1, 2]}, "token": 7, "password": MASK}
    code, _, out = _run(record, runtime)
    assert code == 2
    assert out == {"log": 12345, "secret": MASK, "token": MASK, "password": MASK}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lua_is_idempotent_so_the_re_tagged_record_passes_with_code_0(runtime: str) -> None:
    _, _, once = _run({"log": "password=x Bearer y", "a": [{"Token": "z"}]}, runtime)
    code, _, twice = _run(once, runtime)
    assert (code, twice) == (0, once)


def test_lua_masks_a_subtree_deeper_than_it_walks() -> None:
    deep: dict[str, Any] = {"password": "p"}
    for _ in range(70):
        deep = {"d": deep}
    code, _, out = _run(deep)
    node = out
    for _ in range(63):
        node = node["d"]
    assert (code, node) == (2, {"d": MASK})


def test_the_script_the_release_ships_masks_its_custom_fields_in_keys_and_lines() -> None:
    res = record(lambda: _logs(masked_fields=["Session_ID", "password"]))
    (release,) = of_type(res, HELM)
    script = release["inputs"]["values"]["luaScripts"]["mask.lua"]
    # The chart renders luaScripts with Helm's tpl: template braces would be evaluated.
    assert "{{" not in script and "}}" not in script
    record_in = {"log": "resume session_id=s-99 ok", "meta": {"SESSION_ID": "s-99"}, "token": "t"}
    code, _, out = _run(record_in, script=script)
    assert code == 2
    # This stack's list replaces the defaults: a key named token is kept.
    want = {"log": "resume session_id=<masked> ok", "meta": {"SESSION_ID": MASK}, "token": "t"}
    assert out == want


def test_mask_script_refuses_a_key_that_could_break_the_lua() -> None:
    with pytest.raises(ValueError, match=r"masked_fields: \['a\"\]'\]"):
        mask_script(['a"]'])


_KEY_WORDS = st.sampled_from(DEFAULT_MASKED_FIELDS).flatmap(
    lambda w: st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in w]).map("".join)
)
_PLAIN_KEYS = st.from_regex(r"[a-z_]{1,10}", fullmatch=True).filter(
    lambda k: k not in DEFAULT_MASKED_FIELDS and k != "log"
)
_LEAVES = (
    st.text(max_size=12)
    | st.integers(-(2**31), 2**31)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, min_size=1, max_size=3)
    | st.dictionaries(_KEY_WORDS | _PLAIN_KEYS, inner, min_size=1, max_size=4),
    max_leaves=16,
)


def _expected(value: Any) -> tuple[Any, bool]:
    """The record the script must return, and whether it must report a change."""
    if isinstance(value, list):
        pairs = [_expected(v) for v in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    if isinstance(value, dict):
        out, changed = {}, False
        for k, v in value.items():
            if k.lower() in DEFAULT_MASKED_FIELDS:
                out[k], changed = MASK, changed or v != MASK
            else:
                out[k], sub = _expected(v)
                changed = changed or sub
        return out, changed
    return value, False


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_KEY_WORDS | _PLAIN_KEYS, _VALUES, min_size=1, max_size=5))
def test_lua_property_no_masked_value_survives_and_nothing_else_changes(
    record_in: dict[str, Any],
) -> None:
    want, changed = _expected(record_in)
    for runtime in RUNTIMES:
        code, _, out = _run(record_in, runtime)
        assert out == want, runtime
        assert code == (2 if changed else 0), runtime
