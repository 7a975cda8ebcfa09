"""ZITADEL's Python SDK (zitadel-client, pinned in requirements.txt) against a running server.

The SDK speaks Connect JSON to zitadel.user.v2.UserService and authenticates with a JSON key
file (JWT profile), as its users do: the admin creates machine users, adds generated and
uploaded keys, lists them with filters, paging and sorting; a new machine user then
authenticates through the SDK with the key file it was handed and manages its own keys.

    AK_URL=http://127.0.0.1:PORT AK_ADMIN_KEY=admin-key.json python test_sdk.py

Prints one line per check and closes with "python-sdk: N passed, N failed".
"""

import base64
import json
import os
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from datetime import datetime, timedelta, timezone

import authlib.deprecate  # noqa: E402

# The SDK imports authlib.jose, which authlib reports as deprecated on every run (its own filter
# says "always"); that is the SDK's business, not this test's.
warnings.filterwarnings("ignore", category=authlib.deprecate.AuthlibDeprecationWarning)

import zitadel_client as zc  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

URL = os.environ["AK_URL"]
ADMIN_KEY = os.environ["AK_ADMIN_KEY"]
UTC = timezone.utc


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f": {detail}" if detail else ""), flush=True)

    def equal(self, what, actual, expected):
        self.check(what, actual == expected, f"got {actual!r}, want {expected!r}")

    def step(self, what, body):
        """Runs body(); an exception is one failed check, and the run goes on."""
        try:
            body()
        except Exception as err:  # noqa: BLE001
            detail = repr(err)
            if isinstance(err, zc.ApiError):
                detail = f"ApiError {err.code} {err.response_body!r}"
            self.check(what, False, f"raised {detail}\n{traceback.format_exc()}")

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


t = Checks("python-sdk")


# ---------------------------------------------------------------- helpers


def error_detail(value):
    """Decodes a zitadel.v1.ErrorDetail {1: id, 2: message} from base64 (padded or not)."""
    raw = base64.b64decode(value + "=" * (-len(value) % 4))
    fields, i = {}, 0
    while i < len(raw):
        tag, i = varint(raw, i)
        if tag & 7 != 2:
            raise ValueError(f"unexpected wire type in ErrorDetail: {tag}")
        n, i = varint(raw, i)
        fields[tag >> 3] = raw[i : i + n].decode()
        i += n
    return {"id": fields.get(1, ""), "message": fields.get(2, "")}


def varint(raw, i):
    shift = result = 0
    while True:
        b = raw[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def expect_error(what, call, status, code, error_id=None, message_has=None, no_details=True):
    """call() must raise the SDK's ApiError with HTTP `status` and a Connect error body with
    `code`; with error_id, one zitadel.v1.ErrorDetail of that id and a message ending in
    "(<id>)"; without, no details (decode and validation errors) unless no_details=False."""
    try:
        result = call()
    except zc.ApiError as err:
        body = err.response_body
        t.equal(f"{what}: HTTP status", err.code, status)
        if not isinstance(body, dict):
            t.check(f"{what}: a JSON error body", False, f"got {body!r}")
            return
        try:
            parsed = zc.UserServiceConnectError.from_dict(body)
        except Exception as parse_err:  # noqa: BLE001
            t.check(f"{what}: body parses as the SDK's ConnectError", False, f"{parse_err!r} for {body!r}")
            return
        t.equal(f"{what}: code", parsed.code, code)
        message = parsed.message or ""
        if message_has is not None:
            t.check(f"{what}: message mentions {message_has!r}", message_has in message, f"got {message!r}")
        if error_id is None:
            if no_details:
                t.check(f"{what}: no error details", not parsed.details, f"got {body.get('details')!r}")
            return
        t.check(f"{what}: message ends in ({error_id})", message.endswith(f"({error_id})"), f"got {message!r}")
        details = parsed.details or []
        types = [d.type for d in details]
        t.equal(f"{what}: one zitadel.v1.ErrorDetail", types, ["zitadel.v1.ErrorDetail"])
        if details:
            detail = error_detail(details[0].value)
            t.equal(f"{what}: ErrorDetail id", detail["id"], error_id)
            t.equal(f"{what}: message = ErrorDetail message (id)", message, f"{detail['message']} ({error_id})")
        return
    except zc.ZitadelError as err:
        t.check(f"{what}: ApiError {status}", False, f"raised {err!r}")
        return
    t.check(f"{what}: ApiError {status}", False, f"succeeded with {result!r}")


def as_int(value):
    """uint64 fields arrive as JSON strings (upstream) or numbers; absent means 0."""
    return int(value) if value is not None else 0


def ids(response):
    return [k.id for k in (response.result or [])]


def user_id_filter(user_id):
    return zc.UserServiceKeysSearchFilter(user_id_filter=zc.UserServiceIDFilter(id=user_id))


def expiration_filter(when, method=None):
    return zc.UserServiceKeysSearchFilter(
        expiration_date_filter=zc.UserServiceTimestampFilter(timestamp=when, method=method)
    )


def list_keys(client, filters=None, sorting=None, **pagination):
    return client.users.list_keys(
        zc.UserServiceListKeysRequest(
            filters=filters,
            sorting_column=sorting,
            pagination=zc.UserServicePaginationRequest(**pagination) if pagination else None,
        )
    )


def write_key_file(directory, content):
    path = os.path.join(directory, f"key-{uuid.uuid4().hex}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f)
    return path


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(key_file, aud):
    """An RS256 JWT-profile assertion like the SDKs sign (typ JWT, no jti, no nbf)."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key_file["keyId"]}
    claims = {"iss": key_file["userId"], "sub": key_file["userId"], "aud": aud, "iat": now, "exp": now + 3600}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(key_file["key"].encode(), password=None)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def token_request(fields, headers=None):
    """POSTs a form to the token endpoint named by discovery; returns (status, JSON body)."""
    with urllib.request.urlopen(f"{URL}/.well-known/openid-configuration") as resp:  # noqa: S310
        endpoint = json.load(resp)["token_endpoint"]
    req = urllib.request.Request(  # noqa: S310
        endpoint,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req) as resp:  # noqa: S310
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ---------------------------------------------------------------- the run

work = tempfile.mkdtemp(prefix="python-sdk-")
admin = zc.Zitadel.with_private_key(URL, ADMIN_KEY)
with open(ADMIN_KEY, encoding="utf-8") as f:
    admin_key_file = json.load(f)

stamp = uuid.uuid4().hex[:8]


def v1_get(path, body=None):
    """The v1 REST API with the token the SDK obtained, for what the v2 SDK has no call for here
    (the caller's org, a user's v1 view, projects and API apps); POST when there is a body."""
    token = admin.configuration.authenticator.get_auth_token()
    req = urllib.request.Request(  # noqa: S310
        f"{URL}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:  # noqa: S310
        return json.load(resp)


ORG_ID = v1_get("/management/v1/orgs/me")["org"]["id"]
state = {}  # what later steps need: user ids, key ids, key files


def create_users():
    started = datetime.now(UTC)
    resp = admin.users.create_user(
        zc.UserServiceCreateUserRequest(
            organization_id=ORG_ID,
            username=f"python-sdk-a-{stamp}",
            machine=zc.UserServiceMachine(name="Python SDK machine A", description="made by zitadel-client"),
        )
    )
    t.check("CreateUser: a decimal id", isinstance(resp.id, str) and resp.id.isdigit(), f"got {resp.id!r}")
    t.check(
        "CreateUser: creationDate is now",
        resp.creation_date is not None and abs(resp.creation_date - started) < timedelta(minutes=1),
        f"got {resp.creation_date!r}",
    )
    state["a"] = resp.id
    resp = admin.users.create_user(
        zc.UserServiceCreateUserRequest(
            organization_id=ORG_ID,
            username=f"python-sdk-b-{stamp}",
            machine=zc.UserServiceMachine(name="Python SDK machine B"),
        )
    )
    state["b"] = resp.id
    t.check("CreateUser: a second user, another id", resp.id.isdigit() and resp.id != state["a"], f"got {resp.id!r}")
    own_id = f"python-sdk-c-{stamp}"
    resp = admin.users.create_user(
        zc.UserServiceCreateUserRequest(
            organization_id=ORG_ID, user_id=own_id, machine=zc.UserServiceMachine(name="Python SDK machine C")
        )
    )
    t.equal("CreateUser with userId: that id", resp.id, own_id)
    user = v1_get(f"/management/v1/users/{own_id}")["user"]
    t.equal("CreateUser without username: v1 GetUserByID shows userName = the user id", user.get("userName"), own_id)
    t.equal("CreateUser: v1 GetUserByID shows a machine named as sent", user.get("machine", {}).get("name"), "Python SDK machine C")
    state["c"] = own_id
    expect_error(
        "CreateUser with a userId already used",
        lambda: admin.users.create_user(
            zc.UserServiceCreateUserRequest(
                organization_id=ORG_ID,
                user_id=own_id,
                username=f"python-sdk-c2-{stamp}",
                machine=zc.UserServiceMachine(name="again"),
            )
        ),
        400,
        "failed_precondition",
        "COMMAND-k2una",
    )


t.step("CreateUser", create_users)

EXP_K1 = datetime(2031, 1, 1, tzinfo=UTC)
EXP_K2 = datetime(2030, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))  # 10:00Z, sent as +02:00
EXP_K3 = datetime(2033, 3, 3, 3, 3, 3, 123456, tzinfo=UTC)  # sent with microseconds
EXP_KB = datetime(2031, 6, 1, tzinfo=UTC)


def add_generated_key():
    resp = admin.users.add_key(zc.UserServiceAddKeyRequest(user_id=state["a"], expiration_date=EXP_K1))
    t.check("AddKey generated: a decimal keyId", bool(resp.key_id) and resp.key_id.isdigit(), f"got {resp.key_id!r}")
    t.check("AddKey generated: creationDate set", resp.creation_date is not None)
    t.check("AddKey generated: keyContent is a base64 string", isinstance(resp.key_content, str) and resp.key_content != "")
    key_file = json.loads(base64.b64decode(resp.key_content))
    t.equal("AddKey generated: key file type", key_file.get("type"), "serviceaccount")
    t.equal("AddKey generated: key file userId", key_file.get("userId"), state["a"])
    t.equal("AddKey generated: key file keyId", key_file.get("keyId"), resp.key_id)
    t.check(
        "AddKey generated: key file holds an RSA private key",
        str(key_file.get("key", "")).startswith("-----BEGIN RSA PRIVATE KEY-----"),
    )
    exp = key_file.get("expirationDate")
    t.check(
        "AddKey generated: key file expirationDate is the requested instant",
        exp is not None and datetime.fromisoformat(exp.replace("Z", "+00:00")) == EXP_K1,
        f"got {exp!r}",
    )
    state["k1"], state["k1_file"], state["k1_created"] = resp.key_id, key_file, resp.creation_date


t.step("AddKey generated", add_generated_key)


def add_uploaded_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    resp = admin.users.add_key(
        zc.UserServiceAddKeyRequest(
            user_id=state["a"], expiration_date=EXP_K2, public_key=base64.b64encode(pem).decode()
        )
    )
    t.check("AddKey uploaded: a decimal keyId", bool(resp.key_id) and resp.key_id.isdigit(), f"got {resp.key_id!r}")
    t.check("AddKey uploaded: keyContent empty", not resp.key_content, f"got {resp.key_content!r}")
    state["k2"] = resp.key_id
    # The caller holds the private key: a key file of its own, PKCS#8 this time.
    state["k2_file"] = {
        "type": "serviceaccount",
        "keyId": resp.key_id,
        "key": private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "userId": state["a"],
    }


t.step("AddKey uploaded", add_uploaded_key)


def add_more_keys():
    resp = admin.users.add_key(zc.UserServiceAddKeyRequest(user_id=state["a"], expiration_date=EXP_K3))
    state["k3"] = resp.key_id
    resp = admin.users.add_key(zc.UserServiceAddKeyRequest(user_id=state["b"], expiration_date=EXP_KB))
    state["kb"] = resp.key_id
    t.check("AddKey: two more keys (user A, user B)", bool(state["k3"]) and bool(state["kb"]))


t.step("AddKey more", add_more_keys)

M = zc.UserServiceTimestampFilterMethod
F = zc.UserServiceKeyFieldName


def list_filters():
    a, k1, k2, k3, kb = (state[k] for k in ("a", "k1", "k2", "k3", "kb"))
    resp = list_keys(admin, [user_id_filter(a)])
    t.equal("ListKeys userIdFilter: newest first by default", ids(resp), [k3, k2, k1])
    t.equal("ListKeys userIdFilter: totalResult", as_int(resp.pagination.total_result), 3)
    t.equal("ListKeys userIdFilter: appliedLimit defaults to 100", as_int(resp.pagination.applied_limit), 100)
    row = {k.id: k for k in resp.result}
    t.equal("ListKeys: userId of each row", {k.user_id for k in resp.result}, {a})
    t.equal("ListKeys: organizationId of each row", {k.organization_id for k in resp.result}, {ORG_ID})
    t.equal("ListKeys: expirationDate sent as +02:00", row[k2].expiration_date, EXP_K2)
    t.equal("ListKeys: expirationDate sent with microseconds", row[k3].expiration_date, EXP_K3)
    t.equal("ListKeys: changeDate equals creationDate", row[k1].change_date, row[k1].creation_date)
    t.check(
        "ListKeys: creationDate matches AddKey's",
        abs(row[k1].creation_date - state["k1_created"]) < timedelta(milliseconds=1),
        f"got {row[k1].creation_date!r}, AddKey said {state['k1_created']!r}",
    )

    resp = list_keys(admin, [user_id_filter(a)], asc=True)
    t.equal("ListKeys asc: oldest first", ids(resp), [k1, k2, k3])

    cases = [
        ("BEFORE", M.TIMESTAMP_FILTER_METHOD_BEFORE, [k2]),
        ("BEFORE_OR_EQUALS", M.TIMESTAMP_FILTER_METHOD_BEFORE_OR_EQUALS, [k1, k2]),
        ("AFTER", M.TIMESTAMP_FILTER_METHOD_AFTER, [k3]),
        ("AFTER_OR_EQUALS", M.TIMESTAMP_FILTER_METHOD_AFTER_OR_EQUALS, [k1, k3]),
        ("EQUALS", M.TIMESTAMP_FILTER_METHOD_EQUALS, [k1]),
        ("without a method (EQUALS)", None, [k1]),
    ]
    for name, method, want in cases:
        resp = list_keys(
            admin, [user_id_filter(a), expiration_filter(EXP_K1, method)], sorting=F.KEY_FIELD_NAME_ID, asc=True
        )
        t.equal(f"ListKeys expirationDateFilter {name} 2031-01-01", ids(resp), want)
        t.equal(f"ListKeys expirationDateFilter {name}: totalResult", as_int(resp.pagination.total_result), len(want))
    same_instant = EXP_K1.astimezone(timezone(timedelta(hours=1)))  # 2031-01-01T01:00:00+01:00
    resp = list_keys(admin, [user_id_filter(a), expiration_filter(same_instant, M.TIMESTAMP_FILTER_METHOD_EQUALS)])
    t.equal("ListKeys expirationDateFilter EQUALS, the same instant as +01:00", ids(resp), [k1])

    resp = list_keys(admin, [user_id_filter(a)], sorting=F.KEY_FIELD_NAME_KEY_EXPIRATION_DATE, asc=True)
    t.equal("ListKeys sorted by expiration, asc", ids(resp), [k2, k1, k3])
    resp = list_keys(admin, [user_id_filter(a)], sorting=F.KEY_FIELD_NAME_KEY_EXPIRATION_DATE)
    t.equal("ListKeys sorted by expiration, desc", ids(resp), [k3, k1, k2])
    resp = list_keys(admin, [user_id_filter(a)], sorting=F.KEY_FIELD_NAME_ID, asc=True)
    t.equal("ListKeys sorted by id, asc", ids(resp), sorted([k1, k2, k3], key=int))

    resp = list_keys(admin, [user_id_filter(a)], asc=True, limit=1, offset=1)
    t.equal("ListKeys limit 1 offset 1: the middle key", ids(resp), [k2])
    t.equal("ListKeys limit 1 offset 1: totalResult still 3", as_int(resp.pagination.total_result), 3)
    t.equal("ListKeys limit 1 offset 1: appliedLimit", as_int(resp.pagination.applied_limit), 1)
    resp = list_keys(admin, [user_id_filter(a)], asc=True, limit=2, offset="2")
    t.equal("ListKeys limit 2 offset \"2\" (a string): the last key", ids(resp), [k3])
    resp = list_keys(admin, [user_id_filter(a)], asc=True, offset=3)
    t.equal("ListKeys offset past the end: no rows", ids(resp), [])
    t.equal("ListKeys offset past the end: totalResult still 3", as_int(resp.pagination.total_result), 3)

    resp = list_keys(
        admin,
        [
            zc.UserServiceKeysSearchFilter(organization_id_filter=zc.UserServiceIDFilter(id=ORG_ID)),
            user_id_filter(state["b"]),
        ],
    )
    t.equal("ListKeys organizationIdFilter + userIdFilter (user B)", ids(resp), [kb])
    resp = list_keys(admin, [zc.UserServiceKeysSearchFilter(key_id_filter=zc.UserServiceIDFilter(id=k2))])
    t.equal("ListKeys keyIdFilter", ids(resp), [k2])

    created_since = zc.UserServiceKeysSearchFilter(
        created_date_filter=zc.UserServiceTimestampFilter(
            timestamp=state["k1_created"], method=M.TIMESTAMP_FILTER_METHOD_AFTER_OR_EQUALS
        )
    )
    resp = list_keys(admin, [created_since], sorting=F.KEY_FIELD_NAME_USER_ID, asc=True)
    rows = [(k.user_id, k.id) for k in (resp.result or [])]
    t.equal("ListKeys createdDateFilter AFTER_OR_EQUALS the first key: the four new keys", sorted(ids(resp)), sorted([k1, k2, k3, kb]))
    t.equal("ListKeys sorted by user id, asc (ties by key id)", rows, sorted(rows))

    resp = list_keys(admin)
    t.check(
        "ListKeys without filters (instance admin): every key, the admin's own too",
        {k1, k2, k3, kb, admin_key_file["keyId"]} <= set(ids(resp)),
        f"got {ids(resp)}",
    )
    t.equal("ListKeys without filters: totalResult = rows", as_int(resp.pagination.total_result), len(ids(resp)))


t.step("ListKeys", list_filters)


def new_user_through_sdk():
    path = write_key_file(work, state["k1_file"])
    user_a = zc.Zitadel.with_private_key(URL, path)
    resp = list_keys(user_a)
    t.equal(
        "machine user A via the SDK with its new key file: ListKeys shows its own keys only",
        ids(resp),
        [state["k3"], state["k2"], state["k1"]],
    )
    t.equal("... totalResult counts only visible rows", as_int(resp.pagination.total_result), 3)
    state["user_a"] = user_a

    # The uploaded key works too (its private key never left this process; PKCS#8 PEM).
    via_uploaded = zc.Zitadel.with_private_key(URL, write_key_file(work, state["k2_file"]))
    resp = list_keys(via_uploaded, [user_id_filter(state["a"])])
    t.equal("machine user A via the uploaded key: ListKeys", len(ids(resp)), 3)
    state["via_uploaded"] = via_uploaded

    # Self-service: a key for itself, then removed by itself.
    resp = user_a.users.add_key(
        zc.UserServiceAddKeyRequest(user_id=state["a"], expiration_date=datetime.now(UTC) + timedelta(days=1))
    )
    t.check("self-service AddKey (no role)", bool(resp.key_id) and bool(resp.key_content))
    removed = user_a.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id=state["a"], key_id=resp.key_id))
    t.check("self-service RemoveKey (no role): deletionDate set", removed.deletion_date is not None)

    expect_error(
        "user A adds a key to user B (no role)",
        lambda: user_a.users.add_key(zc.UserServiceAddKeyRequest(user_id=state["b"], expiration_date=EXP_K1)),
        403,
        "permission_denied",
        "AUTHZ-HKJD33",
    )
    expect_error(
        "user A removes user B's key (no role)",
        lambda: user_a.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id=state["b"], key_id=state["kb"])),
        403,
        "permission_denied",
        "AUTHZ-HKJD33",
    )


t.step("the new machine user through the SDK", new_user_through_sdk)


def remove_key():
    before = datetime.now(UTC)
    resp = admin.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id=state["a"], key_id=state["k1"]))
    t.check(
        "RemoveKey: deletionDate is now",
        resp.deletion_date is not None and abs(resp.deletion_date - before) < timedelta(minutes=1),
        f"got {resp.deletion_date!r}",
    )
    resp = list_keys(admin, [user_id_filter(state["a"])])
    t.equal("ListKeys after RemoveKey: the key is gone", ids(resp), [state["k3"], state["k2"]])
    t.equal("ListKeys after RemoveKey: totalResult", as_int(resp.pagination.total_result), 2)
    resp = list_keys(admin, [zc.UserServiceKeysSearchFilter(key_id_filter=zc.UserServiceIDFilter(id=state["k1"]))])
    t.equal("ListKeys keyIdFilter of the removed key: no rows", ids(resp), [])
    t.equal("ListKeys keyIdFilter of the removed key: totalResult 0", as_int(resp.pagination.total_result), 0)

    # Removing a key revokes the tokens it obtained: the SDK client holding one gets 401.
    expect_error(
        "user A's SDK client, whose token came from the removed key",
        lambda: list_keys(state["user_a"]),
        401,
        "unauthenticated",
        "AUTH-7fs1e",
    )
    # A fresh SDK client with the removed key cannot get a token.
    stale = zc.Zitadel.with_private_key(URL, write_key_file(work, state["k1_file"]))
    try:
        list_keys(stale)
        t.check("the removed key no longer authenticates", False, "the call succeeded")
    except zc.ApiError as err:
        t.check("the removed key no longer authenticates", False, f"token accepted, API said {err.code}")
    except zc.ZitadelError as err:
        t.check("the removed key no longer authenticates (invalid_grant)", "invalid_grant" in str(err), f"got {err!r}")


t.step("RemoveKey", remove_key)


def errors():
    a = state["a"]
    expect_error(
        "RemoveKey of a removed key",
        lambda: admin.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id=a, key_id=state["k1"])),
        404,
        "not_found",
        "COMMAND-4m77G",
    )
    expect_error(
        "RemoveKey of another user's key",
        lambda: admin.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id=a, key_id=state["kb"])),
        404,
        "not_found",
        "COMMAND-4m77G",
    )
    expect_error(
        "RemoveKey on an unknown user",
        lambda: admin.users.remove_key(zc.UserServiceRemoveKeyRequest(user_id="1", key_id=state["k2"])),
        404,
        "not_found",
        "COMMAND-4g3xq",
    )
    expect_error(
        "AddKey with a past expiration",
        lambda: admin.users.add_key(
            zc.UserServiceAddKeyRequest(user_id=a, expiration_date=datetime.now(UTC) - timedelta(days=1))
        ),
        400,
        "invalid_argument",
        "DOMAIN-dv3t5",
    )
    expect_error(
        "AddKey on an unknown user",
        lambda: admin.users.add_key(zc.UserServiceAddKeyRequest(user_id="1", expiration_date=EXP_K1)),
        400,
        "failed_precondition",
        "COMMAND-bnipwm1",
    )
    expect_error(
        "AddKey without expirationDate (required in v2)",
        lambda: admin.users.add_key(zc.UserServiceAddKeyRequest(user_id=a)),
        400,
        "invalid_argument",
        message_has="ExpirationDate: value is required",
    )
    expect_error(
        "AddKey with a naive datetime (sent without offset)",
        lambda: admin.users.add_key(zc.UserServiceAddKeyRequest(user_id=a, expiration_date=datetime(2031, 1, 1))),
        400,
        "invalid_argument",
    )
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    expect_error(
        "AddKey with a 1024-bit public key",
        lambda: admin.users.add_key(
            zc.UserServiceAddKeyRequest(
                user_id=a,
                expiration_date=EXP_K1,
                public_key=base64.b64encode(
                    small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                ).decode(),
            )
        ),
        400,
        "invalid_argument",
        "COMMAND-5F3h1",
    )
    expect_error(
        "ListKeys limit 1001",
        lambda: list_keys(admin, limit=1001),
        400,
        "invalid_argument",
        "QUERY-4M0fs",
    )
    expect_error(
        "CreateUser with a username already taken",
        lambda: admin.users.create_user(
            zc.UserServiceCreateUserRequest(
                organization_id=ORG_ID, username=f"python-sdk-a-{stamp}", machine=zc.UserServiceMachine(name="again")
            )
        ),
        409,
        "already_exists",
        "V3-DKcYh",
    )
    expect_error(
        "CreateUser of a human (not served)",
        lambda: admin.users.create_user(
            zc.UserServiceCreateUserRequest(
                organization_id=ORG_ID,
                human=zc.UserServiceHuman(
                    profile=zc.UserServiceProfile(given_name="Ada", family_name="Lovelace"),
                    email=zc.UserServiceSetHumanEmail(email=f"ada-{stamp}@example.com"),
                ),
            )
        ),
        501,
        "unimplemented",
        no_details=False,
    )
    expect_error(
        "an invalid access token",
        lambda: list_keys(zc.Zitadel.with_access_token(URL, "not-a-token")),
        401,
        "unauthenticated",
        "AUTH-7fs1e",
    )


t.step("errors", errors)


def delete_user():
    b = state["b"]
    resp = admin.users.delete_user(zc.UserServiceDeleteUserRequest(user_id=b))
    t.check("DeleteUser: details.changeDate set", resp.details is not None and resp.details.change_date is not None)
    t.equal("DeleteUser: details.resourceOwner is the org", resp.details.resource_owner if resp.details else None, ORG_ID)
    admin.users.delete_user(zc.UserServiceDeleteUserRequest(user_id=state["c"]))
    resp = list_keys(admin, [user_id_filter(b)])
    t.equal("ListKeys of the deleted user: its key is gone", ids(resp), [])
    expect_error(
        "DeleteUser of a deleted user",
        lambda: admin.users.delete_user(zc.UserServiceDeleteUserRequest(user_id=b)),
        404,
        "not_found",
        "COMMAND-bd4ir1mblj",
    )
    # Self-delete, with the SDK client that authenticated as user A with its uploaded key.
    resp = state["via_uploaded"].users.delete_user(zc.UserServiceDeleteUserRequest(user_id=state["a"]))
    t.check("DeleteUser of itself (no role)", resp.details is not None)
    expect_error(
        "the deleted user's SDK client: its token is revoked",
        lambda: list_keys(state["via_uploaded"]),
        401,
        "unauthenticated",
        "AUTH-7fs1e",
    )
    stale = zc.Zitadel.with_private_key(URL, write_key_file(work, state["k2_file"]))
    try:
        list_keys(stale)
        t.check("a deleted user's key no longer authenticates", False, "the call succeeded")
    except zc.ApiError as err:
        t.check("a deleted user's key no longer authenticates", False, f"token accepted, API said {err.code}")
    except zc.ZitadelError as err:
        t.check("a deleted user's key no longer authenticates (invalid_grant)", "invalid_grant" in str(err), f"got {err!r}")


t.step("DeleteUser", delete_user)


def application_keys():
    project = v1_get("/management/v1/projects", {"name": f"python-sdk-{stamp}"})["id"]
    app = v1_get(
        f"/management/v1/projects/{project}/apps/api",
        {"name": "python-sdk-api", "authMethodType": "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"},
    )
    basic = v1_get(
        f"/management/v1/projects/{project}/apps/api",
        {"name": "python-sdk-basic", "authMethodType": "API_AUTH_METHOD_TYPE_BASIC"},
    )
    apps = admin.applications
    app_id, client_id = app["appId"], app["clientId"]

    exp = datetime(2032, 2, 2, tzinfo=UTC)
    resp = apps.create_application_key(
        zc.ApplicationServiceCreateApplicationKeyRequest(application_id=app_id, project_id=project, expiration_date=exp)
    )
    t.check("CreateApplicationKey: a decimal keyId", bool(resp.key_id) and resp.key_id.isdigit(), f"got {resp.key_id!r}")
    key_file = json.loads(base64.b64decode(resp.key_details))
    t.equal(
        "CreateApplicationKey: keyDetails is the app's key file",
        {k: key_file.get(k) for k in ("type", "keyId", "appId", "clientId")},
        {"type": "application", "keyId": resp.key_id, "appId": app_id, "clientId": client_id},
    )
    t.check(
        "CreateApplicationKey: key file holds an RSA private key",
        str(key_file.get("key", "")).startswith("-----BEGIN RSA PRIVATE KEY-----"),
    )
    first = resp.key_id
    resp = apps.create_application_key(
        zc.ApplicationServiceCreateApplicationKeyRequest(application_id=app_id, project_id=project)
    )
    second = resp.key_id

    got = apps.get_application_key(zc.ApplicationServiceGetApplicationKeyRequest(key_id=first))
    t.equal("GetApplicationKey: keyId", got.key_id, first)
    t.equal("GetApplicationKey: expirationDate", got.expiration_date, exp)
    got = apps.get_application_key(zc.ApplicationServiceGetApplicationKeyRequest(key_id=second))
    t.equal(
        "GetApplicationKey: no expiration asked gives 9999-12-31T23:59:59Z",
        got.expiration_date,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    )

    by_app = [
        zc.ApplicationServiceApplicationKeySearchFilter(
            application_id_filter=zc.ApplicationServiceApplicationKeyApplicationIDFilter(application_id=app_id)
        )
    ]
    listed = apps.list_application_keys(
        zc.ApplicationServiceListApplicationKeysRequest(pagination=zc.ApplicationServicePaginationRequest(), filters=by_app)
    )
    keys = [k.key_id for k in (listed.keys or [])]
    t.equal("ListApplicationKeys applicationIdFilter: by key id, descending", keys, sorted([first, second], key=int, reverse=True))
    t.equal("ListApplicationKeys: totalResult", as_int(listed.pagination.total_result), 2)
    row = {k.key_id: k for k in listed.keys or []}.get(first)
    t.equal(
        "ListApplicationKeys: project, app and org of a row",
        (row.project_id, row.application_id, row.organization_id) if row else None,
        (project, app_id, ORG_ID),
    )
    listed = apps.list_application_keys(
        zc.ApplicationServiceListApplicationKeysRequest(
            pagination=zc.ApplicationServicePaginationRequest(asc=True),
            sorting_column=zc.ApplicationServiceApplicationKeysSorting.APPLICATION_KEYS_SORT_BY_EXPIRATION,
            filters=[
                zc.ApplicationServiceApplicationKeySearchFilter(
                    project_id_filter=zc.ApplicationServiceApplicationKeyProjectIDFilter(project_id=project)
                )
            ],
        )
    )
    t.equal("ListApplicationKeys projectIdFilter, by expiration asc", [k.key_id for k in listed.keys or []], [first, second])
    listed = apps.list_application_keys(
        zc.ApplicationServiceListApplicationKeysRequest(pagination=zc.ApplicationServicePaginationRequest())
    )
    all_keys = {k.key_id for k in listed.keys or []}
    t.check(
        "ListApplicationKeys without filters: application keys only, never machine keys",
        {first, second} <= all_keys and admin_key_file["keyId"] not in all_keys,
        f"got {sorted(all_keys)}",
    )

    deleted = apps.delete_application_key(
        zc.ApplicationServiceDeleteApplicationKeyRequest(key_id=first, application_id=app_id, project_id=project)
    )
    t.check("DeleteApplicationKey: deletionDate set", deleted.deletion_date is not None)
    expect_error(
        "DeleteApplicationKey of a deleted key",
        lambda: apps.delete_application_key(
            zc.ApplicationServiceDeleteApplicationKeyRequest(key_id=first, application_id=app_id, project_id=project)
        ),
        404,
        "not_found",
        "COMMAND-4m77G",
    )
    expect_error(
        "GetApplicationKey of a deleted key",
        lambda: apps.get_application_key(zc.ApplicationServiceGetApplicationKeyRequest(key_id=first)),
        404,
        "not_found",
        "QUERY-Dgr3g",
    )
    expect_error(
        "GetApplicationKey of a machine key id",
        lambda: apps.get_application_key(zc.ApplicationServiceGetApplicationKeyRequest(key_id=admin_key_file["keyId"])),
        404,
        "not_found",
        "QUERY-Dgr3g",
    )
    expect_error(
        "CreateApplicationKey for a BASIC app",
        lambda: apps.create_application_key(
            zc.ApplicationServiceCreateApplicationKeyRequest(application_id=basic["appId"], project_id=project)
        ),
        400,
        "failed_precondition",
        "COMMAND-Dff54",
    )
    expect_error(
        "CreateApplicationKey for an unknown app",
        lambda: apps.create_application_key(
            zc.ApplicationServiceCreateApplicationKeyRequest(application_id="1", project_id=project)
        ),
        400,
        "failed_precondition",
        "COMMAND-sak25",
    )
    expect_error(
        "CreateApplicationKey with a past expiration",
        lambda: apps.create_application_key(
            zc.ApplicationServiceCreateApplicationKeyRequest(
                application_id=app_id, project_id=project, expiration_date=datetime(2020, 1, 1, tzinfo=UTC)
            )
        ),
        400,
        "invalid_argument",
        "DOMAIN-dv3t5",
    )


t.step("ApplicationService keys", application_keys)


def not_served():
    expect_error(
        "ListPasskeys (a UserService method not served)",
        lambda: admin.users.list_passkeys(zc.UserServiceListPasskeysRequest(user_id=admin_key_file["userId"])),
        501,
        "unimplemented",
        message_has="/zitadel.user.v2.UserService/ListPasskeys",
        no_details=False,
    )


t.step("methods not served", not_served)


def token_endpoint():
    """The grant forms the official SDKs send (see the contract) all give a token."""
    scope = "openid urn:zitadel:iam:org:project:id:zitadel:aud"
    cases = [
        ("client_id=None (Python)", {"client_id": "None"}, {}, URL),
        ("client_id=zitadel (Node, PHP)", {"client_id": "zitadel"}, {}, URL),
        ("Basic zitadel:zitadel (Ruby)", {}, {"Authorization": "Basic " + base64.b64encode(b"zitadel:zitadel").decode()}, URL),
        ("aud as an array (zitadel-go)", {}, {}, [URL]),
    ]
    for name, extra, headers, aud in cases:
        fields = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion(admin_key_file, aud),
            "scope": scope,
            **extra,
        }
        status, body = token_request(fields, {"Accept": "application/json", **headers})
        ok = status == 200 and isinstance(body, dict) and "error" not in body and bool(body.get("access_token"))
        t.check(f"token endpoint, {name}: 200 with an access_token", ok, f"got {status} {body!r}")
        if not ok:
            continue
        expires_in = body.get("expires_in")
        t.check(
            f"token endpoint, {name}: expires_in a number above 300",
            isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 300,
            f"got {expires_in!r}",
        )
        if "id_token" in body:
            claims = jwt_claims(body["id_token"])
            t.check(
                f"token endpoint, {name}: id_token exp > iat and azp set",
                claims.get("exp", 0) > claims.get("iat", 0) and bool(claims.get("azp")),
                f"got {claims!r}",
            )
    status, body = token_request(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion(admin_key_file, URL),
            "scope": "urn:zitadel:iam:org:project:id:zitadel:aud openid",
            "client_id": "None",
        }
    )
    t.check("token endpoint, scope in the other order", status == 200 and "access_token" in body, f"got {status} {body!r}")
    # The token the SDK holds works for a plain API call made with it (not only inside the SDK).
    token = admin.configuration.authenticator.get_auth_token()
    via_token = zc.Zitadel.with_access_token(URL, token)
    resp = list_keys(via_token, [user_id_filter(admin_key_file["userId"])])
    t.equal("the SDK's token as a bearer token: the admin's own key", ids(resp), [admin_key_file["keyId"]])


t.step("token endpoint", token_endpoint)


def readme_snippet():
    """The README's Python example (walk-through, 2c) with this pinned SDK: the script its block
    writes, run twice in a directory of its own with what the block exports (ISSUER, ADMIN_KEY
    naming a key file in another directory, ORG_ID). Each run makes its own machine user."""
    import re
    import shutil
    import subprocess

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "README.md")).read()
    block = re.search(r"<!-- test: walkthrough python-sdk -->\n```sh\n(.*?)```", readme, re.S)
    t.check("README: the Python example is marked", block is not None)
    if not block:
        return
    block = block.group(1)
    script = re.search(r"^cat > python_bot\.py <<'EOF'\n(.*?\n)EOF$", block, re.S | re.M)
    t.check("README: the block writes python_bot.py", script is not None)
    if not script:
        return
    t.check("README: the block exports ISSUER and ADMIN_KEY", "\nexport ISSUER ADMIN_KEY\n" in block)
    t.check("README: the block exports ORG_ID", "\nexport ORG_ID=" in block)
    t.check("README: the block runs python_bot.py", "\n.venv/bin/python python_bot.py\n" in block)
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "python_bot.py"), "w") as f:
        f.write(script.group(1))
    env = dict(os.environ, ISSUER=URL, ADMIN_KEY=os.path.abspath(ADMIN_KEY), ORG_ID=ORG_ID)
    users = []
    for n in (1, 2):
        run = subprocess.run(
            [sys.executable, "-W", "ignore", "python_bot.py"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        t.equal(f"README example, run {n}: exits 0", run.returncode, 0)
        if run.returncode != 0:
            print(run.stderr[-2000:])
            break
        user_id, key_id, listed = run.stdout.strip().splitlines()[-1].split(" ", 2)
        users.append(user_id)
        t.equal(f"README example, run {n}: the new key is listed", listed, f"['{key_id}']")
        key_file = json.load(open(os.path.join(work, "python-bot-key.json")))
        t.equal(f"README example, run {n}: the saved key file names the user", key_file.get("userId"), user_id)
        t.equal(f"README example, run {n}: the saved key file names the key", key_file.get("keyId"), key_id)
        t.equal(
            f"README example, run {n}: the bot removed its own key",
            ids(list_keys(admin, [user_id_filter(user_id)])),
            [],
        )
    if len(users) == 2:
        t.check("README example: each run makes its own user", users[0] != users[1], f"got {users!r}")
    for user_id in users:
        admin.users.delete_user(zc.UserServiceDeleteUserRequest(user_id=user_id))
    shutil.rmtree(work, ignore_errors=True)


t.step("README example", readme_snippet)

sys.exit(t.finish())
