"""A small evaluator of the template's IAM identity policies: moto does not enforce IAM, so the tests ask the
template's own statements whether a role may do something.

It knows what the stack writes: ``Allow`` statements (no ``Deny``, no ``NotAction``/``NotResource``), IAM's
``*``/``?`` wildcards in actions (case-insensitive) and resources, and the condition operators
``StringEquals``, ``StringLike`` and ``ArnLike`` against a request context the caller gives. A statement
whose condition names a key the context lacks does not apply, so a check without context is the strict one.
Resources CloudFormation still has to resolve (``Fn::GetAtt``...) never match a plain ARN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(glob, ignore_case).match(value))


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringEquals":
                ok = value in _list(wanted)
            elif operator in ("StringLike", "ArnLike"):
                ok = any(matches(w, value) for w in _list(wanted))
            else:
                raise ValueError(f"condition operator {operator} is not known to this evaluator")
            if not ok:
                return False
    return True


def allowed(statements: Sequence[Mapping[str, Any]], action: str, resource: str,
            context: Mapping[str, str] | None = None) -> bool:
    """Whether some statement allows ``action`` on ``resource`` (with this request context)."""
    for s in statements:
        if s.get("Effect") != "Allow" or "NotAction" in s or "NotResource" in s:
            continue
        if not any(matches(a, action, ignore_case=True) for a in _list(s["Action"])):
            continue
        if not any(isinstance(r, str) and matches(r, resource) for r in _list(s["Resource"])):
            continue
        if "Condition" in s and not _condition_holds(s["Condition"], context or {}):
            continue
        return True
    return False


def role_statements(template: Mapping[str, Any], role_name: str) -> list[dict[str, Any]]:
    """Every statement of a role (``RoleName``): its inline policies, and ``AWS::IAM::Policy`` attached to it."""
    res = template["Resources"]
    (logical,) = [k for k, v in res.items() if v["Type"] == "AWS::IAM::Role"
                  and v["Properties"].get("RoleName") == role_name]
    props = res[logical]["Properties"]
    out = [s for p in props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    if props.get("ManagedPolicyArns"):
        raise AssertionError(f"{role_name} has managed policies this evaluator cannot read: "
                             f"{props['ManagedPolicyArns']}")
    for v in res.values():
        if v["Type"] == "AWS::IAM::Policy" and {"Ref": logical} in v["Properties"].get("Roles", []):
            out += v["Properties"]["PolicyDocument"]["Statement"]
    return out
