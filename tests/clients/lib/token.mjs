// An access token for a JSON key file, by the JWT-profile grant (RFC 7523), as ZITADEL's
// clients get one: a fresh RS256 assertion signed with the file's key, traded at the token
// endpoint named by discovery.
//
//   node token.mjs KEY_FILE ISSUER [SCOPE]   → prints the access token
//   import { accessToken } from "./token.mjs"
import { createSign, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const DEFAULT_SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud";

const b64url = (data) => Buffer.from(data).toString("base64url");

export function assertion(keyFile, audience, now = Math.floor(Date.now() / 1000)) {
  const header = { alg: "RS256", typ: "JWT", kid: keyFile.keyId };
  const claims = {
    iss: keyFile.userId,
    sub: keyFile.userId,
    aud: audience,
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign("RSA-SHA256").update(input).sign(keyFile.key);
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
