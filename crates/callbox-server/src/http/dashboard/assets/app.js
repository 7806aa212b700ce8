// Callbox dashboard: a small single-page console over the admin API (/admin/v1), authenticated by the
// dashboard's session cookie; every change carries the session's CSRF token in X-CSRF-Token.
// No framework and no external resource: this file, app.css and index.html are embedded in the server.

const session = { csrf: null };
const main = document.getElementById('main');
const statusBox = document.getElementById('status');
const topNav = document.getElementById('top-nav');

// ----- small helpers ----------------------------------------------------------------------------------------

/** Builds an element: h('button', {type: 'button', onclick: f}, 'text', child…). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'value') el.value = value;
    else if (name === 'checked') el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let sayTimer = null;
function say(text) {
  statusBox.textContent = '';
  clearTimeout(sayTimer);
  // A fresh text node, so that screen readers announce the same message twice in a row; gone after a while.
  setTimeout(() => { statusBox.textContent = text; }, 20);
  sayTimer = setTimeout(() => { statusBox.textContent = ''; }, 10_000);
}

function fmtTime(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

function fmtDuration(seconds) {
  seconds = Math.round(Math.abs(seconds));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 360) / 10} h`;
  return `${Math.round(seconds / 8640) / 10} days`;
}

class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.reason = body?.reason || 'error';
  }
}

/** Calls the admin API (or the dashboard's own API) with the session cookie and, for changes, the CSRF token. */
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = session.csrf || '';
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (response.status === 401 && path.startsWith('/admin/')) {
    // Either the session is over (sign in again) or this one change was refused (CSRF token or origin).
    const check = await fetch('/dashboard/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (check.ok) {
      session.csrf = (await check.json()).csrfToken;
    } else {
      session.csrf = null;
      renderSignin('Your dashboard session is over. Sign in again.');
    }
    throw new ApiFailure(401, data);
  }
  if (!response.ok) throw new ApiFailure(response.status, data);
  return data;
}

const enc = encodeURIComponent;

function errorBox(id) {
  return h('p', { id, class: 'error', role: 'alert' });
}

function showError(box, error) {
  box.textContent = error instanceof ApiFailure ? `${error.message} (${error.reason})` : String(error.message || error);
}

function labelled(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint && h('p', { id: hintId, class: 'hint' }, hint));
}

/** A native modal dialog (focus is trapped and Escape cancels). Resolves to true when confirmed. */
function confirmDialog({ title, text, confirm = 'Confirm', extra = null }) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const extraBox = document.getElementById('confirm-extra');
  extraBox.replaceChildren(...(extra ? [extra] : []));
  document.getElementById('confirm-ok').textContent = confirm;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'ok');
    }, { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    (extra?.querySelector('input') || document.getElementById('confirm-cancel')).focus();
  });
}

function copyButton(label, getText) {
  return h('button', {
    type: 'button', class: 'copy', 'aria-label': label,
    onclick: async (event) => {
      const text = getText();
      try {
        await navigator.clipboard.writeText(text);
        say('Copied to the clipboard.');
      } catch {
        const field = event.currentTarget.previousElementSibling;
        if (field && field.select) field.select();
        say('Copying is not allowed here: the text is selected, press Ctrl+C.');
      }
    },
  }, 'Copy');
}

/** The one-time display of a secret, with a copy button. */
function secretOnce(id, heading, secret, note) {
  const input = h('input', { type: 'text', readonly: true, value: secret, class: 'mono', spellcheck: 'false' });
  return h('section', { class: 'once', 'aria-labelledby': `${id}-title` },
    h('h3', { id: `${id}-title` }, heading),
    h('p', {}, note),
    h('div', { class: 'copy-row' }, labelled(id, 'Application secret', input), copyButton('Copy the secret', () => secret)));
}

function table(caption, columns, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)))))));
}

function setPage(title, ...content) {
  document.title = `${title} · Callbox dashboard`;
  main.replaceChildren(...content);
  const heading = main.querySelector('h1');
  if (heading) { heading.tabIndex = -1; heading.focus(); } else main.focus();
}

// ----- plain-language explanations of the §7 reasons (the one place they are written) ------------------------

const REASONS = [
  'malformed_ticket', 'bad_signature', 'unknown_application', 'ticket_expired', 'ticket_not_yet_valid',
  'ticket_ttl_exceeds_max', 'ticket_replayed', 'timestamp_skew', 'platform_auth_disabled', 'invalid_credentials',
  'locked_out', 'rate_limited', 'user_exists', 'user_disabled', 'session_expired', 'session_revoked',
  'capability_not_granted', 'origin_not_allowed', 'missing_authorization', 'malformed_authorization',
  'invalid_password', 'payload_too_large', 'malformed_request',
];

/** Milliseconds of "2026-11-28 01:33:51.349 UTC" or ISO-8601; null when neither. */
function parseTime(text) {
  const iso = text.trim().replace(/ UTC$/, 'Z').replace(' ', 'T');
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/** What to do about a refusal, in plain words, from its reason word and the server's detail text. */
export function explain(reason, detail = '', at = null) {
  detail = detail || '';
  const when = at ? Date.parse(at) : Date.now();
  switch (reason) {
    case 'ticket_expired': {
      const m = detail.match(/created at (.+?) and is valid for (\d+) s/);
      const created = m && parseTime(m[1]);
      if (created) {
        const age = (when - created) / 1000;
        return `the ticket was created ${fmtDuration(age)} ago but expires after ${fmtDuration(Number(m[2]))}: ` +
          "check your backend's clock or the expiresIn it writes, and make a fresh ticket for every start.";
      }
      return "the ticket's validity window ended: check your backend's clock or expiresIn.";
    }
    case 'ticket_not_yet_valid': {
      const m = detail.match(/another (\d+) s/);
      const ahead = m ? ` by about ${fmtDuration(Number(m[1]))}` : '';
      return `the ticket says it was made in the future${ahead}: your backend's clock runs ahead; sync it (NTP).`;
    }
    case 'ticket_ttl_exceeds_max': {
      const m = detail.match(/lifetime of (\d+) s, above the application's maximum of (\d+) s/);
      const numbers = m ? ` (${fmtDuration(Number(m[1]))}, the limit is ${fmtDuration(Number(m[2]))})` : '';
      return `the ticket asks to live longer than this application allows${numbers}: lower expiresIn in your ` +
        'backend, or raise "Maximum ticket lifetime" in Settings.';
    }
    case 'bad_signature':
      return "the signature matches none of this application's active secrets: your backend signs with a wrong, " +
        'mistyped or retired secret. Copy the current one (Secrets) into your backend.';
    case 'malformed_ticket':
      return "the ticket could not be decoded: pass your generator's output unchanged (no added quotes, spaces, " +
        'line breaks or truncation).';
    case 'unknown_application':
      return 'the ticket or call names another application key: use the same key in your backend and your client.';
    case 'ticket_replayed':
      return 'this single-use ticket was used before: have your backend make a new ticket for every sign-in.';
    case 'timestamp_skew': {
      const m = detail.match(/(\d+) s (ahead of|behind)/);
      const off = m ? ` (${fmtDuration(Number(m[1]))} ${m[2]} the server)` : '';
      return `the device's clock is off${off}: the SDK corrects it from /v1/timestamp; check the device's time.`;
    }
    case 'platform_auth_disabled':
      return 'platform-managed users are off for this application: sign users in with tickets from your backend ' +
        '(or switch "Platform-managed users" on in Settings, but not in production).';
    case 'invalid_credentials':
      return 'wrong username or password (the two are never told apart): retry, or set a new password in Users.';
    case 'locked_out':
      return 'too many failed attempts for this account or address: wait for the lockout to pass, or set a new ' +
        'password in Users.';
    case 'rate_limited':
      return 'the server was too busy (or too many sign-ups came from one address): retry after a moment.';
    case 'user_exists':
      return 'someone already signed up with this identity: log in instead, or remove the old user in Users.';
    case 'user_disabled':
      return 'the user is disabled: enable them in Users if that was a mistake.';
    case 'session_expired':
      return 'the session reached its lifetime: the client should start a new session ("Session lifetime" in Settings).';
    case 'session_revoked':
      return 'the session was ended or revoked: the client must sign in again.';
    case 'capability_not_granted':
      return 'the session lacks the capability this call needs: ask for it in services and allow it in Settings.';
    case 'origin_not_allowed':
      return 'the web page\'s origin is not among this application\'s allowed origins: add it in Settings.';
    case 'missing_authorization':
    case 'malformed_authorization':
      return 'the Authorization header is missing or malformed: use the SDK, or follow PROTOCOL §5 exactly.';
    case 'invalid_password':
      return 'passwords must be 8 to 1024 bytes long.';
    case 'payload_too_large':
      return 'the request, header or ticket is over the size limit: send less.';
    case 'malformed_request':
      return 'the request body or parameters could not be understood: check the JSON your client sends.';
    default:
      return reason ? 'see the detail text.' : '';
  }
}

// ----- sign-in ------------------------------------------------------------------------------------------------

function renderSignin(message = '') {
  topNav.hidden = true;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = errorBox('signin-error');
  error.textContent = message;
  const form = h('form', { id: 'signin', class: 'card narrow', novalidate: true },
    labelled('admin-token', 'Admin token', input,
      'Printed once when the server first started; also kept in the data directory, in the file admin-token.'),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const start = await (await fetch('/dashboard/api/signin', { credentials: 'same-origin', cache: 'no-store' })).json();
      const response = await fetch('/dashboard/api/signin', {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': start.signinToken },
        body: JSON.stringify({ token: input.value }),
      });
      if (!response.ok) {
        error.textContent = response.status === 401
          ? 'That admin token is not right. Check it and try again.'
          : `Could not sign in (HTTP ${response.status}).`;
        input.focus();
        return;
      }
      session.csrf = (await response.json()).csrfToken;
      input.value = '';
      say('Signed in.');
      if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/apps';
      else route();
    } catch (failure) {
      showError(error, failure);
    }
  });
  setPage('Sign in', h('h1', {}, 'Sign in to Callbox'), form);
  input.focus();
}

async function signOut() {
  try {
    await fetch('/dashboard/api/signout', {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': session.csrf || '' },
    });
  } finally {
    session.csrf = null;
    location.hash = '#/signin';
    renderSignin();
    say('Signed out.');
  }
}

// ----- applications -------------------------------------------------------------------------------------------

async function renderApps() {
  const { applications } = await api('GET', '/admin/v1/apps');
  const created = h('div', { id: 'created' });
  const nameInput = h('input', { type: 'text', name: 'name', required: true, maxlength: 200 });
  const error = errorBox('create-error');
  const form = h('form', { id: 'create-app', class: 'card' },
    h('h2', {}, 'Create an application'),
    labelled('app-name', 'Application name', nameInput),
    h('button', { type: 'submit', class: 'primary' }, 'Create application'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const answer = await api('POST', '/admin/v1/apps', { name: nameInput.value.trim() });
      const app = answer.application;
      await renderApps();
      const box = document.getElementById('created');
      box.replaceChildren(secretOnce('new-app-secret', `Application "${app.name}" created`, answer.applicationSecret,
        `Key ${app.applicationKey}. Its secret is shown only this once: copy it into your backend now.`));
      box.querySelector('input').focus();
      say(`Application ${app.name} created.`);
    } catch (failure) {
      showError(error, failure);
    }
  });
  const rows = applications.map((app) => [
    h('a', { href: `#/apps/${enc(app.applicationKey)}/settings` }, app.name),
    h('code', {}, app.applicationKey),
    app.platformUserAuth ? h('span', { class: 'badge warn' }, 'On') : h('span', { class: 'badge' }, 'Off'),
    fmtTime(app.createdAt),
    h('button', {
      type: 'button', class: 'danger', 'aria-label': `Delete application ${app.name}`,
      onclick: async () => {
        const ok = await confirmDialog({
          title: `Delete application "${app.name}"?`,
          text: 'Its users, secrets and sessions are deleted with it, and every client using its key stops working. ' +
            'This cannot be undone.',
          confirm: 'Delete application',
        });
        if (!ok) return;
        try {
          await api('DELETE', `/admin/v1/apps/${enc(app.applicationKey)}`);
          await renderApps();
          say(`Application ${app.name} deleted.`);
        } catch (failure) { say(failure.message); }
      },
    }, 'Delete'),
  ]);
  setPage('Applications', h('h1', {}, 'Applications'),
    table('Your applications', ['Name', 'Application key', 'Platform-managed users', 'Created', 'Actions'], rows,
      'No application yet: create one below.'),
    created, form);
}

// ----- one application ----------------------------------------------------------------------------------------

const TABS = [
  ['settings', 'Settings'], ['secrets', 'Secrets'], ['users', 'Users'], ['sessions', 'Sessions'],
  ['events', 'Auth events'], ['realtime', 'Realtime'], ['calls', 'Calls'], ['debugger', 'Ticket debugger'],
];

async function renderApp(key, tab, params) {
  const app = await api('GET', `/admin/v1/apps/${enc(key)}`);
  const label = TABS.find(([id]) => id === tab)?.[1] || 'Settings';
  const nav = h('nav', { class: 'tabs', 'aria-label': 'Application' }, h('ul', {}, TABS.map(([id, text]) =>
    h('li', {}, h('a', { href: `#/apps/${enc(key)}/${id}`, 'aria-current': id === tab ? 'page' : undefined }, text)))));
  const keyInput = h('input', { type: 'text', readonly: true, value: app.applicationKey, class: 'mono' });
  const head = [
    h('p', { class: 'crumbs' }, h('a', { href: '#/apps' }, 'Applications'), ' / ', app.name),
    h('h1', {}, `${app.name}: ${label}`),
    h('div', { class: 'copy-row' }, labelled('app-key', 'Application key', keyInput),
      copyButton('Copy the application key', () => app.applicationKey)),
    nav,
  ];
  const views = { settings, secrets, users, sessions, events, realtime, calls, debuggerView };
  const view = views[tab === 'debugger' ? 'debuggerView' : tab] || settings;
  const body = await view(app, params);
  setPage(`${app.name}: ${label}`, ...head, h('section', { id: `tab-${tab}`, class: 'tab' }, body));
}

function platformWarning() {
  return h('p', { id: 'platform-warning', class: 'warning', role: 'note' },
    h('strong', {}, 'Anyone can sign up. '),
    'While platform-managed users are on, anyone who knows this application\'s key can create an account and ' +
    'sign in. Switch it off before going live, and sign your users in with tickets made by your own backend.');
}

async function settings(app) {
  const error = errorBox('settings-error');
  const warningSlot = h('div', { id: 'warning-slot' }, app.platformUserAuth ? platformWarning() : null);
  const toggle = h('input', { type: 'checkbox', role: 'switch', checked: app.platformUserAuth, class: 'switch' });
  toggle.addEventListener('change', async () => {
    const on = toggle.checked;
    toggle.disabled = true;
    error.textContent = '';
    try {
      await api('PATCH', `/admin/v1/apps/${enc(app.applicationKey)}`, { platformUserAuth: on });
      warningSlot.replaceChildren(...(on ? [platformWarning()] : []));
      say(`Platform-managed users switched ${on ? 'on' : 'off'}; this takes effect on the next request.`);
    } catch (failure) {
      toggle.checked = !on;
      showError(error, failure);
    } finally {
      toggle.disabled = false;
      toggle.focus();
    }
  });
  const switchRow = h('div', { class: 'switch-row' },
    toggle,
    h('label', { for: 'platform-users' }, 'Platform-managed users'),
    h('p', { id: 'platform-users-hint', class: 'hint' },
      'Callbox stores usernames and passwords and offers sign-up and login to any client with the key. ' +
      'Saved as soon as you switch it.'));
  toggle.id = 'platform-users';
  toggle.setAttribute('aria-describedby', 'platform-users-hint');

  const name = h('input', { type: 'text', value: app.name, required: true });
  const origins = h('textarea', { rows: 3, spellcheck: 'false' });
  origins.value = app.allowedOrigins.join('\n');
  const caps = ['messaging', 'calling', 'video'].map((cap) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'cap', value: cap, checked: app.capabilities.includes(cap) }), ` ${cap}`));
  const number = (value) => h('input', { type: 'number', min: 0, step: 1, value, inputmode: 'numeric' });
  const defaultTtl = number(app.defaultTicketTtl);
  const maxTtl = number(app.maxTicketTtl);
  const sessionTtl = number(app.sessionTtl);
  const skew = number(app.clockSkew);
  const form = h('form', { id: 'settings-form', class: 'card' },
    h('h2', {}, 'Settings'),
    labelled('set-name', 'Name', name),
    labelled('set-origins', 'Allowed origins', origins,
      'Web pages allowed to call Callbox with this key, one per line, as scheme://host[:port]; * allows any.'),
    h('fieldset', {}, h('legend', {}, 'Capabilities clients may be granted'), caps),
    h('div', { class: 'grid' },
      labelled('set-default-ttl', 'Default ticket lifetime (seconds)', defaultTtl, 'When a ticket does not say.'),
      labelled('set-max-ttl', 'Maximum ticket lifetime (seconds)', maxTtl, 'Longer tickets are refused; at most 604800.'),
      labelled('set-session-ttl', 'Session lifetime (seconds)', sessionTtl, 'Between 60 and 2592000.'),
      labelled('set-skew', 'Allowed clock skew (seconds)', skew, 'At most 3600.')),
    h('button', { type: 'submit', class: 'primary' }, 'Save settings'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      await api('PATCH', `/admin/v1/apps/${enc(app.applicationKey)}`, {
        name: name.value.trim(),
        allowedOrigins: origins.value.split(/[\s,]+/).filter(Boolean),
        capabilities: [...form.querySelectorAll('input[name=cap]:checked')].map((c) => c.value),
        defaultTicketTtl: Number(defaultTtl.value), maxTicketTtl: Number(maxTtl.value),
        sessionTtl: Number(sessionTtl.value), clockSkew: Number(skew.value),
      });
      say('Settings saved; they take effect on the next request.');
    } catch (failure) {
      showError(error, failure);
    }
  });
  return [h('div', { class: 'card' }, h('h2', {}, 'Going live'), switchRow, warningSlot), form];
}

async function secrets(app) {
  const slot = h('div', { id: 'rotated' });
  const error = errorBox('secrets-error');
  const key = enc(app.applicationKey);
  const rotate = h('button', {
    type: 'button', class: 'primary',
    onclick: async () => {
      error.textContent = '';
      try {
        const answer = await api('POST', `/admin/v1/apps/${key}/secrets`);
        await route();
        const box = document.getElementById('rotated');
        box.replaceChildren(secretOnce('rotated-secret', 'New secret', answer.applicationSecret,
          'Shown only this once. It signs from now on; the older secrets still verify until you retire them. ' +
          'Update your backend, then retire the old secret.'));
        box.querySelector('input').focus();
        say('Secret rotated.');
      } catch (failure) { showError(error, failure); }
    },
  }, 'Rotate secret');
  const rows = app.secrets.map((secret, index) => [
    h('code', {}, secret.id),
    h('code', {}, secret.fingerprint),
    fmtTime(secret.createdAt),
    fmtTime(secret.lastUsedAt),
    index === 0 ? 'signs and verifies' : 'verifies',
    h('button', {
      type: 'button', class: 'danger', 'aria-label': `Retire secret ${secret.fingerprint}`,
      onclick: async () => {
        const ok = await confirmDialog({
          title: `Retire secret ${secret.fingerprint}?`,
          text: 'Tickets signed with it are refused from the next request. Make sure your backend uses a newer secret.',
          confirm: 'Retire secret',
        });
        if (!ok) return;
        try {
          await api('DELETE', `/admin/v1/apps/${key}/secrets/${enc(secret.id)}`);
          await route();
          say(`Secret ${secret.fingerprint} retired.`);
        } catch (failure) { showError(document.getElementById('secrets-error') || error, failure); }
      },
    }, 'Retire'),
  ]);
  return [
    h('h2', {}, 'Secrets'),
    h('p', {}, 'The newest secret signs the tickets Callbox issues; every active secret verifies. To rotate without ' +
      'downtime: rotate, put the new secret in your backend, then retire the old one.'),
    rotate, slot, error,
    table('Active secrets, newest first', ['Secret id', 'Fingerprint', 'Created', 'Last used', 'Role', 'Actions'], rows,
      'No active secret.'),
  ];
}

async function users(app, params) {
  const key = enc(app.applicationKey);
  const search = params.get('search') || '';
  const list = (await api('GET', `/admin/v1/apps/${key}/users?limit=200${search ? `&search=${enc(search)}` : ''}`)).users;
  const error = errorBox('users-error');
  const searchInput = h('input', { type: 'search', value: search });
  const searchForm = h('form', { class: 'inline', role: 'search' },
    labelled('user-search', 'Search users', searchInput), h('button', { type: 'submit' }, 'Search'));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/apps/${key}/users${searchInput.value ? `?search=${enc(searchInput.value)}` : ''}`;
  });
  const act = (label, fn) => async () => {
    error.textContent = '';
    try { await fn(); await route(); say(label); } catch (failure) { showError(error, failure); }
  };
  const rows = list.map((user) => {
    const id = enc(user.userId);
    return [
      user.userId, user.identityType,
      user.disabled ? h('span', { class: 'badge warn' }, 'Disabled') : h('span', { class: 'badge ok' }, 'Active'),
      fmtTime(user.createdAt),
      h('div', { class: 'row-actions' },
        user.disabled
          ? h('button', { type: 'button', 'aria-label': `Enable ${user.userId}`, onclick: act(`${user.userId} enabled.`,
            () => api('POST', `/admin/v1/apps/${key}/users/${id}/enable`)) }, 'Enable')
          : h('button', { type: 'button', 'aria-label': `Disable ${user.userId}`, onclick: act(`${user.userId} disabled; their sessions are revoked.`,
            () => api('POST', `/admin/v1/apps/${key}/users/${id}/disable`)) }, 'Disable'),
        h('button', {
          type: 'button', 'aria-label': `Set password of ${user.userId}`,
          onclick: async () => {
            const field = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8 });
            const ok = await confirmDialog({
              title: `New password for ${user.userId}`, text: 'At least 8 characters.', confirm: 'Set password',
              extra: labelled('new-password', 'New password', field),
            });
            if (ok) await act(`Password of ${user.userId} set.`, () => api('PUT', `/admin/v1/apps/${key}/users/${id}/password`, { password: field.value }))();
          },
        }, 'Set password'),
        h('a', { href: `#/apps/${key}/sessions?userId=${id}`, 'aria-label': `Sessions of ${user.userId}` }, 'Sessions'),
        h('button', {
          type: 'button', class: 'danger', 'aria-label': `Remove ${user.userId}`,
          onclick: async () => {
            const ok = await confirmDialog({
              title: `Remove ${user.userId}?`, text: 'The user and their password are deleted and their sessions revoked.',
              confirm: 'Remove user',
            });
            if (ok) await act(`${user.userId} removed.`, () => api('DELETE', `/admin/v1/apps/${key}/users/${id}`))();
          },
        }, 'Remove')),
    ];
  });
  const newId = h('input', { type: 'text', autocomplete: 'off' });
  const newPassword = h('input', { type: 'password', autocomplete: 'new-password' });
  const addForm = h('form', { id: 'add-user', class: 'card' }, h('h3', {}, 'Add a user'),
    h('div', { class: 'grid' }, labelled('add-user-id', 'User id', newId), labelled('add-user-password', 'Password', newPassword)),
    h('button', { type: 'submit' }, 'Add user'));
  addForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(`${newId.value} added.`, () => api('POST', `/admin/v1/apps/${key}/users`, { userId: newId.value, password: newPassword.value }))();
  });
  return [
    h('h2', {}, 'Platform-managed users'),
    app.platformUserAuth ? null : h('p', { class: 'hint' }, 'Platform-managed users are off: these accounts cannot sign in until it is switched on.'),
    searchForm, error,
    table(search ? `Users matching "${search}"` : 'Users', ['User id', 'Type', 'Status', 'Created', 'Actions'], rows,
      search ? `No user matches "${search}".` : 'No user yet.'),
    addForm,
  ];
}

async function sessions(app, params) {
  const key = enc(app.applicationKey);
  const userId = params.get('userId') || '';
  const list = (await api('GET', `/admin/v1/apps/${key}/sessions?limit=200${userId ? `&userId=${enc(userId)}` : ''}`)).sessions;
  const error = errorBox('sessions-error');
  const userInput = h('input', { type: 'text', value: userId, autocomplete: 'off' });
  const filter = h('form', { class: 'inline', role: 'search' },
    labelled('session-user', 'User id', userInput), h('button', { type: 'submit' }, 'Show sessions'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/apps/${key}/sessions${userInput.value ? `?userId=${enc(userInput.value)}` : ''}`;
  });
  const revokeAll = userId && h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      const ok = await confirmDialog({
        title: `Revoke every session of ${userId}?`,
        text: 'Their signed calls are refused from the next request; they must sign in again.',
        confirm: 'Revoke all',
      });
      if (!ok) return;
      try {
        const { revoked } = await api('POST', `/admin/v1/apps/${key}/sessions/revoke`, { userId });
        await route();
        say(`${revoked} session(s) of ${userId} revoked.`);
      } catch (failure) { showError(error, failure); }
    },
  }, `Revoke all sessions of ${userId}`);
  const rows = list.map((s) => [
    h('code', {}, s.id), s.userId, s.capabilities.join(', ') || '—', fmtTime(s.createdAt), fmtTime(s.expiresAt),
    h('button', {
      type: 'button', 'aria-label': `Revoke session ${s.id}`,
      onclick: async () => {
        try {
          await api('DELETE', `/admin/v1/apps/${key}/sessions/${enc(s.id)}`);
          await route();
          say(`Session ${s.id} revoked.`);
        } catch (failure) { showError(error, failure); }
      },
    }, 'Revoke'),
  ]);
  return [
    h('h2', {}, 'Live sessions'), filter, revokeAll, error,
    table(userId ? `Live sessions of ${userId}` : 'Live sessions', ['Session id', 'User', 'Capabilities', 'Created', 'Expires', 'Actions'],
      rows, userId ? `${userId} has no live session.` : 'No live session.'),
  ];
}

async function realtime(app, params) {
  const key = enc(app.applicationKey);
  const userId = params.get('userId') || '';
  const activity = await api('GET', `/admin/v1/apps/${key}/realtime`);
  const error = errorBox('realtime-error');
  const figures = h('dl', { class: 'figures', id: 'realtime-activity' },
    h('dt', {}, 'Live connections (this node)'), h('dd', { id: 'live-connections' }, String(activity.liveConnections)),
    h('dt', {}, 'Messages in the last hour'), h('dd', { id: 'messages-last-hour' }, String(activity.messagesLastHour)),
    h('dt', {}, 'Delivered in the last hour'), h('dd', { id: 'delivered-last-hour' }, String(activity.deliveredLastHour)));
  const userInput = h('input', { type: 'text', value: userId, autocomplete: 'off' });
  const filter = h('form', { class: 'inline', role: 'search' },
    labelled('connection-user', 'User id', userInput), h('button', { type: 'submit' }, 'Show connections'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/apps/${key}/realtime${userInput.value ? `?userId=${enc(userInput.value)}` : ''}`;
  });
  const parts = [h('h2', {}, 'Realtime'), figures, h('h3', {}, "A user's live connections"), filter, error];
  if (userId) {
    const { connections } = await api('GET', `/admin/v1/apps/${key}/users/${enc(userId)}/connections`);
    const rows = connections.map((c) => [h('code', {}, c.sessionId), fmtTime(c.connectedAt), c.peer, c.messaging ? 'yes' : 'no']);
    const drop = connections.length > 0 && h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        try {
          const { dropped } = await api('DELETE', `/admin/v1/apps/${key}/users/${enc(userId)}/connections`);
          await route();
          say(`${dropped} connection(s) of ${userId} closed; their sessions stay valid.`);
        } catch (failure) { showError(error, failure); }
      },
    }, `Drop the connections of ${userId}`);
    parts.push(drop, table(`Live connections of ${userId}`, ['Session id', 'Connected', 'Peer', 'Messaging'], rows,
      `${userId} has no live connection on this node.`));
  }
  return parts;
}

/** What each end cause of docs/calls.md means, in a few words. */
const END_CAUSES = {
  canceled: 'the caller hung up before an answer',
  denied: 'the callee declined',
  no_answer: 'nobody answered, or the callee was unavailable',
  hung_up: 'hung up after talking',
  failure: 'the media could not flow, or the server could not keep the call',
  timeout: 'a side dropped and did not come back in time',
  other_device_answered: 'another device of the callee answered',
  revoked: 'a session ended: revoked, expired, user disabled or app deleted',
};

/** A call's talk time (answered to ended), like the CLI: "12.3 s", "4m 05s", "1h 02m 03s"; "—" when none. */
function fmtTalkTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.floor(ms / 1000);
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 60) return `${s}.${Math.floor((ms % 1000) / 100)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m ${pad(s % 60)}s`;
}

async function calls(app, params) {
  const key = enc(app.applicationKey);
  const user = params.get('user') || '';
  const error = errorBox('calls-error');
  let list = [];
  try {
    list = (await api('GET', `/admin/v1/apps/${key}/calls?limit=200${user ? `&user=${enc(user)}` : ''}`)).calls;
  } catch (failure) {
    // A filter the server refuses (not a user id) is shown beside the filter, which stays to be corrected.
    if (!(failure instanceof ApiFailure) || failure.status !== 400) throw failure;
    showError(error, failure);
  }
  const userInput = h('input', { type: 'text', value: user, autocomplete: 'off' });
  const filter = h('form', { class: 'inline', role: 'search' },
    labelled('call-user', 'User id', userInput, 'Calls this user placed or received.'),
    h('button', { type: 'submit' }, 'Show calls'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/apps/${key}/calls${userInput.value ? `?user=${enc(userInput.value)}` : ''}`;
  });
  const rows = list.map((c) => [
    fmtTime(c.startedAt), c.callerId, c.calleeId, fmtTalkTime(c.durationMs),
    // No end: the call goes on, or the node that held it died before writing one (docs/calls.md section 3).
    c.endCause
      ? h('span', {}, h('code', {}, c.endCause), ' ', h('span', { class: 'hint' }, END_CAUSES[c.endCause] || ''))
      : 'no end yet',
    c.endedBy || '—',
    h('code', {}, c.callId),
  ]);
  return [
    h('h2', {}, 'Recent calls'),
    h('p', {}, 'The latest calls of this application, newest first (at most 200), from the call records every node writes.'),
    filter, error,
    user ? h('p', {}, h('a', { href: `#/apps/${key}/calls` }, 'Show the calls of every user')) : null,
    table(user ? `Calls of ${user}` : 'Recent calls', ['Started', 'Caller', 'Callee', 'Talk time', 'End', 'Ended by', 'Call id'],
      rows, user ? `${user} has no call.` : 'No call yet.'),
  ];
}

async function events(app, params) {
  const key = enc(app.applicationKey);
  const userId = params.get('userId') || '';
  const reason = params.get('reason') || '';
  let query = '?limit=200';
  if (userId) query += `&userId=${enc(userId)}`;
  if (reason) query += `&reason=${enc(reason)}`;
  const list = (await api('GET', `/admin/v1/apps/${key}/events${query}`)).events;
  const userInput = h('input', { type: 'text', value: userId, autocomplete: 'off' });
  const reasonSelect = h('select', {}, h('option', { value: '' }, 'Any'),
    REASONS.map((r) => h('option', { value: r, selected: r === reason }, r)));
  const filter = h('form', { class: 'inline', role: 'search' },
    labelled('event-user', 'User id', userInput), labelled('event-reason', 'Reason', reasonSelect),
    h('button', { type: 'submit' }, 'Filter'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (userInput.value) q.set('userId', userInput.value);
    if (reasonSelect.value) q.set('reason', reasonSelect.value);
    location.hash = `#/apps/${key}/events${q.size ? `?${q}` : ''}`;
  });
  const rows = list.map((e) => [
    fmtTime(e.at),
    e.kind.replace('_', ' '),
    e.outcome === 'accepted' ? h('span', { class: 'badge ok' }, 'accepted') : h('span', { class: 'badge warn' }, 'refused'),
    e.reason ? h('code', { class: 'reason' }, e.reason) : '—',
    e.userId || '—',
    e.clientIp || '—',
    e.outcome === 'refused'
      ? h('div', {}, h('p', { class: 'fix' }, h('strong', {}, 'Fix: '), explain(e.reason, e.detail, e.at)),
        e.detail ? h('p', { class: 'detail' }, e.detail) : null)
      : (e.detail || ''),
  ]);
  return [
    h('h2', {}, 'Auth events'),
    h('p', {}, 'The latest accepted and refused authentications of this application (newest first; this node keeps the last 500).'),
    filter,
    table('Auth events', ['When', 'What', 'Outcome', 'Reason', 'User', 'Client address', 'Details'], rows,
      'No event matches.'),
  ];
}

// ----- the ticket debugger (a page of its own in the main navigation, and a tab of each application) ----------

/** The ticket out of what a developer pastes, as `callbox ticket verify` takes it: the bare ticket or JWT, the
 *  {"userTicket": "…"} or {"jwt": "…"} object, a JSON string, or an Authorization value ("User …", "Bearer …"). */
export function unwrapTicket(input) {
  const text = input.trim();
  if (text.startsWith('{')) {
    try {
      const object = JSON.parse(text);
      const field = Object.entries(object || {}).find(([name, value]) =>
        ['userticket', 'jwt'].includes(name.toLowerCase()) && typeof value === 'string');
      if (field) return field[1].trim();
    } catch { /* not JSON: the server says why */ }
    return text;
  }
  if (text.startsWith('"')) {
    try { return String(JSON.parse(text)).trim(); } catch { return text; }
  }
  const scheme = text.match(/^(user|bearer)\s+(.+)$/is);
  return scheme ? scheme[2].trim() : text;
}

/** The application key a ticket names (unverified), to preselect its application; null when it cannot be read. */
function ticketAppKey(ticket) {
  const decode = (part) => {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4)),
      (c) => c.charCodeAt(0))));
  };
  try {
    if (!ticket.includes(':') && ticket.split('.').length === 3) {
      const iss = decode(ticket.split('.')[1]).iss;
      return typeof iss === 'string' ? iss.split('/').pop() : null;
    }
    const claims = decode(ticket.split(':')[0]);
    const field = Object.keys(claims).find((name) => name.toLowerCase() === 'applicationkey');
    return field && typeof claims[field] === 'string' ? claims[field] : null;
  } catch {
    return null;
  }
}

/**
 * The debugger form and its result: `apps` to choose from (the main page) or one fixed `app` (its tab).
 * The optional secret is sent only in the body of the admin API call; it never goes into the address, storage or
 * the page's text, and the field is cleared when the page is left.
 */
function ticketDebugger({ app = null, apps = [] }) {
  const ticket = h('textarea', { rows: 4, spellcheck: 'false', class: 'mono', required: true });
  const secret = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const appSelect = app ? null : h('select', { required: true },
    apps.map((a) => h('option', { value: a.applicationKey }, `${a.name} (${a.applicationKey})`)));
  const result = h('div', { id: 'diagnosis', 'aria-live': 'polite' });
  const error = errorBox('debugger-error');
  if (appSelect) {
    // Preselect the application the pasted ticket names, when it is one of these.
    ticket.addEventListener('input', () => {
      const named = ticketAppKey(unwrapTicket(ticket.value));
      if (named && apps.some((a) => a.applicationKey === named)) appSelect.value = named;
    });
  }
  const form = h('form', { id: 'debugger', class: 'card' },
    appSelect && labelled('debugger-app', 'Application', appSelect,
      'The application whose secrets and settings the ticket is checked against; picked from the ticket when it names one.'),
    labelled('ticket', 'Ticket or JWT', ticket,
      'A legacy user ticket, a registration JWT, or the {"userTicket": "…"} object. Checked against the ' +
      "application's active secrets and settings, like callbox ticket verify; nothing is stored."),
    labelled('debugger-secret', 'Application secret (optional)', secret,
      "Leave it empty to check against the application's active secrets. A secret typed here (for instance the one " +
      'your backend signs with) is checked instead of them; it is sent only to this server\'s admin API, and never ' +
      'stored, logged or shown.'),
    h('button', { type: 'submit', class: 'primary' }, 'Check ticket'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    result.replaceChildren();
    const target = app || apps.find((a) => a.applicationKey === appSelect.value);
    if (!target) { error.textContent = 'Choose an application first.'; return; }
    const body = { ticket: unwrapTicket(ticket.value) };
    if (secret.value.trim()) body.secret = secret.value.trim();
    try {
      const d = await api('POST', `/admin/v1/apps/${enc(target.applicationKey)}/diagnose`, body);
      const mark = (passed) => (passed === true ? 'passed' : passed === false ? 'failed' : 'not run');
      const claims = d.claims && typeof d.claims === 'object'
        ? h('dl', { class: 'claims' }, Object.entries(d.claims).flatMap(([k, v]) =>
          [h('dt', {}, k), h('dd', {}, h('code', {}, typeof v === 'string' ? v : JSON.stringify(v)))]))
        : h('p', {}, 'The fields could not be decoded.');
      const against = body.secret
        ? 'Checked against the secret you typed, instead of the stored ones.'
        : target.secrets
          ? `Active secrets of this application: ${target.secrets.map((s, i) => `#${i + 1} ${s.fingerprint}`).join(', ')}.`
          : "Checked against this application's active secrets.";
      result.replaceChildren(...[
        d.valid
          ? h('p', { class: 'verdict ok', id: 'verdict' }, h('strong', {}, 'Accepted: '), 'the server would accept this ticket.')
          : h('p', { class: 'verdict bad', id: 'verdict' }, h('strong', {}, 'Refused: '), h('code', { class: 'reason' }, d.reason),
            ` — ${d.message || ''}`),
        d.valid ? null : h('p', { class: 'fix' }, h('strong', {}, 'Fix: '), explain(d.reason, d.message)),
        h('h3', {}, 'Checks'),
        h('ol', { class: 'checks' }, d.checks.map((c) => h('li', { class: `check-${mark(c.passed).replace(' ', '-')}`, 'data-check': c.name },
          h('span', { class: 'mark' }, mark(c.passed)), ' ', h('strong', {}, c.name.replace('_', ' ')), ': ',
          h('span', { class: 'check-detail' }, c.detail)))),
        h('h3', {}, `Decoded fields${d.format ? ` (${d.format} format)` : ''}`),
        claims,
        h('p', { class: 'hint' }, against),
      ].filter(Boolean));
      say(d.valid ? 'The ticket passes every check.' : `The ticket is refused: ${d.reason}.`);
    } catch (failure) { showError(error, failure); }
  });
  // Leaving the page forgets a typed secret (the form is rebuilt on the next visit).
  window.addEventListener('hashchange', () => { secret.value = ''; }, { once: true });
  return [form, result];
}

async function debuggerView(app) {
  return [h('h2', {}, 'Ticket debugger'), ...ticketDebugger({ app })];
}

async function renderDebugger() {
  const { applications } = await api('GET', '/admin/v1/apps');
  const intro = h('p', {}, 'Paste the ticket a client was refused with: each check of callbox ticket verify is shown ' +
    'with its verdict (format, application, signature against the secrets, time window), and what to fix.');
  const content = applications.length === 0
    ? [h('p', { class: 'empty' }, 'No application yet: create one in ', h('a', { href: '#/apps' }, 'Applications'), '.')]
    : ticketDebugger({ apps: applications });
  setPage('Ticket debugger', h('h1', {}, 'Ticket debugger'), intro, ...content);
}

// ----- routing --------------------------------------------------------------------------------------------------

async function route() {
  statusBox.textContent = '';
  if (!session.csrf) {
    const response = await fetch('/dashboard/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) { renderSignin(); return; }
    session.csrf = (await response.json()).csrfToken;
  }
  topNav.hidden = false;
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    for (const link of topNav.querySelectorAll('a[href^="#/"]')) {
      const current = link.getAttribute('href').slice(2) === (parts[0] === 'debugger' ? 'debugger' : 'apps');
      if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
    }
    if (parts[0] === 'apps' && parts[1]) await renderApp(parts[1], parts[2] || 'settings', params);
    else if (parts[0] === 'debugger') await renderDebugger();
    else await renderApps();
  } catch (failure) {
    if (failure instanceof ApiFailure && failure.status === 401 && !session.csrf) return;
    setPage('Error', h('h1', {}, 'Something went wrong'),
      h('p', { role: 'alert' }, failure instanceof ApiFailure ? `${failure.message} (${failure.reason})` : String(failure)),
      h('p', {}, h('a', { href: '#/apps' }, 'Back to the applications')));
  }
}

document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', route);
route();
