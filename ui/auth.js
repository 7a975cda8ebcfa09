// Sign-in with a JSON key file: the JWT-profile grant (RFC 7523) done in the browser, with
// a key of any kind the server hands out (RSA, EC P-256 or P-384, Ed25519).
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

// Reads one DER element at `pos`: { tag, body, next }.
function derElement(bytes, pos) {
  if (pos + 2 > bytes.length) throw new SignInError("The key file's private key is not valid DER.");
  const tag = bytes[pos];
  let len = bytes[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i += 1) len = len * 256 + bytes[start + i];
    start += n;
  }
  if (start + len > bytes.length) throw new SignInError("The key file's private key is not valid DER.");
  return { tag, body: bytes.subarray(start, start + len), next: start + len };
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

// PKCS#8 algorithm identifiers (OID bodies, hex) → how WebCrypto imports and signs, and the
// JWS alg of the assertion.
const RSA_OID = "2a864886f70d010101";
const EC_OID = "2a8648ce3d0201";
const ED25519_OID = "2b6570";
const CURVES = {
  "2a8648ce3d030107": { curve: "P-256", hash: "SHA-256", alg: "ES256" },
  "2b81040022": { curve: "P-384", hash: "SHA-384", alg: "ES384" },
};

/** What kind of key a PKCS#8 PrivateKeyInfo holds: { importAs, signAs, alg }. */
function pkcs8Kind(pkcs8) {
  const info = derElement(pkcs8, 0);
  const version = derElement(info.body, 0);
  const algId = derElement(info.body, version.next);
  const oid = derElement(algId.body, 0);
  const kind = hex(oid.body);
  if (kind === RSA_OID) {
    const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    return { importAs: rsa, signAs: rsa, alg: "RS256" };
  }
  if (kind === ED25519_OID) return { importAs: { name: "Ed25519" }, signAs: { name: "Ed25519" }, alg: "EdDSA" };
  if (kind === EC_OID && oid.next < algId.body.length) {
    const params = derElement(algId.body, oid.next);
    const curve = CURVES[hex(params.body)];
    if (curve) {
      return { importAs: { name: "ECDSA", namedCurve: curve.curve }, signAs: { name: "ECDSA", hash: curve.hash }, alg: curve.alg };
    }
  }
  throw new SignInError("The key file's private key is of a kind this console cannot sign with: RSA, EC P-256 or P-384, or Ed25519 are.");
}

/** Imports a key file's private key (PKCS#1 RSA, or PKCS#8 RSA, P-256, P-384 or Ed25519) as
 * non-extractable; resolves to { key, signAs, alg }. */
async function importPrivateKey(pem) {
  const [label, body] = pemBody(pem);
  let pkcs8;
  if (label === "RSA PRIVATE KEY") pkcs8 = pkcs1ToPkcs8(body);
  else if (label === "PRIVATE KEY") pkcs8 = body;
  else throw new SignInError(`The key file holds a "${label}"; a PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") key is needed.`);
  const kind = pkcs8Kind(pkcs8);
  try {
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, kind.importAs, false, ["sign"]);
    return { key, signAs: kind.signAs, alg: kind.alg };
  } catch {
    throw new SignInError(`The browser could not read the private key in this file (${kind.alg}).`);
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

/** Trades a key file for an access token; resolves to { token, expiresIn, userId, keyId }. */
export async function signInWithKeyFile(text) {
  const file = parseKeyFile(text);
  if (!globalThis.crypto || !crypto.subtle) {
    throw new SignInError("Signing with a key file needs a secure context (HTTPS, or http://localhost). Paste an access token instead.");
  }
  const config = await discovery();
  const { key, signAs, alg } = await importPrivateKey(file.key);
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64urlJson({ alg, typ: "JWT", kid: file.keyId })}.${b64urlJson({
    iss: file.userId,
    sub: file.userId,
    aud: config.issuer,
    iat: now,
    exp: now + 300,
    jti: randomId(),
  })}`;
  // WebCrypto's ECDSA signature is r || s of fixed length: the form JWS wants.
  const signature = await crypto.subtle.sign(signAs, key, te.encode(input));

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
  return { token: body.access_token, expiresIn: Number(body.expires_in) || 0, userId: file.userId, keyId: file.keyId };
}
