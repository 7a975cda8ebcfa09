// The console: sign-in, organization, machine users and their keys, projects, API apps and
// app keys. Everything is built with DOM calls and textContent (never innerHTML), so data
// from the server cannot inject markup, and there is no inline script for a CSP to forbid.
import { API_AUTH, Code, KEY_TYPE_JSON, RpcError, call, fromTimestamp, toTimestamp } from "./grpc.js";
import { SignInError, signInWithKeyFile } from "./auth.js";

const $ = (id) => document.getElementById(id);
const te = new TextEncoder();
const PAGE = 100;
// 9999-12-31T23:59:59Z: the server's "no expiry".
const NEVER_SECONDS = 253402300799;

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const fmtTime = (date) => (date ? `${date.toISOString().slice(0, 16).replace("T", " ")} UTC` : "");
const narrow = () => window.matchMedia("(max-width: 899px)").matches;

// ---- sign-in state -----------------------------------------------------------------------

// The access token lives in this object only: never in storage, cookies or the URL.
const auth = { token: null, orgId: "", myOrg: null, org: null, timer: 0 };
const rpc = (method, request = {}) => call(method, request, { token: auth.token, orgId: auth.orgId });

// ---- status and errors ----------------------------------------------------------------

let statusTimer = 0;
function announce(text) {
  clearTimeout(statusTimer);
  $("status").replaceChildren(h("span", { text }));
  statusTimer = setTimeout(() => $("status").replaceChildren(), 8000);
}

function clearAlert() {
  $("alert").replaceChildren();
}

function errorParts(err) {
  if (err instanceof RpcError) return { message: err.message, id: err.id, code: err.codeName };
  if (err instanceof SignInError) return { message: err.message, id: err.id, code: "" };
  return { message: err && err.message ? err.message : String(err), id: "", code: "" };
}

function errorContent(err) {
  const { message, id, code } = errorParts(err);
  const meta = [id && h("span", {}, "Error id ", h("code", { class: "error-id", text: id })), code && h("span", { text: code })]
    .filter(Boolean)
    .flatMap((el, i) => (i ? [" · ", el] : [el]));
  const parts = [h("span", { class: "error-message", text: message })];
  if (meta.length) parts.push(h("span", { class: "error-meta" }, meta));
  return parts;
}

function showAlert(err) {
  const dismiss = h("button", { type: "button", class: "btn btn-quiet btn-small", text: "Dismiss" });
  dismiss.addEventListener("click", clearAlert);
  $("alert").replaceChildren(h("div", { class: "toast-body" }, h("strong", { text: "Error" }), ...errorContent(err)), dismiss);
}

function handleError(err) {
  if (err instanceof RpcError && err.code === Code.UNAUTHENTICATED) {
    signOut(err);
    return;
  }
  showAlert(err);
}

/** Runs one action for a form or button: one at a time, errors shown, an expired sign-in handled. */
async function act(el, fn) {
  if (el && el.getAttribute("aria-busy") === "true") return undefined;
  clearAlert();
  // aria-busy instead of `disabled`: disabling the focused control would drop keyboard focus.
  if (el) el.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } catch (err) {
    handleError(err);
    return undefined;
  } finally {
    if (el) el.removeAttribute("aria-busy");
  }
}

function onSubmit(id, fn) {
  const form = $(id);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(form, () => fn(form));
  });
}

function required(input, what) {
  const value = input.value.trim();
  if (!value) {
    input.focus();
    throw new Error(`Enter ${what}.`);
  }
  return value;
}

const confirmDialog = $("confirm");
function confirmRemove(title, text) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
  });
}

function expiryFrom(input) {
  if (!input.value) return undefined;
  const end = new Date(`${input.value}T23:59:59Z`);
  if (Number.isNaN(end.getTime())) throw new Error("Enter the expiry as a date (YYYY-MM-DD).");
  return toTimestamp(end);
}

// ---- one-time secrets -----------------------------------------------------------------

// Blob URLs of key files still offered for download; revoked on "Done" and on sign-out.
const keyFileUrls = new Set();

function dropNotice(container) {
  for (const a of container.querySelectorAll("a[href^='blob:']")) {
    URL.revokeObjectURL(a.href);
    keyFileUrls.delete(a.href);
  }
  container.replaceChildren();
}

function offerKeyFile(container, keyId, bytes) {
  dropNotice(container);
  const name = `${keyId}.json`;
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/json" }));
  keyFileUrls.add(url);
  const auto = h("a", { href: url, download: name, hidden: true });
  document.body.append(auto);
  auto.click();
  auto.remove();
  const done = h("button", { type: "button", class: "btn btn-small", text: "Done" });
  done.addEventListener("click", () => {
    dropNotice(container);
    container.closest(".card").querySelector("h2").focus();
  });
  container.replaceChildren(
    h(
      "div",
      { class: "notice notice-secret", role: "group", "aria-label": `Key file ${name}` },
      h("p", { class: "notice-title" }, "Key file ", h("code", { text: name }), " downloaded"),
      h("p", {
        text: "It holds the private key and is offered only this once: the server keeps just the public key. Store the file safely now.",
      }),
      h("div", { class: "actions" }, h("a", { class: "btn btn-small", href: url, download: name, text: "Download again", "aria-label": `Download ${name} again` }), done),
    ),
  );
}

function showClientSecret(container, clientId, secret) {
  dropNotice(container);
  const secretInput = h("input", { id: "client-secret", readonly: true, value: secret, spellcheck: "false", autocomplete: "off" });
  const copy = h("button", { type: "button", class: "btn btn-small", text: "Copy secret" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      announce("Client secret copied.");
    } catch {
      secretInput.select();
      announce("Secret selected: copy it with Ctrl+C.");
    }
  });
  const done = h("button", { type: "button", class: "btn btn-small", text: "Done" });
  done.addEventListener("click", () => {
    container.replaceChildren();
    $("apps-title").focus();
  });
  container.replaceChildren(
    h(
      "div",
      { class: "notice notice-secret", role: "group", "aria-label": "Client secret" },
      h("p", { class: "notice-title", text: "Client secret: shown only once" }),
      h("p", { text: "Store it now. The server keeps only a hash of it and cannot show it again." }),
      h("div", { class: "field" }, h("label", { for: "client-id-once", text: "Client id" }), h("input", { id: "client-id-once", readonly: true, value: clientId })),
      h("div", { class: "field" }, h("label", { for: "client-secret", text: "Client secret" }), secretInput),
      h("div", { class: "actions" }, copy, done),
    ),
  );
}

// ---- lists ----------------------------------------------------------------------------

/**
 * One paged list from a List* RPC. When the server does not implement the RPC yet, the list
 * falls back to what was added or opened since sign-in, and offers "open by id".
 */
class ListPanel {
  constructor(prefix, opts) {
    Object.assign(this, opts);
    this.list = $(`${prefix}-list`);
    this.count = $(`${prefix}-count`);
    this.more = $(`${prefix}-more`);
    this.note = $(`${prefix}-note`);
    this.items = [];
    this.total = 0;
    this.known = new Map();
    this.unimplemented = false;
    this.more.addEventListener("click", () => act(this.more, () => this.load(true)));
  }

  async load(append = false) {
    const offset = append ? this.items.length : 0;
    this.count.textContent = "loading…";
    let res;
    try {
      res = await rpc(this.method, { ...this.request(), query: { offset, limit: PAGE } });
    } catch (err) {
      if (err instanceof RpcError && err.code === Code.UNIMPLEMENTED && this.open) {
        this.unimplemented = true;
        this.items = [...this.known.values()].reverse();
        this.total = this.items.length;
        this.render();
        return;
      }
      this.count.textContent = "";
      throw err;
    }
    this.unimplemented = false;
    this.items = append ? this.items.concat(res.result) : res.result;
    this.total = Math.max(Number(res.details ? res.details.totalResult : 0), this.items.length);
    this.render();
  }

  remember(item) {
    this.known.set(item.id, item);
  }

  forget(id) {
    this.known.delete(id);
  }

  reset() {
    this.items = [];
    this.total = 0;
    this.known.clear();
    this.list.replaceChildren();
    this.count.textContent = "";
    this.more.hidden = true;
    if (this.note) this.note.hidden = true;
  }

  render() {
    this.count.textContent = this.total === 1 ? `1 ${this.noun}` : `${this.total} ${this.noun}s`;
    this.list.replaceChildren(
      ...(this.items.length ? this.items.map((item) => this.item(item)) : [h("li", { class: "empty", text: this.empty })]),
    );
    this.more.hidden = this.unimplemented || this.items.length >= this.total;
    if (this.note) this.renderNote();
  }

  renderNote() {
    this.note.hidden = !this.unimplemented;
    if (!this.unimplemented) return;
    const inputId = `${this.list.id}-open`;
    const input = h("input", { id: inputId, autocomplete: "off", spellcheck: "false", inputmode: "numeric" });
    const form = h(
      "form",
      { class: "inline-form", novalidate: true },
      h("div", { class: "field" }, h("label", { for: inputId, text: `Open a ${this.noun} by id` }), input),
      h("button", { type: "submit", class: "btn btn-small", text: "Open" }),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(form, async () => {
        const item = await this.open(required(input, `the ${this.noun}'s id`));
        this.remember(item);
        await this.load();
        this.select(item);
      });
    });
    this.note.replaceChildren(
      h("p", {
        text: `This server cannot list ${this.noun}s yet (${this.method} is not implemented). ${this.noun[0].toUpperCase()}${this.noun.slice(1)}s added or opened here since you signed in are shown.`,
      }),
      form,
    );
  }
}

function removeButton(label, onClick) {
  const btn = h("button", { type: "button", class: "btn btn-danger-quiet btn-small", "aria-label": label, text: "Remove" });
  btn.addEventListener("click", () => act(btn, onClick));
  return btn;
}

function selectableItem({ selected, title, sub, onSelect, removeLabel, onRemove, badge }) {
  const choose = h(
    "button",
    { type: "button", class: "item-main", "aria-current": selected ? "true" : null },
    h("span", { class: "item-title" }, h("span", { class: "item-name", text: title }), badge ? h("span", { class: "badge", text: badge }) : null),
    h("span", { class: "item-sub" }, sub),
  );
  choose.addEventListener("click", onSelect);
  return h("li", { class: selected ? "item selected" : "item" }, choose, removeButton(removeLabel, onRemove));
}

function keyItem(key, removeLabel, onRemove) {
  const expires = key.expirationDate;
  const never = !expires || expires.seconds >= NEVER_SECONDS;
  const expired = !never && fromTimestamp(expires) < new Date();
  const created = key.details && fromTimestamp(key.details.creationDate);
  return h(
    "li",
    { class: "item", "data-key-id": key.id },
    h(
      "div",
      { class: "item-main static" },
      h("span", { class: "item-title" }, h("code", { class: "key-id", text: key.id }), expired ? h("span", { class: "badge badge-warn", text: "expired" }) : null),
      h("span", { class: "item-sub" }, [never ? "Never expires" : `${expired ? "Expired" : "Expires"} ${fmtTime(fromTimestamp(expires))}`, created ? ` · added ${fmtTime(created)}` : ""].join("")),
    ),
    removeButton(removeLabel, onRemove),
  );
}

function idLine(...parts) {
  return parts.filter(Boolean).flatMap((p, i) => (i ? [" · ", p] : [p]));
}

function focusHeading(id) {
  const el = $(id);
  if (!el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
  el.focus();
}

function reveal(id) {
  if (narrow()) $(id).scrollIntoView({ block: "start" });
}

// ---- machine users and keys -----------------------------------------------------------

let currentUser = null;

const users = new ListPanel("users", {
  method: "ListUsers",
  noun: "user",
  empty: "No machine users yet.",
  request: () => ({}),
  open: async (id) => (await rpc("GetUserByID", { id })).user,
  select: (user) => selectUser(user),
  item: (user) =>
    selectableItem({
      selected: currentUser && currentUser.id === user.id,
      title: user.userName,
      sub: idLine(user.machine && user.machine.name, h("code", { text: user.id })),
      badge: user.machine ? null : "human",
      onSelect: () => selectUser(user),
      removeLabel: `Remove machine user ${user.userName}`,
      onRemove: () => removeUser(user),
    }),
});

const userKeys = new ListPanel("user-keys", {
  method: "ListMachineKeys",
  noun: "key",
  empty: "No keys yet.",
  request: () => ({ userId: currentUser.id }),
  item: (key) => keyItem(key, `Remove key ${key.id}`, () => removeUserKey(key)),
});

function selectUser(user) {
  currentUser = user;
  users.render();
  dropNotice($("user-key-notice"));
  $("user-empty").hidden = !!user;
  $("user-keys").hidden = !user;
  if (!user) {
    userKeys.reset();
    return Promise.resolve();
  }
  $("user-keys-title").textContent = `Keys of ${user.userName}`;
  $("user-keys-name").textContent = (user.machine && user.machine.name) || user.userName;
  $("user-keys-id").textContent = user.id;
  reveal("user-detail");
  return act(null, () => userKeys.load());
}

async function removeUser(user) {
  const ok = await confirmRemove(`Remove ${user.userName}?`, `The machine user ${user.userName} and all its keys are removed; tokens it holds stop working at once.`);
  if (!ok) return;
  await rpc("RemoveUser", { id: user.id });
  users.forget(user.id);
  if (currentUser && currentUser.id === user.id) selectUser(null);
  await users.load();
  announce(`Machine user ${user.userName} removed.`);
  focusHeading("users-title");
}

onSubmit("add-user-form", async () => {
  const userName = required($("add-user-username"), "a user name");
  const name = required($("add-user-name"), "a display name");
  const description = $("add-user-description").value.trim();
  const accessTokenType = Number($("add-user-token-type").value);
  const res = await rpc("AddMachineUser", { userName, name, description, accessTokenType });
  const user = { id: res.userId, userName, details: res.details, machine: { name, description, accessTokenType } };
  users.remember(user);
  for (const id of ["add-user-username", "add-user-name", "add-user-description"]) $(id).value = "";
  await users.load();
  announce(`Machine user ${userName} added.`);
  await selectUser(users.items.find((u) => u.id === user.id) || user);
});

async function removeUserKey(key) {
  const ok = await confirmRemove("Remove this key?", `Key ${key.id} is removed; tokens obtained with it stop working at once.`);
  if (!ok) return;
  await rpc("RemoveMachineKey", { userId: currentUser.id, keyId: key.id });
  await userKeys.load();
  announce(`Key ${key.id} removed.`);
  focusHeading("user-keys-title");
}

for (const radio of document.querySelectorAll("#add-user-key-form input[name=source]")) {
  radio.addEventListener("change", () => {
    $("user-key-pem").hidden = !$("user-key-upload").checked;
  });
}

$("user-key-pem-file").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (file) $("user-key-pem-text").value = (await file.text()).trim();
});

onSubmit("add-user-key-form", async () => {
  const user = currentUser;
  const request = { userId: user.id, type: KEY_TYPE_JSON, expirationDate: expiryFrom($("user-key-expiry")) };
  const upload = $("user-key-upload").checked;
  if (upload) {
    const pem = $("user-key-pem-text").value.trim();
    if (!pem) {
      $("user-key-pem-file").focus();
      throw new Error("Choose a public key file or paste the PEM.");
    }
    request.publicKey = te.encode(`${pem}\n`);
  }
  const res = await rpc("AddMachineKey", request);
  if (res.keyDetails.length) {
    offerKeyFile($("user-key-notice"), res.keyId, res.keyDetails);
    announce(`Key ${res.keyId} added for ${user.userName}; its key file was downloaded.`);
  } else {
    dropNotice($("user-key-notice"));
    announce(`Public key registered as key ${res.keyId} for ${user.userName}.`);
  }
  if (upload) {
    $("user-key-pem-text").value = "";
    $("user-key-pem-file").value = "";
  }
  $("user-key-expiry").value = "";
  await userKeys.load();
});

// ---- projects, apps and app keys ------------------------------------------------------

let currentProject = null;
let currentApp = null;
const authName = (app) => (app.apiConfig && app.apiConfig.authMethodType === API_AUTH.PRIVATE_KEY_JWT ? "private key JWT" : "Basic");

const projects = new ListPanel("projects", {
  method: "ListProjects",
  noun: "project",
  empty: "No projects yet.",
  request: () => ({}),
  open: async (id) => (await rpc("GetProjectByID", { id })).project,
  select: (project) => selectProject(project),
  item: (project) =>
    selectableItem({
      selected: currentProject && currentProject.id === project.id,
      title: project.name,
      sub: h("code", { text: project.id }),
      onSelect: () => selectProject(project),
      removeLabel: `Remove project ${project.name}`,
      onRemove: () => removeProject(project),
    }),
});

const apps = new ListPanel("apps", {
  method: "ListApps",
  noun: "app",
  empty: "No API apps yet.",
  request: () => ({ projectId: currentProject.id }),
  open: async (id) => (await rpc("GetAppByID", { projectId: currentProject.id, appId: id })).app,
  select: (app) => selectApp(app),
  item: (app) =>
    selectableItem({
      selected: currentApp && currentApp.id === app.id,
      title: app.name,
      sub: idLine(authName(app), h("span", {}, "client id ", h("code", { text: app.apiConfig ? app.apiConfig.clientId : "" }))),
      badge: app.apiConfig ? null : "not API",
      onSelect: () => selectApp(app),
      removeLabel: `Remove API app ${app.name}`,
      onRemove: () => removeApp(app),
    }),
});

const appKeys = new ListPanel("app-keys", {
  method: "ListAppKeys",
  noun: "key",
  empty: "No keys yet.",
  request: () => ({ projectId: currentProject.id, appId: currentApp.id }),
  item: (key) => keyItem(key, `Remove app key ${key.id}`, () => removeAppKey(key)),
});

function selectProject(project) {
  currentProject = project;
  projects.render();
  apps.reset();
  selectApp(null);
  dropNotice($("app-notice"));
  $("project-empty").hidden = !!project;
  $("project-apps").hidden = !project;
  if (!project) return Promise.resolve();
  $("apps-title").textContent = `API apps of ${project.name}`;
  $("apps-project-name").textContent = project.name;
  $("apps-project-id").textContent = project.id;
  reveal("project-detail");
  return act(null, () => apps.load());
}

function selectApp(app) {
  currentApp = app;
  if (currentProject) apps.render();
  dropNotice($("app-key-notice"));
  $("app-empty").hidden = !!app;
  $("app-keys").hidden = !app;
  if (!app) {
    appKeys.reset();
    return Promise.resolve();
  }
  const keyed = app.apiConfig && app.apiConfig.authMethodType === API_AUTH.PRIVATE_KEY_JWT;
  $("app-keys-title").textContent = `Keys of ${app.name}`;
  $("app-keys-name").textContent = app.name;
  $("app-keys-client").textContent = app.apiConfig ? app.apiConfig.clientId : "";
  $("app-basic").hidden = keyed;
  $("app-keys-body").hidden = !keyed;
  reveal("app-detail");
  if (!keyed) {
    appKeys.reset();
    return Promise.resolve();
  }
  return act(null, () => appKeys.load());
}

async function removeProject(project) {
  const ok = await confirmRemove(`Remove ${project.name}?`, `The project ${project.name}, its API apps and their keys are removed.`);
  if (!ok) return;
  await rpc("RemoveProject", { id: project.id });
  projects.forget(project.id);
  if (currentProject && currentProject.id === project.id) selectProject(null);
  await projects.load();
  announce(`Project ${project.name} removed.`);
  focusHeading("projects-title");
}

async function removeApp(app) {
  const ok = await confirmRemove(`Remove ${app.name}?`, `The API app ${app.name} and its keys are removed; it can no longer introspect tokens.`);
  if (!ok) return;
  await rpc("RemoveApp", { projectId: currentProject.id, appId: app.id });
  apps.forget(app.id);
  if (currentApp && currentApp.id === app.id) selectApp(null);
  await apps.load();
  announce(`API app ${app.name} removed.`);
  focusHeading("apps-title");
}

async function removeAppKey(key) {
  const ok = await confirmRemove("Remove this app key?", `Key ${key.id} is removed; client assertions signed with it stop working at once.`);
  if (!ok) return;
  await rpc("RemoveAppKey", { projectId: currentProject.id, appId: currentApp.id, keyId: key.id });
  await appKeys.load();
  announce(`App key ${key.id} removed.`);
  focusHeading("app-keys-title");
}

onSubmit("add-project-form", async () => {
  const name = required($("add-project-name"), "a project name");
  const res = await rpc("AddProject", { name });
  const project = { id: res.id, name, details: res.details };
  projects.remember(project);
  $("add-project-name").value = "";
  await projects.load();
  announce(`Project ${name} added.`);
  await selectProject(projects.items.find((p) => p.id === project.id) || project);
});

onSubmit("add-app-form", async () => {
  const project = currentProject;
  const name = required($("add-app-name"), "an app name");
  const authMethodType = Number($("add-app-auth").value);
  const res = await rpc("AddAPIApp", { projectId: project.id, name, authMethodType });
  const app = { id: res.appId, name, details: res.details, apiConfig: { clientId: res.clientId, authMethodType } };
  apps.remember(app);
  $("add-app-name").value = "";
  await apps.load();
  await selectApp(apps.items.find((a) => a.id === app.id) || app);
  if (res.clientSecret) {
    showClientSecret($("app-notice"), res.clientId, res.clientSecret);
    // The secret is shown once, so bring it into view (on a phone the app panel sits below).
    $("client-secret").focus();
    announce(`API app ${name} added. Its client secret is shown once: store it now.`);
  } else {
    announce(`API app ${name} added.`);
  }
});

onSubmit("add-app-key-form", async () => {
  const app = currentApp;
  const res = await rpc("AddAppKey", {
    projectId: currentProject.id,
    appId: app.id,
    type: KEY_TYPE_JSON,
    expirationDate: expiryFrom($("app-key-expiry")),
  });
  offerKeyFile($("app-key-notice"), res.id, res.keyDetails);
  announce(`App key ${res.id} added for ${app.name}; its key file was downloaded.`);
  $("app-key-expiry").value = "";
  await appKeys.load();
});

// ---- tabs -----------------------------------------------------------------------------

let tab = "users";
function showTab(name) {
  if (name !== tab) $("status").replaceChildren();
  tab = name;
  $("tab-users").setAttribute("aria-pressed", String(name === "users"));
  $("tab-projects").setAttribute("aria-pressed", String(name === "projects"));
  $("users-view").hidden = name !== "users";
  $("projects-view").hidden = name !== "projects";
  return act(null, () => (name === "users" ? users.load() : projects.load()));
}
$("tab-users").addEventListener("click", () => showTab("users"));
$("tab-projects").addEventListener("click", () => showTab("projects"));
$("users-refresh").addEventListener("click", (ev) => act(ev.currentTarget, () => users.load()));
$("projects-refresh").addEventListener("click", (ev) => act(ev.currentTarget, () => projects.load()));

// ---- organization ---------------------------------------------------------------------

function renderOrg() {
  const org = auth.org;
  $("org-name").textContent = org.name;
  $("topbar-org-name").textContent = org.name;
  $("org-id").textContent = org.id;
  $("org-domain").textContent = org.primaryDomain;
  $("org-domain-wrap").hidden = !org.primaryDomain;
  const switched = !!auth.orgId && (!auth.myOrg || auth.orgId !== auth.myOrg.id);
  $("org-switched").hidden = !switched;
  $("org-back").hidden = !switched;
}

function resetData() {
  currentUser = null;
  currentProject = null;
  currentApp = null;
  for (const list of [users, userKeys, projects, apps, appKeys]) list.reset();
  for (const id of ["user-key-notice", "app-notice", "app-key-notice"]) dropNotice($(id));
  $("user-empty").hidden = false;
  $("user-keys").hidden = true;
  $("project-empty").hidden = false;
  $("project-apps").hidden = true;
  $("app-empty").hidden = false;
  $("app-keys").hidden = true;
  $("user-keys-title").textContent = "Keys";
  $("apps-title").textContent = "API apps";
  $("app-keys-title").textContent = "App keys";
}

/** Sets the org context (`x-zitadel-orgid`; "" = the caller's own) after GetMyOrg confirms it. */
async function useOrg(orgId) {
  const previous = auth.orgId;
  auth.orgId = orgId;
  let res;
  try {
    res = await rpc("GetMyOrg");
  } catch (err) {
    auth.orgId = previous;
    throw err;
  }
  auth.org = res.org;
  if (!orgId) auth.myOrg = res.org;
  resetData();
  renderOrg();
  await showTab(tab);
}

onSubmit("switch-org-form", async () => {
  const id = required($("switch-org-input"), "an organization id");
  await useOrg(auth.myOrg && id === auth.myOrg.id ? "" : id);
  $("switch-org-input").value = "";
  announce(`Now working in organization ${auth.org.name}.`);
});

onSubmit("add-org-form", async () => {
  const name = required($("add-org-name"), "an organization name");
  const res = await rpc("AddOrg", { name });
  $("add-org-name").value = "";
  await useOrg(res.id);
  announce(`Organization ${name} created (id ${res.id}); now working in it.`);
});

$("org-back").addEventListener("click", (ev) =>
  act(ev.currentTarget, async () => {
    await useOrg("");
    announce(`Back in your organization ${auth.org.name}.`);
    focusHeading("org-title");
  }),
);

// ---- sign-in and sign-out -------------------------------------------------------------

function showSignInError(err) {
  const box = $("signin-error");
  if (!err) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.replaceChildren(...errorContent(err));
  box.hidden = false;
}

async function signIn(token, expiresIn = 0) {
  auth.token = token;
  auth.orgId = "";
  let res;
  try {
    res = await rpc("GetMyOrg");
  } catch (err) {
    auth.token = null;
    throw err;
  }
  auth.myOrg = res.org;
  auth.org = res.org;
  if (expiresIn > 0) {
    // A little early, so no request goes out with a token about to lapse.
    const ms = Math.min(Math.max(expiresIn - 30, 1) * 1000, 2 ** 31 - 1);
    auth.timer = setTimeout(() => signOut(new Error("Your access token expired. Sign in again.")), ms);
  }
  showSignInError(null);
  resetData();
  renderOrg();
  $("signin-view").hidden = true;
  $("console-view").hidden = false;
  $("signed-in").hidden = false;
  focusHeading("org-title");
  announce(`Signed in. Organization ${auth.org.name}.`);
  await showTab("users");
}

function signOut(reason) {
  clearTimeout(auth.timer);
  Object.assign(auth, { token: null, orgId: "", myOrg: null, org: null, timer: 0 });
  resetData();
  for (const id of ["org-name", "topbar-org-name", "org-id", "org-domain"]) $(id).textContent = "";
  for (const url of keyFileUrls) URL.revokeObjectURL(url);
  keyFileUrls.clear();
  if (confirmDialog.open) confirmDialog.close();
  clearAlert();
  $("console-view").hidden = true;
  $("signed-in").hidden = true;
  $("signin-view").hidden = false;
  if (reason instanceof RpcError) reason.message = `You were signed out: ${reason.message}. Sign in again.`;
  showSignInError(reason || null);
  $("signin-title").setAttribute("tabindex", "-1");
  $("signin-title").focus();
  if (!reason) announce("Signed out.");
}

$("sign-out").addEventListener("click", () => signOut());

const signInFailed = (err) => {
  if (err instanceof RpcError && err.code === Code.UNAUTHENTICATED) {
    err.message = `The server did not accept this token: ${err.message}`;
  }
  showSignInError(err);
};

$("keyfile-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  act(form, async () => {
    const input = $("keyfile-input");
    const file = input.files[0];
    if (!file) {
      showSignInError(new Error("Choose a key file first."));
      input.focus();
      return;
    }
    showSignInError(null);
    try {
      const text = await file.text();
      // Forget the file as soon as it is read; only the signed assertion goes out.
      input.value = "";
      const { token, expiresIn } = await signInWithKeyFile(text);
      await signIn(token, expiresIn);
    } catch (err) {
      signInFailed(err);
    }
  });
});

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  act(form, async () => {
    const input = $("token-input");
    const token = input.value.trim().replace(/^bearer\s+/i, "");
    if (!token) {
      showSignInError(new Error("Paste an access token first."));
      input.focus();
      return;
    }
    input.value = "";
    showSignInError(null);
    try {
      await signIn(token);
    } catch (err) {
      signInFailed(err);
      input.focus();
    }
  });
});
