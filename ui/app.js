// The console: sign-in, organization, machine users with their keys and trusts, projects, API
// apps and app keys, the org's key policy and members, its events and webhooks. Everything is built
// with DOM calls and textContent (never innerHTML), so data from the server cannot inject
// markup, and there is no inline script for a CSP to forbid. The v1 Management API goes over gRPC-Web, authn-keys'
// own `authnkeys.v1` (key lifecycle, trusts, key policy, events and webhooks) over Connect with JSON.
import { API_AUTH, Code, RpcError, call, callJson, fromBase64, toBase64 } from "./grpc.js";
import { SignInError, signInWithKeyFile } from "./auth.js";

const $ = (id) => document.getElementById(id);
const te = new TextEncoder();
const td = new TextDecoder();
const PAGE = 100;
// Keys expiring in the year 9999 are ZITADEL's "no expiry".
const NEVER_YEAR = 9999;
const KEYS = "authnkeys.v1.KeyService";
const POLICY = "authnkeys.v1.PolicyService";
const EVENTS = "authnkeys.v1.EventService";
const TRUSTS = "authnkeys.v1.TrustService";

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
const parseTime = (text) => (text ? new Date(text) : null);
const narrow = () => window.matchMedia("(max-width: 899px)").matches;

// ---- sign-in state -----------------------------------------------------------------------

// The access token lives in this object only: never in storage, cookies or the URL.
// `me`: who the token speaks for, as far as the console can tell ({ id, name }, or null);
// `myRoles`: my org roles in the current org from its member list (null: not known).
// `keyId`: the key this sign-in used (key file sign-in only).
const auth = { token: null, orgId: "", myOrg: null, org: null, timer: 0, me: null, myRoles: null, keyId: "" };
const rpc = (method, request = {}) => call(method, request, { token: auth.token, orgId: auth.orgId });
const own = (procedure, request = {}) => callJson(procedure, request, { token: auth.token, orgId: auth.orgId });
const isMe = (userId) => !!auth.me && auth.me.id === userId;

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
function confirmRemove(title, text, okText = "Remove") {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okText;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
  });
}

/** The end of the chosen UTC day as RFC 3339, or undefined when the field is empty. */
function expiryFrom(input) {
  if (!input.value) return undefined;
  const end = `${input.value}T23:59:59Z`;
  if (Number.isNaN(new Date(end).getTime())) throw new Error("Enter the expiry as a date (YYYY-MM-DD).");
  return end;
}

// Disabling asks for an optional reason in its own dialog; resolves to the reason, or null
// when cancelled.
const disableDialog = $("disable-dialog");
function askDisableReason(key) {
  const yours = key.id === auth.keyId ? " You signed in with this key: disabling it signs you out." : "";
  $("disable-text").textContent = `Key ${key.id} stops signing anything that is accepted, and the tokens obtained with it stop working at once. Enabling it later makes the key usable again; those tokens stay ended.${yours}`;
  $("disable-reason").value = "";
  disableDialog.returnValue = "";
  disableDialog.showModal();
  $("disable-reason").focus();
  return new Promise((resolve) => {
    disableDialog.addEventListener("close", () => resolve(disableDialog.returnValue === "ok" ? $("disable-reason").value.trim() : null), {
      once: true,
    });
  });
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

/**
 * A secret the server shows once (an app's client secret, a webhook's signing secret): a
 * read-only field with Copy, the warning that it will not be shown again, and Done, which
 * forgets it and moves focus to `after`.
 */
function showSecretOnce(container, { name, inputId, secret, warning, fields = [], after }) {
  dropNotice(container);
  const hintId = `${inputId}-hint`;
  const secretInput = h("input", { id: inputId, readonly: true, value: secret, spellcheck: "false", autocomplete: "off", "aria-describedby": hintId });
  const copy = h("button", { type: "button", class: "btn btn-small", text: "Copy secret" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      announce(`${name} copied.`);
    } catch {
      secretInput.select();
      announce("Secret selected: copy it with Ctrl+C.");
    }
  });
  const done = h("button", { type: "button", class: "btn btn-small", text: "Done" });
  done.addEventListener("click", () => {
    container.replaceChildren();
    $(after).focus();
  });
  container.replaceChildren(
    h(
      "div",
      { class: "notice notice-secret", role: "group", "aria-label": name },
      h("p", { class: "notice-title", text: `${name}: shown only once` }),
      h("p", { text: warning }),
      ...fields,
      h("div", { class: "field" }, h("label", { for: inputId, text: name }), secretInput),
      h("p", { id: hintId, class: "hint", text: "Copy secret puts it on the clipboard; or select the field and press Ctrl+C." }),
      h("div", { class: "actions" }, copy, done),
    ),
  );
}

function showClientSecret(container, clientId, secret) {
  showSecretOnce(container, {
    name: "Client secret",
    inputId: "client-secret",
    secret,
    warning: "Store it now. The server keeps only a hash of it and cannot show it again.",
    fields: [h("div", { class: "field" }, h("label", { for: "client-id-once", text: "Client id" }), h("input", { id: "client-id-once", readonly: true, value: clientId }))],
    after: "apps-title",
  });
}

// ---- lists ----------------------------------------------------------------------------

/**
 * One paged list from a List* RPC. When the server does not implement the RPC yet, the list
 * falls back to what was added or opened since sign-in, and offers "open by id". `page`, when
 * given, fetches one page itself (offset → { items, total }), for lists of other APIs.
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
    this.seq = 0;
    this.more.addEventListener("click", () => act(this.more, () => this.load(true)));
  }

  async load(append = false) {
    const offset = append ? this.items.length : 0;
    // Only the latest load renders: a slower, older answer (filters changed meanwhile) is dropped.
    const seq = ++this.seq;
    this.count.textContent = "loading…";
    let res;
    try {
      res = await this.fetchPage(offset);
      if (seq !== this.seq) return;
    } catch (err) {
      if (seq !== this.seq) return;
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
    this.items = append ? this.items.concat(res.items) : res.items;
    this.total = Math.max(res.total, this.items.length);
    this.render();
  }

  async fetchPage(offset) {
    if (this.page) return this.page(offset);
    const res = await rpc(this.method, { ...this.request(), query: { offset, limit: PAGE } });
    return { items: res.result, total: Number(res.details ? res.details.totalResult : 0) };
  }

  remember(item) {
    this.known.set(item.id, item);
  }

  forget(id) {
    this.known.delete(id);
  }

  reset() {
    this.seq += 1;
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
      ...(this.items.length
        ? this.items.map((item) => this.item(item))
        : [h("li", { class: "empty", text: typeof this.empty === "function" ? this.empty() : this.empty })]),
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

const youBadge = () => h("span", { class: "badge badge-you", text: "you" });

// A user's own entry offers no Remove: the console never offers what it knows the server
// refuses or what would lock the person out (`onRemove` left out).
function selectableItem({ selected, title, sub, onSelect, removeLabel, onRemove, badge, you }) {
  const choose = h(
    "button",
    { type: "button", class: "item-main", "aria-current": selected ? "true" : null },
    h(
      "span",
      { class: "item-title" },
      h("span", { class: "item-name", text: title }),
      badge ? h("span", { class: "badge", text: badge }) : null,
      you ? youBadge() : null,
    ),
    h("span", { class: "item-sub" }, sub),
  );
  choose.addEventListener("click", onSelect);
  return h("li", { class: selected ? "item selected" : "item" }, choose, onRemove ? removeButton(removeLabel, onRemove) : null);
}

const KEY_STATES = {
  KEY_STATE_ACTIVE: ["active", "badge-ok"],
  KEY_STATE_DISABLED: ["disabled", "badge-warn"],
  KEY_STATE_EXPIRED: ["expired", "badge-warn"],
};
const KEY_ORIGINS = { KEY_ORIGIN_GENERATED: "generated", KEY_ORIGIN_UPLOADED: "uploaded" };
const KEY_USES = { jwt_bearer_grant: "token grant (JWT profile)", client_assertion: "client authentication at introspection" };

function lastUseText(used) {
  if (!used) return "Never used";
  const how = KEY_USES[used.use] || used.use || "";
  return [`Last used ${fmtTime(parseTime(used.time))}`, how, used.address ? `from ${used.address}` : ""].filter(Boolean).join(" · ");
}

/** One authnkeys.v1 Key: algorithm, origin, state, expiry, last use; Disable or Enable, Remove. */
function keyItem(key, { removeLabel, onRemove, onDisable, onEnable }) {
  const expires = parseTime(key.expiresAt);
  const never = !expires || expires.getUTCFullYear() >= NEVER_YEAR;
  const expired = !never && expires < new Date();
  const created = parseTime(key.createdAt);
  const [stateName, stateClass] = KEY_STATES[key.state] || ["unknown state", "badge-warn"];
  const disabled = key.state === "KEY_STATE_DISABLED";
  const lines = [
    h("span", {
      class: "item-sub key-expiry",
      text: [never ? "Never expires" : `${expired ? "Expired" : "Expires"} ${fmtTime(expires)}`, created ? `added ${fmtTime(created)}` : ""]
        .filter(Boolean)
        .join(" · "),
    }),
    h("span", { class: "item-sub key-use", text: lastUseText(key.lastUsed) }),
  ];
  if (disabled) {
    const when = key.disabledAt ? ` ${fmtTime(parseTime(key.disabledAt))}` : "";
    lines.push(
      h("span", { class: "item-sub key-disabled", text: key.disabledReason ? `Disabled${when}: ${key.disabledReason}` : `Disabled${when} (no reason given)` }),
    );
  }
  const toggle = h("button", {
    type: "button",
    class: "btn btn-quiet btn-small key-toggle",
    "aria-label": `${disabled ? "Enable" : "Disable"} key ${key.id}`,
    text: disabled ? "Enable" : "Disable",
  });
  toggle.addEventListener("click", () => act(toggle, () => (disabled ? onEnable(key) : onDisable(key))));
  return h(
    "li",
    { class: "item key-item", "data-key-id": key.id, "data-state": stateName },
    h(
      "div",
      { class: "item-main static" },
      h(
        "span",
        { class: "item-title" },
        h("code", { class: "key-id", text: key.id }),
        h("span", { class: "badge badge-alg", text: key.algorithm || "?" }),
        h("span", { class: "badge badge-quiet badge-origin", text: KEY_ORIGINS[key.origin] || "origin unknown" }),
        h("span", { class: `badge badge-state ${stateClass}`, text: stateName }),
        key.id === auth.keyId ? h("span", { class: "badge badge-you", text: "this sign-in" }) : null,
      ),
      lines,
    ),
    h("div", { class: "item-actions" }, toggle, removeButton(removeLabel, onRemove)),
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

// ---- keys of either owner (authnkeys.v1) ----------------------------------------------

/** The filter row above a key list; `onChange` runs when what it asks for changes. */
function keyFilters(prefix, onChange) {
  const unused = $(`${prefix}-unused`);
  const expiring = $(`${prefix}-expiring`);
  const disabled = $(`${prefix}-disabled`);
  // Both dates mean the start of that UTC day.
  const day = (input) => (input.value ? `${input.value}T00:00:00Z` : undefined);
  const request = () => ({ unusedSince: day(unused), expiresBefore: day(expiring), state: disabled.checked ? "KEY_STATE_DISABLED" : undefined });
  let applied = JSON.stringify(request());
  const apply = () => {
    const now = JSON.stringify(request());
    if (now === applied) return;
    applied = now;
    onChange();
  };
  for (const input of [unused, expiring, disabled]) input.addEventListener("change", apply);
  $(`${prefix}-filter`).addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  const clear = () => {
    unused.value = "";
    expiring.value = "";
    disabled.checked = false;
  };
  $(`${prefix}-clear`).addEventListener("click", () => {
    clear();
    apply();
  });
  return {
    request,
    active: () => !!(unused.value || expiring.value || disabled.checked),
    reset: () => {
      clear();
      applied = JSON.stringify(request());
    },
  };
}

/**
 * The key list of one owner through ListKeys, with its filters, Disable/Enable and Refresh.
 * `owner()` gives the owner's part of the request ({ userId } or { projectId, appId });
 * `remove(key)` removes a key (through v1, as ever).
 */
function keyPanel(prefix, { owner, remove, removeLabel }) {
  const panel = new ListPanel(prefix, {
    method: "ListKeys",
    noun: "key",
    empty: () => (filters.active() ? "No keys match these filters." : "No keys yet."),
    page: async (offset) => {
      const res = await own(`${KEYS}/ListKeys`, { ...owner(), ...filters.request(), offset: String(offset), limit: PAGE });
      return { items: res.result || [], total: Number(res.totalResult || 0) };
    },
    item: (key) => keyItem(key, { removeLabel: removeLabel(key), onRemove: () => remove(key), onDisable: disable, onEnable: enable }),
  });
  const filters = keyFilters(prefix, () => act(null, () => panel.load()));
  panel.filters = filters;
  const refresh = $(`${prefix}-refresh`);
  refresh.addEventListener("click", () => act(refresh, () => panel.load()));

  // After a state change the list is rebuilt; keep keyboard focus on the key's new toggle.
  const focusToggle = (id) => {
    const btn = panel.list.querySelector(`li[data-key-id="${CSS.escape(id)}"] .key-toggle`);
    if (btn) btn.focus();
  };
  async function disable(key) {
    const reason = await askDisableReason(key);
    if (reason === null) return;
    if ([...reason].length > 500) throw new Error("The reason may be at most 500 characters long.");
    await own(`${KEYS}/DisableKey`, { keyId: key.id, reason });
    await panel.load();
    announce(`Key ${key.id} disabled.`);
    focusToggle(key.id);
  }
  async function enable(key) {
    await own(`${KEYS}/EnableKey`, { keyId: key.id });
    await panel.load();
    announce(`Key ${key.id} enabled again.`);
    focusToggle(key.id);
  }
  return panel;
}

/**
 * The "Add a key" form of one owner: a generated pair of the chosen algorithm (its key file
 * downloaded at once) or an uploaded public key of any kind the server takes.
 */
function keyForm(prefix, { form, owner, ownerName, panel, notice }) {
  const upload = $(`${prefix}-upload`);
  for (const radio of document.querySelectorAll(`#${form} input[name=source]`)) {
    radio.addEventListener("change", () => {
      $(`${prefix}-pem`).hidden = !upload.checked;
      $(`${prefix}-gen`).hidden = upload.checked;
    });
  }
  $(`${prefix}-pem-file`).addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (file) $(`${prefix}-pem-text`).value = (await file.text()).trim();
  });
  onSubmit(form, async () => {
    const name = ownerName();
    const request = { ...owner(), expirationDate: expiryFrom($(`${prefix}-expiry`)) };
    if (upload.checked) {
      const pem = $(`${prefix}-pem-text`).value.trim();
      if (!pem) {
        $(`${prefix}-pem-file`).focus();
        throw new Error("Choose a public key file or paste the PEM.");
      }
      request.publicKey = toBase64(te.encode(`${pem}\n`));
    } else {
      request.algorithm = $(`${prefix}-alg`).value;
    }
    const res = await own(`${KEYS}/AddKey`, request);
    const key = res.key;
    if (res.keyDetails) {
      offerKeyFile(notice, key.id, fromBase64(res.keyDetails));
      announce(`Key ${key.id} (${key.algorithm}) added for ${name}; its key file was downloaded.`);
    } else {
      dropNotice(notice);
      announce(`Public key registered as key ${key.id} for ${name}: the server recognized it as ${key.algorithm}.`);
    }
    if (upload.checked) {
      $(`${prefix}-pem-text`).value = "";
      $(`${prefix}-pem-file`).value = "";
    }
    $(`${prefix}-expiry`).value = "";
    await panel.load();
  });
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
      you: isMe(user.id),
      onSelect: () => selectUser(user),
      removeLabel: `Remove machine user ${user.userName}`,
      onRemove: isMe(user.id) ? null : () => removeUser(user),
    }),
});

const userKeys = keyPanel("user-keys", {
  owner: () => ({ userId: currentUser.id }),
  removeLabel: (key) => `Remove key ${key.id}`,
  remove: (key) => removeUserKey(key),
});
keyForm("user-key", {
  form: "add-user-key-form",
  owner: () => ({ userId: currentUser.id }),
  ownerName: () => currentUser.userName,
  panel: userKeys,
  notice: $("user-key-notice"),
});

function selectUser(user) {
  currentUser = user;
  users.render();
  dropNotice($("user-key-notice"));
  userKeys.filters.reset();
  $("user-empty").hidden = !!user;
  $("user-keys").hidden = !user;
  $("user-keys-refresh").hidden = !user;
  $("user-trusts-card").hidden = !user;
  if (!user) {
    userKeys.reset();
    trusts.reset();
    return Promise.resolve();
  }
  $("user-keys-title").textContent = `Keys of ${user.userName}`;
  $("user-keys-name").textContent = (user.machine && user.machine.name) || user.userName;
  $("user-keys-id").textContent = user.id;
  $("user-trusts-title").textContent = `Trusts of ${user.userName}`;
  trusts.reset();
  reveal("user-detail");
  return act(null, async () => {
    await userKeys.load();
    await loadTrusts();
  });
}

async function removeUser(user) {
  const ok = await confirmRemove(`Remove ${user.userName}?`, `The machine user ${user.userName} and all its keys are removed; tokens it holds stop working at once.`);
  if (!ok) return;
  try {
    await rpc("RemoveUser", { id: user.id });
  } catch (err) {
    // Only an IAM_OWNER passes the privilege boundary for an IAM_OWNER, so "the last
    // IAM_OWNER" can only be the caller itself: now the console knows who is signed in.
    if (err instanceof RpcError && err.id === "COMMAND-IamLst" && !auth.me) {
      await learnMe(user.id, user.userName);
      users.render();
      if (members.items.length) members.render();
    }
    throw err;
  }
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

// ---- a machine user's trusts (authnkeys.v1.TrustService) -------------------------------

/** What a trust's keys come from, as the server picks: inline, a URL, or discovery. */
function trustKeySource(t) {
  if (t.jwks) {
    const n = Array.isArray(t.jwks.keys) ? t.jwks.keys.length : 0;
    return `inline JWKS (${plural(n, "key")})`;
  }
  if (t.jwksUri) return `keys from ${t.jwksUri}`;
  return "keys from the issuer's discovery document";
}

function trustLifetime(t) {
  const secs = seconds(t.maxTokenLifetime);
  const cap = secs ? `Access tokens live at most ${durationText(secs)}` : "Access tokens live the server's lifetime";
  return t.capAtTokenExpiry ? `${cap}, and end with the outside token` : cap;
}

const trustLabel = (t) => `Remove trust for ${t.subject} from ${t.issuer}`;

const trusts = new ListPanel("user-trusts", {
  method: "ListTrusts",
  noun: "trust",
  empty: "No trusts yet: this user's tokens come from its keys only.",
  page: async (offset) => {
    const res = await own(`${TRUSTS}/ListTrusts`, { userId: currentUser.id, offset: String(offset), limit: PAGE });
    return { items: res.result || [], total: Number(res.totalResult || 0) };
  },
  item: (t) => {
    // By name: the answer's map has no order.
    const claims = Object.entries(t.claims || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const created = parseTime(t.createdAt);
    return h(
      "li",
      { class: "item trust-item", "data-trust-id": t.id },
      h(
        "div",
        { class: "item-main static" },
        h("span", { class: "item-title" }, h("code", { class: "trust-subject", text: t.subject })),
        h("span", { class: "item-sub trust-issuer" }, "issuer ", h("code", { text: t.issuer })),
        h("span", { class: "item-sub trust-audience" }, "audience ", h("code", { text: t.audience })),
        claims.length
          ? h(
              "span",
              { class: "item-sub trust-claims" },
              "claims ",
              idLine(...claims.map(([name, value]) => h("code", { text: `${name}=${value}` }))),
            )
          : null,
        h("span", { class: "item-sub trust-keys", text: trustKeySource(t) }),
        h("span", { class: "item-sub trust-lifetime", text: trustLifetime(t) }),
        h(
          "span",
          { class: "item-sub trust-created" },
          idLine(h("code", { text: t.id }), created ? `added ${fmtTime(created)}` : "", t.createdBy ? `by ${userName(t.createdBy)}` : ""),
        ),
      ),
      mayManageUsers() ? removeButton(trustLabel(t), () => removeTrust(t)) : null,
    );
  },
});

// user.write: ORG_OWNER, ORG_USER_MANAGER, or an IAM_OWNER (no org membership). A known
// member without them sees the trusts without controls the server would refuse.
const mayManageUsers = () =>
  auth.myRoles === null || auth.myRoles.length === 0 || auth.myRoles.includes("ORG_OWNER") || auth.myRoles.includes("ORG_USER_MANAGER");

// The org's member list tells my roles; asked once per org (best effort: unknown roles leave
// the controls to the server's answer).
let rolesAsked = false;
async function learnRolesOnce() {
  if (rolesAsked || !auth.me) return;
  rolesAsked = true;
  try {
    await members.load();
    learnMyRoles();
  } catch {
    auth.myRoles = null;
  }
}

function renderTrustControls() {
  const may = mayManageUsers();
  $("add-trust-form").hidden = !may;
  $("user-trusts-readonly").hidden = may;
}

async function loadTrusts() {
  await learnRolesOnce();
  renderTrustControls();
  await trusts.load();
}

/** `name=value` lines as a claims map; blank lines are skipped. */
function claimsFrom(input) {
  const claims = {};
  for (const [i, raw] of input.value.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    const name = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!name) {
      input.focus();
      throw new Error(`Claims, line ${i + 1}: write name=value.`);
    }
    if (Object.hasOwn(claims, name)) {
      input.focus();
      throw new Error(`Claims: ${name} is given twice.`);
    }
    claims[name] = line.slice(eq + 1).trim();
  }
  return claims;
}

/** The inline JWKS as an object (a single JWK becomes a set of one), or undefined. */
function jwksFrom(input) {
  const text = input.value.trim();
  if (!text) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    input.focus();
    throw new Error(`The inline JWKS is not JSON: ${err.message}`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    input.focus();
    throw new Error('The inline JWKS must be a JSON object: {"keys": [...]}, or a single key.');
  }
  return value.kty && !value.keys ? { keys: [value] } : value;
}

function lifetimeFrom(input) {
  const text = input.value.trim();
  if (!text) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 86400) {
    input.focus();
    throw new Error("Enter the max token lifetime in whole seconds, 1 to 86400, or leave it empty.");
  }
  return `${n}s`;
}

onSubmit("add-trust-form", async () => {
  const user = currentUser;
  const request = {
    userId: user.id,
    issuer: required($("add-trust-issuer"), "the issuer"),
    subject: required($("add-trust-subject"), "the subject"),
    audience: required($("add-trust-audience"), "the audience"),
    claims: claimsFrom($("add-trust-claims")),
    jwksUri: $("add-trust-jwks-uri").value.trim(),
    jwks: jwksFrom($("add-trust-jwks")),
    maxTokenLifetime: lifetimeFrom($("add-trust-lifetime")),
    capAtTokenExpiry: $("add-trust-cap").checked,
  };
  const res = await own(`${TRUSTS}/AddTrust`, request);
  for (const id of ["add-trust-issuer", "add-trust-subject", "add-trust-audience", "add-trust-claims", "add-trust-jwks-uri", "add-trust-jwks", "add-trust-lifetime"]) {
    $(id).value = "";
  }
  $("add-trust-cap").checked = false;
  await trusts.load();
  announce(`Trust ${res.trust.id} added: tokens of ${res.trust.issuer} for ${res.trust.subject} now obtain access tokens of ${user.userName}.`);
});

async function removeTrust(t) {
  const ok = await confirmRemove(
    "Remove this trust?",
    `Tokens of ${t.issuer} for ${t.subject} no longer obtain access tokens of ${currentUser.userName}, and the access tokens obtained with this trust stop working at once.`,
  );
  if (!ok) return;
  await own(`${TRUSTS}/RemoveTrust`, { trustId: t.id });
  await trusts.load();
  announce(`Trust ${t.id} removed.`);
  focusHeading("user-trusts-title");
}
$("user-trusts-refresh").addEventListener("click", (ev) => act(ev.currentTarget, loadTrusts));

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

const appKeys = keyPanel("app-keys", {
  owner: () => ({ projectId: currentProject.id, appId: currentApp.id }),
  removeLabel: (key) => `Remove app key ${key.id}`,
  remove: (key) => removeAppKey(key),
});
keyForm("app-key", {
  form: "add-app-key-form",
  owner: () => ({ app: { projectId: currentProject.id, appId: currentApp.id } }),
  ownerName: () => currentApp.name,
  panel: appKeys,
  notice: $("app-key-notice"),
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
  appKeys.filters.reset();
  $("app-empty").hidden = !!app;
  $("app-keys").hidden = !app;
  $("app-keys-refresh").hidden = !app || !(app.apiConfig && app.apiConfig.authMethodType === API_AUTH.PRIVATE_KEY_JWT);
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

// ---- members and key policy -----------------------------------------------------------

const members = new ListPanel("members", {
  method: "ListOrgMembers",
  noun: "member",
  empty: "No members.",
  request: () => ({}),
  item: (m) => {
    // preferredLoginName is "user name@org domain".
    const at = m.preferredLoginName.lastIndexOf("@");
    const name = (at > 0 ? m.preferredLoginName.slice(0, at) : m.preferredLoginName) || m.displayName || m.userId;
    return h(
      "li",
      { class: "item", "data-user-id": m.userId },
      h(
        "div",
        { class: "item-main static" },
        h("span", { class: "item-title" }, h("span", { class: "item-name", text: name }), isMe(m.userId) ? youBadge() : null),
        h("span", { class: "item-sub" }, idLine(m.displayName, h("code", { text: m.userId }))),
        h(
          "span",
          { class: "roles", "aria-label": `Roles: ${m.roles.join(", ")}` },
          m.roles.map((r) => h("code", { class: "role", text: r })),
        ),
      ),
    );
  },
});

/** My org roles in the current org, as far as its member list tells: null while unknown. */
function learnMyRoles() {
  if (!auth.me) {
    auth.myRoles = null;
    return;
  }
  const mine = members.items.find((m) => m.userId === auth.me.id);
  if (mine) auth.myRoles = mine.roles;
  // Not among all members, yet allowed to list them: only the instance role IAM_OWNER does that.
  else auth.myRoles = members.items.length >= members.total ? [] : null;
}

// An ORG_OWNER (or an IAM_OWNER, who holds no org membership) may change the policy; a known
// member without ORG_OWNER is shown the policy read-only rather than a form the server refuses.
const mayEditPolicy = () => auth.myRoles === null || auth.myRoles.length === 0 || auth.myRoles.includes("ORG_OWNER");

const ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
const ORIGINS = ["KEY_ORIGIN_GENERATED", "KEY_ORIGIN_UPLOADED"];
const UNITS = [
  [86400, "d", "day"],
  [3600, "h", "hour"],
  [60, "m", "minute"],
  [1, "s", "second"],
];
// Proto3 JSON durations are strings like "604800s".
const seconds = (duration) => (duration ? Math.round(parseFloat(duration)) : 0);
function durationText(secs) {
  const [size, , word] = UNITS.find(([n]) => secs % n === 0);
  const n = secs / size;
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
function durationInput(secs) {
  if (!secs) return "";
  const [size, unit] = UNITS.find(([n]) => secs % n === 0);
  return `${secs / size}${unit}`;
}
function durationFrom(input, what) {
  const text = input.value.trim();
  if (!text) return undefined;
  const m = /^(\d{1,9})\s*([dhms]?)$/i.exec(text);
  if (!m || Number(m[1]) === 0) {
    input.focus();
    throw new Error(`Enter the ${what} as a number with d, h, m or s, e.g. 90d, or leave it empty.`);
  }
  const [size] = UNITS.find(([, unit]) => unit === (m[2] || "d").toLowerCase());
  return `${Number(m[1]) * size}s`;
}

let policyShown = null;

function renderPolicy(policy, isDefault) {
  const p = policy || {};
  policyShown = { policy: p, isDefault };
  const max = seconds(p.maxLifetime);
  const dflt = seconds(p.defaultLifetime);
  const maxKeys = Number(p.maxKeysPerOwner || 0);
  const origins = p.allowedOrigins || [];
  const algorithms = p.allowedAlgorithms || [];
  const fact = (key, term, value) => [h("dt", { text: term }), h("dd", { "data-fact": key, text: value })];
  $("policy-source").textContent = isDefault ? "instance default" : "this organization's own";
  $("policy-source").className = isDefault ? "badge badge-quiet" : "badge";
  $("policy-view").replaceChildren(
    ...fact("maxLifetime", "Max lifetime", max ? durationText(max) : "no limit"),
    ...fact("defaultLifetime", "Default lifetime", dflt ? durationText(dflt) : max ? `the max lifetime (${durationText(max)})` : "none: keys never expire unless given a date"),
    ...fact("maxKeysPerOwner", "Max keys per user or app", maxKeys ? String(maxKeys) : "unlimited"),
    ...fact("allowedOrigins", "Allowed origins", origins.length ? origins.map((o) => KEY_ORIGINS[o] || o).join(", ") : "generated and uploaded"),
    ...fact("allowedAlgorithms", "Allowed algorithms", algorithms.length ? algorithms.join(", ") : `all (${ALGORITHMS.join(", ")})`),
  );
  const editable = mayEditPolicy();
  $("policy-form").hidden = !editable;
  $("policy-readonly").hidden = editable;
  $("policy-reset").hidden = isDefault;
  $("policy-max-lifetime").value = durationInput(max);
  $("policy-default-lifetime").value = durationInput(dflt);
  $("policy-max-keys").value = String(maxKeys);
  // An empty list allows every entry: shown as all boxes ticked.
  for (const o of ORIGINS) $(`policy-origin-${KEY_ORIGINS[o]}`).checked = !origins.length || origins.includes(o);
  for (const a of ALGORITHMS) $(`policy-alg-${a}`).checked = !algorithms.length || algorithms.includes(a);
}

function resetPolicy() {
  policyShown = null;
  $("policy-source").textContent = "";
  $("policy-view").replaceChildren();
  $("policy-form").hidden = true;
  $("policy-readonly").hidden = true;
}

async function loadPolicy() {
  const res = await own(`${POLICY}/GetKeyPolicy`);
  renderPolicy(res.policy, !!res.isDefault);
}

async function loadOrgView() {
  await act(null, async () => {
    await members.load();
    learnMyRoles();
  });
  await loadPolicy();
}

/** The ticked boxes of a group; all ticked is sent as the empty list ("any"). */
function allowedFrom(name, all, what) {
  const ticked = [...document.querySelectorAll(`#policy-form input[name=${name}]:checked`)].map((i) => i.value);
  if (!ticked.length) {
    document.querySelector(`#policy-form input[name=${name}]`).focus();
    throw new Error(`Allow at least one ${what}.`);
  }
  return ticked.length === all.length ? [] : ticked;
}

onSubmit("policy-form", async () => {
  const maxKeysText = $("policy-max-keys").value.trim();
  const maxKeys = maxKeysText ? Number(maxKeysText) : 0;
  if (!Number.isInteger(maxKeys) || maxKeys < 0 || maxKeys > 4294967295) {
    $("policy-max-keys").focus();
    throw new Error("Enter the max keys per user or app as a whole number, 0 for unlimited.");
  }
  const policy = {
    maxLifetime: durationFrom($("policy-max-lifetime"), "max lifetime"),
    defaultLifetime: durationFrom($("policy-default-lifetime"), "default lifetime"),
    maxKeysPerOwner: maxKeys || undefined,
    allowedOrigins: allowedFrom("origin", ORIGINS, "origin"),
    allowedAlgorithms: allowedFrom("algorithm", ALGORITHMS, "algorithm"),
  };
  const res = await own(`${POLICY}/SetKeyPolicy`, { policy });
  renderPolicy(res.policy, false);
  announce(`Key policy of ${auth.org.name} saved.`);
});

$("policy-reset").addEventListener("click", (ev) =>
  act(ev.currentTarget, async () => {
    const ok = await confirmRemove(
      "Reset the key policy?",
      `${auth.org.name}'s own key policy is removed and the instance default applies to keys added from now on. Existing keys stay as they are.`,
      "Reset",
    );
    if (!ok) return;
    const res = await own(`${POLICY}/ResetKeyPolicy`);
    renderPolicy(res.policy, true);
    announce(`Key policy of ${auth.org.name} reset to the instance default.`);
    focusHeading("policy-title");
  }),
);
$("policy-refresh").addEventListener("click", (ev) => act(ev.currentTarget, loadPolicy));
$("members-refresh").addEventListener("click", (ev) =>
  act(ev.currentTarget, async () => {
    await members.load();
    learnMyRoles();
    if (policyShown) renderPolicy(policyShown.policy, policyShown.isDefault);
  }),
);

// ---- events and webhooks (authnkeys.v1.EventService) -----------------------------------

// The contract's event types, grouped as the filter and the webhook form show them.
const EVENT_TYPE_GROUPS = [
  ["Keys", ["key.added", "key.removed", "key.disabled", "key.enabled", "key.expiring", "key.expired"]],
  ["Trusted issuers", ["trust.added", "trust.removed"]],
  ["Key policy", ["policy.changed"]],
  ["Members", ["member.added", "member.changed", "member.removed"]],
  ["Users", ["user.added", "user.changed", "user.removed"]],
  ["Projects and apps", ["project.added", "project.removed", "app.added", "app.removed"]],
  ["Organizations", ["org.added"]],
  ["Webhooks", ["webhook.added", "webhook.removed"]],
];
const EVENTS_PAGE = 25;
const DELIVERY_STATES = {
  DELIVERY_STATE_SENT: ["sent", "badge-ok"],
  DELIVERY_STATE_PENDING: ["pending", "badge-quiet"],
  DELIVERY_STATE_FAILED: ["failed", "badge-warn"],
};
// What an event's data says beyond the ids shown beside it, in this order.
const EVENT_FACTS = [
  ["userName", "user name"],
  ["name", "name"],
  ["url", "URL"],
  ["roles", "roles"],
  ["algorithm", "algorithm"],
  ["window", "notice window"],
  ["expiresIn", "expires in"],
  ["issuer", "issuer"],
];
const SYSTEM_ACTORS = { "system:expiry": "the server (expiry notice)", "system:break-glass": "the operator (break-glass)" };

const fmtSeconds = (date) => (date ? `${date.toISOString().slice(0, 19).replace("T", " ")} UTC` : "");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// An ORG_OWNER (or an IAM_OWNER) adds and removes webhooks; a known member without ORG_OWNER
// is shown the list only, without controls the server would refuse.
const mayManageWebhooks = () => mayEditPolicy();

/** A user's name when a list already loaded knows it, else its id. */
function userName(id) {
  if (isMe(id)) return auth.me.name ? `${auth.me.name} (you)` : "you";
  const user = users.items.find((u) => u.id === id);
  if (user) return user.userName;
  const member = members.items.find((m) => m.userId === id);
  if (member) return member.preferredLoginName.split("@")[0] || member.displayName || id;
  return id;
}

/** The receiver of a delivery: the webhook's URL when the webhook list knows it. */
function webhookName(id) {
  const hook = webhooks.items.find((w) => w.id === id);
  return hook ? hook.url : `webhook ${id}`;
}

function deliveryItem(d) {
  const [stateName, stateClass] = DELIVERY_STATES[d.state] || ["unknown", "badge-warn"];
  const attempts = d.attempts || 0;
  const last = d.lastStatus ? `HTTP ${d.lastStatus}` : d.lastError || "";
  let detail;
  if (d.state === "DELIVERY_STATE_SENT") detail = [plural(attempts, "attempt"), last].filter(Boolean).join(", ");
  else if (d.state === "DELIVERY_STATE_FAILED") detail = `gave up after ${plural(attempts, "attempt")}${d.lastError ? `: ${d.lastError}` : last ? `: ${last}` : ""}`;
  else {
    detail = [
      attempts ? `${plural(attempts, "attempt")} so far` : "not yet attempted",
      attempts && d.lastError ? `last: ${d.lastError}` : attempts && last ? `last: ${last}` : "",
      d.nextAttemptAt ? `next ${fmtSeconds(parseTime(d.nextAttemptAt))}` : "",
    ]
      .filter(Boolean)
      .join(" · ");
  }
  return h(
    "li",
    { class: "delivery", "data-webhook-id": d.webhookId, "data-state": stateName },
    h("span", { class: `badge badge-state ${stateClass}`, text: stateName }),
    h("span", { class: "delivery-to" }, "to ", h("code", { text: webhookName(d.webhookId) })),
    h("span", { class: "delivery-detail", text: detail }),
  );
}

function eventItem(e) {
  const actor = (e.actor && e.actor.userId) || "";
  const about = [];
  if (e.keyId) about.push(h("span", {}, "key ", h("code", { text: e.keyId })));
  if (e.userId) about.push(h("span", {}, "user ", h("span", { class: "event-user", text: userName(e.userId) })));
  if (e.app) about.push(h("span", {}, "app ", h("code", { text: e.app.appId }), " of project ", h("code", { text: e.app.projectId })));
  if (auth.org && e.orgId && e.orgId !== auth.org.id) about.push(h("span", { class: "event-org" }, "in org ", h("code", { text: e.orgId })));
  const data = e.data || {};
  const facts = EVENT_FACTS.flatMap(([field, label]) => {
    const value = data[field];
    if (Array.isArray(value)) return value.length ? [`${label} ${value.join(", ")}`] : [];
    return typeof value === "string" || typeof value === "number" ? (value === "" ? [] : [`${label} ${value}`]) : [];
  });
  const deliveries = e.deliveries || [];
  return h(
    "li",
    { class: "item event-item", "data-event-id": e.id, "data-type": e.type },
    h(
      "div",
      { class: "item-main static" },
      h(
        "span",
        { class: "item-title" },
        h("span", { class: "badge badge-type", text: e.type }),
        h("time", { class: "event-time", datetime: e.time, text: fmtSeconds(parseTime(e.time)) }),
      ),
      h("span", { class: "item-sub event-actor", text: `by ${SYSTEM_ACTORS[actor] || userName(actor)}` }),
      about.length ? h("span", { class: "item-sub event-about" }, idLine(...about)) : null,
      facts.length ? h("span", { class: "item-sub event-data", text: facts.join(" · ") }) : null,
      typeof data.reason === "string" && data.reason ? h("span", { class: "item-sub event-reason", text: `Reason: ${data.reason}` }) : null,
      deliveries.length
        ? h("ul", { class: "deliveries", "aria-label": `Deliveries of event ${e.id}` }, deliveries.map(deliveryItem))
        : null,
    ),
  );
}

const events = new ListPanel("events", {
  method: "ListEvents",
  noun: "event",
  empty: () => ($("events-type").value ? `No ${$("events-type").value} events.` : "No events yet."),
  page: async (offset) => {
    const type = $("events-type").value;
    const res = await own(`${EVENTS}/ListEvents`, { types: type ? [type] : [], offset: String(offset), limit: EVENTS_PAGE });
    // Newest first: events recorded since the first page shift the offsets; drop repeats.
    const seen = new Set(offset ? events.items.map((e) => e.id) : []);
    return { items: (res.result || []).filter((e) => !seen.has(e.id)), total: Number(res.totalResult || 0) };
  },
  item: eventItem,
});

async function loadEventsView() {
  // The webhooks name the deliveries' receivers; without them the ids are shown.
  try {
    await webhooks.load();
  } catch {
    // the events still list
  }
  await events.load();
}

const webhooks = new ListPanel("webhooks", {
  method: "ListWebhooks",
  noun: "webhook",
  empty: "No webhooks yet.",
  page: async () => {
    const res = await own(`${EVENTS}/ListWebhooks`);
    return { items: res.result || [], total: Number(res.totalResult || 0) };
  },
  item: (w) => {
    const types = w.types || [];
    const pending = Number(w.pendingDeliveries || 0);
    const failed = Number(w.failedDeliveries || 0);
    const created = parseTime(w.createdAt);
    return h(
      "li",
      { class: "item webhook-item", "data-webhook-id": w.id },
      h(
        "div",
        { class: "item-main static" },
        h(
          "span",
          { class: "item-title" },
          h("code", { class: "webhook-url", text: w.url }),
          w.allOrgs ? h("span", { class: "badge badge-quiet", text: "every organization" }) : null,
        ),
        h("span", { class: "item-sub webhook-types", text: types.length ? `Types: ${types.join(", ")}` : "All event types" }),
        h("span", { class: failed ? "item-sub webhook-backlog key-disabled" : "item-sub webhook-backlog", text: `${pending} pending · ${failed} failed` }),
        h(
          "span",
          { class: "item-sub" },
          idLine(
            h("code", { text: w.id }),
            created ? `added ${fmtTime(created)}` : "",
            w.createdBy ? `by ${userName(w.createdBy)}` : "",
            auth.org && w.orgId && w.orgId !== auth.org.id ? h("span", {}, "org ", h("code", { text: w.orgId })) : "",
          ),
        ),
      ),
      mayManageWebhooks() ? removeButton(`Remove webhook ${w.url}`, () => removeWebhook(w)) : null,
    );
  },
});

function renderWebhookControls() {
  const may = mayManageWebhooks();
  $("add-webhook-form").hidden = !may;
  $("webhooks-readonly").hidden = may;
}

async function loadWebhooksView() {
  // Who may add and remove: the roles the org's member list tells (best effort; unknown
  // roles leave the controls to the server's answer).
  try {
    await members.load();
    learnMyRoles();
  } catch {
    auth.myRoles = null;
  }
  renderWebhookControls();
  await webhooks.load();
}

async function removeWebhook(w) {
  const ok = await confirmRemove(
    "Remove this webhook?",
    `Deliveries to ${w.url} stop, and its pending deliveries are dropped. Its signing secret is not used again.`,
  );
  if (!ok) return;
  await own(`${EVENTS}/RemoveWebhook`, { webhookId: w.id });
  await webhooks.load();
  announce(`Webhook ${w.url} removed.`);
  focusHeading("webhooks-title");
}

onSubmit("add-webhook-form", async () => {
  const url = required($("add-webhook-url"), "the receiver's URL");
  const types = [...document.querySelectorAll("#add-webhook-types input:checked")].map((i) => i.value);
  const res = await own(`${EVENTS}/AddWebhook`, { url, types });
  $("add-webhook-url").value = "";
  for (const box of document.querySelectorAll("#add-webhook-types input")) box.checked = false;
  showSecretOnce($("webhook-notice"), {
    name: "Signing secret",
    inputId: "webhook-secret",
    secret: res.secret,
    warning: `Copy it into the receiver at ${res.webhook.url} now: it will not be shown again (the server keeps it encrypted). The receiver checks each delivery's webhook-signature with it, for example with a Standard Webhooks library.`,
    after: "webhooks-title",
  });
  // The secret is shown once, so bring it into view (on a phone the form sits below the list).
  $("webhook-secret").focus();
  announce(`Webhook ${res.webhook.id} added. Its signing secret is shown once: copy it now.`);
  await webhooks.load();
});

/** The type choices: the filter's options and the webhook form's boxes, from one list. */
function renderEventTypes() {
  const select = $("events-type");
  for (const [group, types] of EVENT_TYPE_GROUPS) {
    select.append(h("optgroup", { label: group }, types.map((t) => h("option", { value: t, text: t }))));
  }
  $("add-webhook-types").replaceChildren(
    ...EVENT_TYPE_GROUPS.map(([group, types]) =>
      h(
        "div",
        { class: "type-group", role: "group", "aria-label": group },
        h("span", { class: "type-group-name", text: group }),
        h(
          "div",
          { class: "checks" },
          types.map((t) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "type", value: t }), h("code", { text: t }))),
        ),
      ),
    ),
  );
}
renderEventTypes();
$("events-type").addEventListener("change", () => act(null, () => events.load()));
$("events-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act(null, () => events.load());
});
$("events-refresh").addEventListener("click", (ev) => act(ev.currentTarget, loadEventsView));
$("webhooks-refresh").addEventListener("click", (ev) => act(ev.currentTarget, loadWebhooksView));

// ---- who is signed in -----------------------------------------------------------------

/** The `sub` of a JWT access token, unverified: only to show who is signed in. Opaque
 * tokens say nothing, and give "". */
function subjectOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return "";
  try {
    const claims = JSON.parse(td.decode(fromBase64(parts[1])));
    return typeof claims.sub === "string" ? claims.sub : "";
  } catch {
    return "";
  }
}

function renderWhoami() {
  const me = auth.me;
  $("whoami-label").textContent = me ? "Signed in as" : "Signed in with an access token";
  $("whoami-name").textContent = me ? me.name || me.id : "";
  $("whoami-name").hidden = !me;
}

/** Records who is signed in and, unless given, looks up the user's name in the caller's own
 * org (best effort: reading users may not be allowed). */
async function learnMe(id, name = "") {
  auth.me = { id, name };
  renderWhoami();
  if (name) return;
  try {
    const res = await call("GetUserByID", { id }, { token: auth.token });
    if (auth.me && auth.me.id === id) auth.me.name = res.user.userName;
  } catch {
    // the id alone still marks "you"
  }
  renderWhoami();
}

// ---- tabs -----------------------------------------------------------------------------

const TABS = {
  users: () => users.load(),
  projects: () => projects.load(),
  org: () => loadOrgView(),
  events: () => loadEventsView(),
  webhooks: () => loadWebhooksView(),
};
let tab = "users";
function showTab(name) {
  if (name !== tab) $("status").replaceChildren();
  tab = name;
  for (const t of Object.keys(TABS)) {
    $(`tab-${t}`).setAttribute("aria-pressed", String(name === t));
    $(`${t}-view`).hidden = name !== t;
  }
  return act(null, TABS[name]);
}
for (const t of Object.keys(TABS)) $(`tab-${t}`).addEventListener("click", () => showTab(t));
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
  auth.myRoles = null;
  rolesAsked = false;
  for (const list of [users, userKeys, trusts, projects, apps, appKeys, members, events, webhooks]) list.reset();
  resetPolicy();
  for (const id of ["user-key-notice", "app-notice", "app-key-notice", "webhook-notice"]) dropNotice($(id));
  $("user-empty").hidden = false;
  $("user-keys").hidden = true;
  $("user-keys-refresh").hidden = true;
  $("user-trusts-card").hidden = true;
  $("app-keys-refresh").hidden = true;
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

/** Signs in with an access token; `userId` and `keyId`: whose it is and the key that got it,
 * when the console knows (key file). */
async function signIn(token, expiresIn = 0, userId = "", keyId = "") {
  auth.token = token;
  auth.orgId = "";
  auth.keyId = keyId;
  let res;
  try {
    res = await rpc("GetMyOrg");
  } catch (err) {
    auth.token = null;
    throw err;
  }
  auth.myOrg = res.org;
  auth.org = res.org;
  const me = userId || subjectOf(token);
  if (me) await learnMe(me);
  else {
    auth.me = null;
    renderWhoami();
  }
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
  Object.assign(auth, { token: null, orgId: "", myOrg: null, org: null, timer: 0, me: null, myRoles: null, keyId: "" });
  resetData();
  for (const id of ["org-name", "topbar-org-name", "org-id", "org-domain", "whoami-name"]) $(id).textContent = "";
  for (const url of keyFileUrls) URL.revokeObjectURL(url);
  keyFileUrls.clear();
  if (confirmDialog.open) confirmDialog.close();
  if (disableDialog.open) disableDialog.close();
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
      const { token, expiresIn, userId, keyId } = await signInWithKeyFile(text);
      await signIn(token, expiresIn, userId, keyId);
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
