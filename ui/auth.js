// Sign-in with a JSON key file: the JWT-profile grant (RFC 7523) done in the browser.
// The private key is imported as non-extractable, signs one assertion and is dropped; only
// the signed assertion leaves the page.

const te = new TextEncoder();
const SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud";
const GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

export class SignInError extends Error {
  constructor(message, id = "") {
    super(message);
    this.id = id;
  }
}

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const b64urlJson = (value) => b64url(te.encode(JSON.stringify(value)));

function derLength(n) {
  if (n < 0x80) return [n];
  const bytes = [];
  for (; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

function der(tag, ...parts) {
  const content = parts.flatMap((p) => Array.from(p));
  return Uint8Array.from([tag, ...derLength(content.length), ...content]);
}

// WebCrypto imports RSA private keys only as PKCS#8, while ZITADEL key files carry PKCS#1
// ("RSA PRIVATE KEY"): wrap it in PrivateKeyInfo { version 0, rsaEncryption, OCTET STRING }.
const RSA_ENCRYPTION = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
const pkcs1ToPkcs8 = (pkcs1) => der(0x30, [0x02, 0x01, 0x00], RSA_ENCRYPTION, der(0x04, pkcs1));

function pemBody(pem) {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/.exec(pem || "");
  if (!m) throw new SignInError("The key file's \"key\" is not a PEM private key.");
  let der;
  try {
    der = Uint8Array.from(atob(m[2].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  } catch {
    throw new SignInError("The key file's PEM block is not valid base64.");
  }
  return [m[1], der];
}

async function importPrivateKey(pem) {
  const [label, body] = pemBody(pem);
  let pkcs8;
  if (label === "RSA PRIVATE KEY") pkcs8 = pkcs1ToPkcs8(body);
  else if (label === "PRIVATE KEY") pkcs8 = body;
  else throw new SignInError(`The key file holds a "${label}", not an RSA private key.`);
  try {
    return await crypto.subtle.importKey("pkcs8", pkcs8, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"]);
  } catch {
    throw new SignInError("The browser could not read the RSA private key in this file.");
  }
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function discovery() {
  let resp;
  try {
    resp = await fetch("/.well-known/openid-configuration", { cache: "no-store", credentials: "omit" });
  } catch {
    throw new SignInError("The server cannot be reached.");
  }
  if (!resp.ok) throw new SignInError(`OpenID discovery failed (HTTP ${resp.status}).`);
  return resp.json();
}

/** Parses a key file's text; returns { keyId, key, userId } or throws SignInError. */
export function parseKeyFile(text) {
  let file;
  try {
    file = JSON.parse(text);
  } catch {
    throw new SignInError("This file is not JSON. Choose the key file (<key id>.json) of a machine user.");
  }
  if (file && file.type === "application") {
    throw new SignInError("This is an API app's key file. App keys authenticate apps at introspection; sign in with a machine user's key file.");
  }
  if (!file || typeof file.keyId !== "string" || typeof file.key !== "string" || typeof file.userId !== "string") {
    throw new SignInError("This is not a machine user's key file: it needs keyId, key and userId.");
  }
  return file;
}

/** Trades a key file for an access token; resolves to { token, expiresIn, userId }. */
export async function signInWithKeyFile(text) {
  const file = parseKeyFile(text);
  if (!globalThis.crypto || !crypto.subtle) {
    throw new SignInError("Signing with a key file needs a secure context (HTTPS, or http://localhost). Paste an access token instead.");
  }
  const config = await discovery();
  const key = await importPrivateKey(file.key);
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64urlJson({ alg: "RS256", typ: "JWT", kid: file.keyId })}.${b64urlJson({
    iss: file.userId,
    sub: file.userId,
    aud: config.issuer,
    iat: now,
    exp: now + 300,
    jti: randomId(),
  })}`;
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, te.encode(input));

  let resp;
  try {
    resp = await fetch(config.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: GRANT, scope: SCOPE, assertion: `${input}.${b64url(signature)}` }),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new SignInError("The token endpoint cannot be reached.");
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok || !body.access_token) {
    throw new SignInError(body.error_description || `The token request failed (HTTP ${resp.status}).`, body.error || "");
  }
  return { token: body.access_token, expiresIn: Number(body.expires_in) || 0, userId: file.userId };
}
