// The page under test, bundled by run.sh with esbuild and served from another origin than the
// server. It drives the machine-key lifecycle through two published gRPC-Web clients:
//
//   connect-web  @connectrpc/connect-web createGrpcWebTransport (binary, fetch) with the
//                ManagementService descriptor from @zitadel/proto
//   grpc-web     Google's grpc-web runtime in text mode (XMLHttpRequest), with
//                MethodDescriptors that (de)serialize with @bufbuild/protobuf and the same
//                @zitadel/proto schemas
//
// and, with the Connect protocol itself (not gRPC-Web), the v2 UserService:
//
//   connect-json    @connectrpc/connect-web createConnectTransport, JSON (the default)
//   connect-binary  the same with useBinaryFormat: true (application/proto)
//
// plus one REST call with fetch. It asserts nothing itself: every call's outcome is returned as
// plain data (window.akBrowser.*), and run.mjs checks it.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema, anyUnpack, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { GrpcWebClientBase, MethodDescriptor } from "grpc-web";
import { KeyType } from "@zitadel/proto/zitadel/auth_n_key_pb.js";
import { ManagementService } from "@zitadel/proto/zitadel/management_pb.js";
import { ErrorDetailSchema } from "@zitadel/proto/zitadel/message_pb.js";
import { UserService } from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";
import { addKey } from "./snippet.js";

const METHODS = [
  "addMachineUser",
  "addMachineKey",
  "listMachineKeys",
  "getMachineKeyByIDs",
  "removeMachineKey",
];

// ---- connect-web -------------------------------------------------------------------------

function connectApi(baseUrl, authorization) {
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  const client = createClient(ManagementService, transport);
  const headers = authorization ? { authorization } : {};
  const api = {};
  for (const name of METHODS) {
    api[name] = async (request) => {
      try {
        return await client[name](request, { headers });
      } catch (err) {
        throw connectFailure(err);
      }
    };
  }
  return api;
}

function connectFailure(err) {
  const e = ConnectError.from(err);
  return {
    code: e.code,
    rawMessage: e.rawMessage,
    // type names of the details as they arrived, before decoding
    detailTypes: e.details.map((d) => d.desc?.typeName ?? d.type),
    errorDetails: e.findDetails(ErrorDetailSchema).map((d) => ({ id: d.id, message: d.message })),
    cause: e.cause instanceof Error ? `${e.cause.name}: ${e.cause.message}` : null,
  };
}

// ---- Google grpc-web, text mode ----------------------------------------------------------

function grpcWebApi(baseUrl, authorization) {
  const client = new GrpcWebClientBase({ format: "text" });
  const metadata = authorization ? { authorization } : {};
  const api = {};
  for (const name of METHODS) {
    const method = ManagementService.method[name];
    const path = `/${ManagementService.typeName}/${method.name}`;
    const descriptor = new MethodDescriptor(
      path,
      "unary",
      Object,
      Object,
      (request) => toBinary(method.input, request),
      (bytes) => fromBinary(method.output, bytes),
    );
    api[name] = async (request) => {
      try {
        // unaryCall is the promise API the runtime exports (its typings also declare
        // thenableCall, which the published bundle does not contain)
        return await client.unaryCall(baseUrl + path, request, metadata, descriptor);
      } catch (err) {
        throw grpcWebFailure(err);
      }
    };
  }
  return api;
}

function grpcWebFailure(err) {
  const metadata = err?.metadata ?? {};
  const detailsBin = metadata["grpc-status-details-bin"];
  const status = detailsBin ? decodeStatus(base64Bytes(detailsBin)) : null;
  return {
    code: err?.code,
    rawMessage: err?.message,
    metadataKeys: Object.keys(metadata).sort(),
    statusCode: status?.code ?? null,
    statusMessage: status?.message ?? null,
    detailTypes: status ? status.details.map((a) => a.typeUrl) : [],
    errorDetails: status
      ? status.details
          .map((a) => anyUnpack(a, ErrorDetailSchema))
          .filter(Boolean)
          .map((d) => ({ id: d.id, message: d.message }))
      : [],
  };
}

function base64Bytes(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

// google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
// Neither @zitadel/proto nor @bufbuild/protobuf ships its schema, so read the three fields here.
function decodeStatus(bytes) {
  const reader = new BinaryReader(bytes);
  const status = { code: 0, message: "", details: [] };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) status.code = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) status.message = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited)
      status.details.push(fromBinary(AnySchema, reader.bytes()));
    else reader.skip(wireType, field);
  }
  return status;
}

// ---- the lifecycle, the same for both clients --------------------------------------------

async function outcome(promise) {
  try {
    return { ok: await promise };
  } catch (failure) {
    if (failure instanceof Error) return { error: { thrown: `${failure.name}: ${failure.message}` } };
    return { error: failure };
  }
}

const keyIds = (list) => (list?.ok ? list.ok.result.map((k) => k.id) : null);

async function lifecycle(api, { userName, expiration }) {
  const r = {};
  const user = await outcome(
    api.addMachineUser(
      create(ManagementService.method.addMachineUser.input, {
        userName,
        name: `browser ${userName}`,
        description: "created from a browser page",
      }),
    ),
  );
  r.addUser = user.error ?? { userId: user.ok.userId, resourceOwner: user.ok.details?.resourceOwner };
  if (user.error) return r;
  const userId = user.ok.userId;

  const added = await outcome(
    api.addMachineKey(
      create(ManagementService.method.addMachineKey.input, {
        userId,
        type: KeyType.JSON,
        expirationDate: timestampFromDate(expiration),
      }),
    ),
  );
  if (added.error) {
    r.addKey = added.error;
    return r;
  }
  const keyId = added.ok.keyId;
  let keyFile = null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(added.ok.keyDetails));
    keyFile = {
      fields: Object.keys(parsed),
      type: parsed.type,
      keyId: parsed.keyId,
      userId: parsed.userId,
      expirationDate: parsed.expirationDate,
      keyIsPkcs1Pem: /^-----BEGIN RSA PRIVATE KEY-----\n/.test(parsed.key ?? ""),
    };
  } catch (e) {
    keyFile = { unparsable: String(e) };
  }
  r.addKey = {
    keyId,
    keyFile,
    sequence: added.ok.details?.sequence?.toString() ?? null,
    resourceOwner: added.ok.details?.resourceOwner ?? null,
  };

  const listed = await outcome(
    api.listMachineKeys(
      create(ManagementService.method.listMachineKeys.input, { userId, query: { limit: 10 } }),
    ),
  );
  r.listAfterAdd = listed.error ?? {
    ids: keyIds(listed),
    totalResult: listed.ok.details?.totalResult?.toString() ?? null,
  };

  const got = await outcome(
    api.getMachineKeyByIDs(create(ManagementService.method.getMachineKeyByIDs.input, { userId, keyId })),
  );
  r.get = got.error ?? {
    id: got.ok.key?.id ?? null,
    type: got.ok.key?.type ?? null,
    expirationDate: got.ok.key?.expirationDate
      ? timestampDate(got.ok.key.expirationDate).toISOString()
      : null,
    resourceOwner: got.ok.key?.details?.resourceOwner ?? null,
  };

  const removed = await outcome(
    api.removeMachineKey(create(ManagementService.method.removeMachineKey.input, { userId, keyId })),
  );
  r.remove = removed.error ?? {
    changeDate: removed.ok.details?.changeDate
      ? timestampDate(removed.ok.details.changeDate).toISOString()
      : null,
  };

  const gone = await outcome(
    api.getMachineKeyByIDs(create(ManagementService.method.getMachineKeyByIDs.input, { userId, keyId })),
  );
  r.getAfterRemove = gone.ok ? { unexpectedlyFound: gone.ok.key?.id ?? true } : gone.error;

  const removedAgain = await outcome(
    api.removeMachineKey(create(ManagementService.method.removeMachineKey.input, { userId, keyId })),
  );
  r.removeAgain = removedAgain.ok ? { unexpectedlyRemoved: true } : removedAgain.error;

  const listedAfter = await outcome(
    api.listMachineKeys(create(ManagementService.method.listMachineKeys.input, { userId })),
  );
  r.listAfterRemove = listedAfter.error ?? { ids: keyIds(listedAfter) };
  r.userId = userId;
  r.keyId = keyId;
  return r;
}

async function unauthenticated(make, baseUrl) {
  const call = (api) =>
    outcome(
      api.listMachineKeys(create(ManagementService.method.listMachineKeys.input, { userId: "1" })),
    );
  const noToken = await call(make(baseUrl, null));
  const badToken = await call(make(baseUrl, "Bearer not-a-token-this-server-issued"));
  return {
    noToken: noToken.error ?? { unexpectedlyOk: true },
    badToken: badToken.error ?? { unexpectedlyOk: true },
  };
}

// ---- the Connect protocol: v2 UserService ------------------------------------------------

// connect-web sends Connect-Timeout-Ms only for calls with a timeout: give every call one, so
// the preflight has to allow it next to Connect-Protocol-Version.
const CONNECT_TIMEOUT_MS = 15000;

function connectProtocolApi(baseUrl, authorization, useBinaryFormat) {
  const transport = createConnectTransport({
    baseUrl,
    useBinaryFormat,
    defaultTimeoutMs: CONNECT_TIMEOUT_MS,
  });
  const headers = authorization ? { authorization } : {};
  const wrap = (client, names) => {
    const api = {};
    for (const name of names) {
      api[name] = async (request) => {
        try {
          return await client[name](request, { headers });
        } catch (err) {
          throw connectFailure(err);
        }
      };
    }
    return api;
  };
  return {
    users: wrap(createClient(UserService, transport), [
      "createUser",
      "addKey",
      "listKeys",
      "removeKey",
      "deleteUser",
    ]),
    management: wrap(createClient(ManagementService, transport), ["getMyOrg"]),
  };
}

const isoOf = (ts) => (ts ? timestampDate(ts).toISOString() : null);

function userIdFilter(id) {
  return { filter: { case: "userIdFilter", value: { id } } };
}

async function lifecycleV2(api, { username, expiration }) {
  const r = {};
  const org = await outcome(api.management.getMyOrg(create(ManagementService.method.getMyOrg.input)));
  r.getMyOrg = org.error ?? { orgId: org.ok.org?.id ?? null };
  if (org.error) return r;
  const orgId = org.ok.org.id;

  const user = await outcome(
    api.users.createUser(
      create(UserService.method.createUser.input, {
        organizationId: orgId,
        username,
        userType: {
          case: "machine",
          value: { name: `browser ${username}`, description: "created over Connect from a browser page" },
        },
      }),
    ),
  );
  r.createUser = user.error ?? { userId: user.ok.id, creationDate: isoOf(user.ok.creationDate) };
  if (user.error) return r;
  const userId = user.ok.id;

  const added = await outcome(
    api.users.addKey(
      create(UserService.method.addKey.input, { userId, expirationDate: timestampFromDate(expiration) }),
    ),
  );
  if (added.error) {
    r.addKey = added.error;
    return r;
  }
  const keyId = added.ok.keyId;
  let keyFile = null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(added.ok.keyContent));
    keyFile = {
      fields: Object.keys(parsed),
      type: parsed.type,
      keyId: parsed.keyId,
      userId: parsed.userId,
      expirationDate: parsed.expirationDate,
      keyIsPkcs1Pem: /^-----BEGIN RSA PRIVATE KEY-----\n/.test(parsed.key ?? ""),
    };
  } catch (e) {
    keyFile = { unparsable: String(e), bytes: added.ok.keyContent?.length ?? null };
  }
  r.addKey = { keyId, keyFile, creationDate: isoOf(added.ok.creationDate) };

  const listKeys = () =>
    outcome(api.users.listKeys(create(UserService.method.listKeys.input, { filters: [userIdFilter(userId)] })));
  const listed = await listKeys();
  r.listAfterAdd = listed.error ?? {
    totalResult: listed.ok.pagination?.totalResult?.toString() ?? null,
    appliedLimit: listed.ok.pagination?.appliedLimit?.toString() ?? null,
    keys: listed.ok.result.map((k) => ({
      id: k.id,
      userId: k.userId,
      organizationId: k.organizationId,
      expirationDate: isoOf(k.expirationDate),
      creationDate: isoOf(k.creationDate),
    })),
  };

  const removed = await outcome(api.users.removeKey(create(UserService.method.removeKey.input, { userId, keyId })));
  r.removeKey = removed.error ?? { deletionDate: isoOf(removed.ok.deletionDate) };

  const removedAgain = await outcome(
    api.users.removeKey(create(UserService.method.removeKey.input, { userId, keyId })),
  );
  r.removeKeyAgain = removedAgain.ok ? { unexpectedlyRemoved: true } : removedAgain.error;

  const listedAfter = await listKeys();
  r.listAfterRemove = listedAfter.error ?? {
    totalResult: listedAfter.ok.pagination?.totalResult?.toString() ?? null,
    ids: listedAfter.ok.result.map((k) => k.id),
  };

  const deleted = await outcome(api.users.deleteUser(create(UserService.method.deleteUser.input, { userId })));
  r.deleteUser = deleted.error ?? {
    changeDate: isoOf(deleted.ok.details?.changeDate),
    resourceOwner: deleted.ok.details?.resourceOwner ?? null,
  };
  r.orgId = orgId;
  r.userId = userId;
  r.keyId = keyId;
  return r;
}

async function unauthenticatedV2(baseUrl, useBinaryFormat) {
  const call = (authorization) =>
    outcome(
      connectProtocolApi(baseUrl, authorization, useBinaryFormat).users.listKeys(
        create(UserService.method.listKeys.input, { filters: [userIdFilter("1")] }),
      ),
    );
  const noToken = await call(null);
  const badToken = await call("Bearer not-a-token-this-server-issued");
  return {
    noToken: noToken.error ?? { unexpectedlyOk: true },
    badToken: badToken.error ?? { unexpectedlyOk: true },
  };
}

const CONNECT_FORMATS = { "connect-json": false, "connect-binary": true };

// ---- REST with fetch ---------------------------------------------------------------------

async function rest(method, url, token, body) {
  try {
    const resp = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // keep null
    }
    return { status: resp.status, contentType: resp.headers.get("content-type"), json };
  } catch (e) {
    return { thrown: `${e.name}: ${e.message}` };
  }
}

// ---- entry points ------------------------------------------------------------------------

function clients() {
  return { "connect-web": connectApi, "grpc-web-text": grpcWebApi };
}

/** The whole allowed-origin scenario. */
async function run({ serverUrl, token, runId }) {
  const out = { pageOrigin: location.origin, serverOrigin: new URL(serverUrl).origin };
  const expiration = new Date((Math.floor(Date.now() / 1000) + 90 * 24 * 3600) * 1000);
  out.expiration = expiration.toISOString();
  for (const [label, make] of Object.entries(clients())) {
    const api = make(serverUrl, `Bearer ${token}`);
    const life = await lifecycle(api, { userName: `browser-${label}-${runId}`, expiration });
    out[label] = { ...life, ...(await unauthenticated(make, serverUrl)) };
  }
  for (const [label, useBinaryFormat] of Object.entries(CONNECT_FORMATS)) {
    const api = connectProtocolApi(serverUrl, `Bearer ${token}`, useBinaryFormat);
    const life = await lifecycleV2(api, { username: `browser-${label}-${runId}`, expiration });
    out[label] = { ...life, ...(await unauthenticatedV2(serverUrl, useBinaryFormat)) };
  }

  // REST from the page: a key added over gRPC-Web is listed by the REST path, and a removed
  // one answers the grpc-gateway error body.
  const api = connectApi(serverUrl, `Bearer ${token}`);
  const user = await outcome(
    api.addMachineUser(
      create(ManagementService.method.addMachineUser.input, {
        userName: `browser-rest-${runId}`,
        name: "browser rest",
      }),
    ),
  );
  if (user.error) {
    out.rest = { setup: user.error };
    return out;
  }
  const userId = user.ok.userId;
  const key = await outcome(
    api.addMachineKey(create(ManagementService.method.addMachineKey.input, { userId, type: KeyType.JSON })),
  );
  if (key.error) {
    out.rest = { setup: key.error };
    return out;
  }
  const base = `${serverUrl}/management/v1/users/${userId}/keys`;
  const search = await rest("POST", `${base}/_search`, token, { query: { limit: 10 } });
  const del = await rest("DELETE", `${base}/${key.ok.keyId}`, token);
  const getGone = await rest("GET", `${base}/${key.ok.keyId}`, token);
  out.rest = {
    userId,
    keyId: key.ok.keyId,
    search: {
      status: search.status,
      contentType: search.contentType,
      ids: search.json?.result?.map((k) => k.id) ?? null,
      types: search.json?.result?.map((k) => k.type) ?? null,
      totalResult: search.json?.details?.totalResult ?? null,
      thrown: search.thrown,
    },
    delete: { status: del.status, thrown: del.thrown },
    getGone: { status: getGone.status, body: getGone.json, thrown: getGone.thrown },
  };
  // The example of docs/browsers.md, as written there.
  try {
    out.snippet = { userId, ...(await addKey(serverUrl, token, userId)) };
  } catch (err) {
    out.snippet = { userId, thrown: String(err) };
  }
  return out;
}

/** From an origin the server does not allow: each client tries one authenticated call (the
 * Connect ones a v2 CreateUser in orgId). */
async function blocked({ serverUrl, token, userName, orgId }) {
  const out = { pageOrigin: location.origin };
  for (const [label, make] of Object.entries(clients())) {
    const api = make(serverUrl, `Bearer ${token}`);
    const r = await outcome(
      api.addMachineUser(
        create(ManagementService.method.addMachineUser.input, {
          userName: `${userName}-${label}`,
          name: "must never be created",
        }),
      ),
    );
    out[label] = r.error ?? { unexpectedlyOk: r.ok.userId };
  }
  for (const [label, useBinaryFormat] of Object.entries(CONNECT_FORMATS)) {
    const api = connectProtocolApi(serverUrl, `Bearer ${token}`, useBinaryFormat);
    const r = await outcome(
      api.users.createUser(
        create(UserService.method.createUser.input, {
          organizationId: orgId,
          username: `${userName}-${label}`,
          userType: { case: "machine", value: { name: "must never be created" } },
        }),
      ),
    );
    out[label] = r.error ?? { unexpectedlyOk: r.ok.id };
  }
  const search = await rest("POST", `${serverUrl}/management/v1/users/1/keys/_search`, token, {});
  out.rest = search;
  return out;
}

window.akBrowser = { run, blocked };
window.akBrowserReady = true;
