"""kpng-auth's pure parts: NATS JWTs, the decision per connection, the callout messages."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpng.bus.identity import node_inbox, node_permissions
from kpng.bus.permissions import role_permissions
from kpng.bus.subjects import Subjects
from kpng_auth.callout import REQUEST_AUDIENCE, parse_request, response
from kpng_auth.calloutconf import CalloutConf, render_callout
from kpng_auth.decide import (
    NODE_NAME_EXTRA,
    Denial,
    Grant,
    Policy,
    Review,
    StaticUser,
    check_roles,
    decide_password,
    decide_token,
)
from kpng_auth.natsjwt import (
    ACCOUNT,
    SERVER,
    USER,
    JwtError,
    Signer,
    decode,
    new_seed,
    unverified_claims,
)

S = Subjects("kpng")
NOW = 1_800_000_000.0
AGENT = "system:serviceaccount:kube-system:kpng-agent"
SIGNER = Signer(new_seed(ACCOUNT))
POLICY = Policy(S, roles={"kube-system/kpng-watcher": "watcher"}, max_lifetime=600)


def agent_review(node: str | tuple[str, ...] = "node-a1", **kw: object) -> Review:
    nodes = (node,) if isinstance(node, str) else node
    fields: dict[str, object] = dict(
        authenticated=True, username=AGENT, audiences=("kpng",), extra={NODE_NAME_EXTRA: nodes}
    )
    fields.update(kw)
    return Review(**fields)  # type: ignore[arg-type]


# -- JWTs ---------------------------------------------------------------------------------
def test_a_signed_jwt_decodes_and_a_tampered_one_does_not() -> None:
    signer = Signer(new_seed(ACCOUNT))
    assert signer.public.startswith("A")
    token = signer.encode({"sub": "x", "nats": {"type": "user"}})
    claims = decode(token, ACCOUNT)
    assert claims["iss"] == signer.public and claims["sub"] == "x" and claims["jti"]
    head, _, sig = token.split(".")
    forged = json.dumps({**claims, "sub": "y"}).encode()

    body2 = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    with pytest.raises(JwtError, match="signature"):
        decode(f"{head}.{body2}.{sig}", ACCOUNT)
    with pytest.raises(JwtError, match="kind"):
        decode(token, SERVER)  # an account key where a server's is expected
    with pytest.raises(JwtError):
        decode("a.b", ACCOUNT)
    with pytest.raises(JwtError, match="seed"):
        Signer(b"SAnotaseed")


def test_unverified_claims_reads_a_payload_only() -> None:
    signer = Signer(new_seed())
    assert unverified_claims(signer.encode({"exp": 5}))["exp"] == 5
    assert unverified_claims("not a jwt") == {}


# -- decisions ----------------------------------------------------------------------------
def test_an_agent_token_gets_exactly_its_node_subjects_until_the_token_expires() -> None:
    decision = decide_token(agent_review("node-a1.example"), int(NOW) + 300, NOW, POLICY)
    assert isinstance(decision, Grant)
    assert decision.node == "node-a1.example" and decision.name == "node/node-a1.example"
    assert decision.permissions.publish == (
        "kpng.v1.node.node-a1_example.status",
        "kpng.v1.node.node-a1_example.snapshot",
    )
    assert decision.permissions.subscribe == (
        "kpng.v1.node.node-a1_example.delta",
        "kpng.v1.cast.*",  # zone parts every node may read (only the watcher publishes)
        "_INBOX.kpng.node-a1_example.>",
    )
    assert decision.expires == int(NOW) + 300  # the token's expiry, sooner than max_lifetime
    later = decide_token(agent_review(), int(NOW) + 10_000, NOW, POLICY)
    assert isinstance(later, Grant) and later.expires == int(NOW) + 600  # max_lifetime


@pytest.mark.parametrize(
    ("review", "expiry", "reason"),
    [
        (Review(False, error="[invalid bearer token, token has expired]"), None, "expired"),
        (Review(False, error="[invalid bearer token, unknown token]"), None, "token-invalid"),
        (Review(False, error="token audiences [x] is invalid for [kpng]"), None, "audience"),
        (agent_review(audiences=("other",)), int(NOW) + 60, "audience"),
        (agent_review(), int(NOW) - 1, "expired"),
        (agent_review(), None, "expired"),
        (agent_review(()), int(NOW) + 60, "node-name"),
        (agent_review(("a", "b")), int(NOW) + 60, "node-name"),
        (agent_review("Node_A"), int(NOW) + 60, "node-name"),
        (
            agent_review(username="system:serviceaccount:default:other"),
            int(NOW) + 60,
            "service-account",
        ),
        (agent_review(username="alice"), int(NOW) + 60, "service-account"),
    ],
)
def test_a_token_is_refused_with_its_reason(
    review: Review, expiry: int | None, reason: str
) -> None:
    decision = decide_token(review, expiry, NOW, POLICY)
    assert isinstance(decision, Denial) and decision.reason == reason, decision


def test_other_service_accounts_get_their_role_and_static_users_theirs() -> None:
    review = agent_review(username="system:serviceaccount:kube-system:kpng-watcher")
    decision = decide_token(review, int(NOW) + 60, NOW, POLICY)
    assert isinstance(decision, Grant) and decision.node == ""
    assert decision.permissions == role_permissions("watcher", S)
    policy = Policy(S, users={"dash": StaticUser("consumer", "pw", node_views=True)})
    granted = decide_password("dash", "pw", NOW, policy)
    assert isinstance(granted, Grant)
    assert granted.permissions == role_permissions("consumer", S, node_views=True)
    assert decide_password("dash", "nope", NOW, policy) == Denial(
        "password", "wrong password for 'dash'"
    )
    denied = decide_password("eve", "pw", NOW, policy)
    assert isinstance(denied, Denial) and denied.reason == "unknown-user"
    assert check_roles({"ns/w": "watcher"}) == []
    assert len(check_roles({"w": "agent"})) == 2


def test_node_identity_subjects() -> None:
    assert node_inbox(S, "n1") == "_INBOX.kpng.n1"
    perms = node_permissions(S, "n1")
    assert all("n2" not in s and "*" not in s for s in perms.publish)
    # another node's subjects never; a wildcard only for the casts (read-only)
    assert all("n2" not in s for s in perms.subscribe)
    assert [s for s in perms.subscribe if "*" in s] == [S.all_casts]
    with pytest.raises(ValueError):
        node_permissions(S, "../x")


# -- the callout messages -----------------------------------------------------------------
def server_request(server: Signer, user_nkey: str, **opts: str) -> bytes:
    claims = {
        "aud": REQUEST_AUDIENCE,
        "sub": user_nkey,
        "nats": {
            "server_id": {"id": server.public, "name": "s"},
            "user_nkey": user_nkey,
            "client_info": {"host": "10.0.0.1", "name": "kpng-agent-n1"},
            "connect_opts": {"name": "kpng-agent-n1", **opts},
            "type": "authorization_request",
            "version": 2,
        },
    }
    return server.encode(claims).encode()


def test_request_parsed_and_answered_with_a_user_jwt_for_its_nkey() -> None:
    server = Signer(new_seed(SERVER))
    user_nkey = Signer(new_seed(USER)).public
    request = parse_request(server_request(server, user_nkey, auth_token="tok"))
    assert request.token == "tok" and request.user_nkey == user_nkey
    assert request.server_id == server.public and request.client == "kpng-agent-n1@10.0.0.1"
    issuer = Signer(new_seed(ACCOUNT))
    grant = Grant("node/n1", node_permissions(S, "n1"), int(time.time()) + 60, "n1")
    answer = decode(
        response(issuer, request, int(NOW), grant=grant, account="KPNG").decode(), ACCOUNT
    )
    assert answer["aud"] == server.public and answer["sub"] == user_nkey
    user = decode(answer["nats"]["jwt"], ACCOUNT)
    assert user["sub"] == user_nkey and user["aud"] == "KPNG" and user["exp"] == grant.expires
    assert user["nats"]["pub"] == {"allow": list(grant.permissions.publish)}
    assert user["nats"]["sub"] == {"allow": list(grant.permissions.subscribe)}
    refused = decode(response(issuer, request, int(NOW), error="expired").decode(), ACCOUNT)
    assert refused["nats"]["error"] == "expired" and "jwt" not in refused["nats"]


def test_a_request_not_signed_by_a_server_is_rejected() -> None:
    user_nkey = Signer(new_seed(USER)).public
    with pytest.raises(JwtError):
        parse_request(server_request(Signer(new_seed(ACCOUNT)), user_nkey))
    with pytest.raises(JwtError):
        parse_request(server_request(Signer(new_seed(SERVER)), "not-a-user-key"))


def test_callout_config_names_the_issuer_and_the_auth_user() -> None:
    text = render_callout(CalloutConf("AISSUER", "kpng-auth", "pw"))
    assert 'issuer: "AISSUER"' in text and 'auth_users: [ "kpng-auth" ]' in text
    assert "account: AUTH" in text and "KPNG: {}" in text
    assert "  timeout: 10\n" in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text().filter(lambda k: k not in ("iss", "jti")), json_values))
def test_any_claims_round_trip_through_a_signed_jwt(claims: dict[str, object]) -> None:
    decoded = decode(SIGNER.encode(claims), ACCOUNT)
    assert {k: v for k, v in decoded.items() if k not in ("iss", "jti")} == claims
