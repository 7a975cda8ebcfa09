// `openid-client` v6 as a relying party and an API app would use it against the real server:
// discovery (OpenID and RFC 8414), the JWT-profile grant (RFC 7523) with the user's key file
// and the ID token checked (signature by the JWKS included), DPoP-bound tokens (RFC 9449)
// with ES256 and EdDSA proof keys used on the REST API, revocation (RFC 7009) with the user's
// own private_key_jwt, introspection by an API app (private_key_jwt and client_secret_basic),
// plain and as a signed JWT (RFC 9701). `jose` verifies on its own what the server signs.
// A second server signs with ES256: its ID tokens pass openid-client, its JWT access tokens
// (and signed introspection answers) pass jose with its JWKS.
//
//   AK_URL=… AK_ADMIN_KEY=… [AK_ES256_URL=… AK_ES256_ADMIN_KEY=…] node run.mjs   (run.sh sets them)
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import * as client from "openid-client";
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  importPKCS8,
  jwtVerify,
} from "jose";
import { Checks } from "../lib/browser.mjs";
import { accessToken, assertion } from "../lib/token.mjs";

const ISSUER = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
const ES_ISSUER = process.env.AK_ES256_URL;
const ES_ADMIN_KEY = process.env.AK_ES256_ADMIN_KEY;
if (!ISSUER || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (see run.sh)");
  process.exit(2);
}
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_SCOPE = "urn:zitadel:iam:org:project:id:zitadel:aud";
const projectScope = (id) => `urn:zitadel:iam:org:project:id:${id}:aud`;
const t = new Checks("openid-client");
const started = Date.now();
const suffix = Date.now().toString(36);

const watchdog = setTimeout(() => {
  t.check("finished within 120 s", false);
  t.finish();
  process.exit(1);
}, 120_000);

// ---------------------------------------------------------------- helpers

/** One server's admin REST calls (plain fetch with the admin's Bearer token). */
async function adminOf(issuer, keyFile) {
  const token = await accessToken(keyFile, issuer);
  return async (method, path, body) => {
    const resp = await fetch(`${issuer}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    if (resp.status !== 200) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
    return json;
  };
}

/** A key file as AddMachineKey / AddAppKey hand it out (base64 JSON). */
const keyFileOf = (keyDetails) => JSON.parse(Buffer.from(keyDetails, "base64").toString("utf8"));

/** A key file's private key as a WebCrypto key with its key id, as openid-client takes it. */
async function privateKeyOf(keyFile) {
  const key = createPrivateKey(keyFile.key);
  const alg =
    key.asymmetricKeyType === "ed25519"
      ? "EdDSA"
      : key.asymmetricKeyType === "ec"
        ? key.asymmetricKeyDetails.namedCurve === "secp384r1"
          ? "ES384"
          : "ES256"
        : "RS256";
  // ZITADEL's key files hold PKCS#1 for RSA; WebCrypto imports PKCS#8.
  const pkcs8 = key.export({ type: "pkcs8", format: "pem" });
  return { key: await importPKCS8(pkcs8, alg), kid: keyFile.keyId };
}

/**
 * A fetch that keeps what went over the wire: each request's method, URL and headers and the
 * response's status, headers and body, so that checks can look at what openid-client sent.
 */
function recorder() {
  const log = [];
  const record = async (url, options) => {
    const resp = await fetch(url, options);
    log.push({
      url: String(url),
      method: options?.method ?? "GET",
      request: new Headers(options?.headers),
      requestBody: options?.body === undefined || options?.body === null ? undefined : String(options.body),
      status: resp.status,
      headers: resp.headers,
      body: await resp.clone().text(),
    });
    return resp;
  };
  return { fetch: record, log, last: (pred = () => true) => log.filter(pred).at(-1) };
}

/**
 * A Configuration by discovery: `oidc` reads /.well-known/openid-configuration, `oauth2`
 * RFC 8414's /.well-known/oauth-authorization-server. Plain http on loopback is allowed.
 */
async function discover(issuer, clientId, metadata = {}, auth = client.None(), algorithm = "oidc") {
  const rec = recorder();
  const config = await client.discovery(new URL(issuer), clientId, metadata, auth, {
    execute: [client.allowInsecureRequests],
    algorithm,
    [client.customFetch]: rec.fetch,
  });
  return { config, rec };
}

/** The JWT-profile grant through openid-client: a fresh assertion signed with the key file. */
const grant = (config, keyFile, scope, dpop) =>
  client.genericGrantRequest(
    config,
    JWT_BEARER,
    { assertion: assertion(keyFile, config.serverMetadata().issuer), scope },
    dpop ? { DPoP: dpop } : undefined,
  );

const usersSearch = (issuer) => new URL(`${issuer}/management/v1/users/_search`);
const jsonHeaders = () => new Headers({ "content-type": "application/json" });

/** POST users/_search through openid-client; the status and body, or the refusal. */
async function listUsers(config, token, dpop) {
  try {
    const resp = await client.fetchProtectedResource(config, token, usersSearch(config.serverMetadata().issuer), "POST", "{}", jsonHeaders(), dpop ? { DPoP: dpop } : undefined);
    return { status: resp.status, body: await resp.json().catch(() => null) };
  } catch (err) {
    if (err instanceof client.WWWAuthenticateChallengeError) {
      return { status: err.status, challenges: err.cause, error: err };
    }
    throw err;
  }
}
const challengeError = (res) => res.challenges?.find((c) => c.scheme === "dpop")?.parameters?.error;
const challengeText = (res) => res.challenges?.find((c) => c.scheme === "dpop")?.parameters?.error_description ?? "";

/**
 * A DPoP handle for an Ed25519 key pair whose proofs say alg EdDSA (RFC 8037). openid-client
 * names the algorithm Ed25519 by default (RFC 9864's fully-specified name); that default is
 * checked on its own.
 */
const eddsaHandle = (config, keyPair) =>
  client.getDPoPHandle(config, keyPair, {
    [client.modifyAssertion]: (header) => {
      header.alg = "EdDSA";
    },
  });

/** The same call with plain fetch and the headers given (a token sent some other way). */
async function listUsersRaw(issuer, headers) {
  const resp = await fetch(usersSearch(issuer), { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" });
  return { status: resp.status, wwwAuthenticate: resp.headers.get("www-authenticate") ?? "", body: await resp.text() };
}
const dpopError = (res) => /^DPoP\b/i.test(res.wwwAuthenticate) ? (/error="([^"]*)"/.exec(res.wwwAuthenticate)?.[1] ?? "") : "";

/** An OAuth error openid-client raised, as "status error" (401s come as challenges, the body unread). */
async function oauthError(err) {
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const body = await err.response.json().catch(() => ({}));
    return `${err.status} ${body.error}`;
  }
  return err instanceof client.ResponseBodyError ? `${err.status} ${err.error}` : String(err);
}

/** Runs one part; an exception fails it with its message and the run goes on. */
async function part(name, fn) {
  console.log(`--- ${name}`);
  try {
    await fn();
  } catch (err) {
    t.check(`${name}: ran to the end`, false, err?.stack ?? String(err));
  }
}

/** A project, an API app with an app key (private_key_jwt), a BASIC app, a machine user with a role and a key. */
async function setUp(issuer, admin, name, userFields = {}) {
  const project = await admin("POST", "/management/v1/projects", { name: `${name}-${suffix}` });
  const app = await admin("POST", `/management/v1/projects/${project.id}/apps/api`, { name: `${name}-jwt`, authMethodType: "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT" });
  const appKey = await admin("POST", `/management/v1/projects/${project.id}/apps/${app.appId}/keys`, { type: "KEY_TYPE_JSON" });
  const basic = await admin("POST", `/management/v1/projects/${project.id}/apps/api`, { name: `${name}-basic`, authMethodType: "API_AUTH_METHOD_TYPE_BASIC" });
  const user = await admin("POST", "/management/v1/users/machine", { userName: `${name}-${suffix}`, name, ...userFields });
  await admin("POST", "/management/v1/orgs/me/members", { userId: user.userId, roles: ["ORG_OWNER_VIEWER"] });
  const userKey = await admin("POST", `/management/v1/users/${user.userId}/keys`, { type: "KEY_TYPE_JSON" });
  return {
    projectId: project.id,
    app: { clientId: app.clientId, keyFile: keyFileOf(appKey.keyDetails) },
    basic: { clientId: basic.clientId, secret: basic.clientSecret },
    userId: user.userId,
    userKey: keyFileOf(userKey.keyDetails),
  };
}

// ---------------------------------------------------------------- the run

try {
  const admin = await adminOf(ISSUER, ADMIN_KEY);
  const s = await setUp(ISSUER, admin, "oidc");
  const scope = `openid ${API_SCOPE} ${projectScope(s.projectId)}`;
  const jwks = createRemoteJWKSet(new URL(`${ISSUER}/oauth/v2/keys`));

  // The user as its own OAuth client (JWT profile: client id = user id, no client authentication
  // at the token endpoint); the signature of every ID token checked against the JWKS.
  const { config: user } = await discover(ISSUER, s.userId);
  client.enableNonRepudiationChecks(user);
  // The API app, authenticating with its app key, and the BASIC app.
  const { config: app } = await discover(ISSUER, s.app.clientId, {}, client.PrivateKeyJwt(await privateKeyOf(s.app.keyFile)));
  const { config: basicApp } = await discover(ISSUER, s.basic.clientId, {}, client.ClientSecretBasic(s.basic.secret));

  await part("discovery", async () => {
    const { config, rec } = await discover(ISSUER, s.userId);
    const m = config.serverMetadata();
    t.equal("openid-configuration: the issuer", m.issuer, ISSUER);
    t.check("read from /.well-known/openid-configuration", rec.log.some((e) => e.url === `${ISSUER}/.well-known/openid-configuration` && e.status === 200), rec.log.map((e) => `${e.url} ${e.status}`).join(", "));
    t.equal("token, introspection endpoints and jwks_uri", [m.token_endpoint, m.introspection_endpoint, m.jwks_uri], [`${ISSUER}/oauth/v2/token`, `${ISSUER}/oauth/v2/introspect`, `${ISSUER}/oauth/v2/keys`]);
    t.equal("revocation_endpoint (RFC 7009)", m.revocation_endpoint, `${ISSUER}/oauth/v2/revoke`);
    t.check("grant types: jwt-bearer and token-exchange", [JWT_BEARER, TOKEN_EXCHANGE].every((g) => m.grant_types_supported?.includes(g)), JSON.stringify(m.grant_types_supported));
    t.check("dpop_signing_alg_values_supported: ES256 and EdDSA", ["ES256", "EdDSA"].every((a) => m.dpop_signing_alg_values_supported?.includes(a)), JSON.stringify(m.dpop_signing_alg_values_supported));
    t.check("introspection auth: private_key_jwt and client_secret_basic", ["private_key_jwt", "client_secret_basic"].every((a) => m.introspection_endpoint_auth_methods_supported?.includes(a)), JSON.stringify(m.introspection_endpoint_auth_methods_supported));

    const rfc8414 = await discover(ISSUER, s.userId, {}, client.None(), "oauth2").catch((err) => ({ err }));
    t.check("RFC 8414: /.well-known/oauth-authorization-server is read", !rfc8414.err, rfc8414.err && String(rfc8414.err.cause?.status ?? rfc8414.err.message));
    const m2 = rfc8414.config?.serverMetadata() ?? {};
    t.equal("RFC 8414: the same issuer and endpoints", [m2.issuer, m2.token_endpoint, m2.introspection_endpoint, m2.revocation_endpoint, m2.jwks_uri], [m.issuer, m.token_endpoint, m.introspection_endpoint, `${ISSUER}/oauth/v2/revoke`, m.jwks_uri]);
  });

  let bearer;
  await part("JWT-profile grant", async () => {
    const tokens = await grant(user, s.userKey, scope);
    bearer = tokens.access_token;
    t.equal("token_type Bearer", tokens.token_type, "bearer");
    t.check("an access token that expires", !!bearer && tokens.expires_in > 0, JSON.stringify({ expires_in: tokens.expires_in }));
    t.equal("the scope granted", tokens.scope?.split(" ").sort(), scope.split(" ").sort());
    const claims = tokens.claims();
    t.check("openid-client accepts the ID token (its signature verified by the JWKS)", !!claims);
    t.equal("ID token: iss, sub, aud, azp", [claims?.iss, claims?.sub, claims?.aud, claims?.azp], [ISSUER, s.userId, [s.userId], s.userId]);
    t.equal("ID token: RS256 by default", decodeProtectedHeader(tokens.id_token).alg, "RS256");
    const verified = await jwtVerify(tokens.id_token, jwks, { issuer: ISSUER, audience: s.userId });
    t.equal("jose verifies the ID token by the JWKS too", verified.payload.sub, s.userId);
    const listed = await listUsers(user, bearer);
    t.check("the token calls the REST API (POST /management/v1/users/_search)", listed.status === 200 && (listed.body?.result ?? []).some((u) => u.id === s.userId), JSON.stringify(listed.body ?? listed.challenges).slice(0, 300));

    const again = await grant(user, s.userKey, "openid").catch((err) => err);
    t.check("a token without the API scope: still an ID token", !!again.claims?.(), String(again.message ?? ""));
    const noApi = again.access_token ? await listUsers(user, again.access_token) : { status: 0 };
    t.equal("but refused by the API (401)", noApi.status, 401);
  });

  const esKeys = await client.randomDPoPKeyPair("ES256");
  const edKeys = await client.randomDPoPKeyPair("EdDSA");
  const esJkt = await calculateJwkThumbprint(await exportJWK(esKeys.publicKey));
  const edJkt = await calculateJwkThumbprint(await exportJWK(edKeys.publicKey));
  let dpopToken;
  await part("DPoP", async () => {
    const { config: dpopUser, rec } = await discover(ISSUER, s.userId);
    client.enableNonRepudiationChecks(dpopUser);
    dpopUser[client.customFetch] = rec.fetch;
    const es = client.getDPoPHandle(dpopUser, esKeys);
    const tokens = await grant(dpopUser, s.userKey, scope, es);
    dpopToken = tokens.access_token;
    t.equal("ES256 proof: token_type DPoP", tokens.token_type, "dpop");
    const tokenCalls = rec.log.filter((e) => e.url === `${ISSUER}/oauth/v2/token`);
    const [first, second] = tokenCalls;
    t.check(
      "the token endpoint asks for its nonce: 400 use_dpop_nonce with a DPoP-Nonce header",
      first?.status === 400 && /"use_dpop_nonce"/.test(first.body) && !!first.headers.get("dpop-nonce"),
      first && `${first.status} ${first.body} nonce=${first.headers.get("dpop-nonce")}`,
    );
    t.check(
      "openid-client retries with the nonce in a new proof, and gets the token",
      tokenCalls.length === 2 && second.status === 200 && decodeJwt(second.request.get("dpop")).nonce === first.headers.get("dpop-nonce") && second.request.get("dpop") !== first.request.get("dpop"),
      tokenCalls.map((e) => e.status).join(", "),
    );
    const proof = decodeProtectedHeader(second?.request.get("dpop") ?? "");
    t.check("the proof: typ dpop+jwt, ES256, its public key", proof.typ === "dpop+jwt" && proof.alg === "ES256" && proof.jwk?.crv === "P-256", JSON.stringify(proof));
    t.check("the ID token passes openid-client as before", tokens.claims()?.sub === s.userId);

    rec.log.length = 0;
    const listed = await listUsers(dpopUser, dpopToken, es);
    t.check("with DPoP the token calls the REST API", listed.status === 200 && (listed.body?.result ?? []).some((u) => u.id === s.userId), JSON.stringify(listed.body ?? listed.challenges).slice(0, 300));
    const call = rec.last((e) => e.url === usersSearch(ISSUER).href);
    const callProof = decodeJwt(call?.request.get("dpop") ?? "");
    t.check("sent as 'authorization: DPoP' with a proof of htm, htu and ath", call?.request.get("authorization") === `DPoP ${dpopToken}` && callProof.htm === "POST" && callProof.htu === usersSearch(ISSUER).href && !!callProof.ath, JSON.stringify(callProof));
    const orgs = await client.fetchProtectedResource(dpopUser, dpopToken, new URL(`${ISSUER}/management/v1/orgs/me`), "GET", undefined, undefined, { DPoP: es });
    t.equal("GET /management/v1/orgs/me with DPoP", orgs.status, 200);

    const asBearer = await listUsersRaw(ISSUER, { authorization: `Bearer ${dpopToken}` });
    t.check("the DPoP-bound token as Bearer: 401 with a DPoP challenge", asBearer.status === 401 && /^DPoP\b/.test(asBearer.wwwAuthenticate), `${asBearer.status} ${asBearer.wwwAuthenticate}`);
    const noProof = await listUsersRaw(ISSUER, { authorization: `DPoP ${dpopToken}` });
    t.equal("as DPoP without a proof: 401 invalid_dpop_proof", [noProof.status, dpopError(noProof)], [401, "invalid_dpop_proof"]);

    const ed = eddsaHandle(dpopUser, edKeys);
    const otherKey = await listUsers(dpopUser, dpopToken, ed);
    t.equal("a proof signed by another key: 401 invalid_dpop_proof", [otherKey.status, challengeError(otherKey)], [401, "invalid_dpop_proof"]);
    t.check("saying the key is not the token's", /another key/.test(challengeText(otherKey)), challengeText(otherKey));

    const replay = await listUsersRaw(ISSUER, { authorization: call.request.get("authorization"), dpop: call.request.get("dpop") });
    t.equal("a replayed proof: 401 invalid_dpop_proof", [replay.status, dpopError(replay)], [401, "invalid_dpop_proof"]);
    t.check("saying it was already used", /already used/.test(replay.wwwAuthenticate), replay.wwwAuthenticate);
    const elsewhere = await fetch(`${ISSUER}/management/v1/orgs/me`, { headers: { authorization: call.request.get("authorization"), dpop: call.request.get("dpop") } });
    t.equal("a proof for another URL and method: 401", elsewhere.status, 401);

    const edTokens = await grant(dpopUser, s.userKey, scope, ed);
    t.equal("EdDSA proof: token_type DPoP", edTokens.token_type, "dpop");
    const named = await grant(dpopUser, s.userKey, scope, client.getDPoPHandle(dpopUser, edKeys)).catch((err) => err);
    t.check("openid-client's own name for Ed25519 proofs, alg Ed25519 (RFC 9864), is accepted", named.token_type === "dpop", `${named.error ?? ""} ${named.error_description ?? named.message ?? ""}`);
    const edCall = await listUsers(dpopUser, edTokens.access_token, ed);
    t.equal("the EdDSA-bound token calls the REST API with its proofs", edCall.status, 200);
    const edWithEs = await listUsers(dpopUser, edTokens.access_token, es);
    t.equal("and not with the ES256 key's", [edWithEs.status, challengeError(edWithEs)], [401, "invalid_dpop_proof"]);

    const bearerWithProof = await listUsers(dpopUser, bearer, es).catch((err) => ({ status: 0, err }));
    t.check("a token not bound to a key is refused as DPoP", bearerWithProof.status === 401, JSON.stringify(bearerWithProof.challenges ?? bearerWithProof.err?.message));

    // RFC 9449 §6.2: introspection tells a DPoP-bound token's key.
    const info = await client.tokenIntrospection(app, dpopToken);
    t.check("introspection: the DPoP-bound token is active", info.active === true, JSON.stringify(info));
    t.equal("with cnf.jkt, its key's thumbprint (RFC 9449 §6.2)", info.cnf?.jkt, esJkt);
    const edInfo = await client.tokenIntrospection(app, edTokens.access_token);
    t.equal("the EdDSA-bound token: cnf.jkt of the EdDSA key", edInfo.cnf?.jkt, edJkt);
  });

  await part("introspection", async () => {
    const info = await client.tokenIntrospection(app, bearer);
    t.check("private_key_jwt (app key): the token is active", info.active === true, JSON.stringify(info));
    t.equal("sub, iss and the project in aud", [info.sub, info.iss, info.aud?.includes?.(s.projectId)], [s.userId, ISSUER, true]);
    t.check("scope and expiry", info.scope?.split(" ").includes(projectScope(s.projectId)) && info.exp > Date.now() / 1000, JSON.stringify(info));
    const viaBasic = await client.tokenIntrospection(basicApp, bearer);
    t.equal("client_secret_basic (BASIC app): active, same subject", [viaBasic.active, viaBasic.sub], [true, s.userId]);
    const garbage = await client.tokenIntrospection(app, "not-a-token");
    t.equal("an unknown token: inactive", garbage, { active: false });
    const other = await grant(user, s.userKey, `openid ${API_SCOPE}`);
    const notForApp = await client.tokenIntrospection(app, other.access_token);
    t.equal("a token not asked for the app's project: inactive for the app", notForApp.active, false);
    const idToken = await client.tokenIntrospection(app, other.id_token);
    t.equal("an ID token: inactive", idToken.active, false);
    const { config: wrong } = await discover(ISSUER, s.basic.clientId, {}, client.ClientSecretBasic("wrong-secret"));
    // 401 with a Basic challenge (RFC 6749 §5.2), which openid-client raises as such.
    const refused = await client.tokenIntrospection(wrong, bearer).catch((err) => err);
    const refusal = await oauthError(refused);
    t.check(
      "a wrong secret: 401 invalid_client with a Basic challenge",
      refusal === "401 invalid_client" && refused.cause?.[0]?.scheme === "basic",
      `${refusal} ${refused?.name}`,
    );
  });

  await part("JWT introspection (RFC 9701)", async () => {
    const { config: jwtApp, rec } = await discover(ISSUER, s.app.clientId, { introspection_signed_response_alg: "RS256" }, client.PrivateKeyJwt(await privateKeyOf(s.app.keyFile)));
    client.enableNonRepudiationChecks(jwtApp);
    jwtApp[client.customFetch] = rec.fetch;
    const info = await client.tokenIntrospection(jwtApp, bearer);
    const call = rec.last((e) => e.url === `${ISSUER}/oauth/v2/introspect`);
    const signed = call?.headers.get("content-type")?.split(";")[0] === "application/token-introspection+jwt";
    t.equal("openid-client asks for application/token-introspection+jwt", call?.request.get("accept"), "application/token-introspection+jwt");
    t.equal("the answer is application/token-introspection+jwt", call?.headers.get("content-type")?.split(";")[0], "application/token-introspection+jwt");
    t.check("openid-client verifies it (signature by the JWKS, typ, iss, aud) and reads it: active", signed && info.active === true && info.sub === s.userId, JSON.stringify(info));
    if (signed) {
      const { payload, protectedHeader } = await jwtVerify(call.body, jwks, { issuer: ISSUER, audience: s.app.clientId, typ: "token-introspection+jwt" });
      t.equal("jose: RS256, typ token-introspection+jwt", [protectedHeader.alg, protectedHeader.typ], ["RS256", "token-introspection+jwt"]);
      t.check("jose: iat and the token_introspection claim", typeof payload.iat === "number" && payload.token_introspection?.active === true && payload.token_introspection.sub === s.userId, JSON.stringify(payload));
      t.equal("the same answer as plain introspection", payload.token_introspection.jti, (await client.tokenIntrospection(app, bearer)).jti);
    } else {
      t.check("jose verifies the signed answer", false, `answered ${call?.status} ${call?.headers.get("content-type")}`);
    }
    const inactive = await client.tokenIntrospection(jwtApp, "not-a-token");
    const inactiveCall = rec.last((e) => e.url === `${ISSUER}/oauth/v2/introspect`);
    t.check("an unknown token: a signed answer, inactive", inactive.active === false && inactiveCall?.headers.get("content-type")?.startsWith("application/token-introspection+jwt"), `${JSON.stringify(inactive)} ${inactiveCall?.headers.get("content-type")}`);
    const { config: jwtBasic, rec: basicRec } = await discover(ISSUER, s.basic.clientId, { introspection_signed_response_alg: "RS256" }, client.ClientSecretBasic(s.basic.secret));
    client.enableNonRepudiationChecks(jwtBasic);
    jwtBasic[client.customFetch] = basicRec.fetch;
    const viaBasic = await client.tokenIntrospection(jwtBasic, bearer);
    const basicCall = basicRec.last((e) => e.url === `${ISSUER}/oauth/v2/introspect`);
    const basicSigned = basicCall?.headers.get("content-type")?.startsWith("application/token-introspection+jwt");
    t.check("the BASIC app gets a signed answer for its client id", viaBasic.active === true && basicSigned && decodeJwt(basicCall.body).aud === s.basic.clientId, `${basicCall?.headers.get("content-type")}`);
  });

  await part("revocation (RFC 7009)", async () => {
    const { config: revoker, rec } = await discover(ISSUER, s.userId, {}, client.PrivateKeyJwt(await privateKeyOf(s.userKey)));
    revoker[client.customFetch] = rec.fetch;
    const doomed = (await grant(user, s.userKey, scope)).access_token;
    t.equal("a fresh token works", (await listUsers(user, doomed)).status, 200);
    const revoked = await client.tokenRevocation(revoker, doomed).then(() => "ok", oauthError);
    const call = rec.last((e) => e.url === `${ISSUER}/oauth/v2/revoke`);
    t.check("tokenRevocation with the user's private_key_jwt: 200", revoked === "ok" && call?.status === 200 && /client_assertion=/.test(call.requestBody ?? ""), `${revoked}: ${call?.status} ${call?.body}`);
    t.equal("the revoked token is refused by the API (401)", (await listUsers(user, doomed)).status, 401);
    t.equal("and inactive at introspection", (await client.tokenIntrospection(app, doomed)).active, false);

    t.equal("revoking a DPoP-bound token", await client.tokenRevocation(revoker, dpopToken).then(() => "ok", oauthError), "ok");
    const es = client.getDPoPHandle(user, esKeys);
    const afterDpop = await listUsers(user, dpopToken, es);
    t.equal("a revoked DPoP-bound token is refused, proof or not (401)", afterDpop.status, 401);
    t.equal("and inactive", (await client.tokenIntrospection(app, dpopToken)).active, false);

    const unknown = await client.tokenRevocation(revoker, "not-a-token").then(() => "ok", oauthError);
    t.equal("revoking an unknown token: 200 (RFC 7009 §2.2)", unknown, "ok");

    // Another user may not revoke this one's token, whatever it is answered.
    const other = await admin("POST", "/management/v1/users/machine", { userName: `other-${suffix}`, name: "other" });
    const otherKey = keyFileOf((await admin("POST", `/management/v1/users/${other.userId}/keys`, { type: "KEY_TYPE_JSON" })).keyDetails);
    const { config: stranger } = await discover(ISSUER, other.userId, {}, client.PrivateKeyJwt(await privateKeyOf(otherKey)));
    const kept = (await grant(user, s.userKey, scope)).access_token;
    await client.tokenRevocation(stranger, kept).catch(() => {});
    t.equal("another user's revocation leaves the token working", (await listUsers(user, kept)).status, 200);
    const { config: nobody } = await discover(ISSUER, s.userId, {}, client.None());
    const anonymous = await client.tokenRevocation(nobody, kept).then(() => "ok", oauthError);
    t.equal("revocation without client authentication: 401 invalid_client", anonymous, "401 invalid_client");
    t.equal("and the token still works", (await listUsers(user, kept)).status, 200);
  });

  // ---------------------------------------------------------------- the ES256 server
  if (ES_ISSUER && ES_ADMIN_KEY) {
    await part("ES256-signed server", async () => {
      const esAdmin = await adminOf(ES_ISSUER, ES_ADMIN_KEY);
      const e = await setUp(ES_ISSUER, esAdmin, "es256", { accessTokenType: "ACCESS_TOKEN_TYPE_JWT" });
      const esScope = `openid ${API_SCOPE} ${projectScope(e.projectId)}`;
      const esJwks = createRemoteJWKSet(new URL(`${ES_ISSUER}/oauth/v2/keys`));
      const { config: esUser } = await discover(ES_ISSUER, e.userId);
      client.enableNonRepudiationChecks(esUser);
      const m = esUser.serverMetadata();
      t.check("discovery: ID tokens signed with ES256", m.id_token_signing_alg_values_supported?.includes("ES256"), JSON.stringify(m.id_token_signing_alg_values_supported));
      const keys = await (await fetch(m.jwks_uri)).json();
      t.check("the JWKS: P-256 keys for ES256", keys.keys?.length > 0 && keys.keys.every((k) => k.kty === "EC" && k.crv === "P-256" && k.alg === "ES256"), JSON.stringify(keys.keys?.map((k) => [k.kty, k.crv, k.alg])));

      const tokens = await grant(esUser, e.userKey, esScope).catch((err) => err);
      t.check("openid-client accepts its ID token (signature verified by the JWKS)", !!tokens.claims?.() && tokens.claims().sub === e.userId, String(tokens.message ?? "") + JSON.stringify(tokens.cause ?? ""));
      const idToken = tokens.id_token ?? tokens.cause?.body?.id_token ?? tokens.cause?.claims;
      t.equal("the ID token's alg", typeof idToken === "string" ? decodeProtectedHeader(idToken).alg : null, "ES256");

      // The access token of a user with JWT access tokens, whatever openid-client said of the ID token.
      const raw = tokens.access_token ?? (await rawGrant(ES_ISSUER, e.userKey, esScope)).access_token;
      const verified = await jwtVerify(raw, esJwks, { issuer: ES_ISSUER, algorithms: ["ES256"] }).catch((err) => err);
      t.check("jose verifies the JWT access token with createRemoteJWKSet(jwks_uri), ES256", !!verified.payload, `${verified.code ?? ""} ${verified.message ?? ""} alg=${decodeProtectedHeader(raw).alg}`);
      t.equal("its claims: sub, client_id, the project in aud", [verified.payload?.sub, verified.payload?.client_id, verified.payload?.aud?.includes?.(e.projectId)], [e.userId, e.userId, true]);
      t.equal("and it calls the REST API", (await listUsers(esUser, raw)).status, 200);

      // Bound to an EdDSA key with DPoP: the JWT carries cnf.jkt.
      const ed = eddsaHandle(esUser, edKeys);
      const bound = await grant(esUser, e.userKey, `${API_SCOPE} ${projectScope(e.projectId)}`, ed);
      t.equal("DPoP (EdDSA proof key): token_type DPoP", bound.token_type, "dpop");
      const boundClaims = await jwtVerify(bound.access_token, esJwks, { issuer: ES_ISSUER }).then((r) => r.payload, () => decodeJwt(bound.access_token));
      t.equal("the JWT access token's cnf.jkt is the proof key's thumbprint", boundClaims.cnf?.jkt, edJkt);
      t.equal("with its proofs it calls the REST API", (await listUsers(esUser, bound.access_token, ed)).status, 200);

      // Signed introspection answers with the ES256 key.
      const { config: esApp, rec } = await discover(ES_ISSUER, e.app.clientId, { introspection_signed_response_alg: "ES256" }, client.PrivateKeyJwt(await privateKeyOf(e.app.keyFile)));
      client.enableNonRepudiationChecks(esApp);
      esApp[client.customFetch] = rec.fetch;
      const info = await client.tokenIntrospection(esApp, raw).catch((err) => err);
      const call = rec.last((x) => x.url === `${ES_ISSUER}/oauth/v2/introspect`);
      const signed = call?.headers.get("content-type")?.startsWith("application/token-introspection+jwt");
      t.check("JWT introspection signed with ES256: openid-client verifies it, active", info.active === true && signed, `${JSON.stringify(info.active ?? info.message)} ${call?.headers.get("content-type")}`);
      t.equal("its alg", signed ? decodeProtectedHeader(call.body).alg : null, "ES256");
      const { config: esPlainApp } = await discover(ES_ISSUER, e.app.clientId, {}, client.PrivateKeyJwt(await privateKeyOf(e.app.keyFile)));
      const plain = await client.tokenIntrospection(esPlainApp, raw);
      t.equal("plain introspection of the JWT access token: active, its jti", [plain.active, plain.jti], [true, verified.payload?.jti ?? decodeJwt(raw).jti]);
    });
  } else {
    console.log("skip the ES256 server's checks: AK_ES256_URL is not set");
  }
} catch (err) {
  t.check("the run completed", false, err?.stack ?? String(err));
} finally {
  clearTimeout(watchdog);
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  t.finish();
}

/** The grant by plain fetch, for when openid-client refuses the answer. */
async function rawGrant(issuer, keyFile, scope) {
  const resp = await fetch(`${issuer}/oauth/v2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: JWT_BEARER, assertion: assertion(keyFile, issuer), scope }),
  });
  return resp.json();
}
