// Protobuf codec and gRPC-Web client for the console, and a Connect (JSON) client for
// authn-keys' own API.
//
// Hand-written on purpose: the console ships as plain files embedded in the server, with no
// JS build step and no Node at runtime. A small schema-driven codec for the dozen messages it
// uses keeps the embedded assets small and reviewable, where generated stubs plus a protobuf
// runtime would be many times larger and need a bundler. `authnkeys.v1` is called over
// Connect with proto3 JSON instead, which needs no schema here at all.
//
// A schema maps a field name to [field number, type, repeated?]. Types: "string", "bytes",
// "bool", "enum", "int32", "uint32", "int64" (decoded as Number: timestamps only),
// "uint64" (decoded as a decimal string: ids, sequences, totals), or a nested schema.

const te = new TextEncoder();
const td = new TextDecoder();

// ---- messages -------------------------------------------------------------------------

const Timestamp = { seconds: [1, "int64"], nanos: [2, "int32"] };
const ObjectDetails = {
  sequence: [1, "uint64"],
  creationDate: [2, Timestamp],
  changeDate: [3, Timestamp],
  resourceOwner: [4, "string"],
};
const ListQuery = { offset: [1, "uint64"], limit: [2, "uint32"], asc: [3, "bool"] };
const ListDetails = {
  totalResult: [1, "uint64"],
  processedSequence: [2, "uint64"],
  viewTimestamp: [3, Timestamp],
};
const Org = { id: [1, "string"], details: [2, ObjectDetails], state: [3, "enum"], name: [4, "string"], primaryDomain: [5, "string"] };
const Machine = { name: [1, "string"], description: [2, "string"], hasSecret: [3, "bool"], accessTokenType: [4, "enum"] };
const User = {
  id: [1, "string"],
  details: [2, ObjectDetails],
  state: [3, "enum"],
  userName: [4, "string"],
  loginNames: [5, "string", true],
  preferredLoginName: [6, "string"],
  machine: [8, Machine],
};
const Project = { id: [1, "string"], details: [2, ObjectDetails], name: [3, "string"], state: [4, "enum"] };
const APIConfig = { clientId: [1, "string"], authMethodType: [3, "enum"] };
const App = { id: [1, "string"], details: [2, ObjectDetails], state: [3, "enum"], name: [4, "string"], apiConfig: [6, APIConfig] };
const Member = {
  userId: [1, "string"],
  details: [2, ObjectDetails],
  roles: [3, "string", true],
  preferredLoginName: [4, "string"],
  displayName: [8, "string"],
  userType: [10, "enum"],
  userResourceOwner: [11, "string"],
};
const Details = { details: [1, ObjectDetails] };
const Empty = {};
const Any = { typeUrl: [1, "string"], value: [2, "bytes"] };
const RpcStatus = { code: [1, "int32"], message: [2, "string"], details: [3, Any, true] };
const ErrorDetail = { id: [1, "string"], message: [2, "string"] };
const listOf = (item) => ({ details: [1, ListDetails], result: [2, item, true] });

export const ACCESS_TOKEN_TYPE = { BEARER: 0, JWT: 1 };
export const API_AUTH = { BASIC: 0, PRIVATE_KEY_JWT: 1 };

/** Method name → [request schema, response schema]. */
const METHODS = {
  GetMyOrg: [Empty, { org: [1, Org] }],
  AddOrg: [{ name: [1, "string"] }, { id: [1, "string"], details: [2, ObjectDetails] }],
  ListOrgMembers: [{ query: [1, ListQuery] }, listOf(Member)],
  ListUsers: [{ query: [1, ListQuery] }, { details: [1, ListDetails], result: [3, User, true] }],
  GetUserByID: [{ id: [1, "string"] }, { user: [1, User] }],
  AddMachineUser: [
    { userName: [1, "string"], name: [2, "string"], description: [3, "string"], accessTokenType: [4, "enum"] },
    { userId: [1, "string"], details: [2, ObjectDetails] },
  ],
  RemoveUser: [{ id: [1, "string"] }, Details],
  RemoveMachineKey: [{ userId: [1, "string"], keyId: [2, "string"] }, Details],
  ListProjects: [{ query: [1, ListQuery] }, listOf(Project)],
  GetProjectByID: [{ id: [1, "string"] }, { project: [1, Project] }],
  AddProject: [{ name: [1, "string"] }, { id: [1, "string"], details: [2, ObjectDetails] }],
  RemoveProject: [{ id: [1, "string"] }, Details],
  ListApps: [{ projectId: [1, "string"], query: [2, ListQuery] }, listOf(App)],
  GetAppByID: [{ projectId: [1, "string"], appId: [2, "string"] }, { app: [1, App] }],
  AddAPIApp: [
    { projectId: [1, "string"], name: [2, "string"], authMethodType: [3, "enum"] },
    { appId: [1, "string"], details: [2, ObjectDetails], clientId: [3, "string"], clientSecret: [4, "string"] },
  ],
  RemoveApp: [{ projectId: [1, "string"], appId: [2, "string"] }, Details],
  RemoveAppKey: [{ projectId: [1, "string"], appId: [2, "string"], keyId: [3, "string"] }, Details],
};

// ---- wire format ----------------------------------------------------------------------

function putVarint(out, value) {
  let n = BigInt.asUintN(64, BigInt(value));
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
}

function putBytes(out, no, bytes) {
  putVarint(out, (no << 3) | 2);
  putVarint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

function putMessage(out, schema, msg) {
  for (const [name, [no, type, repeated]] of Object.entries(schema)) {
    const value = msg[name];
    if (value === undefined || value === null) continue;
    for (const v of repeated ? value : [value]) {
      if (typeof type === "object") {
        const inner = [];
        putMessage(inner, type, v);
        putBytes(out, no, inner);
      } else if (type === "string") {
        if (v !== "" || repeated) putBytes(out, no, te.encode(v));
      } else if (type === "bytes") {
        if (v.length || repeated) putBytes(out, no, v);
      } else if (v || repeated) {
        // Scalars: proto3 leaves zero values off the wire.
        putVarint(out, no << 3);
        putVarint(out, type === "bool" ? 1 : v);
      }
    }
  }
}

export function encode(schema, msg) {
  const out = [];
  putMessage(out, schema, msg);
  return Uint8Array.from(out);
}

function zero(type, repeated) {
  if (repeated) return [];
  switch (type) {
    case "string": return "";
    case "bytes": return new Uint8Array();
    case "bool": return false;
    case "uint64": return "0";
    default: return typeof type === "object" ? undefined : 0;
  }
}

export function decode(schema, bytes) {
  const byNumber = new Map();
  const out = {};
  for (const [name, [no, type, repeated]] of Object.entries(schema)) {
    byNumber.set(no, [name, type, repeated]);
    out[name] = zero(type, repeated);
  }
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= bytes.length) throw new Error("truncated protobuf message");
      const b = bytes[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < bytes.length) {
    const key = varint();
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    let raw;
    if (wire === 0) raw = varint();
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > bytes.length) throw new Error("truncated protobuf message");
      raw = bytes.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      continue; // no fixed-width fields in the messages the console reads
    } else throw new Error(`unsupported wire type ${wire}`);
    const field = byNumber.get(no);
    if (!field) continue;
    const [name, type, repeated] = field;
    let value;
    if (typeof type === "object") value = decode(type, raw);
    else if (type === "string") value = td.decode(raw);
    else if (type === "bytes") value = raw.slice();
    else if (type === "bool") value = raw !== 0n;
    else if (type === "uint64") value = BigInt.asUintN(64, raw).toString();
    else if (type === "int64") value = Number(BigInt.asIntN(64, raw));
    else if (type === "uint32") value = Number(BigInt.asUintN(32, raw));
    else value = Number(BigInt.asIntN(32, raw)); // int32, enum
    if (repeated) out[name].push(value);
    else out[name] = value;
  }
  return out;
}

// ---- gRPC-Web -------------------------------------------------------------------------

export const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];
export const Code = Object.fromEntries(CODE_NAMES.map((n, i) => [n, i]));

/** A failed call: gRPC code, the person-readable message and ZITADEL's error id. */
export class RpcError extends Error {
  constructor(code, message, id = "") {
    super(message);
    this.code = code;
    this.id = id;
  }
  get codeName() {
    return CODE_NAMES[this.code] || `code ${this.code}`;
  }
}

function base64Bytes(text) {
  const std = text.trim().replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function statusError(code, rawMessage, detailsBin) {
  let message = rawMessage || "";
  try {
    message = decodeURIComponent(message);
  } catch {
    // not percent-encoded after all: keep it as sent
  }
  let id = "";
  if (detailsBin) {
    try {
      const status = decode(RpcStatus, base64Bytes(detailsBin));
      for (const any of status.details) {
        if (any.typeUrl.endsWith("/zitadel.v1.ErrorDetail")) {
          const detail = decode(ErrorDetail, any.value);
          id = detail.id;
          message = detail.message || message;
        }
      }
    } catch {
      // unreadable details: the plain grpc-message still says what happened
    }
  }
  return rpcError(code, message, id);
}

/** An RpcError from a message and, when known, the error id; ZITADEL's messages may end in
 * "(ID)", which is taken from there when no detail came, and never shown twice. */
function rpcError(code, message, id = "") {
  if (!id) {
    const m = /^(.*?)\s*\(([A-Za-z]+-[A-Za-z0-9]+)\)$/.exec(message);
    if (m) [, message, id] = m;
  } else if (message.endsWith(`(${id})`)) {
    message = message.slice(0, -id.length - 2).trim();
  }
  return new RpcError(code, message || CODE_NAMES[code] || "request failed", id);
}

function parseTrailers(bytes) {
  const map = new Map();
  for (const line of td.decode(bytes).split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) map.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return map;
}

const HTTP_TO_CODE = { 400: 3, 401: 16, 403: 7, 404: 12, 429: 8, 502: 14, 503: 14, 504: 14 };

/**
 * Calls one ManagementService method over gRPC-Web (binary) on this origin.
 * `auth` = { token, orgId }; resolves to the decoded response or throws RpcError.
 */
export async function call(method, request, auth = {}) {
  const [reqSchema, resSchema] = METHODS[method];
  const body = encode(reqSchema, request);
  const frame = new Uint8Array(5 + body.length);
  new DataView(frame.buffer).setUint32(1, body.length);
  frame.set(body, 5);
  const headers = {
    "content-type": "application/grpc-web+proto",
    accept: "application/grpc-web+proto",
    "x-grpc-web": "1",
  };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.orgId) headers["x-zitadel-orgid"] = auth.orgId;

  let resp;
  try {
    resp = await fetch(`/zitadel.management.v1.ManagementService/${method}`, {
      method: "POST",
      headers,
      body: frame,
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new RpcError(Code.UNAVAILABLE, "The server cannot be reached. Check that it is running.");
  }
  const bytes = new Uint8Array(await resp.arrayBuffer());
  let message = null;
  let trailers = new Map();
  for (let pos = 0; pos + 5 <= bytes.length; ) {
    const flag = bytes[pos];
    const len = new DataView(bytes.buffer, bytes.byteOffset + pos + 1, 4).getUint32(0);
    const payload = bytes.subarray(pos + 5, pos + 5 + len);
    pos += 5 + len;
    if (flag & 0x80) trailers = parseTrailers(payload);
    else if (message === null) message = payload;
  }
  const field = (name) => trailers.get(name) ?? resp.headers.get(name);
  const status = field("grpc-status");
  if (status === null || status === undefined) {
    const code = HTTP_TO_CODE[resp.status] ?? Code.UNKNOWN;
    throw new RpcError(code, `Unexpected answer from the server (HTTP ${resp.status}).`);
  }
  if (Number(status) !== 0) {
    throw statusError(Number(status), field("grpc-message"), field("grpc-status-details-bin"));
  }
  return decode(resSchema, message ?? new Uint8Array());
}

// ---- Connect with JSON (authnkeys.v1) ---------------------------------------------------

// Connect names codes in lower case, and spells CANCELLED with one L.
const CONNECT_CODES = Object.fromEntries(CODE_NAMES.map((n, i) => [n === "CANCELLED" ? "canceled" : n.toLowerCase(), i]));

/**
 * Calls one authn-keys method over Connect with proto3 JSON on this origin, e.g.
 * `callJson("authnkeys.v1.KeyService/ListKeys", { userId })`. Proto3 JSON leaves out empty
 * lists and zero values, so callers read answers with defaults (`res.result || []`).
 * `auth` = { token, orgId }; resolves to the answer object or throws RpcError.
 */
export async function callJson(procedure, request = {}, auth = {}) {
  const headers = { "content-type": "application/json", "connect-protocol-version": "1" };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.orgId) headers["x-zitadel-orgid"] = auth.orgId;
  let resp;
  try {
    resp = await fetch(`/${procedure}`, {
      method: "POST",
      headers,
      body: JSON.stringify(request),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new RpcError(Code.UNAVAILABLE, "The server cannot be reached. Check that it is running.");
  }
  const body = await resp.json().catch(() => null);
  if (resp.ok && body) return body;
  if (!body || typeof body.code !== "string") {
    throw new RpcError(HTTP_TO_CODE[resp.status] ?? Code.UNKNOWN, `Unexpected answer from the server (HTTP ${resp.status}).`);
  }
  const detail = (body.details || []).find((d) => d && d.type === "zitadel.v1.ErrorDetail" && d.debug);
  const code = CONNECT_CODES[body.code] ?? Code.UNKNOWN;
  throw rpcError(code, (detail && detail.debug.message) || body.message || "", detail ? detail.debug.id : "");
}

/** Base64 (standard alphabet) of bytes, as proto3 JSON writes `bytes`. */
export function toBase64(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The bytes of a proto3 JSON `bytes` value (standard or URL-safe base64). */
export const fromBase64 = (text) => base64Bytes(text || "");
