// Drives the bundled page (page.js) in headless Chromium and checks what it reports. Started by
// run.sh, which serves the page, starts the server and sets:
//   AK_URL, AK_ADMIN_KEY   the server and its admin's key file (lib/server.sh)
//   AK_PAGE_ORIGIN         the page's origin, the only one in AUTHN_KEYS_CORS_ORIGINS
//   AK_OTHER_ORIGIN        the same page from an origin the server does not allow
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Checks, launch } from "../lib/browser.mjs";
import { accessToken } from "../lib/token.mjs";

const { AK_URL, AK_ADMIN_KEY, AK_PAGE_ORIGIN, AK_OTHER_ORIGIN } = process.env;
for (const [name, value] of Object.entries({ AK_URL, AK_ADMIN_KEY, AK_PAGE_ORIGIN, AK_OTHER_ORIGIN })) {
  if (!value) {
    console.error(`${name} is not set; start this with run.sh`);
    process.exit(2);
  }
}

const SERVICE = "zitadel.management.v1.ManagementService";
const USER_SERVICE = "zitadel.user.v2.UserService";
const ERROR_DETAIL = "zitadel.v1.ErrorDetail";
const NOT_FOUND = 5;
const UNAUTHENTICATED = 16;
// the ids the server sends (see ../shared/spec/api.md and the server's replies)
const ID_GET_NOT_FOUND = "QUERY-Dgr3g";
const ID_REMOVE_NOT_FOUND = "COMMAND-4m77G";
const ID_NO_TOKEN = "AUTH-7fs1e";
const ID_BAD_TOKEN = "AUTH-7fs2e";
// v2 answers both a missing and an invalid token with AUTH-7fs1e (../shared/spec/api-v2.md)
const ID_V2_UNAUTHENTICATED = "AUTH-7fs1e";
// the Connect clients' request content types (useBinaryFormat false / true)
const CONNECT_TYPES = { "connect-json": "application/json", "connect-binary": "application/proto" };

const checks = new Checks("browser");

/** The browser example of docs/browsers.md: it holds snippet.js verbatim, and it worked. */
function checkSnippet(snippet) {
  const here = dirname(fileURLToPath(import.meta.url));
  const code = readFileSync(join(here, "snippet.js"), "utf8");
  const example = code.slice(code.search(/^import /m));
  const page = readFileSync(join(here, "..", "..", "..", "docs", "browsers.md"), "utf8");
  const marked = page.match(/<!-- test: browser snippet -->\n```js\n([\s\S]*?)```/);
  checks.check("docs/browsers.md: the example is snippet.js verbatim", marked?.[1] === example,
    marked ? "docs/browsers.md's block differs from tests/clients/browser/snippet.js" : "no marked block in docs/browsers.md");
  checks.check("docs example: ran without error", snippet && !snippet.thrown, snippet?.thrown);
  checks.equal("docs example: the key file names the user", snippet?.keyFile?.userId, snippet?.userId);
  checks.equal("docs example: the key file names the key", snippet?.keyFile?.keyId, snippet?.keyId);
  checks.check("docs example: the key is listed", snippet?.listed?.includes(snippet?.keyId), JSON.stringify(snippet?.listed));
}
const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const headerList = (value) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

// ---- CORS headers, seen from node ---------------------------------------------------------

async function corsHeaders() {
  const target = `${AK_URL}/${SERVICE}/ListMachineKeys`;
  const preflight = (origin) =>
    fetch(target, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,x-grpc-web,content-type,x-user-agent",
      },
    });

  const ok = await preflight(AK_PAGE_ORIGIN);
  checks.check("preflight from the allowed origin succeeds", ok.status >= 200 && ok.status < 300, `status ${ok.status}`);
  checks.equal("preflight Access-Control-Allow-Origin is the page's origin", ok.headers.get("access-control-allow-origin"), AK_PAGE_ORIGIN);
  const allowHeaders = headerList(ok.headers.get("access-control-allow-headers"));
  checks.check(
    "preflight Access-Control-Allow-Headers names authorization, x-grpc-web, content-type, x-user-agent",
    ["authorization", "x-grpc-web", "content-type", "x-user-agent"].every((h) => allowHeaders.includes(h)),
    `got ${JSON.stringify(ok.headers.get("access-control-allow-headers"))}`,
  );
  checks.check("preflight Access-Control-Allow-Headers is not a wildcard", !allowHeaders.includes("*"), `got ${allowHeaders}`);
  checks.check(
    "preflight Access-Control-Allow-Methods includes POST",
    headerList(ok.headers.get("access-control-allow-methods")).some((m) => m === "post" || m === "*"),
    `got ${JSON.stringify(ok.headers.get("access-control-allow-methods"))}`,
  );
  const maxAge = ok.headers.get("access-control-max-age");
  checks.check("preflight Access-Control-Max-Age is a positive number of seconds", /^[1-9][0-9]*$/.test(maxAge ?? ""), `got ${JSON.stringify(maxAge)}`);
  checks.check(
    "preflight allows no credentials",
    ok.headers.get("access-control-allow-credentials") !== "true",
    `got ${JSON.stringify(ok.headers.get("access-control-allow-credentials"))}`,
  );

  // connect-web's Connect protocol sends Connect-Protocol-Version and Connect-Timeout-Ms (and a
  // non-safelisted Content-Type), so its calls preflight too
  const connectPreflight = await fetch(`${AK_URL}/${USER_SERVICE}/AddKey`, {
    method: "OPTIONS",
    headers: {
      origin: AK_PAGE_ORIGIN,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,connect-protocol-version,connect-timeout-ms,content-type",
    },
  });
  checks.check(
    "Connect preflight from the allowed origin succeeds",
    connectPreflight.status >= 200 && connectPreflight.status < 300,
    `status ${connectPreflight.status}`,
  );
  checks.equal("Connect preflight Access-Control-Allow-Origin is the page's origin", connectPreflight.headers.get("access-control-allow-origin"), AK_PAGE_ORIGIN);
  const connectAllowed = headerList(connectPreflight.headers.get("access-control-allow-headers"));
  checks.check(
    "Connect preflight Access-Control-Allow-Headers names authorization, content-type, connect-protocol-version, connect-timeout-ms",
    ["authorization", "content-type", "connect-protocol-version", "connect-timeout-ms"].every((h) => connectAllowed.includes(h)),
    `got ${JSON.stringify(connectPreflight.headers.get("access-control-allow-headers"))}`,
  );

  const denied = await preflight(AK_OTHER_ORIGIN);
  checks.equal("preflight from another origin gets no Access-Control-Allow-Origin", denied.headers.get("access-control-allow-origin"), null);

  // Access-Control-Expose-Headers belongs on the actual response (Fetch standard), not the
  // preflight: look at a real gRPC-Web call, which fails with its status in the headers.
  const call = await fetch(target, {
    method: "POST",
    headers: { origin: AK_PAGE_ORIGIN, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    body: new Uint8Array(5),
  });
  await call.arrayBuffer();
  checks.equal("cross-origin gRPC-Web response Access-Control-Allow-Origin", call.headers.get("access-control-allow-origin"), AK_PAGE_ORIGIN);
  const exposed = headerList(call.headers.get("access-control-expose-headers"));
  checks.check(
    "Access-Control-Expose-Headers includes grpc-status, grpc-message, grpc-status-details-bin",
    ["grpc-status", "grpc-message", "grpc-status-details-bin"].every((h) => exposed.includes(h)),
    `got ${JSON.stringify(call.headers.get("access-control-expose-headers"))}`,
  );
}

// ---- the page on the allowed origin ---------------------------------------------------------

function checkFailure(label, what, failure, code, id, { grpcWeb }) {
  checks.equal(`${label}: ${what}: gRPC code`, failure?.code, code);
  checks.equal(`${label}: ${what}: ErrorDetail ids`, failure?.errorDetails?.map((d) => d.id), [id]);
  const detailMessage = failure?.errorDetails?.[0]?.message;
  checks.check(`${label}: ${what}: ErrorDetail message is text`, typeof detailMessage === "string" && detailMessage.length > 0, `got ${JSON.stringify(detailMessage)}`);
  const statusMessage = grpcWeb ? failure?.statusMessage : failure?.rawMessage;
  checks.equal(`${label}: ${what}: status message is "<text> (<id>)"`, statusMessage, `${detailMessage} (${id})`);
  checks.equal(`${label}: ${what}: detail type`, failure?.detailTypes, [grpcWeb ? `type.googleapis.com/${ERROR_DETAIL}` : ERROR_DETAIL]);
  if (grpcWeb) {
    checks.equal(`${label}: ${what}: google.rpc.Status code matches grpc-status`, failure?.statusCode, code);
  }
}

function checkLifecycle(label, r, expiration, grpcWeb) {
  const userId = r?.addUser?.userId;
  checks.check(`${label}: AddMachineUser returns a decimal id`, /^[0-9]+$/.test(userId ?? ""), JSON.stringify(r?.addUser));
  const keyId = r?.addKey?.keyId;
  checks.check(`${label}: AddMachineKey returns a decimal key id`, /^[0-9]+$/.test(keyId ?? ""), JSON.stringify(r?.addKey));
  const file = r?.addKey?.keyFile ?? {};
  checks.equal(`${label}: key file fields, in order`, file.fields, ["type", "keyId", "key", "expirationDate", "userId"]);
  checks.equal(`${label}: key file type`, file.type, "serviceaccount");
  checks.check(`${label}: key file keyId and userId match the responses`, file.keyId === keyId && file.userId === userId, JSON.stringify(file));
  checks.check(`${label}: key file key is a PKCS#1 PEM`, file.keyIsPkcs1Pem === true);
  checks.check(
    `${label}: key file expirationDate is the requested one, in UTC`,
    typeof file.expirationDate === "string" && file.expirationDate.endsWith("Z") && Date.parse(file.expirationDate) === Date.parse(expiration),
    `got ${JSON.stringify(file.expirationDate)}, want ${expiration}`,
  );
  checks.equal(`${label}: ListMachineKeys lists exactly the new key`, r?.listAfterAdd?.ids, [keyId]);
  checks.equal(`${label}: ListMachineKeys totalResult`, r?.listAfterAdd?.totalResult, "1");
  checks.equal(`${label}: GetMachineKeyByIDs id`, r?.get?.id, keyId);
  checks.equal(`${label}: GetMachineKeyByIDs type is KEY_TYPE_JSON`, r?.get?.type, 1);
  checks.equal(`${label}: GetMachineKeyByIDs expirationDate`, r?.get?.expirationDate, expiration);
  checks.check(
    `${label}: key and user have the same resource owner`,
    !!r?.get?.resourceOwner && r.get.resourceOwner === r?.addUser?.resourceOwner,
    `key ${r?.get?.resourceOwner}, user ${r?.addUser?.resourceOwner}`,
  );
  checks.check(`${label}: RemoveMachineKey returns a change date`, !!r?.remove?.changeDate, JSON.stringify(r?.remove));
  checkFailure(label, "GetMachineKeyByIDs after remove", r?.getAfterRemove, NOT_FOUND, ID_GET_NOT_FOUND, { grpcWeb });
  checkFailure(label, "RemoveMachineKey again", r?.removeAgain, NOT_FOUND, ID_REMOVE_NOT_FOUND, { grpcWeb });
  checks.equal(`${label}: ListMachineKeys after remove is empty`, r?.listAfterRemove?.ids, []);
  checkFailure(label, "call without a token", r?.noToken, UNAUTHENTICATED, ID_NO_TOKEN, { grpcWeb });
  checkFailure(label, "call with an invalid token", r?.badToken, UNAUTHENTICATED, ID_BAD_TOKEN, { grpcWeb });
}

function checkConnectLifecycle(label, r, expiration, adminOrgId) {
  checks.equal(`${label}: v1 GetMyOrg over Connect names the admin's org`, r?.getMyOrg?.orgId, adminOrgId);
  const userId = r?.createUser?.userId;
  checks.check(`${label}: CreateUser returns a decimal id`, /^[0-9]+$/.test(userId ?? ""), JSON.stringify(r?.createUser));
  checks.check(`${label}: CreateUser returns a creation date`, !Number.isNaN(Date.parse(r?.createUser?.creationDate ?? "")), JSON.stringify(r?.createUser));
  const keyId = r?.addKey?.keyId;
  checks.check(`${label}: AddKey returns a decimal key id`, /^[0-9]+$/.test(keyId ?? ""), JSON.stringify(r?.addKey));
  checks.check(`${label}: AddKey returns a creation date`, !Number.isNaN(Date.parse(r?.addKey?.creationDate ?? "")), JSON.stringify(r?.addKey));
  const file = r?.addKey?.keyFile ?? {};
  checks.equal(`${label}: keyContent is the key file, fields in order`, file.fields, ["type", "keyId", "key", "expirationDate", "userId"]);
  checks.equal(`${label}: key file type`, file.type, "serviceaccount");
  checks.equal(`${label}: key file userId is the new user`, file.userId, userId);
  checks.equal(`${label}: key file keyId is AddKey's keyId`, file.keyId, keyId);
  checks.check(`${label}: key file key is a PKCS#1 PEM`, file.keyIsPkcs1Pem === true, JSON.stringify(file));
  checks.check(
    `${label}: key file expirationDate is the requested one`,
    typeof file.expirationDate === "string" && Date.parse(file.expirationDate) === Date.parse(expiration),
    `got ${JSON.stringify(file.expirationDate)}, want ${expiration}`,
  );
  const listed = r?.listAfterAdd;
  checks.equal(`${label}: ListKeys with a userIdFilter: totalResult`, listed?.totalResult, "1");
  checks.equal(`${label}: ListKeys with a userIdFilter: appliedLimit defaults to 100`, listed?.appliedLimit, "100");
  checks.equal(`${label}: ListKeys lists exactly the new key`, listed?.keys?.map((k) => k.id), [keyId]);
  const key = listed?.keys?.[0];
  checks.equal(`${label}: listed key: userId`, key?.userId, userId);
  checks.equal(`${label}: listed key: organizationId`, key?.organizationId, adminOrgId);
  checks.equal(`${label}: listed key: expirationDate`, key?.expirationDate, expiration);
  checks.equal(`${label}: listed key: creationDate is AddKey's`, key?.creationDate, r?.addKey?.creationDate);
  checks.check(`${label}: RemoveKey returns a deletion date`, !Number.isNaN(Date.parse(r?.removeKey?.deletionDate ?? "")), JSON.stringify(r?.removeKey));
  checkFailure(label, "RemoveKey again", r?.removeKeyAgain, NOT_FOUND, ID_REMOVE_NOT_FOUND, { grpcWeb: false });
  checks.equal(`${label}: ListKeys after RemoveKey: no keys`, r?.listAfterRemove?.ids, []);
  checks.equal(`${label}: ListKeys after RemoveKey: totalResult 0`, r?.listAfterRemove?.totalResult, "0");
  checks.check(`${label}: DeleteUser returns a change date`, !Number.isNaN(Date.parse(r?.deleteUser?.changeDate ?? "")), JSON.stringify(r?.deleteUser));
  checks.equal(`${label}: DeleteUser: resource owner is the org`, r?.deleteUser?.resourceOwner, adminOrgId);
  checkFailure(label, "ListKeys without a token", r?.noToken, UNAUTHENTICATED, ID_V2_UNAUTHENTICATED, { grpcWeb: false });
  checkFailure(label, "ListKeys with an invalid token", r?.badToken, UNAUTHENTICATED, ID_V2_UNAUTHENTICATED, { grpcWeb: false });
}

function checkRest(r) {
  checks.equal("REST: POST .../keys/_search status", r?.search?.status, 200);
  checks.check("REST: answers JSON", (r?.search?.contentType ?? "").startsWith("application/json"), `got ${r?.search?.contentType}`);
  checks.equal("REST: lists the key added over gRPC-Web", r?.search?.ids, [r?.keyId]);
  checks.equal("REST: key type", r?.search?.types, ["KEY_TYPE_JSON"]);
  checks.equal("REST: totalResult (uint64 as a string)", r?.search?.totalResult, "1");
  checks.equal("REST: DELETE .../keys/{id} status", r?.delete?.status, 200);
  checks.equal("REST: GET of the removed key status", r?.getGone?.status, 404);
  checks.equal("REST: error body code", r?.getGone?.body?.code, NOT_FOUND);
  checks.equal(
    "REST: error body details",
    r?.getGone?.body?.details?.map((d) => [d["@type"], d.id]),
    [[`type.googleapis.com/${ERROR_DETAIL}`, ID_GET_NOT_FOUND]],
  );
}

// What Chromium put on the wire for the Connect clients: the Connect protocol (never gRPC-Web)
// with the page's Origin, each call carrying Connect-Protocol-Version and Connect-Timeout-Ms,
// answered in the request's format (errors always as Connect's JSON error body).
function checkConnectWire(all) {
  const procedure = /^\/zitadel\.[a-z0-9.]+\.[A-Za-z]+Service\/[A-Za-z]+$/;
  const connectCalls = all.filter((w) => procedure.test(w.path) && !(w.request["content-type"] ?? "").startsWith("application/grpc"));
  const want = {
    "ManagementService/GetMyOrg": [200],
    "UserService/AddKey": [200],
    "UserService/CreateUser": [200],
    "UserService/DeleteUser": [200],
    "UserService/ListKeys": [200, 200, 401, 401],
    "UserService/RemoveKey": [200, 404],
  };
  for (const [label, type] of Object.entries(CONNECT_TYPES)) {
    const mine = connectCalls.filter((w) => w.request["content-type"] === type);
    checks.equal(`wire: ${label}: Connect requests with content-type ${type}`, mine.length, 10);
    const seen = {};
    for (const w of mine) (seen[w.path.split(".").pop()] ??= []).push(w.status);
    for (const statuses of Object.values(seen)) statuses.sort((a, b) => a - b);
    checks.equal(`${label}: wire: procedures and HTTP statuses`, Object.fromEntries(Object.entries(seen).sort()), want);
    checks.check(
      `wire: ${label}: every request is a POST with the page's Origin`,
      mine.length > 0 && mine.every((w) => w.method === "POST" && w.request.origin === AK_PAGE_ORIGIN),
      JSON.stringify([...new Set(mine.map((w) => `${w.method} ${w.request.origin}`))]),
    );
    checks.check(
      `wire: ${label}: every request sends connect-protocol-version 1 and connect-timeout-ms`,
      mine.length > 0 && mine.every((w) => w.request["connect-protocol-version"] === "1" && /^[0-9]{1,10}$/.test(w.request["connect-timeout-ms"] ?? "")),
      JSON.stringify([...new Set(mine.map((w) => `${w.request["connect-protocol-version"]} ${w.request["connect-timeout-ms"]}`))]),
    );
    checks.check(
      `wire: ${label}: no gRPC-Web headers`,
      mine.every((w) => !("x-grpc-web" in w.request) && !("grpc-timeout" in w.request)),
      JSON.stringify(mine.map((w) => Object.keys(w.request)).flat().filter((h) => h.startsWith("grpc") || h === "x-grpc-web")),
    );
    const ok = mine.filter((w) => w.status === 200);
    const failed = mine.filter((w) => w.status !== 200);
    checks.check(
      `wire: ${label}: successes are answered as ${type}`,
      ok.length === 7 && ok.every((w) => (w.response["content-type"] ?? "").split(";")[0].trim() === type),
      JSON.stringify([...new Set(ok.map((w) => w.response["content-type"]))]),
    );
    checks.check(
      `wire: ${label}: errors are answered as application/json (Connect error body)`,
      failed.length === 3 && failed.every((w) => (w.response["content-type"] ?? "").split(";")[0].trim() === "application/json"),
      JSON.stringify([...new Set(failed.map((w) => w.response["content-type"]))]),
    );
    checks.check(
      `wire: ${label}: every answer allows the page's origin`,
      mine.length > 0 && mine.every((w) => w.response["access-control-allow-origin"] === AK_PAGE_ORIGIN),
      JSON.stringify([...new Set(mine.map((w) => w.response["access-control-allow-origin"]))]),
    );
  }
  const rest = all.filter((w) => w.path.startsWith("/management/v1/"));
  checks.equal("wire: REST requests seen", rest.length, 3);
}

// ---- the page on an origin the server does not allow ---------------------------------------

async function myOrgFromNode(token) {
  const resp = await fetch(`${AK_URL}/management/v1/orgs/me`, { headers: { authorization: `Bearer ${token}` } });
  const body = await resp.json().catch(() => null);
  return body?.org?.id ?? null;
}

async function addUserFromNode(token, userName) {
  const resp = await fetch(`${AK_URL}/management/v1/users/machine`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ userName, name: "created from node" }),
  });
  return { status: resp.status, body: await resp.json().catch(() => null) };
}

function checkBlocked(r, corsMessages, token, userName) {
  checks.equal("other origin: page origin", r?.pageOrigin, AK_OTHER_ORIGIN);
  const connect = r?.["connect-web"];
  checks.check(
    "other origin: connect-web call fails in fetch, without a gRPC status",
    /TypeError: Failed to fetch/.test(connect?.cause ?? "") && (connect?.errorDetails ?? []).length === 0,
    JSON.stringify(connect),
  );
  const grpcWeb = r?.["grpc-web-text"];
  checks.check(
    "other origin: grpc-web call fails without a server status or trailers",
    grpcWeb?.code !== undefined && grpcWeb.code !== 0 && grpcWeb.code !== UNAUTHENTICATED &&
      !(grpcWeb.metadataKeys ?? []).includes("grpc-status") && (grpcWeb.errorDetails ?? []).length === 0,
    JSON.stringify(grpcWeb),
  );
  for (const label of Object.keys(CONNECT_TYPES)) {
    const failure = r?.[label];
    checks.check(
      `other origin: ${label} CreateUser fails in fetch, without a Connect error`,
      /TypeError: Failed to fetch/.test(failure?.cause ?? "") && (failure?.errorDetails ?? []).length === 0,
      JSON.stringify(failure),
    );
  }
  checks.check("other origin: REST fetch fails", /TypeError/.test(r?.rest?.thrown ?? ""), JSON.stringify(r?.rest));
  checks.check(
    "other origin: Chromium reports each call blocked by CORS policy",
    corsMessages.length >= 5,
    `${corsMessages.length} messages: ${JSON.stringify(corsMessages)}`,
  );
  return Promise.all(
    ["connect-web", "grpc-web-text", ...Object.keys(CONNECT_TYPES)].map(async (label) => {
      const name = `${userName}-${label}`;
      const again = await addUserFromNode(token, name);
      checks.check(
        `other origin: the blocked ${label} ${label in CONNECT_TYPES ? "CreateUser" : "AddMachineUser"} never ran (its user name is still free)`,
        again.status === 200 && /^[0-9]+$/.test(again.body?.userId ?? ""),
        JSON.stringify(again),
      );
    }),
  );
}

// ---- main ------------------------------------------------------------------------------------

const token = await accessToken(AK_ADMIN_KEY, AK_URL);
const adminOrgId = await myOrgFromNode(token);
checks.check("the admin's org id (REST GetMyOrg from node)", /^[0-9]+$/.test(adminOrgId ?? ""), JSON.stringify(adminOrgId));
await corsHeaders();

const browser = await launch();
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
  // every exchange of the page with the server (gRPC-Web, Connect, REST), with the headers
  // Chromium really sent and received
  const wire = [];
  page.on("requestfinished", (req) => {
    if (!req.url().startsWith(`${AK_URL}/`)) return;
    wire.push(
      (async () => {
        const resp = await req.response();
        return {
          method: req.method(),
          path: new URL(req.url()).pathname,
          request: await req.allHeaders(),
          status: resp ? resp.status() : null,
          response: resp ? await resp.allHeaders() : {},
        };
      })(),
    );
  });

  await page.goto(`${AK_PAGE_ORIGIN}/`);
  await page.waitForFunction(() => window.akBrowserReady === true);
  const result = await withTimeout(
    page.evaluate((args) => window.akBrowser.run(args), { serverUrl: AK_URL, token, runId }),
    30000,
    "page run",
  );
  if (process.env.AK_BROWSER_DEBUG) console.log(JSON.stringify(result, null, 2));

  checks.equal("page origin", result.pageOrigin, AK_PAGE_ORIGIN);
  checks.check("page and server are different origins", result.pageOrigin !== result.serverOrigin, result.serverOrigin);
  checkLifecycle("connect-web", result["connect-web"], result.expiration, false);
  checkLifecycle("grpc-web-text", result["grpc-web-text"], result.expiration, true);
  for (const label of Object.keys(CONNECT_TYPES)) {
    checkConnectLifecycle(label, result[label], result.expiration, adminOrgId);
  }
  checks.check(
    "connect-json and connect-binary made different users and keys",
    result["connect-json"]?.userId !== result["connect-binary"]?.userId && result["connect-json"]?.keyId !== result["connect-binary"]?.keyId,
    JSON.stringify([result["connect-json"]?.keyId, result["connect-binary"]?.keyId]),
  );
  checkRest(result.rest);
  checkSnippet(result.snippet);

  // Playwright reports finished requests asynchronously: wait for all the page made
  // (gRPC-Web: 10 calls per client, plus 2 connect-web calls setting up the REST part and the
  // the docs example's 2; Connect: 10 calls per format; REST: 3).
  const expected = { binary: 14, text: 10, connect: 10, rest: 3 };
  const expectedTotal = expected.binary + expected.text + 2 * expected.connect + expected.rest;
  for (let i = 0; i < 50 && wire.length < expectedTotal; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const all = await Promise.all(wire);
  checks.equal("wire: exchanges with the server seen", all.length, expectedTotal);
  const exchanges = all.filter((w) => (w.request["content-type"] ?? "").startsWith("application/grpc-web"));
  const byType = (t) => exchanges.filter((w) => w.request["content-type"] === t);
  const binary = byType("application/grpc-web+proto");
  const text = byType("application/grpc-web-text");
  checks.equal("wire: gRPC-Web exchanges seen", exchanges.length, expected.binary + expected.text);
  checks.check(
    "wire: connect-web sent binary gRPC-Web and got binary back",
    binary.length === expected.binary &&
      binary.every((w) => (w.response["content-type"] ?? "").startsWith("application/grpc-web+proto")),
    `${binary.length} requests, answered ${JSON.stringify([...new Set(binary.map((w) => w.response["content-type"]))])}`,
  );
  checks.check(
    "wire: grpc-web sent gRPC-Web text and got text back",
    text.length === expected.text &&
      text.every((w) => (w.response["content-type"] ?? "").startsWith("application/grpc-web-text")),
    `${text.length} requests, answered ${JSON.stringify([...new Set(text.map((w) => w.response["content-type"]))])}`,
  );
  checks.check(
    "wire: every gRPC-Web request came with the page's Origin",
    exchanges.length > 0 && exchanges.every((w) => w.request.origin === AK_PAGE_ORIGIN),
    JSON.stringify([...new Set(exchanges.map((w) => w.request.origin))]),
  );
  checkConnectWire(all);
  const blockedHere = consoleErrors.filter((m) => /CORS policy/.test(m));
  checks.equal("allowed origin: nothing blocked by CORS", blockedHere, []);

  // the same page, from an origin not in AUTHN_KEYS_CORS_ORIGINS
  const other = await context.newPage();
  other.setDefaultTimeout(15000);
  const otherConsole = [];
  other.on("console", (m) => otherConsole.push(m.text()));
  await other.goto(`${AK_OTHER_ORIGIN}/`);
  await other.waitForFunction(() => window.akBrowserReady === true);
  const userName = `browser-blocked-${runId}`;
  const blocked = await withTimeout(
    other.evaluate((args) => window.akBrowser.blocked(args), { serverUrl: AK_URL, token, userName, orgId: adminOrgId }),
    30000,
    "blocked run",
  );
  if (process.env.AK_BROWSER_DEBUG) console.log(JSON.stringify({ blocked, otherConsole }, null, 2));
  const corsMessages = otherConsole.filter(
    (m) => m.includes(`from origin '${AK_OTHER_ORIGIN}' has been blocked by CORS policy`),
  );
  await checkBlocked(blocked, corsMessages, token, userName);
} catch (e) {
  checks.check("browser run completes", false, e?.stack ?? String(e));
} finally {
  await browser.close();
}
checks.finish();
