// ZITADEL's Node SDK, @zitadel/node (gRPC through nice-grpc), against a running server: the
// admin authenticates as a service account with its JSON key file (JWT profile), the way the
// package documents it, and drives the v1 Management API's machine-key RPCs; the key it adds
// then authenticates the new machine user through the same SDK.
//
//   AK_URL=http://127.0.0.1:PORT AK_ADMIN_KEY=admin-key.json node run.mjs
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import {
  createAccessTokenInterceptor,
  createManagementClient,
  createServiceAccountInterceptor,
} from "@zitadel/node/dist/api/index.js";
import { KeyType } from "@zitadel/node/dist/api/generated/zitadel/auth_n_key.js";
import { ErrorDetail } from "@zitadel/node/dist/api/generated/zitadel/message.js";
import { AccessTokenType } from "@zitadel/node/dist/api/generated/zitadel/user.js";
import { ServiceAccount } from "@zitadel/node/dist/credentials/index.js";
import { ClientError, Metadata, Status } from "nice-grpc";
import { Checks } from "../lib/browser.mjs";

const URL_ = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
if (!URL_ || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (see run.sh)");
  process.exit(2);
}

const t = new Checks("node-sdk");

/** Runs one check whose body may throw; a throw is a failed check, not the end of the run. */
async function step(what, body) {
  try {
    await body();
  } catch (err) {
    t.check(what, false, `threw ${err?.stack || err}`);
  }
}

/** The zitadel.v1.ErrorDetail ids in a google.rpc.Status (grpc-status-details-bin). */
function errorDetailIds(statusBytes) {
  const ids = [];
  const status = new BinaryReader(statusBytes);
  while (status.pos < status.len) {
    const [field, wireType] = status.tag();
    if (field !== 3) {
      status.skip(wireType);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value = new Uint8Array();
    while (any.pos < any.len) {
      const [f, wt] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(wt);
    }
    if (typeUrl === "type.googleapis.com/zitadel.v1.ErrorDetail") {
      ids.push(ErrorDetail.decode(value).id);
    }
  }
  return ids;
}

/** Calls `call(options)`, expecting a ClientError; returns {error, detailIds}. */
async function expectGrpcError(call) {
  let trailer = new Metadata();
  try {
    await call({ onTrailer: (m) => (trailer = m) });
  } catch (error) {
    const bin = trailer.get("grpc-status-details-bin");
    return { error, detailIds: bin ? errorDetailIds(bin) : [] };
  }
  return { error: null, detailIds: [] };
}

function checkGrpcError(what, { error, detailIds }, code, id) {
  t.check(`${what}: a ClientError`, error instanceof ClientError, `got ${error}`);
  if (!(error instanceof ClientError)) return;
  t.check(`${what}: ${Status[code]}`, error.code === code, `got ${Status[error.code]} (${error.details})`);
  t.check(
    `${what}: message ends in (${id})`,
    error.details.endsWith(`(${id})`),
    `got ${JSON.stringify(error.details)}`,
  );
  t.equal(`${what}: ErrorDetail ids in grpc-status-details-bin`, detailIds, [id]);
}

const adminAccount = ServiceAccount.fromJsonString(readFileSync(ADMIN_KEY, "utf8"));
const mgmt = createManagementClient(
  URL_,
  createServiceAccountInterceptor(URL_, adminAccount, { apiAccess: true }),
);

const stamp = Date.now();
const expiration = new Date(Date.UTC(2031, 0, 2, 3, 4, 5));
let orgId = "";
let userId = "";
let generated = null; // the key file AddMachineKey handed out
let uploadedKeyId = "";

await step("GetMyOrg with the admin's service account", async () => {
  const { org } = await mgmt.getMyOrg({});
  orgId = org?.id ?? "";
  t.check("GetMyOrg: the admin's org has an id", /^\d+$/.test(orgId), `got ${JSON.stringify(org)}`);
});

await step("AddMachineUser", async () => {
  const resp = await mgmt.addMachineUser({
    userName: `node-sdk-${stamp}`,
    name: "Node SDK machine",
    description: "made by @zitadel/node",
    accessTokenType: AccessTokenType.ACCESS_TOKEN_TYPE_BEARER,
  });
  userId = resp.userId;
  t.check("AddMachineUser: a decimal user id", /^\d+$/.test(userId), `got ${JSON.stringify(resp.userId)}`);
  t.equal("AddMachineUser: details.resourceOwner is the admin's org", resp.details?.resourceOwner, orgId);
});

await step("AddMachineKey (generated)", async () => {
  const resp = await mgmt.addMachineKey({ userId, type: KeyType.KEY_TYPE_JSON, expirationDate: expiration });
  t.check("AddMachineKey: a decimal key id", /^\d+$/.test(resp.keyId), `got ${JSON.stringify(resp.keyId)}`);
  generated = JSON.parse(Buffer.from(resp.keyDetails).toString("utf8"));
  t.equal("AddMachineKey: key file type", generated.type, "serviceaccount");
  t.equal("AddMachineKey: key file userId", generated.userId, userId);
  t.equal("AddMachineKey: key file keyId", generated.keyId, resp.keyId);
  t.check(
    "AddMachineKey: key file holds an RSA private key",
    typeof generated.key === "string" && generated.key.startsWith("-----BEGIN RSA PRIVATE KEY-----"),
  );
  t.equal("AddMachineKey: key file expirationDate", generated.expirationDate, "2031-01-02T03:04:05Z");
});

await step("AddMachineKey (uploaded public key)", async () => {
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = publicKey.export({ type: "spki", format: "pem" });
  const resp = await mgmt.addMachineKey({
    userId,
    type: KeyType.KEY_TYPE_JSON,
    expirationDate: new Date(Date.UTC(2030, 5, 1)),
    publicKey: Buffer.from(pem),
  });
  uploadedKeyId = resp.keyId;
  t.check("AddMachineKey uploaded: a decimal key id", /^\d+$/.test(resp.keyId), `got ${JSON.stringify(resp.keyId)}`);
  t.equal("AddMachineKey uploaded: keyDetails empty", Buffer.from(resp.keyDetails).length, 0);
});

await step("ListMachineKeys", async () => {
  const desc = await mgmt.listMachineKeys({ userId, query: {} });
  t.equal("ListMachineKeys: totalResult", desc.details?.totalResult?.toString(), "2");
  t.equal(
    "ListMachineKeys: newest first by default",
    desc.result.map((k) => k.id),
    [uploadedKeyId, generated?.keyId],
  );
  const asc = await mgmt.listMachineKeys({ userId, query: { asc: true, limit: 1 } });
  t.equal("ListMachineKeys asc, limit 1: the older key", asc.result.map((k) => k.id), [generated?.keyId]);
  t.equal("ListMachineKeys asc, limit 1: totalResult still 2", asc.details?.totalResult?.toString(), "2");
  const page2 = await mgmt.listMachineKeys({ userId, query: { asc: true, limit: 1, offset: 1 } });
  t.equal("ListMachineKeys asc, offset 1: the newer key", page2.result.map((k) => k.id), [uploadedKeyId]);
  const first = desc.result.find((k) => k.id === generated?.keyId);
  t.equal("ListMachineKeys: type KEY_TYPE_JSON", first?.type, KeyType.KEY_TYPE_JSON);
  t.equal("ListMachineKeys: expirationDate", first?.expirationDate?.toISOString(), expiration.toISOString());
});

await step("GetMachineKeyByIDs", async () => {
  const { key } = await mgmt.getMachineKeyByIDs({ userId, keyId: generated?.keyId });
  t.equal("GetMachineKeyByIDs: id", key?.id, generated?.keyId);
  t.equal("GetMachineKeyByIDs: type", key?.type, KeyType.KEY_TYPE_JSON);
  t.equal("GetMachineKeyByIDs: expirationDate", key?.expirationDate?.toISOString(), expiration.toISOString());
  t.equal("GetMachineKeyByIDs: details.resourceOwner", key?.details?.resourceOwner, orgId);
});

// The new machine user authenticates through the SDK with the key file it was handed.
let machineAccount = null;
await step("the new key authenticates through ServiceAccount", async () => {
  machineAccount = ServiceAccount.fromJson(generated);
  const token = await machineAccount.authenticate(URL_, { apiAccess: true });
  t.check("ServiceAccount.authenticate: an access token", typeof token === "string" && token.length > 0);
  // No role: the call is authenticated (not UNAUTHENTICATED) and refused for want of a role.
  const own = createManagementClient(URL_, createAccessTokenInterceptor(token));
  const res = await expectGrpcError((opts) => own.listMachineKeys({ userId, query: {} }, opts));
  t.check(
    "the new user's token is accepted by the API (PERMISSION_DENIED, not UNAUTHENTICATED)",
    res.error instanceof ClientError && res.error.code === Status.PERMISSION_DENIED,
    `got ${res.error ? `${Status[res.error.code]} ${res.error.details}` : "success"}`,
  );
});

await step("RemoveMachineKey", async () => {
  const resp = await mgmt.removeMachineKey({ userId, keyId: generated?.keyId });
  t.check("RemoveMachineKey: details.changeDate set", resp.details?.changeDate instanceof Date);
  const list = await mgmt.listMachineKeys({ userId, query: {} });
  t.equal("ListMachineKeys after remove: the uploaded key only", list.result.map((k) => k.id), [uploadedKeyId]);
  t.equal("ListMachineKeys after remove: totalResult", list.details?.totalResult?.toString(), "1");
});

await step("the removed key no longer authenticates", async () => {
  let err = null;
  try {
    await machineAccount.authenticate(URL_, { apiAccess: true });
  } catch (e) {
    err = e;
  }
  t.check(
    "ServiceAccount.authenticate with the removed key fails with 400 invalid_grant",
    err?.response?.status === 400 && err?.response?.data?.error === "invalid_grant",
    `got ${err ? `${err.response?.status} ${JSON.stringify(err.response?.data)}` : "a token"}`,
  );
});

await step("errors", async () => {
  checkGrpcError(
    "RemoveMachineKey of the removed key",
    await expectGrpcError((opts) => mgmt.removeMachineKey({ userId, keyId: generated?.keyId }, opts)),
    Status.NOT_FOUND,
    "COMMAND-4m77G",
  );
  checkGrpcError(
    "GetMachineKeyByIDs of the removed key",
    await expectGrpcError((opts) => mgmt.getMachineKeyByIDs({ userId, keyId: generated?.keyId }, opts)),
    Status.NOT_FOUND,
    "QUERY-Dgr3g",
  );
  checkGrpcError(
    "AddMachineKey with a past expiration",
    await expectGrpcError((opts) =>
      mgmt.addMachineKey({ userId, type: KeyType.KEY_TYPE_JSON, expirationDate: new Date(Date.UTC(2020, 0, 1)) }, opts),
    ),
    Status.INVALID_ARGUMENT,
    "DOMAIN-dv3t5",
  );
  const anonymous = createManagementClient(URL_);
  const res = await expectGrpcError((opts) => anonymous.listMachineKeys({ userId, query: {} }, opts));
  t.check(
    "no token: UNAUTHENTICATED",
    res.error instanceof ClientError && res.error.code === Status.UNAUTHENTICATED,
    `got ${res.error ? Status[res.error.code] : "success"}`,
  );
});

t.finish();
