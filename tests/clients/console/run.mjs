// The web console (/ui/) driven through headless Chromium against a real server: sign-in with
// a key file (RSA and Ed25519) and with a token, who is signed in, org switching, machine
// users and their keys (generated of several algorithms and uploaded RSA and EC; algorithm,
// origin, state, last use; disable with a reason, enable; filters), the org's key policy and
// members, a machine user's trusts (add with an inline JWKS, a refused one, remove; the trust
// added here exchanges an outside token for an access token), projects, API apps and app
// keys, the org's events (type filter, load more, each
// delivery's state) and webhooks (add with the secret shown once, list, remove; read-only for a
// viewer), error ids, keyboard-only use, phone layout, and a strict Content-Security-Policy.
// Started by run.sh, which sets AK_URL and AK_ADMIN_KEY.
import { createPrivateKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Checks, launch } from "../lib/browser.mjs";
import { accessToken, assertion } from "../lib/token.mjs";
import { Webhook } from "standardwebhooks";
import { SignJWT } from "jose";

const here = dirname(fileURLToPath(import.meta.url));
const AK_URL = process.env.AK_URL;
const ADMIN_KEY = process.env.AK_ADMIN_KEY;
if (!AK_URL || !ADMIN_KEY) {
  console.error("AK_URL and AK_ADMIN_KEY must be set (run.sh does that)");
  process.exit(2);
}
const ARTIFACTS = process.env.ARTIFACTS_DIR || join(here, "../../../target/client-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
// Downloaded key files hold private keys: they go to a private temporary directory, never
// to the artifacts.
const secrets = mkdtempSync(join(tmpdir(), "ak-console-"));

const UI = `${AK_URL}/ui/`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
// What a deployment should send with the console; the test adds it when the server does not,
// so any inline script or style in the console shows up as a violation.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const t = new Checks("console");
// Pages opened along the way, checked for CSP violations and script errors at the end.
const extraPages = [];
const started = Date.now();
const suffix = Date.now().toString(36);
const adminFile = JSON.parse(readFileSync(ADMIN_KEY, "utf8"));

const watchdog = setTimeout(() => {
  t.check("finished within 85 s", false);
  t.finish();
  process.exit(1);
}, 85_000);

async function newPage(browser, viewport) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  let serverCsp = null;
  await context.route(`${AK_URL}/ui/**`, async (route) => {
    const response = await route.fetch();
    const headers = response.headers();
    serverCsp = serverCsp ?? headers["content-security-policy"] ?? "";
    if (!headers["content-security-policy"]) headers["content-security-policy"] = CSP;
    await route.fulfill({ response, headers });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.serverCsp = () => serverCsp;
  return page;
}

const visible = (page, sel, timeout = 10_000) =>
  page.locator(sel).first().waitFor({ state: "visible", timeout }).then(() => true, () => false);
const gone = (page, sel, timeout = 10_000) =>
  page.locator(sel).first().waitFor({ state: "detached", timeout }).then(() => true, () => false);
const textOf = async (page, sel) => ((await page.locator(sel).first().textContent({ timeout: 5000 }).catch(() => "")) || "").trim();
async function waitText(page, sel, re, timeout = 10_000) {
  try {
    await page.waitForFunction(
      ([s, src, flags]) => new RegExp(src, flags).test(document.querySelector(s)?.textContent || ""),
      [sel, re.source, re.flags],
      { timeout },
    );
    return true;
  } catch {
    return false;
  }
}
const overflow = (page) => page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
const keyLi = (list, id) => `#${list}-list li[data-key-id='${id}']`;
const attr = (page, sel, name) => page.locator(sel).first().getAttribute(name, { timeout: 5000 }).catch(() => null);
/** Waits until the key's list item carries `state` (data-state); true when it does. */
async function keyState(page, list, id, state) {
  return visible(page, `${keyLi(list, id)}[data-state='${state}']`);
}
const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });

/** Presses Tab until `sel` has focus; returns the number of presses, or -1. */
async function tabTo(page, sel, max = 80) {
  for (let i = 1; i <= max; i += 1) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, sel)) return i;
  }
  return -1;
}

/** Clicks a list item's Remove button and answers the confirmation dialog. */
async function removeVia(page, label, confirm = true) {
  await page.getByRole("button", { name: label, exact: true }).click();
  await page.locator("#confirm").waitFor({ state: "visible" });
  await page.click(confirm ? "#confirm-ok" : "#confirm-cancel");
  await page.locator("#confirm").waitFor({ state: "hidden" });
}

async function addGeneratedKey(page, submit) {
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15_000 }), page.click(submit)]);
  const name = download.suggestedFilename();
  const path = join(secrets, name.replace(/[^0-9A-Za-z.]/g, "_"));
  await download.saveAs(path);
  return { name, path, file: JSON.parse(readFileSync(path, "utf8")) };
}

const discovery = await (await fetch(`${AK_URL}/.well-known/openid-configuration`)).json();

/** The status of a JWT-profile grant for `keyFile` ({keyId, userId, key}). */
async function tokenRequest(keyFile) {
  const resp = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      scope: "openid urn:zitadel:iam:org:project:id:zitadel:aud",
      assertion: assertion(keyFile, discovery.issuer),
    }),
  });
  return resp.status;
}

// The console's webhook delivers here (the server runs with AUTHN_KEYS_OUTBOUND_ALLOW_INSECURE).
const deliveries = [];
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    deliveries.push({ path: req.url, headers: { ...req.headers }, raw: Buffer.concat(chunks) });
    res.writeHead(204).end();
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const RECEIVER = `http://127.0.0.1:${receiver.address().port}`;

/** A REST call as the admin, for what the console test needs set up behind the page's back. */
let adminToken = null;
async function asAdmin(method, path, body) {
  adminToken = adminToken ?? (await accessToken(ADMIN_KEY, AK_URL));
  const resp = await fetch(`${AK_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: resp.status, body: await resp.json().catch(() => null) };
}

// An outside issuer for keyless sign-in: its tokens are signed here, its key given inline.
const OUTSIDE_ISSUER = "https://issuer.example.com";
const outsideKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const outsideKid = `ci-${suffix}`;
const outsideJwk = { ...outsideKey.publicKey.export({ format: "jwk" }), kid: outsideKid, alg: "ES256", use: "sig" };

/** A token of the outside issuer, exchanged at the token endpoint (RFC 8693). */
async function exchangeOutside(sub, aud, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: outsideKid })
    .setIssuer(OUTSIDE_ISSUER)
    .setSubject(sub)
    .setAudience(aud)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .setJti(randomUUID())
    .sign(outsideKey.privateKey);
  const resp = await fetch(discovery.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: token,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      scope: "openid urn:zitadel:iam:org:project:id:zitadel:aud",
    }),
  });
  return { status: resp.status, body: await resp.json().catch(() => null) };
}

/** Clicks `refresh` until `sel` shows up (a delivery's state changes behind the page). */
async function refreshUntil(page, refresh, sel, tries = 20) {
  for (let i = 0; i < tries; i += 1) {
    if (await visible(page, sel, 500)) return true;
    await page.click(refresh);
  }
  return visible(page, sel, 500);
}

/** True when every event listed has `type` (and there is at least one). */
const onlyType = (page, type) =>
  page
    .waitForFunction(
      (ty) => {
        const items = [...document.querySelectorAll("#events-list li.event-item")];
        return items.length > 0 && items.every((li) => li.dataset.type === ty);
      },
      type,
      { timeout: 10_000 },
    )
    .then(() => true, () => false);

const browser = await launch();
try {
  // ---------------------------------------------------------------- assets
  const assets = {};
  for (const path of ["", "index.html", "app.js", "grpc.js", "auth.js", "style.css"]) {
    const resp = await fetch(`${UI}${path}`);
    assets[path] = { status: resp.status, type: resp.headers.get("content-type") || "" };
  }
  t.check("GET /ui/ and /ui/index.html serve the console", assets[""].status === 200 && assets["index.html"].status === 200 && /text\/html/.test(assets[""].type), JSON.stringify(assets));
  t.check(
    "scripts are served as JavaScript and the stylesheet as CSS (module scripts need it)",
    ["app.js", "grpc.js", "auth.js"].every((p) => assets[p].status === 200 && /javascript/.test(assets[p].type)) && /text\/css/.test(assets["style.css"].type),
    JSON.stringify(assets),
  );

  // ---------------------------------------------------------------- sign-in
  const page = await newPage(browser, DESKTOP);
  const requests = [];
  page.on("request", (r) => requests.push({ url: r.url(), body: r.postDataBuffer() }));
  await page.goto(UI);
  const shown = await visible(page, "#signin-view h1:text('Sign in')");
  t.check("sign-in page shown", shown);
  if (!shown) throw new Error("the console did not load");
  t.equal("page title", await page.title(), "authn-keys console");
  await shot(page, "signin-desktop");

  await page.fill("#token-input", "not-a-valid-token");
  await page.click("#token-submit");
  const badToken = await waitText(page, "#signin-error", /AUTH-\w+/);
  t.check("a rejected token shows the message and the error id (AUTH-…)", badToken, await textOf(page, "#signin-error"));

  await page.setInputFiles("#keyfile-input", ADMIN_KEY);
  await page.click("#keyfile-submit");
  const signedIn = await visible(page, "#console-view");
  t.check("signed in with the admin's key file", signedIn, await textOf(page, "#signin-error"));
  if (!signedIn) throw new Error("cannot go on without signing in");
  t.equal("the caller's org is shown", await textOf(page, "#org-name"), "DEFAULT");
  t.check("the org id is shown", /^\d+$/.test(await textOf(page, "#org-id")));

  const keyBody = adminFile.key.split("\n").slice(3, 4)[0];
  const leaked = requests.filter((r) => r.body && (r.body.includes(keyBody) || r.body.includes("PRIVATE KEY")));
  t.check("the private key never left the page (no request carries it)", leaked.length === 0, leaked.map((r) => r.url).join(", "));
  const grant = requests.find((r) => r.url.endsWith("/oauth/v2/token"));
  t.check("one JWT-profile grant went to the token endpoint", !!grant && grant.body.toString().includes("grant-type%3Ajwt-bearer"));
  const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }));
  t.equal("nothing kept in localStorage, sessionStorage or cookies", stored, { local: 0, session: 0, cookie: "" });
  t.check("the header says who is signed in: the key file's user", await waitText(page, "#whoami-user", /Signed in as\s*admin/), await textOf(page, "#whoami-user"));

  // ---------------------------------------------------------------- machine users
  const adminListed = await visible(page, "#users-list .item-name:text-is('admin')", 5000);
  t.check("ListUsers lists the admin", adminListed, await textOf(page, "#users-note"));
  const adminItem = "#users-list li:has(.item-name:text-is('admin'))";
  t.check("the signed-in user is marked \"you\" in the user list", await visible(page, `${adminItem} .badge-you:text-is('you')`, 3000));
  t.equal("and offers no Remove button for yourself", await page.getByRole("button", { name: "Remove machine user admin", exact: true }).count(), 0);

  const userName = `ci-bot-${suffix}`;
  await page.fill("#add-user-username", userName);
  await page.fill("#add-user-name", "CI bot");
  await page.fill("#add-user-description", "deploys from CI");
  await page.click("#add-user-form button[type=submit]");
  t.check("added machine user is listed", await visible(page, `#users-list .item-name:text-is('${userName}')`));
  t.check("and selected: its key panel is open", await waitText(page, "#user-keys-title", new RegExp(`Keys of ${userName}`)));
  const userId = await textOf(page, "#user-keys-id");
  t.check("the user id is shown", /^\d+$/.test(userId), userId);

  // generated key → download
  const gen = await addGeneratedKey(page, "#add-user-key-submit");
  const keyId = gen.file.keyId;
  t.check("the generated key file was downloaded as <keyId>.json", gen.name === `${keyId}.json` && /^\d+$/.test(keyId || ""), gen.name);
  t.check(
    "the key file belongs to the user (type, keyId, userId, PKCS#1 key)",
    gen.file.type === "serviceaccount" && gen.file.userId === userId && gen.file.key.startsWith("-----BEGIN RSA PRIVATE KEY-----"),
    JSON.stringify({ ...gen.file, key: gen.file.key?.slice(0, 40) }),
  );
  t.check("the panel says the key file is offered only once", await waitText(page, "#user-key-notice", /only this once/));
  t.check("the new key is listed", await visible(page, keyLi("user-keys", keyId)));
  t.equal("with its algorithm", await textOf(page, `${keyLi("user-keys", keyId)} .badge-alg`), "RS256");
  t.equal("its origin", await textOf(page, `${keyLi("user-keys", keyId)} .badge-origin`), "generated");
  t.equal("its state", await textOf(page, `${keyLi("user-keys", keyId)} .badge-state`), "active");
  t.equal("and \"never used\"", await textOf(page, `${keyLi("user-keys", keyId)} .key-use`), "Never used");
  let works = await accessToken(gen.path, AK_URL).then(() => true, (e) => String(e));
  t.check("the downloaded key file gets an access token", works === true, works);
  await page.click("#user-keys-refresh");
  t.check(
    "after that use the key shows when, how and from where it was last used",
    await waitText(page, `${keyLi("user-keys", keyId)} .key-use`, /^Last used \d{4}-\d\d-\d\d \d\d:\d\d UTC · token grant \(JWT profile\) · from 127\.0\.0\.1$/),
    await textOf(page, `${keyLi("user-keys", keyId)} .key-use`),
  );

  // uploaded EC P-256 public key: the server tells its algorithm
  const ecPair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await page.check("#user-key-upload");
  t.check("uploading hides the algorithm choice", !(await page.isVisible("#user-key-alg")));
  await page.fill("#user-key-pem-text", ecPair.publicKey.export({ type: "spki", format: "pem" }));
  await page.click("#add-user-key-submit");
  const ecRegistered = await waitText(page, "#status", /Public key registered as key \d+ .*recognized it as ES256/);
  const ecId = ((await textOf(page, "#status")).match(/key (\d+)/) || [])[1];
  t.check("an EC P-256 public key is registered and the answer's algorithm shown", ecRegistered && !!ecId, (await textOf(page, "#status")) + (await textOf(page, "#alert")));
  t.check("it is listed as ES256, uploaded", await waitText(page, keyLi("user-keys", ecId), /ES256\s*uploaded\s*active/), await textOf(page, keyLi("user-keys", ecId)));
  await page.check("#user-key-generate");

  // disable with a reason, filters, enable
  await page.getByRole("button", { name: `Disable key ${keyId}`, exact: true }).click();
  t.check("Disable asks for a reason, with the field focused", await visible(page, "#disable-dialog") && (await page.evaluate(() => document.activeElement?.id)) === "disable-reason");
  t.equal("the reason is limited to 500 characters", await attr(page, "#disable-reason", "maxlength"), "500");
  await page.fill("#disable-reason", "rotated out by CI");
  await page.click("#disable-ok");
  t.check("the disabled key shows its state", await keyState(page, "user-keys", keyId, "disabled"), await textOf(page, keyLi("user-keys", keyId)));
  t.check("and the reason", await waitText(page, `${keyLi("user-keys", keyId)} .key-disabled`, /^Disabled .*: rotated out by CI$/), await textOf(page, `${keyLi("user-keys", keyId)} .key-disabled`));
  t.check("and offers Enable, focused", (await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))) === `Enable key ${keyId}`);
  t.equal("the disabled key gets no token", await tokenRequest(gen.file), 400);
  await shot(page, "keys-desktop");

  await page.check("#user-keys-disabled");
  t.check("filter \"disabled only\": the other key goes", await gone(page, keyLi("user-keys", ecId)));
  t.check("and the disabled one stays", await visible(page, keyLi("user-keys", keyId), 2000));
  await page.uncheck("#user-keys-disabled");
  t.check("unticking brings the other key back", await visible(page, keyLi("user-keys", ecId)));
  const today = new Date().toISOString().slice(0, 10);
  await page.fill("#user-keys-unused", today);
  t.check("filter \"unused since\" today: the key used today goes", await gone(page, keyLi("user-keys", keyId)));
  t.check("and the never-used key stays", await visible(page, keyLi("user-keys", ecId), 2000));
  await page.click("#user-keys-clear");
  t.check("\"Clear filters\" lists both again", await visible(page, keyLi("user-keys", keyId)) && (await visible(page, keyLi("user-keys", ecId), 2000)));

  await page.getByRole("button", { name: `Enable key ${keyId}`, exact: true }).click();
  t.check("Enable makes the key active again", await keyState(page, "user-keys", keyId, "active"), await textOf(page, keyLi("user-keys", keyId)));
  t.equal("and it gets a token again", await tokenRequest(gen.file), 200);
  await shot(page, "users-desktop");

  await removeVia(page, `Remove key ${keyId}`);
  t.check("removed key is gone from the list", await gone(page, keyLi("user-keys", keyId)));
  t.equal("the removed key no longer gets a token", await tokenRequest(gen.file), 400);

  // uploaded RSA public key
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pubPem = pair.publicKey.export({ type: "spki", format: "pem" });
  let downloads = 0;
  page.on("download", () => (downloads += 1));
  await page.check("#user-key-upload");
  await page.setInputFiles("#user-key-pem-file", { name: "public.pem", mimeType: "application/x-pem-file", buffer: Buffer.from(pubPem) });
  await page.waitForFunction(() => document.querySelector("#user-key-pem-text").value.includes("BEGIN PUBLIC KEY"));
  await page.fill("#user-key-expiry", "2030-01-01");
  await page.click("#add-user-key-submit");
  const registered = await waitText(page, "#status", /Public key registered as key \d+/);
  const uploadedId = ((await textOf(page, "#status")).match(/key (\d+)/) || [])[1];
  t.check("an uploaded public key is registered", registered && !!uploadedId, await textOf(page, "#alert"));
  t.check("it is listed with its expiry", await waitText(page, keyLi("user-keys", uploadedId), /Expires 2030-01-01 23:59 UTC/));
  t.equal("as RS256", await textOf(page, `${keyLi("user-keys", uploadedId)} .badge-alg`), "RS256");
  t.equal("no key file is downloaded for an uploaded key", downloads, 0);
  const own = { keyId: uploadedId, userId, key: pair.privateKey.export({ type: "pkcs1", format: "pem" }) };
  t.equal("the uploaded key's private half gets a token", await tokenRequest(own), 200);
  await page.fill("#user-keys-expiring", "2031-01-01");
  t.check("filter \"expiring before\" 2031: the key without expiry goes", await gone(page, keyLi("user-keys", ecId)));
  t.check("and the key expiring in 2030 stays", await visible(page, keyLi("user-keys", uploadedId), 2000));
  await page.click("#user-keys-clear");

  // error path: an expiry in the past
  await page.check("#user-key-generate");
  await page.fill("#user-key-expiry", "2001-01-01");
  await page.click("#add-user-key-submit");
  t.check("a past expiry shows the message and error id DOMAIN-dv3t5", await waitText(page, "#alert", /DOMAIN-dv3t5/), await textOf(page, "#alert"));
  await page.click("#alert button");
  await page.fill("#user-key-expiry", "");

  // ---------------------------------------------------------------- organizations
  await page.fill("#switch-org-input", "999999999999");
  await page.click("#switch-org-form button[type=submit]");
  t.check("switching to an unknown org shows PERMISSION_DENIED with an error id", await waitText(page, "#alert", /AUTH-\w+.*PERMISSION_DENIED/), await textOf(page, "#alert"));
  t.equal("and the org stays", await textOf(page, "#org-name"), "DEFAULT");

  const orgName = `ci-org-${suffix}`;
  await page.fill("#add-org-name", orgName);
  await page.click("#add-org-form button[type=submit]");
  t.check("a new org is created and becomes the context", await waitText(page, "#org-name", new RegExp(`^${orgName}$`)), await textOf(page, "#alert"));
  t.check("the switched org is marked and offers the way back", await visible(page, "#org-switched") && (await visible(page, "#org-back")));
  t.check("the other org's users are not listed there", await gone(page, `#users-list .item-name:text-is('${userName}')`, 3000));
  await page.click("#org-back");
  t.check("back in the caller's own org", await waitText(page, "#org-name", /^DEFAULT$/));

  // ---------------------------------------------------------------- key policy and members
  await page.click("#tab-org");
  t.check("the org's key policy is shown: the instance default", await waitText(page, "#policy-source", /^instance default$/), await textOf(page, "#alert"));
  t.equal("with no limit on keys per owner", await textOf(page, "#policy-view dd[data-fact=maxKeysPerOwner]"), "unlimited");
  const adminMember = `#members-list li[data-user-id='${adminFile.userId}']`;
  t.check("the members are listed with their roles", await waitText(page, `${adminMember} .roles`, /ORG_OWNER/), await textOf(page, "#members-list"));
  t.check("and \"you\" is marked among them", await visible(page, `${adminMember} .badge-you`, 2000));
  t.check("an ORG_OWNER may change the policy; the default cannot be reset", (await visible(page, "#policy-form", 2000)) && !(await page.isVisible("#policy-reset")));
  await page.fill("#policy-max-lifetime", "365d");
  await page.fill("#policy-default-lifetime", "30");
  await page.fill("#policy-max-keys", "5");
  await page.uncheck("#policy-alg-PS256");
  await page.click("#policy-save");
  t.check("a saved policy is the org's own", await waitText(page, "#policy-source", /^this organization's own$/), await textOf(page, "#alert"));
  const facts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll("#policy-view dd")].map((d) => [d.dataset.fact, d.textContent])));
  t.equal("and shows what was set", facts, {
    maxLifetime: "365 days",
    defaultLifetime: "30 days",
    maxKeysPerOwner: "5",
    allowedOrigins: "generated and uploaded",
    allowedAlgorithms: "RS256, ES256, ES384, EdDSA",
  });
  await shot(page, "org-desktop");
  await page.click("#policy-reset");
  await page.locator("#confirm").waitFor({ state: "visible" });
  t.equal("resetting asks first", await textOf(page, "#confirm-ok"), "Reset");
  await page.click("#confirm-ok");
  t.check("reset: the instance default applies again", await waitText(page, "#policy-source", /^instance default$/), await textOf(page, "#alert"));
  t.equal("without the org's limits", await textOf(page, "#policy-view dd[data-fact=maxKeysPerOwner]"), "unlimited");

  // ---------------------------------------------------------------- projects, apps, app keys
  await page.click("#tab-projects");
  const projectName = `orders-${suffix}`;
  await page.fill("#add-project-name", projectName);
  await page.click("#add-project-form button[type=submit]");
  t.check("added project is listed", await visible(page, `#projects-list .item-name:text-is('${projectName}')`), await textOf(page, "#alert"));
  t.check("and selected: its apps panel is open", await visible(page, "#project-apps"));

  await page.fill("#add-app-name", "orders-api");
  await page.selectOption("#add-app-auth", "1");
  await page.click("#add-app-form button[type=submit]");
  t.check("added PRIVATE_KEY_JWT app is listed", await visible(page, "#apps-list .item-name:text-is('orders-api')"), await textOf(page, "#alert"));
  t.check("and selected: its key panel is open", await visible(page, "#add-app-key-form"));
  const clientId = await textOf(page, "#app-keys-client");
  t.check("the app's client id is shown", /^\d+$/.test(clientId), clientId);

  const appKey = await addGeneratedKey(page, "#add-app-key-submit");
  const appKeyId = appKey.file.keyId;
  t.check("the app key file was downloaded as <keyId>.json", appKey.name === `${appKeyId}.json`, appKey.name);
  t.check(
    "the app key file is for that app (type application, clientId, appId, key)",
    appKey.file.type === "application" && appKey.file.clientId === clientId && /^\d+$/.test(appKey.file.appId || "") && appKey.file.key.startsWith("-----BEGIN RSA PRIVATE KEY-----"),
    JSON.stringify({ ...appKey.file, key: appKey.file.key?.slice(0, 40) }),
  );
  t.check("the app key is listed", await visible(page, keyLi("app-keys", appKeyId)));
  t.check("as RS256, generated, never used", await waitText(page, keyLi("app-keys", appKeyId), /RS256\s*generated\s*active.*Never used/), await textOf(page, keyLi("app-keys", appKeyId)));
  await shot(page, "projects-desktop");
  await removeVia(page, `Remove app key ${appKeyId}`);
  t.check("removed app key is gone", await gone(page, `#app-keys-list li[data-key-id='${appKeyId}']`));

  await page.fill("#add-app-name", "legacy-basic");
  await page.selectOption("#add-app-auth", "0");
  await page.click("#add-app-form button[type=submit]");
  t.check("a BASIC app's client secret is shown once", await visible(page, "#client-secret") && (await page.inputValue("#client-secret")).length >= 32);
  t.check("with the warning that it is shown only once", await waitText(page, "#app-notice", /shown only once/));
  t.check("a BASIC app offers no keys", await visible(page, "#app-basic") && !(await page.isVisible("#add-app-key-form")));

  // ---------------------------------------------------------------- phone layout
  await page.setViewportSize(PHONE);
  t.check("projects at 390 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);
  await shot(page, "projects-phone");
  await page.click("#tab-org");
  await visible(page, `#members-list li[data-user-id='${adminFile.userId}']`);
  t.check("key policy and members at 390 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);
  await shot(page, "org-phone");
  await page.click("#tab-users");
  await page.locator(`#users-list .item-main:has-text('${userName}')`).click();
  await visible(page, keyLi("user-keys", uploadedId));
  t.check("users at 390 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);
  await shot(page, "users-phone");
  await page.setViewportSize(DESKTOP);
  t.check("users at 1280 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);

  // ---------------------------------------------------------------- webhooks and events
  await page.click("#tab-webhooks");
  t.check("Webhooks: an ORG_OWNER is offered the add form", (await visible(page, "#add-webhook-form")) && !(await page.isVisible("#webhooks-readonly")));
  t.check("no webhooks yet", await waitText(page, "#webhooks-list", /No webhooks yet/), await textOf(page, "#webhooks-list"));
  // The server names the types it knows when refused an unknown one: the form offers exactly those.
  const unknown = await asAdmin("POST", "/v1/events/_search", { types: ["no.such.type"] });
  const known = (/known types: ([^(]*?)(?: \(EVENT-Type01\))?$/.exec(unknown.body?.message ?? "")?.[1] ?? "").split(", ").filter(Boolean).sort();
  const offered = (await page.locator("#add-webhook-types input[type=checkbox]").evaluateAll((boxes) => boxes.map((b) => b.value))).sort();
  t.check("the server names its event types", unknown.status === 400 && known.length > 20, JSON.stringify(unknown));
  t.equal("every event type can be chosen, and only those", offered.join(" "), known.join(" "));
  await page.fill("#add-webhook-url", "ftp://hooks.example.com/in");
  await page.click("#add-webhook-submit");
  t.check("a refused URL shows the server's message and error id (OUT-Url03)", await waitText(page, "#alert", /must use https.*OUT-Url03/), await textOf(page, "#alert"));
  t.check("and shows no secret", !(await page.isVisible("#webhook-secret")));
  await page.click("#alert button");

  const hookUrl = `${RECEIVER}/console-${suffix}`;
  await page.fill("#add-webhook-url", hookUrl);
  await page.check("#add-webhook-types input[value='key.added']");
  await page.check("#add-webhook-types input[value='user.added']");
  await page.click("#add-webhook-submit");
  t.check("adding a webhook shows its signing secret", await visible(page, "#webhook-secret"), await textOf(page, "#alert"));
  const hookSecret = await page.inputValue("#webhook-secret").catch(() => "");
  t.check("a Standard Webhooks secret (whsec_…)", /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/.test(hookSecret), hookSecret.slice(0, 8));
  t.check("with the warning that it will not be shown again", await waitText(page, "#webhook-notice", /shown only once.*will not be shown again/), await textOf(page, "#webhook-notice"));
  t.check("and how to copy it", (await waitText(page, "#webhook-notice", /Copy secret puts it on the clipboard/)) && (await visible(page, "#webhook-notice button:text-is('Copy secret')", 2000)));
  t.equal("the secret field has focus", await page.evaluate(() => document.activeElement?.id), "webhook-secret");
  t.check("the webhook is listed", await visible(page, `#webhooks-list .webhook-url:text-is('${hookUrl}')`), await textOf(page, "#webhooks-list"));
  const hookId = await attr(page, `#webhooks-list li:has(.webhook-url:text-is('${hookUrl}'))`, "data-webhook-id");
  const hookItem = `#webhooks-list li[data-webhook-id='${hookId}']`;
  t.check("with its types", await waitText(page, `${hookItem} .webhook-types`, /^Types: key\.added, user\.added$/), await textOf(page, `${hookItem} .webhook-types`));
  t.check("and its deliveries", await waitText(page, `${hookItem} .webhook-backlog`, /^0 pending · 0 failed$/), await textOf(page, `${hookItem} .webhook-backlog`));
  await page.click("#webhook-notice button:text-is('Done')");
  t.check("Done forgets the secret", await gone(page, "#webhook-secret"));
  await shot(page, "webhooks-desktop");
  await page.click("#webhooks-refresh");
  await visible(page, hookItem);
  t.check("the secret is not shown again", !(await page.content()).includes(hookSecret.slice(6)));

  // A change made in the console is an event, delivered to the webhook.
  await page.click("#tab-users");
  const evUser = `audited-${suffix}`;
  await page.fill("#add-user-username", evUser);
  await page.fill("#add-user-name", "audited");
  await page.click("#add-user-form button[type=submit]");
  await visible(page, `#users-list .item-name:text-is('${evUser}')`);
  await waitText(page, "#user-keys-title", new RegExp(`Keys of ${evUser}`));
  const evUserId = await textOf(page, "#user-keys-id");
  await page.click("#tab-events");
  t.check("Events: the user just added is there", await visible(page, `#events-list li[data-type='user.added'] .event-user:text-is('${evUser}')`), await textOf(page, "#events-list"));
  const evId = await attr(page, `#events-list li[data-type='user.added']:has(.event-user:text-is('${evUser}'))`, "data-event-id");
  const evItem = `#events-list li[data-event-id='${evId}']`;
  t.check("with what it was", await waitText(page, `${evItem} .event-data`, new RegExp(`^user name ${evUser}`)), await textOf(page, evItem));
  t.check("with when and who", await waitText(page, `${evItem} .event-time`, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/) && (await waitText(page, `${evItem} .event-actor`, /^by admin \(you\)$/)), await textOf(page, evItem));
  const sentTo = `${evItem} .delivery[data-state='sent'][data-webhook-id='${hookId}']`;
  t.check("and its delivery to the webhook: sent", await refreshUntil(page, "#events-refresh", sentTo), await textOf(page, evItem));
  t.equal("named by the webhook's URL", await textOf(page, `${sentTo} .delivery-to`), `to ${hookUrl}`);
  t.check("with the attempt and the receiver's status", await waitText(page, `${sentTo} .delivery-detail`, /^1 attempt, HTTP 204$/), await textOf(page, `${sentTo} .delivery-detail`));
  const got = deliveries.find((d) => d.headers["webhook-id"] === evId);
  let verified = false;
  try {
    verified = !!got && !!new Webhook(hookSecret).verify(got.raw, got.headers);
  } catch (e) {
    verified = String(e);
  }
  t.check("the receiver got it, signed with the secret the console showed", verified === true, verified || "not received");
  await shot(page, "events-desktop");

  // The type filter, and more than a page.
  const evKey = await asAdmin("POST", "/v1/keys", { userId: evUserId, algorithm: "ES256" });
  for (let i = 0; i < 8; i += 1) {
    await asAdmin("POST", `/v1/keys/${evKey.body?.key?.id}/_disable`, { reason: `round ${i}` });
    await asAdmin("POST", `/v1/keys/${evKey.body?.key?.id}/_enable`, {});
  }
  await page.selectOption("#events-type", "key.disabled");
  t.check("the type filter: only key.disabled events", await onlyType(page, "key.disabled"), await textOf(page, "#events-list"));
  t.check("each with its reason", await waitText(page, "#events-list li.event-item .event-reason", /^Reason: round 7$/), await textOf(page, "#events-list li.event-item"));
  await page.selectOption("#events-type", "webhook.added");
  t.check("webhook.added: the webhook just added", await onlyType(page, "webhook.added"), await textOf(page, "#events-list"));
  await page.selectOption("#events-type", "trust.added");
  t.check("a type without events says so", await waitText(page, "#events-list", /No trust\.added events\./), await textOf(page, "#events-list"));
  await page.selectOption("#events-type", "");
  await page.locator("#events-list li.event-item").nth(1).waitFor({ timeout: 5000 }).catch(() => {});
  const total = Number(((await textOf(page, "#events-count")).match(/^(\d+) events$/) || [])[1] || 0);
  t.check("all types again: the first 25 of more", total > 25 && (await page.locator("#events-list li.event-item").count()) === 25, `${total} events, ${await page.locator("#events-list li.event-item").count()} listed`);
  await page.click("#events-more");
  const more = await page
    .waitForFunction((n) => document.querySelectorAll("#events-list li.event-item").length === n, Math.min(total, 50), { timeout: 10_000 })
    .then(() => true, () => false);
  t.check("Load more brings the next page", more, `${await page.locator("#events-list li.event-item").count()} listed of ${total}`);
  const ids = await page.evaluate(() => [...document.querySelectorAll("#events-list li.event-item")].map((li) => li.dataset.eventId));
  t.check("without repeats, newest first", new Set(ids).size === ids.length && ids.every((id, i) => i === 0 || BigInt(id) < BigInt(ids[i - 1])), ids.slice(0, 5).join(", "));
  await page.setViewportSize(PHONE);
  t.check("events at 390 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);
  await shot(page, "events-phone");
  await page.click("#tab-webhooks");
  await visible(page, hookItem);
  t.check("webhooks at 390 px: no horizontal overflow", (await overflow(page)) <= 0, `${await overflow(page)} px`);
  await page.setViewportSize(DESKTOP);

  // A viewer sees the webhooks and the events, without the controls the server would refuse.
  const viewer = await asAdmin("POST", "/management/v1/users/machine", { userName: `viewer-${suffix}`, name: "viewer" });
  await asAdmin("POST", "/management/v1/orgs/me/members", { userId: viewer.body.userId, roles: ["ORG_OWNER_VIEWER"] });
  const viewerKey = await asAdmin("POST", `/management/v1/users/${viewer.body.userId}/keys`, { type: "KEY_TYPE_JSON" });
  const viewerFile = join(secrets, "viewer.json");
  writeFileSync(viewerFile, Buffer.from(viewerKey.body.keyDetails, "base64"));
  const vp = await newPage(browser, DESKTOP);
  await vp.goto(UI);
  await vp.setInputFiles("#keyfile-input", viewerFile);
  await vp.click("#keyfile-submit");
  await visible(vp, "#console-view");
  await vp.click("#tab-webhooks");
  t.check("an ORG_OWNER_VIEWER sees the webhook", await visible(vp, hookItem), await textOf(vp, "#alert"));
  t.check("without a Remove button", (await vp.locator(`${hookItem} button`).count()) === 0);
  t.check("and is told who may add one instead of a form", (await visible(vp, "#webhooks-readonly", 2000)) && !(await vp.isVisible("#add-webhook-form")));
  await vp.click("#tab-events");
  await vp.selectOption("#events-type", "user.added");
  t.check("and reads the events", await visible(vp, evItem), await textOf(vp, "#alert"));
  extraPages.push(vp);

  await removeVia(page, `Remove webhook ${hookUrl}`, false);
  t.check("cancelling keeps the webhook", await visible(page, hookItem, 2000));
  await removeVia(page, `Remove webhook ${hookUrl}`);
  t.check("Remove: the webhook is gone", await gone(page, hookItem), await textOf(page, "#alert"));
  t.check("and the list is empty", await waitText(page, "#webhooks-list", /No webhooks yet/));
  await page.click("#tab-events");
  await page.selectOption("#events-type", "webhook.removed");
  t.check("its removal is an event", await onlyType(page, "webhook.removed"), await textOf(page, "#events-list"));
  await page.selectOption("#events-type", "");
  await page.click("#tab-users");
  await visible(page, `#users-list .item-name:text-is('${userName}')`);

  // ---------------------------------------------------------------- trusts (keyless)
  await page.locator(`#users-list .item-main:has(.item-name:text-is('${userName}'))`).click();
  t.check("a machine user's page has its trusts", await waitText(page, "#user-trusts-title", new RegExp(`^Trusts of ${userName}$`)), await textOf(page, "#alert"));
  t.check("none yet", await waitText(page, "#user-trusts-list", /No trusts yet/), await textOf(page, "#user-trusts-list"));
  t.check("an ORG_OWNER is offered the add form", (await visible(page, "#add-trust-form")) && !(await page.isVisible("#user-trusts-readonly")));
  t.check(
    "the form shows the Kubernetes, GitHub Actions and SPIFFE presets",
    await waitText(page, "#trust-presets", /Kubernetes:.*system:serviceaccount:<ns>:<name>.*GitHub Actions:.*https:\/\/token\.actions\.githubusercontent\.com.*repository=<owner>\/<repo>.*SPIFFE:/s),
    await textOf(page, "#trust-presets"),
  );
  const trustSub = `system:serviceaccount:ci:deployer-${suffix}`;
  const trustAud = "authn-keys";
  await page.fill("#add-trust-issuer", OUTSIDE_ISSUER);
  await page.fill("#add-trust-subject", "a*b");
  await page.fill("#add-trust-audience", trustAud);
  await page.fill("#add-trust-claims", "cluster=ci\n\nteam = platform\n");
  await page.fill("#add-trust-jwks", JSON.stringify({ keys: [outsideJwk] }, null, 2));
  await page.fill("#add-trust-lifetime", "600");
  await page.check("#add-trust-cap");
  await page.click("#add-trust-submit");
  t.check("a subject with * inside shows the server's message and error id TRUST-Sub03", await waitText(page, "#alert", /may only end the pattern.*TRUST-Sub03/), await textOf(page, "#alert"));
  t.check("and adds nothing", await waitText(page, "#user-trusts-list", /No trusts yet/));
  await page.click("#alert button");
  await page.fill("#add-trust-subject", trustSub);
  await page.click("#add-trust-submit");
  t.check("a trust with an inline JWKS is added", await waitText(page, "#status", /Trust \d+ added/), await textOf(page, "#alert"));
  const trustId = ((await textOf(page, "#status")).match(/Trust (\d+)/) || [])[1];
  const trustItem = `#user-trusts-list li[data-trust-id='${trustId}']`;
  t.check("and listed", await visible(page, trustItem), await textOf(page, "#user-trusts-list"));
  t.equal("with its subject", await textOf(page, `${trustItem} .trust-subject`), trustSub);
  t.equal("issuer", await textOf(page, `${trustItem} .trust-issuer`), `issuer ${OUTSIDE_ISSUER}`);
  t.equal("audience", await textOf(page, `${trustItem} .trust-audience`), `audience ${trustAud}`);
  t.equal("claims", await textOf(page, `${trustItem} .trust-claims`), "claims cluster=ci · team=platform");
  t.equal("where its keys come from", await textOf(page, `${trustItem} .trust-keys`), "inline JWKS (1 key)");
  t.equal("the lifetime cap", await textOf(page, `${trustItem} .trust-lifetime`), "Access tokens live at most 10 minutes, and end with the outside token");
  t.check("and when and by whom it was added", await waitText(page, `${trustItem} .trust-created`, /added \d{4}-\d\d-\d\d \d\d:\d\d UTC · by admin \(you\)$/), await textOf(page, `${trustItem} .trust-created`));
  t.equal("the form is emptied", await page.inputValue("#add-trust-subject"), "");
  await shot(page, "trusts-desktop");

  // The trust added in the console works: the outside issuer's token gets an access token of
  // the user, which the API takes as that user.
  await asAdmin("POST", "/management/v1/orgs/me/members", { userId, roles: ["ORG_USER_VIEWER"] });
  const swapped = await exchangeOutside(trustSub, trustAud, { cluster: "ci", team: "platform" });
  t.check(
    "token exchange: the outside token gets an access token",
    swapped.status === 200 && !!swapped.body?.access_token && swapped.body.issued_token_type === "urn:ietf:params:oauth:token-type:access_token",
    JSON.stringify(swapped.body),
  );
  t.check("no longer than the outside token", swapped.body?.expires_in > 0 && swapped.body.expires_in <= 300, `${swapped.body?.expires_in}`);
  const asUser = await fetch(`${AK_URL}/management/v1/users/${userId}`, { headers: { authorization: `Bearer ${swapped.body?.access_token}` } });
  const asUserBody = await asUser.json().catch(() => null);
  t.check("and the API takes it as the machine user", asUser.status === 200 && asUserBody?.user?.userName === userName, `${asUser.status} ${JSON.stringify(asUserBody)}`);
  const wrongClaim = await exchangeOutside(trustSub, trustAud, { cluster: "prod", team: "platform" });
  t.check("a token without the trust's claims gets none", wrongClaim.status === 400 && wrongClaim.body?.error === "invalid_grant", JSON.stringify(wrongClaim.body));

  // A viewer sees the trusts, without the controls.
  await vp.click("#tab-users");
  await vp.locator(`#users-list .item-main:has(.item-name:text-is('${userName}'))`).click();
  t.check("an ORG_OWNER_VIEWER sees the trust", await visible(vp, trustItem), await textOf(vp, "#alert"));
  t.check("without a Remove button or the add form", (await vp.locator(`${trustItem} button`).count()) === 0 && (await visible(vp, "#user-trusts-readonly", 2000)) && !(await vp.isVisible("#add-trust-form")));

  const trustRemove = `Remove trust for ${trustSub} from ${OUTSIDE_ISSUER}`;
  await removeVia(page, trustRemove, false);
  t.check("cancelling keeps the trust", await visible(page, trustItem, 2000));
  await removeVia(page, trustRemove);
  t.check("Remove: the trust is gone", await gone(page, trustItem), await textOf(page, "#alert"));
  t.check("and the list says none", await waitText(page, "#user-trusts-list", /No trusts yet/));
  const afterRemove = await exchangeOutside(trustSub, trustAud, { cluster: "ci", team: "platform" });
  t.check("after it the outside token gets nothing", afterRemove.status === 400 && afterRemove.body?.error === "invalid_grant", JSON.stringify(afterRemove.body));
  const revoked = await fetch(`${AK_URL}/management/v1/users/${userId}`, { headers: { authorization: `Bearer ${swapped.body?.access_token}` } });
  t.equal("and the access token it got stopped working", revoked.status, 401);

  await page.click("#tab-events");
  await page.selectOption("#events-type", "trust.added");
  t.check("the trust's addition is an event", await onlyType(page, "trust.added"), await textOf(page, "#events-list"));
  t.check(
    "naming the user and the issuer",
    await waitText(page, "#events-list li.event-item", new RegExp(`user ${userName}.*issuer ${OUTSIDE_ISSUER.replace(/[.]/g, "\\.")}`)),
    await textOf(page, "#events-list li.event-item"),
  );
  await page.selectOption("#events-type", "trust.removed");
  t.check("and its removal", await onlyType(page, "trust.removed"), await textOf(page, "#events-list"));
  await page.selectOption("#events-type", "");
  await page.click("#tab-users");
  await visible(page, `#users-list .item-name:text-is('${userName}')`);

  // ---------------------------------------------------------------- removals
  await removeVia(page, `Remove machine user ${userName}`, false);
  t.check("cancelling the confirmation keeps the user", await visible(page, `#users-list .item-name:text-is('${userName}')`, 2000));
  await removeVia(page, `Remove machine user ${userName}`);
  t.check("removed user is gone", await gone(page, `#users-list .item-name:text-is('${userName}')`));
  t.equal("its uploaded key stopped working with it", await tokenRequest(own), 400);

  // A second admin key, an Ed25519 one, for the keyboard-only page, so its token can be
  // revoked below.
  if (adminListed) await page.locator("#users-list .item-main:has(.item-name:text-is('admin'))").click();
  else {
    await page.fill("#users-list-open", adminFile.userId);
    await page.press("#users-list-open", "Enter");
  }
  await waitText(page, "#user-keys-title", /Keys of admin/);
  t.check("the key this sign-in used is marked", await waitText(page, keyLi("user-keys", adminFile.keyId), /this sign-in/), await textOf(page, keyLi("user-keys", adminFile.keyId)));
  await page.selectOption("#user-key-alg", "EdDSA");
  const second = await addGeneratedKey(page, "#add-user-key-submit");
  t.check(
    "a generated EdDSA key's file is downloaded: ZITADEL's format, a PKCS#8 key",
    second.name === `${second.file.keyId}.json` && second.file.type === "serviceaccount" && second.file.userId === adminFile.userId && second.file.key.startsWith("-----BEGIN PRIVATE KEY-----"),
    JSON.stringify({ ...second.file, key: second.file.key?.slice(0, 40) }),
  );
  t.equal("it is listed as EdDSA", await textOf(page, `${keyLi("user-keys", second.file.keyId)} .badge-alg`), "EdDSA");
  const secondToken = await accessToken(second.path, AK_URL);

  const ed = await newPage(browser, DESKTOP);
  await ed.goto(UI);
  await ed.setInputFiles("#keyfile-input", second.path);
  await ed.click("#keyfile-submit");
  t.check("the console signs in with an Ed25519 key file", await visible(ed, "#console-view"), await textOf(ed, "#signin-error"));
  t.check("as admin", await waitText(ed, "#whoami-name", /^admin$/), await textOf(ed, "#whoami-user"));
  // Disable by keyboard: reachable with Tab, the reason field focused, Escape cancels.
  await ed.locator("#users-list .item-main:has(.item-name:text-is('admin'))").click();
  await visible(ed, keyLi("user-keys", adminFile.keyId));
  const toDisable = await tabTo(ed, `[aria-label='Disable key ${adminFile.keyId}']`);
  t.check("keyboard: Tab reaches a key's Disable button", toDisable > 0, `${toDisable}`);
  await ed.keyboard.press("Enter");
  t.check(
    "keyboard: Enter opens the reason dialog with the field focused",
    (await visible(ed, "#disable-dialog")) && (await ed.evaluate(() => document.activeElement?.id)) === "disable-reason",
  );
  await ed.keyboard.type("just looking");
  await ed.keyboard.press("Escape");
  t.check("keyboard: Escape cancels; the key stays active", (await gone(ed, "#disable-dialog[open]")) && (await keyState(ed, "user-keys", adminFile.keyId, "active")));

  // ---------------------------------------------------------------- keyboard only
  const kb = await newPage(browser, DESKTOP);
  await kb.goto(UI);
  await kb.locator("#signin-view").waitFor();
  const toToken = await tabTo(kb, "#token-input");
  t.check("keyboard: Tab reaches the token field", toToken > 0, `${toToken}`);
  const ring = await kb.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2;
  });
  t.check("keyboard: the focused field shows a visible focus ring", ring);
  await kb.keyboard.type(secondToken);
  await kb.keyboard.press("Enter");
  t.check("keyboard: signed in by token with Enter", await visible(kb, "#console-view"), await textOf(kb, "#signin-error"));

  t.check("keyboard: Tab reaches the Projects tab", (await tabTo(kb, "#tab-projects")) > 0);
  await kb.keyboard.press("Enter");
  t.check("keyboard: Enter opens it", await visible(kb, "#projects-view"));
  t.check("keyboard: Tab reaches the project name field", (await tabTo(kb, "#add-project-name")) > 0);
  const kbProject = `kb-${suffix}`;
  await kb.keyboard.type(kbProject);
  await kb.keyboard.press("Enter");
  t.check("keyboard: project added with Enter", await visible(kb, `#projects-list .item-name:text-is('${kbProject}')`), await textOf(kb, "#alert"));
  t.check("keyboard: Tab reaches the app name field", (await tabTo(kb, "#add-app-name")) > 0);
  await kb.keyboard.type("kb-api");
  await kb.keyboard.press("Enter");
  t.check("keyboard: API app added with Enter", await visible(kb, "#apps-list .item-name:text-is('kb-api')"), await textOf(kb, "#alert"));

  await kb.keyboard.press("Shift+Tab"); // leave the form, then come back to the project list
  const removeLabel = `Remove project ${kbProject}`;
  let reached = -1;
  for (let i = 1; i <= 80 && reached < 0; i += 1) {
    await kb.keyboard.press("Shift+Tab");
    if (await kb.evaluate((l) => document.activeElement?.getAttribute("aria-label") === l, removeLabel)) reached = i;
  }
  t.check("keyboard: Shift+Tab reaches the project's Remove button", reached > 0);
  await kb.keyboard.press("Enter");
  t.check("keyboard: Enter opens the confirmation with Cancel focused", await visible(kb, "#confirm") && (await kb.evaluate(() => document.activeElement?.id)) === "confirm-cancel");
  await kb.keyboard.press("Tab");
  await kb.keyboard.press("Enter");
  t.check("keyboard: Tab, Enter confirms; the project is gone", await gone(kb, `#projects-list .item-name:text-is('${kbProject}')`));

  // An opaque token does not say whose it is; the server's refusal to remove the last
  // IAM_OWNER does (only an IAM_OWNER gets that far), and the console learns from it.
  t.check("signed in by an opaque token: the header does not guess who", await waitText(kb, "#whoami-user", /^\s*Signed in with an access token\s*$/), await textOf(kb, "#whoami-user"));
  await kb.click("#tab-users");
  await visible(kb, "#users-list .item-name:text-is('admin')");
  await removeVia(kb, "Remove machine user admin");
  t.check("removing the last IAM_OWNER shows COMMAND-IamLst", await waitText(kb, "#alert", /COMMAND-IamLst/), await textOf(kb, "#alert"));
  t.check("after which the console knows it is you", await waitText(kb, "#whoami-name", /^admin$/), await textOf(kb, "#whoami-user"));
  t.equal("and offers that Remove no more", await kb.getByRole("button", { name: "Remove machine user admin", exact: true }).count(), 0);
  await kb.click("#alert button");

  // Revoking the key behind the keyboard page's token signs that page out at its next call.
  await removeVia(page, `Remove key ${second.file.keyId}`);
  await gone(page, `#user-keys-list li[data-key-id='${second.file.keyId}']`);
  await kb.click("#users-refresh");
  t.check("a revoked token sends the person back to sign-in", await visible(kb, "#signin-view"));
  t.check("with the reason and its error id", await waitText(kb, "#signin-error", /signed out.*AUTH-\w+/), await textOf(kb, "#signin-error"));

  // ---------------------------------------------------------------- a server without list RPCs
  const old = await newPage(browser, DESKTOP);
  await old.route("**/zitadel.management.v1.ManagementService/ListUsers", (route) =>
    route.fulfill({
      status: 200,
      headers: { "content-type": "application/grpc-web+proto", "grpc-status": "12", "grpc-message": "unknown%20method%20ListUsers" },
      body: "",
    }),
  );
  await old.goto(UI);
  // The same admin key as PKCS#8 ("PRIVATE KEY"), which key files from other tools carry.
  const pkcs8 = { ...adminFile, key: createPrivateKey(adminFile.key).export({ type: "pkcs8", format: "pem" }) };
  await old.setInputFiles("#keyfile-input", { name: "admin-pkcs8.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(pkcs8)) });
  await old.click("#keyfile-submit");
  t.check("a key file with a PKCS#8 private key signs in too", await visible(old, "#console-view"), await textOf(old, "#signin-error"));
  t.check("without ListUsers the console says so", await waitText(old, "#users-note", /cannot list users yet/), await textOf(old, "#alert"));
  await old.fill("#users-list-open", adminFile.userId);
  await old.press("#users-list-open", "Enter");
  t.check("and opens a user by id instead", await waitText(old, "#user-keys-title", /Keys of admin/), await textOf(old, "#alert"));
  t.check("whose keys are listed", await visible(old, keyLi("user-keys", adminFile.keyId)));

  // ---------------------------------------------------------------- sign-out, phone sign-in
  await page.click("#sign-out");
  t.check("sign-out returns to sign-in", await visible(page, "#signin-view"));
  t.check("and forgets the token and org", !(await page.isVisible("#console-view")) && (await textOf(page, "#org-name")) === "");

  const phone = await newPage(browser, PHONE);
  await phone.goto(UI);
  await phone.locator("#signin-view").waitFor();
  t.check("sign-in at 390 px: no horizontal overflow", (await overflow(phone)) <= 0, `${await overflow(phone)} px`);
  await shot(phone, "signin-phone");

  // ---------------------------------------------------------------- hygiene
  const pages = [page, ed, kb, old, phone, ...extraPages];
  const violations = (await Promise.all(pages.map((p) => p.evaluate(() => window.__csp)))).flat();
  t.check(`no Content-Security-Policy violations (${page.serverCsp() ? "server's policy" : "test's strict policy"})`, violations.length === 0, violations.join("; "));
  const errors = pages.flatMap((p) => p.errors);
  t.check("no uncaught script errors", errors.length === 0, errors.join("; "));
} catch (err) {
  t.check("the run completed", false, err && err.stack ? err.stack : String(err));
} finally {
  await browser.close();
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
  rmSync(secrets, { recursive: true, force: true });
  clearTimeout(watchdog);
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  t.finish();
}
