// Every key type against the real server with `jose`, a JOSE implementation independent of
// the server's (ring/aws-lc): it makes the key pairs, exports their SPKI PEMs for upload,
// signs the assertions (ES256 as r||s, EdDSA), loads the PKCS#8 key files the server
// generates, and verifies the server's ID tokens with its JWKS. The lifecycle is driven over
// REST (authnkeys.v1): disable with a reason, the refusal, enable, last use, the key policy.
//
//   AK_URL=http://127.0.0.1:PORT AK_ADMIN_KEY=admin-key.json node run.mjs
import { readFileSync } from "node:fs";
import { SignJWT, createRemoteJWKSet, exportSPKI, generateKeyPair, importPKCS8, jwtVerify } from "jose";
import { Checks } from "../lib/browser.mjs";
import { accessToken } from "../lib/token.mjs";

const ISSUER = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
if (!ISSUER || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (see run.sh)");
  process.exit(2);
}
const API_SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud";
const t = new Checks("key-types");
const admin = await accessToken(ADMIN_KEY, ISSUER);
const suffix = Date.now().toString(36);

async function call(method, path, body) {
  const resp = await fetch(`${ISSUER}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: resp.status, body: json };
}

async function grant(assertion, scope = API_SCOPE) {
  const resp = await fetch(`${ISSUER}/oauth/v2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion,
      scope,
    }),
  });
  return { status: resp.status, body: await resp.json() };
}

const sign = (alg, privateKey, kid, sub, claims = {}) =>
  new SignJWT({ ...claims })
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setIssuer(sub)
    .setSubject(sub)
    .setAudience(ISSUER)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(privateKey);

const jwks = createRemoteJWKSet(new URL(`${ISSUER}/oauth/v2/keys`));
const KINDS = [
  { alg: "ES256", options: { crv: "P-256" } },
  { alg: "ES384", options: { crv: "P-384" } },
  { alg: "EdDSA", options: { crv: "Ed25519" } },
];

// A machine user for the uploads.
const user = await call("POST", "/management/v1/users/machine", { userName: `jose-${suffix}`, name: "jose" });
t.equal("AddMachineUser", user.status, 200);
const userId = user.body.userId;

for (const { alg, options } of KINDS) {
  // Upload through v1 AddMachineKey, v2 AddKey and authnkeys.v1 AddKey.
  const uploads = [];
  for (const api of ["v1", "v2", "own"]) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
    const pem = await exportSPKI(publicKey);
    const b64 = Buffer.from(pem).toString("base64");
    let added;
    if (api === "v1") {
      added = await call("POST", `/management/v1/users/${userId}/keys`, { type: "KEY_TYPE_JSON", publicKey: b64 });
      uploads.push({ api, privateKey, kid: added.body.keyId });
    } else if (api === "v2") {
      added = await call("POST", `/v2/users/${userId}/keys`, {
        publicKey: b64,
        expirationDate: new Date(Date.now() + 86_400_000).toISOString(),
      });
      uploads.push({ api, privateKey, kid: added.body.keyId });
    } else {
      added = await call("POST", "/v1/keys", { userId, publicKey: b64 });
      uploads.push({ api, privateKey, kid: added.body.key?.id });
      t.equal(`${alg}: authnkeys.v1 AddKey says the algorithm`, added.body.key?.algorithm, alg);
      t.equal(`${alg}: origin`, added.body.key?.origin, "KEY_ORIGIN_UPLOADED");
    }
    t.equal(`${alg}: upload through ${api}`, added.status, 200);
  }
  for (const { api, privateKey, kid } of uploads) {
    const got = await grant(await sign(alg, privateKey, kid, userId));
    t.equal(`${alg} assertion (key uploaded through ${api}) gets a token`, got.status, 200);
    if (got.body.id_token) {
      const { payload } = await jwtVerify(got.body.id_token, jwks, { issuer: ISSUER, audience: userId });
      t.equal(`${alg}: the ID token verifies with the JWKS`, payload.sub, userId);
    }
  }
  // A key verifies its own algorithm only: the same key's signature under another header is
  // refused, as is a signature by another key of the same kind.
  const { privateKey: stranger } = await generateKeyPair(alg, options);
  const foreign = await grant(await sign(alg, stranger, uploads[2].kid, userId));
  t.equal(`${alg}: another key's signature under this kid is refused`, foreign.body.error, "invalid_grant");
}

// Generated ES256 and EdDSA keys: the key file's PKCS#8 PEM loads in jose and signs.
for (const alg of ["ES256", "EdDSA"]) {
  const added = await call("POST", "/v1/keys", { userId, algorithm: alg });
  t.equal(`generated ${alg}: added`, added.status, 200);
  const file = JSON.parse(Buffer.from(added.body.keyDetails, "base64").toString());
  t.equal(`generated ${alg}: ZITADEL's key file shape`, Object.keys(file), ["type", "keyId", "key", "expirationDate", "userId"]);
  const key = await importPKCS8(file.key, alg);
  const got = await grant(await sign(alg, key, file.keyId, file.userId));
  t.equal(`generated ${alg}: its key file gets a token`, got.status, 200);
}

// The lifecycle over REST: disable with a reason, the refusal, enable; last use.
const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
const added = await call("POST", "/v1/keys", {
  userId,
  publicKey: Buffer.from(await exportSPKI(publicKey)).toString("base64"),
});
const kid = added.body.key.id;
const before = await grant(await sign("ES256", privateKey, kid, userId));
t.equal("lifecycle: a token", before.status, 200);
const used = await call("GET", `/v1/keys/${kid}`);
t.equal("lifecycle: last use is the grant", used.body.key?.lastUsed?.use, "jwt_bearer_grant");
const disabled = await call("POST", `/v1/keys/${kid}/_disable`, { reason: "suspected leak" });
t.equal("lifecycle: disabled", disabled.body.key?.state, "KEY_STATE_DISABLED");
t.equal("lifecycle: the reason", disabled.body.key?.disabledReason, "suspected leak");
const refused = await grant(await sign("ES256", privateKey, kid, userId));
t.equal("lifecycle: a disabled key gets no token", refused.body.error, "invalid_grant");
t.check("lifecycle: the refusal says disabled", /disabled/.test(refused.body.error_description ?? ""), refused.body.error_description);
const old = await fetch(`${ISSUER}/management/v1/orgs/me`, { headers: { authorization: `Bearer ${before.body.access_token}` } });
t.equal("lifecycle: its token ended", old.status, 401);
const enabled = await call("POST", `/v1/keys/${kid}/_enable`, {});
t.equal("lifecycle: enabled", enabled.body.key?.state, "KEY_STATE_ACTIVE");
const again = await grant(await sign("ES256", privateKey, kid, userId));
t.equal("lifecycle: enabled again, it gets a token", again.status, 200);
const disabledOnly = await call("POST", "/v1/keys/_search", { userId, state: "KEY_STATE_DISABLED" });
t.equal("lifecycle: nothing disabled now", disabledOnly.body.totalResult ?? "0", "0");

// The key policy: only ES256, at most a day; the org's own policy, then reset.
const set = await call("PUT", "/v1/policies/keys", { policy: { maxLifetime: "86400s", allowedAlgorithms: ["ES256"] } });
t.equal("policy: set", set.status, 200);
const rsa = await call("POST", `/management/v1/users/${userId}/keys`, { type: "KEY_TYPE_JSON" });
t.equal("policy: a generated RSA key is refused", rsa.body.details?.[0]?.id, "POLICY-Alg01");
const long = await call("POST", "/v1/keys", { userId, algorithm: "ES256", expirationDate: "2099-01-01T00:00:00Z" });
t.equal("policy: beyond the maximum lifetime", long.body.details?.[0]?.id, "POLICY-Life1");
const ok = await call("POST", "/v1/keys", { userId, algorithm: "ES256" });
t.check("policy: the default expiry is within a day", Date.parse(ok.body.key?.expiresAt) <= Date.now() + 86_400_000 + 60_000, ok.body.key?.expiresAt);
const reset = await call("DELETE", "/v1/policies/keys");
t.equal("policy: reset", reset.status, 200);
const policy = await call("GET", "/v1/policies/keys");
t.equal("policy: the instance default again", policy.body.isDefault, true);

t.finish();
