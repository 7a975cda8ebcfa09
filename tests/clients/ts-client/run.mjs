// ZITADEL's TypeScript client, @zitadel/client (pinned in ../package.json), unchanged, against a
// running server: its v2 UserService client drives CreateUser (machine), AddKey, ListKeys,
// RemoveKey and DeleteUser over each transport a Node program has with it:
//   - gRPC:     createServerTransport from @zitadel/client/node (what the package offers servers);
//   - gRPC-Web: createClientTransport from @zitadel/client/web (what it offers browsers; fetch);
//   - Connect:  the package has no Connect transport of its own; its bearer interceptor on
//               @connectrpc/connect-web's createConnectTransport, as its users write it.
// The package's v2 entry point has no ApplicationService client (its @zitadel/proto 1.3.1 holds
// zitadel.app.v2beta only), so application keys are not driven here.
//
//   AK_URL=http://127.0.0.1:PORT AK_ADMIN_KEY=admin-key.json node run.mjs
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
// The package's typings name Code and ConnectError among its exports; its JavaScript does not
// export them, so they come from @connectrpc/connect (ConnectError matches across copies).
import { NewAuthorizationBearerInterceptor, create, timestampFromDate, toDate } from "@zitadel/client";
import { createServerTransport } from "@zitadel/client/node";
import { createUserServiceClient } from "@zitadel/client/v2";
import { createClientTransport } from "@zitadel/client/web";
import { ErrorDetailSchema } from "@zitadel/proto/zitadel/message_pb.js";
import {
  AddKeyRequestSchema,
  CreateUserRequestSchema,
  DeleteUserRequestSchema,
  ListKeysRequestSchema,
  RemoveKeyRequestSchema,
} from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";
import { Checks } from "../lib/browser.mjs";
import { accessToken } from "../lib/token.mjs";

const ISSUER = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
if (!ISSUER || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (see run.sh)");
  process.exit(2);
}

const t = new Checks("ts-client");

/** Runs one group of checks whose body may throw; a throw is a failed check, not the end of the run. */
async function step(what, body) {
  try {
    await body();
  } catch (err) {
    t.check(what, false, `threw ${err?.stack || err}`);
  }
}

const TRANSPORTS = {
  gRPC: (token) => createServerTransport(token, { baseUrl: ISSUER }),
  "gRPC-Web": (token) => createClientTransport(token, { baseUrl: ISSUER }),
  Connect: (token) =>
    createConnectTransport({ baseUrl: ISSUER, interceptors: [NewAuthorizationBearerInterceptor(token)] }),
};

/** The ConnectError a call rejects with, or null when it succeeds. */
async function rejection(call) {
  try {
    await call();
  } catch (err) {
    return err;
  }
  return null;
}

/** A NOT_FOUND (or other code) with its zitadel.v1.ErrorDetail id, as the client sees it. */
function checkError(what, err, code, id) {
  t.check(`${what}: a ConnectError`, err instanceof ConnectError, `got ${err}`);
  if (!(err instanceof ConnectError)) return;
  t.equal(`${what}: code ${Code[code]}`, Code[err.code], Code[code]);
  t.check(`${what}: message ends in (${id})`, err.rawMessage.endsWith(`(${id})`), `got ${JSON.stringify(err.rawMessage)}`);
  const details = err.findDetails(ErrorDetailSchema);
  t.equal(`${what}: zitadel.v1.ErrorDetail ids`, details.map((d) => d.id), [id]);
}

const ids = (resp) => resp.result.map((k) => k.id);

async function orgId(token) {
  const resp = await fetch(`${ISSUER}/management/v1/orgs/me`, { headers: { authorization: `Bearer ${token}` } });
  if (!resp.ok) throw new Error(`GetMyOrg: ${resp.status} ${await resp.text()}`);
  return (await resp.json()).org.id;
}

const adminToken = await accessToken(ADMIN_KEY, ISSUER);
const org = await orgId(adminToken);
const stamp = Math.random().toString(36).slice(2, 10);
const EXP_GENERATED = new Date("2031-01-01T00:00:00Z");
const EXP_UPLOADED = new Date("2030-06-01T10:00:00Z");

async function keysOverTransport(name, transportFor) {
  const users = createUserServiceClient(transportFor(adminToken));
  const label = (what) => `${name}: ${what}`;

  const created = await users.createUser(
    create(CreateUserRequestSchema, {
      organizationId: org,
      username: `ts-client-${name.toLowerCase()}-${stamp}`,
      userType: { case: "machine", value: { name: `TS client over ${name}`, description: "made by @zitadel/client" } },
    }),
  );
  const userId = created.id;
  t.check(label("CreateUser machine: a decimal id"), /^\d+$/.test(userId), `got ${JSON.stringify(userId)}`);

  const generated = await users.addKey(
    create(AddKeyRequestSchema, { userId, expirationDate: timestampFromDate(EXP_GENERATED) }),
  );
  t.check(label("AddKey generated: a decimal keyId"), /^\d+$/.test(generated.keyId), `got ${generated.keyId}`);
  t.check(label("AddKey generated: creationDate set"), toDate(generated.creationDate) instanceof Date);
  const keyFile = JSON.parse(new TextDecoder().decode(generated.keyContent));
  t.equal(
    label("AddKey generated: the key file names type, user and key"),
    [keyFile.type, keyFile.userId, keyFile.keyId],
    ["serviceaccount", userId, generated.keyId],
  );
  t.equal(
    label("AddKey generated: the key file's expirationDate"),
    new Date(keyFile.expirationDate).toISOString(),
    EXP_GENERATED.toISOString(),
  );

  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = publicKey.export({ type: "spki", format: "pem" });
  const uploaded = await users.addKey(
    create(AddKeyRequestSchema, {
      userId,
      expirationDate: timestampFromDate(EXP_UPLOADED),
      publicKey: new TextEncoder().encode(pem),
    }),
  );
  t.check(label("AddKey uploaded: a decimal keyId"), /^\d+$/.test(uploaded.keyId), `got ${uploaded.keyId}`);
  t.equal(label("AddKey uploaded: no keyContent"), uploaded.keyContent.length, 0);

  const byUser = create(ListKeysRequestSchema, {
    filters: [{ filter: { case: "userIdFilter", value: { id: userId } } }],
  });
  let listed = await users.listKeys(byUser);
  t.equal(label("ListKeys userIdFilter: newest first"), ids(listed), [uploaded.keyId, generated.keyId]);
  t.equal(label("ListKeys: totalResult"), String(listed.pagination?.totalResult), "2");
  const row = listed.result.find((k) => k.id === generated.keyId);
  t.equal(
    label("ListKeys: a row's user, org and expiration"),
    [row?.userId, row?.organizationId, toDate(row?.expirationDate)?.toISOString()],
    [userId, org, EXP_GENERATED.toISOString()],
  );

  // The generated key file is a working credential: the machine user lists its own keys with it.
  const keyPath = join(work, `${name}-key.json`);
  writeFileSync(keyPath, JSON.stringify(keyFile), { mode: 0o600 });
  const own = createUserServiceClient(transportFor(await accessToken(keyPath, ISSUER)));
  listed = await own.listKeys(create(ListKeysRequestSchema, {}));
  t.equal(label("the new key's own token: ListKeys shows its user's keys"), ids(listed), [uploaded.keyId, generated.keyId]);

  const removed = await users.removeKey(create(RemoveKeyRequestSchema, { userId, keyId: generated.keyId }));
  t.check(label("RemoveKey: deletionDate set"), toDate(removed.deletionDate) instanceof Date);
  listed = await users.listKeys(byUser);
  t.equal(label("ListKeys after RemoveKey: the other key only"), ids(listed), [uploaded.keyId]);

  checkError(
    label("RemoveKey of the key just removed"),
    await rejection(() => users.removeKey(create(RemoveKeyRequestSchema, { userId, keyId: generated.keyId }))),
    Code.NotFound,
    "COMMAND-4m77G",
  );
  checkError(
    label("RemoveKey of a key id never issued"),
    await rejection(() => users.removeKey(create(RemoveKeyRequestSchema, { userId, keyId: "1" }))),
    Code.NotFound,
    "COMMAND-4m77G",
  );

  const deleted = await users.deleteUser(create(DeleteUserRequestSchema, { userId }));
  t.check(label("DeleteUser: details.changeDate set"), toDate(deleted.details?.changeDate) instanceof Date);
  listed = await users.listKeys(byUser);
  t.equal(label("ListKeys after DeleteUser: its keys are gone"), ids(listed), []);
  checkError(
    label("DeleteUser again"),
    await rejection(() => users.deleteUser(create(DeleteUserRequestSchema, { userId }))),
    Code.NotFound,
    "COMMAND-bd4ir1mblj",
  );
  const err = await rejection(() => own.listKeys(create(ListKeysRequestSchema, {})));
  t.equal(
    label("the deleted user's token no longer works: code"),
    err instanceof ConnectError ? Code[err.code] : String(err),
    Code[Code.Unauthenticated],
  );
}

// Key files the machine users get hold private keys: they live here only while the run does.
const work = mkdtempSync(join(tmpdir(), "ts-client-"));
try {
  for (const [name, transportFor] of Object.entries(TRANSPORTS)) {
    await step(`${name}: key RPCs`, () => keysOverTransport(name, transportFor));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
t.finish();
