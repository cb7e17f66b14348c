"""Access reviews: who am I, and may this user do that.

Served as create-only, never-stored resources, as on a real server:

* ``authorization.k8s.io/v1`` ``subjectaccessreviews`` (any user and groups),
  ``namespaces/{ns}/localsubjectaccessreviews`` (the same, pinned to one namespace),
  ``selfsubjectaccessreviews`` (the caller: ``kubectl auth can-i``) and
  ``selfsubjectrulesreviews`` (the caller's rules in a namespace: ``kubectl auth can-i
  --list``);
* ``authentication.k8s.io/v1`` ``selfsubjectreviews`` (``kubectl auth whoami``).

Every answer comes from the API server's authorizer (``APIServer.set_authorizer``), the same one
that decides HTTP requests; with none installed everything is allowed, as with
``--authorization-mode=AlwaysAllow``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._errors import APIError, Cause
from ._rbac import Attributes, Decision, RBACAuthorizer, aggregate_errors

if TYPE_CHECKING:
    from ._apiserver import APIRequest, APIServer, UserInfo

__all__ = ["install"]

_AUTHZ = "authorization.k8s.io"
_AUTHN = "authentication.k8s.io"


def _spec(request: APIRequest, kind: str) -> dict[str, Any]:
    body = request.body
    if not isinstance(body, Mapping):
        raise APIError.bad_request(f"the body of the request must be a {kind} object")
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise APIError.bad_request("spec must be an object")
    return dict(spec)


def _invalid(field: str, value: Any, detail: str) -> Cause:
    shown = json.dumps(value) if isinstance(value, str) else '"null"'
    return {
        "reason": "FieldValueInvalid",
        "field": field,
        "message": f"Invalid value: {shown}: {detail}",
    }


def _attribute_problems(spec: Mapping[str, Any]) -> list[Cause]:
    problems: list[Cause] = []
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        problems.append(
            _invalid(
                "spec.nonResourceAttributes",
                None,
                "cannot be specified in combination with resourceAttributes",
            )
        )
    if resource is None and non_resource is None:
        problems.append(
            _invalid(
                "spec.resourceAttributes",
                None,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    return problems


def _attributes(user: UserInfo, spec: Mapping[str, Any]) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, Mapping):
        return Attributes(
            user=user,
            verb=str(resource.get("verb") or ""),
            namespace=str(resource.get("namespace") or ""),
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            name=str(resource.get("name") or ""),
        )
    non_resource = spec.get("nonResourceAttributes") or {}
    return Attributes(
        user=user,
        verb=str(non_resource.get("verb") or ""),
        resource_request=False,
        path=str(non_resource.get("path") or ""),
    )


def _review(kind: str, group: str, spec: Mapping[str, Any], status: Any, **meta: Any) -> Any:
    return {
        "kind": kind,
        "apiVersion": f"{group}/v1",
        "metadata": {"creationTimestamp": None, **meta},
        "spec": dict(spec),
        "status": status,
    }


def _status(decision: Decision) -> dict[str, Any]:
    # allowed is always written; reason only when there is one (omitempty).
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


class _Reviews:
    def __init__(self, apiserver: APIServer) -> None:
        self._api = apiserver

    def _decide(self, attributes: Attributes) -> Decision:
        authorizer = self._api.authorizer
        return Decision(True) if authorizer is None else authorizer(attributes)

    def _subject(self, spec: Mapping[str, Any], kind: str, name: str) -> UserInfo:
        from ._apiserver import UserInfo

        problems = _attribute_problems(spec)
        user, groups = spec.get("user") or "", spec.get("groups") or []
        if not user and not groups:
            problems.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "spec.user",
                    "message": 'Invalid value: "": at least one of user or group must be specified',
                }
            )
        if problems:
            raise APIError.invalid(kind, _AUTHZ, name, problems)
        extra = spec.get("extra") or {}
        return UserInfo(
            str(user),
            tuple(str(g) for g in groups),
            str(spec.get("uid") or ""),
            {str(k): tuple(v) for k, v in extra.items() if isinstance(v, list)},
        )

    async def subject_access_review(self, request: APIRequest) -> tuple[int, Any]:
        spec = _spec(request, "SubjectAccessReview")
        user = self._subject(spec, "SubjectAccessReview", "")
        decision = self._decide(_attributes(user, spec))
        return 201, _review("SubjectAccessReview", _AUTHZ, spec, _status(decision))

    async def local_subject_access_review(self, request: APIRequest) -> tuple[int, Any]:
        spec = _spec(request, "LocalSubjectAccessReview")
        namespace = request.namespace or ""
        user = self._subject(spec, "LocalSubjectAccessReview", "")
        resource = spec.get("resourceAttributes")
        if spec.get("nonResourceAttributes") is not None or not isinstance(resource, Mapping):
            raise APIError.invalid(
                "LocalSubjectAccessReview",
                _AUTHZ,
                "",
                [
                    _invalid(
                        "spec.nonResourceAttributes",
                        None,
                        "disallowed on this kind of request",
                    )
                ],
            )
        if resource.get("namespace") != namespace:
            raise APIError.bad_request(
                f"spec.resourceAttributes.namespace must match namespace: {namespace}"
            )
        decision = self._decide(_attributes(user, spec))
        return 201, _review(
            "LocalSubjectAccessReview",
            _AUTHZ,
            spec,
            _status(decision),
            namespace=namespace,
        )

    async def self_subject_access_review(self, request: APIRequest) -> tuple[int, Any]:
        spec = _spec(request, "SelfSubjectAccessReview")
        problems = _attribute_problems(spec)
        if problems:
            raise APIError.invalid("SelfSubjectAccessReview", _AUTHZ, "", problems)
        assert request.user is not None  # reviews are never anonymous routes
        decision = self._decide(_attributes(request.user, spec))
        return 201, _review("SelfSubjectAccessReview", _AUTHZ, spec, _status(decision))

    async def self_subject_rules_review(self, request: APIRequest) -> tuple[int, Any]:
        spec = _spec(request, "SelfSubjectRulesReview")
        namespace = spec.get("namespace") or ""
        assert request.user is not None
        authorizer = self._api.authorizer
        status: dict[str, Any]
        if authorizer is None:
            status = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
        elif isinstance(authorizer, RBACAuthorizer):
            rules, errors = authorizer.rules_for(request.user, str(namespace))
            status = {
                "resourceRules": [_resource_rule(r) for r in rules if "nonResourceURLs" not in r],
                "nonResourceRules": [
                    {"verbs": list(r.get("verbs") or []), "nonResourceURLs": r["nonResourceURLs"]}
                    for r in rules
                    if "nonResourceURLs" in r
                ],
                "incomplete": bool(errors),
            }
            if errors:
                status["evaluationError"] = aggregate_errors(errors)
        else:
            status = {"resourceRules": [], "nonResourceRules": [], "incomplete": True}
        return 201, _review("SelfSubjectRulesReview", _AUTHZ, spec, status)

    async def self_subject_review(self, request: APIRequest) -> tuple[int, Any]:
        assert request.user is not None
        user = request.user
        info: dict[str, Any] = {"username": user.username, "groups": list(user.groups)}
        if user.uid:
            info["uid"] = user.uid
        if user.extra:
            info["extra"] = {k: list(v) for k, v in user.extra.items()}
        return 201, {
            "kind": "SelfSubjectReview",
            "apiVersion": f"{_AUTHN}/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": info},
        }


def _resource_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": list(rule.get("verbs") or [])}
    for field in ("apiGroups", "resources", "resourceNames"):
        if rule.get(field):
            out[field] = list(rule[field])
    return out


def install(apiserver: APIServer) -> None:
    """Serve the review resources on ``apiserver``."""
    reviews = _Reviews(apiserver)
    for group, plural, kind, namespaced, handler in (
        (
            _AUTHZ,
            "subjectaccessreviews",
            "SubjectAccessReview",
            False,
            reviews.subject_access_review,
        ),
        (
            _AUTHZ,
            "localsubjectaccessreviews",
            "LocalSubjectAccessReview",
            True,
            reviews.local_subject_access_review,
        ),
        (
            _AUTHZ,
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            reviews.self_subject_access_review,
        ),
        (
            _AUTHZ,
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
            reviews.self_subject_rules_review,
        ),
        (_AUTHN, "selfsubjectreviews", "SelfSubjectReview", False, reviews.self_subject_review),
    ):
        apiserver.add_virtual_resource(
            group, "v1", plural, kind, namespaced=namespaced, handler=handler
        )
