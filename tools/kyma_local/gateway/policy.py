"""IAM policy evaluation of a Lambda authorizer's answer against the method ARN."""

from __future__ import annotations

import fnmatch


def policy_allows(policy: dict, method_arn: str) -> bool:
    """True when some statement allows execute-api:Invoke on the ARN and none denies it."""
    allowed = False
    statements = policy.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        resources = st.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        actions = st.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
            continue
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allowed = True
    return allowed
