"""fastapi-zitadel-auth (pinned in requirements.txt), unchanged, protecting a small FastAPI app
with access tokens from a running server.

The library is built for ZITADEL: it reads the issuer's discovery document, fetches the signing
keys from {issuer}/oauth/v2/keys, and accepts an RS256 token only when its header says
typ "JWT", its aud holds the project id (or the app's client id), and it carries iss, sub, exp,
iat and client_id. It asks for no role claims; roles, when present, are only handed to the app.

    AK_URL=http://127.0.0.1:PORT AK_ADMIN_KEY=admin-key.json python test_app.py
    AK_URL=… AK_ADMIN_KEY=… python test_app.py --expect-refused-typ at+jwt

The second form is for a server started with AUTHN_KEYS_ACCESS_TOKEN_TYP=at+jwt: the library
must refuse its access tokens (the reason the server's default is "JWT").

Prints one line per check and closes with "fastapi: N passed, N failed".
"""

import argparse
import base64
import json
import logging
import os
import sys
import time
import traceback
import uuid
import warnings

# Starlette announces a move of its TestClient to another HTTP package; that is its business.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

import httpx  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from fastapi import FastAPI, Security  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from fastapi_zitadel_auth import ZitadelAuth  # noqa: E402

URL = os.environ["AK_URL"]
ADMIN_KEY = os.environ["AK_ADMIN_KEY"]
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

# The library logs each token it refuses (with a traceback); the checks below say what was
# refused and why, and tokens stay out of the CI log.
logging.getLogger("fastapi_zitadel_auth").setLevel(logging.CRITICAL)


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

    def status(self, what, resp, expected):
        """An HTTP answer's status, with its body when it is not the one expected."""
        self.check(what, resp.status_code == expected, f"got {resp.status_code} {resp.text[:300]}, want {expected}")

    def step(self, what, body):
        """Runs body(); an exception is one failed check, and the run goes on."""
        try:
            body()
        except Exception as err:  # noqa: BLE001
            self.check(what, False, f"raised {err!r}\n{traceback.format_exc()}")

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


t = Checks("fastapi")


# ---------------------------------------------------------------- talking to the server


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def assertion(key_file):
    """A JWT-profile assertion (RFC 7523) signed with a key file's key, as ZITADEL's SDKs sign."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key_file["keyId"]}
    claims = {
        "iss": key_file["userId"],
        "sub": key_file["userId"],
        "aud": URL,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(key_file["key"].encode(), password=None)
    return f"{signing_input}.{b64url(key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def tokens(http, key_file, scope):
    """The token endpoint's answer for a key file and a scope string."""
    endpoint = http.get(f"{URL}/.well-known/openid-configuration").json()["token_endpoint"]
    resp = http.post(endpoint, data={"grant_type": JWT_BEARER, "assertion": assertion(key_file), "scope": scope})
    if resp.status_code != 200:
        raise RuntimeError(f"token request failed: {resp.status_code} {resp.text}")
    return resp.json()


def project_aud(project_id):
    return f"urn:zitadel:iam:org:project:id:{project_id}:aud"


class Admin:
    """The v1 REST API with the admin's token."""

    def __init__(self, http):
        with open(ADMIN_KEY, encoding="utf-8") as f:
            key_file = json.load(f)
        token = tokens(http, key_file, "openid " + project_aud("zitadel"))["access_token"]
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path, body):
        resp = self.http.post(f"{URL}/management/v1{path}", json=body, headers=self.headers)
        if resp.status_code != 200:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text}")
        return resp.json()


def setup(http):
    """Two projects, an API app in the first, and a machine user with JWT access tokens and a key."""
    admin = Admin(http)
    stamp = uuid.uuid4().hex[:8]
    project = admin.post("/projects", {"name": f"fastapi-{stamp}"})["id"]
    other = admin.post("/projects", {"name": f"fastapi-other-{stamp}"})["id"]
    app = admin.post(
        f"/projects/{project}/apps/api",
        {"name": "fastapi-api", "authMethodType": "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"},
    )
    user = admin.post(
        "/users/machine",
        {"userName": f"fastapi-bot-{stamp}", "name": "FastAPI bot", "accessTokenType": "ACCESS_TOKEN_TYPE_JWT"},
    )["userId"]
    key = admin.post(f"/users/{user}/keys", {"type": "KEY_TYPE_JSON"})
    key_file = json.loads(base64.b64decode(key["keyDetails"]))
    return {"project": project, "other": other, "client_id": app["clientId"], "user": user, "key_file": key_file}


# ---------------------------------------------------------------- the protected app


def protected_app(project, client_id):
    auth = ZitadelAuth(
        issuer_url=URL,
        project_id=project,
        app_client_id=client_id,
        allowed_scopes={"openid": "OpenID Connect", project_aud(project): "This API as the audience"},
    )
    app = FastAPI()

    def answer(user):
        return {
            "sub": user.claims.sub,
            "client_id": user.claims.client_id,
            "project_roles": user.claims.project_roles,
        }

    @app.get("/me")
    def me(user=Security(auth)):  # noqa: B008
        return answer(user)

    @app.get("/scoped")
    def scoped(user=Security(auth, scopes=[project_aud(project)])):  # noqa: B008
        return answer(user)

    return app


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def reason(resp):
    """The message in the library's error answer {"detail": {"error", "message"}}."""
    try:
        return resp.json()["detail"]["message"]
    except (ValueError, KeyError, TypeError):
        return resp.text


def tampered(token):
    """The same signature over a payload naming another subject."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["sub"] = claims["sub"] + "0"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def bad_signature(token):
    """One character of the signature changed (not the last, whose low bits may be padding)."""
    header, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{header}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


def accepted(s):
    project, user = s["project"], s["user"]
    granted = tokens(s["http"], s["key_file"], f"openid {project_aud(project)}")
    access, id_token = granted["access_token"], granted.get("id_token")
    header, claims = jwt_parts(access)
    t.equal("access token header: typ JWT, as ZITADEL's", header.get("typ"), "JWT")
    t.equal("access token header: alg RS256", header.get("alg"), "RS256")
    t.check("access token aud holds the project id", project in claims.get("aud", []), f"got {claims!r}")
    s["access"], s["id_token"] = access, id_token

    client = s["client"]
    resp = client.get("/me", headers=bearer(access))
    t.status("GET /me with the access token: 200", resp, 200)
    if resp.status_code == 200:
        body = resp.json()
        t.equal("GET /me: the library's user is the machine user (sub)", body["sub"], user)
        t.equal("GET /me: client_id claim is the machine user", body["client_id"], user)
        t.equal("GET /me: no project roles (none are issued, none required)", body["project_roles"], {})
    else:
        t.check("GET /me: body", False, resp.text)
    resp = client.get("/scoped", headers=bearer(access))
    t.status("GET /scoped (needs the project audience scope) with the access token: 200", resp, 200)
    # The JWKS the library fetched stays valid for a second request on the same app.
    resp = client.get("/me", headers=bearer(access))
    t.status("GET /me again: 200", resp, 200)


def refused(s):
    client = s["client"]

    resp = client.get("/me")
    t.status("GET /me without a token: 401", resp, 401)

    resp = client.get("/me", headers=bearer(tampered(s["access"])))
    t.status("GET /me with a tampered token (sub changed, signature kept): 401", resp, 401)
    t.equal("tampered token: the library's reason", reason(resp), "Unable to validate token")

    resp = client.get("/me", headers=bearer(bad_signature(s["access"])))
    t.status("GET /me with a token whose signature was altered: 401", resp, 401)

    # ID tokens carry typ JWT too, but not the project's audience.
    id_token = s["id_token"]
    t.check("the grant returned an ID token (openid asked)", bool(id_token))
    if id_token:
        # Its aud is the client alone (here the machine user), never a project: the library
        # refuses it at the audience check, before it looks at any other claim.
        resp = client.get("/me", headers=bearer(id_token))
        t.status("GET /me with the ID token instead: 401", resp, 401)
        t.equal("ID token: the library's reason", reason(resp), "Token contains invalid claims")
        resp = client.get("/scoped", headers=bearer(id_token))
        t.status("GET /scoped with the ID token instead: 401", resp, 401)

    other = tokens(s["http"], s["key_file"], f"openid {project_aud(s['other'])}")["access_token"]
    resp = client.get("/me", headers=bearer(other))
    t.status("GET /me with a token for another project: 401", resp, 401)
    t.equal("token for another project: the library's reason", reason(resp), "Token contains invalid claims")

    no_aud = tokens(s["http"], s["key_file"], "openid")["access_token"]
    resp = client.get("/me", headers=bearer(no_aud))
    t.status("GET /me with a token asked without the project's audience scope: 401", resp, 401)


def refused_typ(s, typ):
    granted = tokens(s["http"], s["key_file"], f"openid {project_aud(s['project'])}")
    header, _ = jwt_parts(granted["access_token"])
    t.equal(f"access token header: typ {typ} (the server's setting)", header.get("typ"), typ)
    resp = s["client"].get("/me", headers=bearer(granted["access_token"]))
    t.status(f"GET /me with a typ {typ} access token: the library refuses with 401", resp, 401)
    t.equal(f"typ {typ}: the library's reason", reason(resp), "Invalid token header")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-refused-typ", help="the server issues this typ; the library must refuse it")
    args = parser.parse_args()

    with httpx.Client(timeout=30) as http:
        s = setup(http)
        s["http"] = http
        with TestClient(protected_app(s["project"], s["client_id"])) as client:
            s["client"] = client
            print(f"fastapi: project {s['project']}, app client {s['client_id']}, machine user {s['user']}", flush=True)
            if args.expect_refused_typ:
                t.step("typ refused", lambda: refused_typ(s, args.expect_refused_typ))
            else:
                t.step("accepted", lambda: accepted(s))
                if "access" in s:
                    t.step("refused", lambda: refused(s))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
