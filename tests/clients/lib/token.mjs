// An access token for a JSON key file, by the JWT-profile grant (RFC 7523), as ZITADEL's
// clients get one: a fresh assertion signed with the file's key (RS256, ES256, ES384 or EdDSA
// by the key's kind), traded at the token endpoint named by discovery.
//
//   node token.mjs KEY_FILE ISSUER [SCOPE]   → prints the access token
//   import { accessToken } from "./token.mjs"
import { createPrivateKey, randomUUID, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const DEFAULT_SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud";

const b64url = (data) => Buffer.from(data).toString("base64url");

/** The JWS alg, digest and signature form for a private key. */
function signer(key) {
  if (key.asymmetricKeyType === "ed25519") return { alg: "EdDSA", digest: null };
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails.namedCurve;
    if (curve === "prime256v1") return { alg: "ES256", digest: "sha256", dsaEncoding: "ieee-p1363" };
    if (curve === "secp384r1") return { alg: "ES384", digest: "sha384", dsaEncoding: "ieee-p1363" };
    throw new Error(`unsupported curve ${curve}`);
  }
  return { alg: "RS256", digest: "sha256" };
}

export function assertion(keyFile, audience, now = Math.floor(Date.now() / 1000)) {
  const key = createPrivateKey(keyFile.key);
  const { alg, digest, dsaEncoding } = signer(key);
  const header = { alg, typ: "JWT", kid: keyFile.keyId };
  const claims = {
    iss: keyFile.userId,
    sub: keyFile.userId,
    aud: audience,
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JWS wants ECDSA signatures as r || s, not DER.
  const signature = sign(digest, Buffer.from(input), dsaEncoding ? { key, dsaEncoding } : key);
  return `${input}.${b64url(signature)}`;
}

export async function accessToken(keyFilePath, issuer, scope = DEFAULT_SCOPE) {
  const keyFile = JSON.parse(readFileSync(keyFilePath, "utf8"));
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const resp = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: assertion(keyFile, issuer),
      scope,
    }),
  });
  const body = await resp.json();
  if (!resp.ok || !body.access_token) {
    throw new Error(`token request failed: ${resp.status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [keyFile, issuer, scope] = process.argv.slice(2);
  if (!keyFile || !issuer) {
    console.error("usage: node token.mjs KEY_FILE ISSUER [SCOPE]");
    process.exit(2);
  }
  process.stdout.write(`${await accessToken(keyFile, issuer, scope)}\n`);
}
