// Events and webhooks against the real server: a receiver (node:http on 127.0.0.1) takes the
// deliveries and `standardwebhooks` verifies each one, as a receiver in production would.
// Webhooks are added over REST and over Connect (one with a types filter, one whose receiver
// answers 500 once), events are made through the REST API (a machine user, a key added,
// disabled, enabled, removed), and the trail is read back with ListEvents over REST and
// Connect, with each delivery's state. Permissions: a viewer reads, but manages no webhooks.
// On the strict server (no AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE) private addresses, http and
// localhost are refused when a webhook is added; nothing is ever sent to them.
//
//   AK_URL=… AK_ADMIN_KEY=… [AK_STRICT_URL=… AK_STRICT_ADMIN_KEY=…] node run.mjs   (run.sh sets them)
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { Checks } from "../lib/browser.mjs";
import { accessToken, assertion } from "../lib/token.mjs";

const ISSUER = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
const STRICT_URL = process.env.AK_STRICT_URL;
const STRICT_KEY = process.env.AK_STRICT_ADMIN_KEY;
if (!ISSUER || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (see run.sh)");
  process.exit(2);
}
const EVENTS = "authnkeys.v1.EventService";
const KEY_TYPES = ["key.added", "key.disabled", "key.enabled", "key.removed"];
const t = new Checks("webhooks");
const started = Date.now();
const suffix = Date.now().toString(36);
const adminFile = JSON.parse(readFileSync(ADMIN_KEY, "utf8"));

const watchdog = setTimeout(() => {
  t.check("finished within 100 s", false);
  t.finish();
  process.exit(1);
}, 100_000);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it gives a truthy value (returned) or `ms` pass (the last value). */
async function until(probe, ms = 10_000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value || Date.now() >= end) return value;
    await sleep(every);
  }
}

// ---------------------------------------------------------------- the receiver

// Every request the receiver got, in arrival order: { path, headers, raw (Buffer), body, at, status }.
const received = [];
// webhook-ids already answered 500 on /flaky: each is refused once, then taken.
const refusedOnce = new Set();
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    let body = null;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      // kept as null: a check below fails on it
    }
    const id = req.headers["webhook-id"];
    let status = req.url === "/flaky" ? 204 : 200;
    if (req.url === "/flaky" && !refusedOnce.has(id)) {
      refusedOnce.add(id);
      status = 500;
    }
    received.push({ path: req.url, method: req.method, headers: { ...req.headers }, raw, body, at: Date.now(), status });
    res.writeHead(status, { "content-type": "text/plain" }).end(status === 500 ? "not now" : status === 200 ? "ok" : undefined);
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const RECEIVER = `http://127.0.0.1:${receiver.address().port}`;
const at = (path) => received.filter((d) => d.path === path);
const ofKey = (path, keyId) => at(path).filter((d) => d.body?.data?.keyId === keyId);

// ---------------------------------------------------------------- calls

async function send(url, method, token, body, headers = {}) {
  const resp = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: resp.status, type: resp.headers.get("content-type") || "", body: json };
}
const admin = await accessToken(ADMIN_KEY, ISSUER);
const rest = (method, path, body, token = admin) => send(`${ISSUER}${path}`, method, token, body);
// Connect unary with JSON: POST /<service>/<method>, the request message as the body.
const connect = (method, body, token = admin) => send(`${ISSUER}/${EVENTS}/${method}`, "POST", token, body, { "connect-protocol-version": "1" });
const errorId = (res) => res.body?.details?.[0]?.id ?? res.body?.details?.find?.((d) => d.debug)?.debug?.id;

/** A token for a key file given as ZITADEL's base64 keyDetails. */
async function tokenFor(keyDetails) {
  const keyFile = JSON.parse(Buffer.from(keyDetails, "base64").toString("utf8"));
  const resp = await fetch(`${ISSUER}/oauth/v2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: assertion(keyFile, ISSUER),
      scope: "openid urn:zitadel:iam:org:project:id:zitadel:aud",
    }),
  });
  const body = await resp.json();
  if (!resp.ok) throw new Error(`token request failed: ${resp.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** An object with its keys sorted (JSON objects have no order to compare). */
const sorted = (obj) => (obj && typeof obj === "object" ? Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]])) : obj);

/** Verifies one delivery with a secret; true, or the error's message. */
function verifies(secret, payload, headers) {
  try {
    new Webhook(secret).verify(payload, headers);
    return true;
  } catch (e) {
    return e instanceof WebhookVerificationError ? `refused: ${e.message}` : `error: ${e}`;
  }
}
const refused = (result) => typeof result === "string" && result.startsWith("refused");

try {
  // ---------------------------------------------------------------- webhooks added
  const addedA = await rest("POST", "/v1/webhooks", { url: `${RECEIVER}/a` });
  t.equal("AddWebhook over REST", addedA.status, 200);
  const hookA = addedA.body.webhook ?? {};
  const secretA = addedA.body.secret ?? "";
  t.check("the secret is a Standard Webhooks secret (whsec_ and base64)", /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/.test(secretA), secretA.slice(0, 6));
  t.check("the webhook: id, url, no types (every type), org, creation", /^\d+$/.test(hookA.id ?? "") && hookA.url === `${RECEIVER}/a` && !hookA.types && !!hookA.orgId && !!hookA.createdAt, JSON.stringify(hookA));
  t.equal("made by the admin", hookA.createdBy, adminFile.userId);
  t.equal("an IAM_OWNER's webhook takes every org's events", hookA.allOrgs, true);

  const addedB = await connect("AddWebhook", { url: `${RECEIVER}/b`, types: ["key.added", "key.removed"] });
  t.equal("AddWebhook over Connect", addedB.status, 200);
  t.check("Connect answers JSON", addedB.type.startsWith("application/json"), addedB.type);
  const hookB = addedB.body.webhook ?? {};
  const secretB = addedB.body.secret ?? "";
  t.equal("with its types filter", hookB.types, ["key.added", "key.removed"]);
  t.check("and a secret of its own", secretB.startsWith("whsec_") && secretB !== secretA);

  const addedFlaky = await rest("POST", "/v1/webhooks", { url: `${RECEIVER}/flaky`, types: ["user.added"] });
  t.equal("AddWebhook for a receiver that answers 500 once", addedFlaky.status, 200);
  const hookFlaky = addedFlaky.body.webhook ?? {};
  const secretFlaky = addedFlaky.body.secret ?? "";

  const unknown = await rest("POST", "/v1/webhooks", { url: `${RECEIVER}/c`, types: ["key.stolen"] });
  t.check("an unknown type is INVALID_ARGUMENT naming the known ones", unknown.status === 400 && errorId(unknown) === "EVENT-Type01" && /key\.expiring/.test(unknown.body?.message ?? ""), JSON.stringify(unknown.body));

  const listed = await rest("POST", "/v1/webhooks/_search", {});
  t.equal("ListWebhooks: the three", (listed.body.result ?? []).map((w) => w.id).sort(), [hookA.id, hookB.id, hookFlaky.id].sort());
  t.equal("with the total", listed.body.totalResult, "3");
  t.check("and never a secret", !JSON.stringify(listed.body).includes("whsec_"), JSON.stringify(listed.body).slice(0, 200));

  // ---------------------------------------------------------------- events made
  const user = await rest("POST", "/management/v1/users/machine", { userName: `hooked-${suffix}`, name: "hooked" });
  t.equal("AddMachineUser", user.status, 200);
  const userId = user.body.userId;
  const key = await rest("POST", `/management/v1/users/${userId}/keys`, { type: "KEY_TYPE_JSON" });
  t.equal("AddMachineKey", key.status, 200);
  const keyId = key.body.keyId;
  const disabled = await rest("POST", `/v1/keys/${keyId}/_disable`, { reason: "rotating after a CI leak" });
  t.equal("DisableKey", disabled.body.key?.state, "KEY_STATE_DISABLED");
  const enabled = await rest("POST", `/v1/keys/${keyId}/_enable`, {});
  t.equal("EnableKey", enabled.body.key?.state, "KEY_STATE_ACTIVE");
  const removed = await rest("DELETE", `/management/v1/users/${userId}/keys/${keyId}`);
  t.equal("RemoveMachineKey", removed.status, 200);

  // ---------------------------------------------------------------- deliveries
  const allFour = await until(() => ofKey("/a", keyId).length >= 4 && ofKey("/b", keyId).length >= 2, 10_000);
  t.check("the key's four events reach the webhook without a filter within 10 s", allFour, `${ofKey("/a", keyId).length} at /a, ${ofKey("/b", keyId).length} at /b`);
  t.equal("in the order they happened", ofKey("/a", keyId).map((d) => d.body.type), KEY_TYPES);
  const ids = ofKey("/a", keyId).map((d) => BigInt(d.body.data.id));
  t.check("with increasing event ids", ids.every((id, i) => i === 0 || id > ids[i - 1]), ids.join(", "));
  t.equal("the filtered webhook gets only its types, in order", ofKey("/b", keyId).map((d) => d.body.type), ["key.added", "key.removed"]);
  t.check("and nothing else at all", at("/b").every((d) => ["key.added", "key.removed"].includes(d.body?.type)), at("/b").map((d) => d.body?.type).join(", "));
  const userAdded = await until(() => at("/a").find((d) => d.body?.type === "user.added" && d.body.data.userId === userId), 5000);
  t.check("user.added reaches the webhook without a filter", !!userAdded);

  const secrets = { "/a": secretA, "/b": secretB };
  for (const [path, secret] of Object.entries(secrets)) {
    const results = at(path).map((d) => verifies(secret, d.raw, d.headers));
    const bad = results.filter((r) => r !== true);
    t.check(`every delivery to ${path} verifies with its secret (${results.length})`, results.length > 0 && bad.length === 0, bad.join("; "));
  }
  const sample = ofKey("/a", keyId).find((d) => d.body.type === "key.disabled") ?? at("/a")[0];
  const h = sample?.headers ?? {};
  t.check("POST with content-type application/json", sample?.method === "POST" && /^application\/json/.test(h["content-type"] ?? ""), JSON.stringify(h));
  t.equal("webhook-id is the event's id", h["webhook-id"], sample?.body?.data?.id);
  t.check("webhook-signature is v1,<base64>", /^v1,[A-Za-z0-9+/]{43}=$/.test(h["webhook-signature"] ?? ""), h["webhook-signature"]);
  t.check("webhook-timestamp is the attempt's time in seconds", Math.abs(Number(h["webhook-timestamp"]) * 1000 - (sample?.at ?? 0)) < 30_000, h["webhook-timestamp"]);
  const ev = sample?.body ?? {};
  t.check("the body: {type, timestamp, data: Event}", ev.type === "key.disabled" && ev.timestamp === ev.data?.time && ev.data?.type === ev.type, JSON.stringify(ev).slice(0, 300));
  t.equal("the event names the key, the user and the actor", [ev.data?.keyId, ev.data?.userId, ev.data?.actor?.userId], [keyId, userId, adminFile.userId]);
  t.equal("and says why it was disabled", ev.data?.data?.reason, "rotating after a CI leak");
  const keyAdded = ofKey("/a", keyId)[0]?.raw.toString("utf8") ?? "";
  t.check("no key material in a delivery", !/PRIVATE KEY|BEGIN|keyDetails/.test(keyAdded) && !at("/a").some((d) => d.raw.includes("PRIVATE KEY")), keyAdded.slice(0, 300));

  // What a receiver must refuse.
  const tampered = Buffer.from(sample.raw.toString("utf8").replace("rotating after a CI leak", "nothing happened here"));
  t.check("a tampered body fails verification", refused(verifies(secretA, tampered, h)), verifies(secretA, tampered, h));
  t.check("another webhook's secret fails verification", refused(verifies(secretB, sample.raw, h)), verifies(secretB, sample.raw, h));
  t.check("another webhook-id fails verification", refused(verifies(secretA, sample.raw, { ...h, "webhook-id": `${h["webhook-id"]}1` })));
  const stale = String(Number(h["webhook-timestamp"]) - 3600);
  t.check("an hour-old timestamp fails verification", refused(verifies(secretA, sample.raw, { ...h, "webhook-timestamp": stale })));

  // The receiver that answered 500 once.
  const flakyTwice = await until(() => {
    const got = at("/flaky").filter((d) => d.body?.data?.userId === userId);
    return got.length >= 2 ? got : null;
  }, 12_000);
  const [first, second] = flakyTwice ?? at("/flaky");
  t.check("a receiver that answered 500 gets the same webhook-id again", !!flakyTwice && first.headers["webhook-id"] === second.headers["webhook-id"] && first.status === 500 && second.status === 204, at("/flaky").map((d) => `${d.headers["webhook-id"]}:${d.status}`).join(", "));
  t.check("within 10 s", !!flakyTwice && second.at - first.at <= 10_000, flakyTwice ? `${second.at - first.at} ms` : "no retry");
  t.check("both attempts verify with its secret", !!flakyTwice && [first, second].every((d) => verifies(secretFlaky, d.raw, d.headers) === true));
  t.check("the same body bytes, signed anew for the attempt's time", !!flakyTwice && first.raw.equals(second.raw) && Number(second.headers["webhook-timestamp"]) >= Number(first.headers["webhook-timestamp"]));
  t.check("only user.added to the webhook subscribed to it", at("/flaky").every((d) => d.body?.type === "user.added"), at("/flaky").map((d) => d.body?.type).join(", "));

  // ---------------------------------------------------------------- the trail
  const sent = (e, hookId) => (e.deliveries ?? []).find((d) => d.webhookId === hookId);
  const settled = await until(async () => {
    const res = await rest("POST", "/v1/events/_search", { keyId, asc: true });
    const events = res.body.result ?? [];
    const done = events.length === 4 && events.every((e) => sent(e, hookA.id)?.state === "DELIVERY_STATE_SENT");
    return done ? res : null;
  }, 5000);
  const trail = settled ?? (await rest("POST", "/v1/events/_search", { keyId, asc: true }));
  const events = trail.body.result ?? [];
  t.equal("ListEvents over REST: the key's events, oldest first", events.map((e) => e.type), KEY_TYPES);
  t.equal("with the total", trail.body.totalResult, "4");
  t.equal("the same ids the receiver got", events.map((e) => e.id), ofKey("/a", keyId).map((d) => d.body.data.id));
  t.check("each delivered to the webhook without a filter: SENT, one attempt, 200", events.length === 4 && events.every((e) => {
    const d = sent(e, hookA.id);
    return d?.state === "DELIVERY_STATE_SENT" && d.attempts === 1 && d.lastStatus === 200 && !!d.lastAttemptAt;
  }), JSON.stringify(events.map((e) => e.deliveries)));
  t.equal("to the filtered webhook: only added and removed", events.map((e) => sent(e, hookB.id)?.state ?? "-"), ["DELIVERY_STATE_SENT", "-", "-", "DELIVERY_STATE_SENT"]);
  t.equal("the recorded event is what was delivered", sorted(events[1]?.data), sorted(ofKey("/a", keyId)[1]?.body.data.data));

  const newest = await rest("POST", "/v1/events/_search", { keyId });
  t.equal("newest first by default", (newest.body.result ?? []).map((e) => e.type), [...KEY_TYPES].reverse());
  const paged = await rest("POST", "/v1/events/_search", { keyId, asc: true, limit: 2, offset: 1 });
  t.equal("limit and offset", [(paged.body.result ?? []).map((e) => e.type), paged.body.totalResult], [["key.disabled", "key.enabled"], "4"]);
  const onlyDisabled = await rest("POST", "/v1/events/_search", { keyId, types: ["key.disabled"] });
  t.equal("a types filter", (onlyDisabled.body.result ?? []).map((e) => e.type), ["key.disabled"]);
  const byUser = await rest("POST", "/v1/events/_search", { userId, asc: true });
  t.equal("a userId filter: the user and its key", (byUser.body.result ?? []).map((e) => e.type), ["user.added", ...KEY_TYPES]);
  const future = await rest("POST", "/v1/events/_search", { keyId, since: new Date(Date.now() + 3_600_000).toISOString() });
  t.equal("since: nothing from the future", [future.status, future.body.result ?? [], future.body.totalResult ?? "0"], [200, [], "0"]);
  const badType = await rest("POST", "/v1/events/_search", { types: ["key.stolen"] });
  t.check("an unknown type in the filter is INVALID_ARGUMENT", badType.status === 400 && errorId(badType) === "EVENT-Type01", JSON.stringify(badType.body));

  const flakyEvent = (byUser.body.result ?? [])[0];
  const flakyDelivery = flakyEvent ? sent(flakyEvent, hookFlaky.id) : null;
  t.check("the retried delivery: SENT after two attempts, 204", flakyDelivery?.state === "DELIVERY_STATE_SENT" && flakyDelivery.attempts === 2 && flakyDelivery.lastStatus === 204, JSON.stringify(flakyDelivery));

  const overConnect = await connect("ListEvents", { keyId, asc: true });
  t.equal("ListEvents over Connect", overConnect.status, 200);
  t.equal("the same events", (overConnect.body.result ?? []).map((e) => e.id), events.map((e) => e.id));
  t.check("with the deliveries SENT", (overConnect.body.result ?? []).every((e) => sent(e, hookA.id)?.state === "DELIVERY_STATE_SENT"));
  const connectFiltered = await connect("ListEvents", { keyId, types: ["key.enabled"] });
  t.equal("Connect: a types filter", (connectFiltered.body.result ?? []).map((e) => e.type), ["key.enabled"]);
  const connectBad = await connect("ListEvents", { types: ["key.stolen"] });
  t.equal("Connect: an unknown type is invalid_argument", [connectBad.status, connectBad.body?.code], [400, "invalid_argument"]);

  const counters = await rest("POST", "/v1/webhooks/_search", {});
  const listedA = (counters.body.result ?? []).find((w) => w.id === hookA.id) ?? {};
  t.equal("ListWebhooks: nothing pending or failed once delivered", [listedA.pendingDeliveries ?? "0", listedA.failedDeliveries ?? "0"], ["0", "0"]);

  // ---------------------------------------------------------------- who may do what
  const viewer = await rest("POST", "/management/v1/users/machine", { userName: `auditor-${suffix}`, name: "auditor" });
  const viewerId = viewer.body.userId;
  const member = await rest("POST", "/management/v1/orgs/me/members", { userId: viewerId, roles: ["ORG_OWNER_VIEWER"] });
  t.equal("an ORG_OWNER_VIEWER is added", member.status, 200);
  const viewerKey = await rest("POST", `/management/v1/users/${viewerId}/keys`, { type: "KEY_TYPE_JSON" });
  const viewerToken = await tokenFor(viewerKey.body.keyDetails);
  const viewerEvents = await rest("POST", "/v1/events/_search", { keyId, asc: true }, viewerToken);
  t.equal("an ORG_OWNER_VIEWER reads the events", (viewerEvents.body.result ?? []).map((e) => e.type), KEY_TYPES);
  const viewerHooks = await rest("POST", "/v1/webhooks/_search", {}, viewerToken);
  t.equal("and the webhooks", viewerHooks.status, 200);
  const viewerAdd = await rest("POST", "/v1/webhooks", { url: `${RECEIVER}/viewer` }, viewerToken);
  t.equal("but adds none (PERMISSION_DENIED)", viewerAdd.status, 403);
  const viewerRemove = await rest("DELETE", `/v1/webhooks/${hookA.id}`, undefined, viewerToken);
  t.equal("and removes none", viewerRemove.status, 403);
  const nobody = await rest("POST", "/management/v1/users/machine", { userName: `nobody-${suffix}`, name: "nobody" });
  const nobodyKey = await rest("POST", `/management/v1/users/${nobody.body.userId}/keys`, { type: "KEY_TYPE_JSON" });
  const nobodyEvents = await rest("POST", "/v1/events/_search", {}, await tokenFor(nobodyKey.body.keyDetails));
  t.equal("a user without a role reads no events", nobodyEvents.status, 403);
  const anonymous = await fetch(`${ISSUER}/v1/events/_search`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  t.equal("nor does a request without a token", anonymous.status, 401);

  // ---------------------------------------------------------------- removal
  const gone = await rest("DELETE", `/v1/webhooks/${hookB.id}`);
  t.equal("RemoveWebhook", gone.status, 200);
  const afterRemoval = await rest("POST", "/v1/webhooks/_search", {});
  t.check("ListWebhooks no longer lists it", !(afterRemoval.body.result ?? []).some((w) => w.id === hookB.id) && afterRemoval.body.totalResult === "2", JSON.stringify(afterRemoval.body));
  const again = await rest("DELETE", `/v1/webhooks/${hookB.id}`);
  t.equal("removing it again is NOT_FOUND", again.status, 404);
  const bAtRemoval = at("/b").length;
  const later = await rest("POST", `/management/v1/users/${userId}/keys`, { type: "KEY_TYPE_JSON" });
  const laterId = later.body.keyId;
  const reachedA = await until(() => ofKey("/a", laterId).length > 0, 10_000);
  t.check("a later key.added reaches the remaining webhook", reachedA);
  await sleep(1500);
  t.equal("and not the removed one", at("/b").length, bAtRemoval);

  // ---------------------------------------------------------------- outbound rules (strict server)
  if (STRICT_URL && STRICT_KEY) {
    const strictAdmin = await accessToken(STRICT_KEY, STRICT_URL);
    const strict = (body) => send(`${STRICT_URL}/v1/webhooks`, "POST", strictAdmin, body);
    const privateAddress = await strict({ url: "https://10.0.0.1/hook" });
    t.check(
      "strict server: an https URL to 10.0.0.1 is refused with 400 (OUT-Url07)",
      privateAddress.status === 400 && errorId(privateAddress) === "OUT-Url07",
      JSON.stringify(privateAddress.body),
    );
    t.check("saying how development allows it", /AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE/.test(privateAddress.body?.message ?? ""), privateAddress.body?.message);
    const plain = await strict({ url: `${RECEIVER}/strict` });
    t.check("strict server: http is refused (OUT-Url03)", plain.status === 400 && errorId(plain) === "OUT-Url03", JSON.stringify(plain.body));
    const local = await strict({ url: "https://localhost/hook" });
    t.check("strict server: localhost is refused (OUT-Url08)", local.status === 400 && errorId(local) === "OUT-Url08", JSON.stringify(local.body));
    const none = await send(`${STRICT_URL}/v1/webhooks/_search`, "POST", strictAdmin, {});
    t.equal("strict server: no webhook was stored", [none.status, none.body.result ?? [], none.body.totalResult ?? "0"], [200, [], "0"]);
    t.equal("and nothing reached the receiver for it", at("/strict").length, 0);
  } else {
    console.log("skip strict server checks: AK_STRICT_URL is not set");
  }
} catch (err) {
  t.check("the run completed", false, err && err.stack ? err.stack : String(err));
} finally {
  clearTimeout(watchdog);
  // The server keeps connections to the receiver alive: close them, then the listener.
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s, ${received.length} deliveries received)`);
  t.finish();
}
