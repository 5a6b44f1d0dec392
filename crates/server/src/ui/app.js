// NovaCron web console. It talks to the same /api/v1 as the CLI, with the same bearer token,
// so every decision about who may do what stays in the API's role gate. The page builds its
// DOM with textContent only (never HTML from data), and the server's Content-Security-Policy
// allows scripts from /ui/ alone.
'use strict';

const TOKEN_KEY = 'novacron.token';
const USER_KEY = 'novacron.user';
const PROJECT_KEY = 'novacron.project';

const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: sessionStorage.getItem(USER_KEY) || '',
  project: localStorage.getItem(PROJECT_KEY) || 'default',
  // From GET /api/v1/whoami: whether the cluster's routes (nodes, repositories, the audit
  // head) are worth asking; asking without the role would only add refusals to the audit log.
  clusterReader: false,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers

function $(sel, root = document) {
  return root.querySelector(sel);
}

// h('tag', {attrs}, children...): attributes `on<event>` take functions, `dataset` an object;
// children are nodes, strings (as text), arrays, or null (skipped).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function ago(unixSeconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSeconds));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

// A time as UTC date and time to the second: 2026-05-01 12:00:00.
function when(unixSeconds) {
  return new Date(unixSeconds * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

// A table that scrolls inside itself on a narrow screen. `headers`: texts, or [text, class]
// for a column hidden on a phone ('hide-narrow'; its cells carry the same class).
function table(id, headers, rows) {
  return h('div', { class: 'scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, headers.map((t) => (Array.isArray(t) ? h('th', { class: t[1] }, t[0]) : h('th', {}, t))))),
    h('tbody', {}, rows)));
}

function stateCell(state) {
  return paintState(h('td', {}), state);
}

// Shows `state` in `el`, coloured by it (rows and badges change in place on events).
function paintState(el, state) {
  el.textContent = state;
  el.className = `state state-${state}`;
  return el;
}

function flash(message, isError = false) {
  const el = $('#flash');
  el.textContent = message;
  el.className = isError ? 'error' : '';
  el.hidden = !message;
  clearTimeout(flash.timer);
  if (message && !isError) flash.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json', 'X-Novacron-Project': session.project };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!resp.ok) {
    const message = data && data.message ? data.message : `${resp.status} ${resp.statusText}`;
    // An established session that the server no longer accepts (expired or revoked token)
    // ends; a token being tried on the login form is only refused.
    if (resp.status === 401 && sessionStorage.getItem(TOKEN_KEY)) {
      logout('Your session has ended: log in again.');
    }
    throw new ApiError(resp.status, data && data.code, message);
  }
  return data;
}

// A create form: on submit, POSTs what bodyOf() reads from the form to pathOf(), says so and
// reloads the list, or shows the API's error under the form.
function onCreate(form, submit, error, kind, pathOf, bodyOf, reload) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    const body = bodyOf();
    try {
      await api('POST', pathOf(), body);
      flash(`${kind} ${body.name} created.`);
      form.reset();
      await reload();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
}

// Reads what the caller may read; a route its roles do not cover gives null, not an error page.
async function apiOptional(path) {
  try {
    return await api('GET', path);
  } catch (e) {
    if (e.status === 403 || e.status === 404) return null;
    throw e;
  }
}

// A cluster route: read only by a caller with a cluster role; null for the others, unasked.
function clusterOptional(path) {
  return session.clusterReader ? apiOptional(path) : Promise.resolve(null);
}

// What the API takes as a name (a DNS label), for the forms' inputs.
const NAME_PATTERN = '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?';

const vmPath = (name) => `/api/v1/vms/${encodeURIComponent(name)}`;

// ---------------------------------------------------------------------------------------------
// Live updates: the events stream, read with fetch (EventSource cannot send a bearer token),
// resumed after a reconnect from the last id seen.

const live = { abort: null, lastId: null, listeners: new Set(), retry: null, count: 0, countAtStart: 0 };

function startEvents() {
  stopEvents();
  const ctrl = new AbortController();
  live.abort = ctrl;
  const headers = { Authorization: `Bearer ${session.token}`, Accept: 'text/event-stream' };
  if (live.lastId) headers['Last-Event-ID'] = live.lastId;
  fetch('/api/v1/events', { headers, signal: ctrl.signal, cache: 'no-store' })
    .then(async (resp) => {
      if (resp.status === 401) { logout('Your session has ended: log in again.'); return; }
      if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
      setLive(true);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          handleFrame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
      throw new Error('events stream ended');
    })
    .catch(() => {
      setLive(false);
      if (ctrl.signal.aborted || !session.token) return;
      live.retry = setTimeout(startEvents, 2000);
    });
}

function stopEvents() {
  clearTimeout(live.retry);
  if (live.abort) live.abort.abort();
  live.abort = null;
  setLive(false);
}

function setLive(on) {
  const el = $('#live');
  el.textContent = on ? 'live' : 'offline';
  el.classList.toggle('on', on);
}

function handleFrame(frame) {
  let id = null;
  let kind = null;
  const data = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith('id:')) id = line.slice(3).trim();
    else if (line.startsWith('event:')) kind = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (id) live.lastId = id;
  if (!data.length) return;
  let ev;
  try { ev = JSON.parse(data.join('\n')); } catch (_) { return; }
  if (kind === 'gap') ev = { kind: 'gap' };
  // The audit page shows every record the caller may read, of any project (as `novacron
  // audit list` does): audit events pass whatever their project.
  if (ev.project && ev.project !== session.project && ev.kind !== 'audit') return;
  live.count += 1;
  for (const f of live.listeners) f(ev);
}

// A view's refresh, run at most every `ms` while events keep coming.
function debounced(fn, ms = 400) {
  const gen = generation;
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; if (gen === generation) fn(); }, ms);
  };
}

// ---------------------------------------------------------------------------------------------
// Views. Each returns its root element and may register `onEvent` and `onLeave`.

let current = { onLeave: null, onEvent: null };

function leave() {
  if (current.onEvent) live.listeners.delete(current.onEvent);
  if (current.onLeave) current.onLeave();
  current = { onLeave: null, onEvent: null };
}

// Each navigation (and each refresh) starts a new generation; a view that finished loading
// after a newer one started must not paint over it.
let generation = 0;

class Superseded extends Error {}

function show(gen, title, ...children) {
  if (gen !== generation) throw new Superseded('superseded');
  const main = $('#main');
  main.replaceChildren(h('h1', {}, title));
  append(main, children);
  document.title = `${title} · NovaCron`;
}

// Listens for the current view. Events that arrived while the view was loading (after its
// data was read, perhaps) count as a gap: the view catches up at once.
function onEvent(fn) {
  current.onEvent = fn;
  live.listeners.add(fn);
  if (live.count !== live.countAtStart) fn({ kind: 'gap' });
}

function failed(e) {
  flash(e.message || String(e), true);
}

// Login -------------------------------------------------------------------------------------

function viewLogin(reason) {
  $('#top').hidden = true;
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert' }, reason || '');
  const user = h('input', { id: 'login-user', autocomplete: 'username' });
  const password = h('input', { id: 'login-password', type: 'password', autocomplete: 'current-password' });
  const token = h('input', { id: 'login-token', type: 'password', autocomplete: 'off' });
  const submit = h('button', { id: 'login-submit', class: 'primary', type: 'submit' }, 'Log in');
  const form = h('form', { class: 'stack', id: 'login-form' },
    h('label', {}, 'User', user),
    h('label', {}, 'Password', password),
    h('p', { class: 'hint' }, 'Or paste an API token (`novacron token create`) instead of a user and password:'),
    h('label', {}, 'API token', token),
    submit, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    try {
      if (token.value.trim()) {
        session.token = token.value.trim();
        session.user = 'API token';
        await api('GET', '/api/v1/projects');
      } else {
        if (!user.value || !password.value) throw new Error('Give a user and password, or an API token.');
        const created = await api('POST', '/api/v1/login', { user: user.value, password: password.value });
        session.token = created.token;
        session.user = user.value;
      }
      sessionStorage.setItem(TOKEN_KEY, session.token);
      sessionStorage.setItem(USER_KEY, session.user);
      await enter();
    } catch (err) {
      session.token = null;
      error.textContent = err.status === 401 ? 'Wrong user, password or token.' : err.message;
    } finally {
      submit.disabled = false;
    }
  });
  const main = $('#main');
  main.replaceChildren(h('div', { class: 'login' }, h('h1', {}, 'Log in to NovaCron'), form));
  document.title = 'Log in · NovaCron';
  user.focus();
}

function logout(reason) {
  generation += 1;
  stopEvents();
  leave();
  session.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  if (location.hash !== '#/login') history.replaceState(null, '', '#/login');
  viewLogin(reason);
}

async function enter() {
  $('#top').hidden = false;
  $('#whoami').textContent = session.user;
  const me = await apiOptional('/api/v1/whoami');
  session.clusterReader = Boolean(me && me.cluster_role);
  fillProjects((await apiOptional('/api/v1/projects')) || []);
  startEvents();
  if (location.hash === '#/login' || !location.hash) location.hash = '#/';
  else route();
}

// The header's project selector: the projects the caller sees, and the one selected.
function fillProjects(projects) {
  const select = $('#project');
  const names = projects.map((p) => p.name);
  if (!names.includes(session.project)) names.unshift(session.project);
  select.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
  select.value = session.project;
}

// Overview ----------------------------------------------------------------------------------

async function viewOverview(gen) {
  const [vms, nodes, ops] = await Promise.all([
    api('GET', '/api/v1/vms'),
    clusterOptional('/api/v1/nodes'),
    api('GET', '/api/v1/operations'),
  ]);
  const byState = {};
  for (const vm of vms) byState[vm.state] = (byState[vm.state] || 0) + 1;
  const cards = h('div', { class: 'cards', id: 'ov-vms-by-state' },
    h('div', { class: 'card' }, h('div', { class: 'n' }, String(vms.length)), h('div', { class: 'l' }, 'VMs')),
    Object.keys(byState).sort().map((s) => h('div', { class: 'card', dataset: { state: s } },
      h('div', { class: `n state-${s}` }, String(byState[s])), h('div', { class: 'l' }, s))));
  const nodesPart = nodes === null
    ? h('p', { class: 'hint' }, 'Nodes need a cluster role.')
    : h('div', { class: 'scroll' }, h('table', { id: 'ov-nodes' },
      h('thead', {}, h('tr', {}, ['Node', 'State', 'VMs', 'CPUs', 'Memory'].map((t) => h('th', {}, t)))),
      h('tbody', {}, nodes.map((n) => h('tr', { dataset: { node: n.name } },
        h('td', {}, n.name), stateCell(n.state), h('td', {}, String(n.vms)),
        h('td', {}, `${n.allocated.cpus} / ${n.capacity.cpus}`),
        h('td', {}, `${bytes(n.allocated.memory_bytes)} / ${bytes(n.capacity.memory_bytes)}`))))));
  const recent = ops.slice().sort((a, b) => b.updated_at - a.updated_at).slice(0, 10);
  const opsPart = h('div', { class: 'scroll' }, h('table', { id: 'ov-ops' },
    h('thead', {}, h('tr', {}, ['Operation', 'Target', 'State', 'Message', 'Updated'].map((t) => h('th', {}, t)))),
    h('tbody', {}, recent.map((o) => h('tr', {},
      h('td', {}, o.kind), h('td', {}, o.target), stateCell(o.state),
      h('td', {}, o.message), h('td', {}, ago(o.updated_at)))))));
  show(gen, 'Overview', cards, h('h2', {}, 'Nodes'), nodesPart, h('h2', {}, 'Recent operations'), opsPart);
  onEvent(debounced(() => refresh(viewOverview), 1000));
}

// VM list -----------------------------------------------------------------------------------

// Rows drawn at once: a list of 10,000 VMs draws the first page and the rest on request, so
// it is on screen in well under a second; the filter searches all of them.
const PAGE_ROWS = 500;

async function viewVms(gen) {
  const vms = await api('GET', '/api/v1/vms');
  vms.sort((a, b) => a.name.localeCompare(b.name));
  const filter = h('input', { id: 'vm-filter', type: 'search', placeholder: 'Filter by name, node or label', 'aria-label': 'Filter' });
  const stateFilter = h('select', { id: 'vm-state-filter', 'aria-label': 'State' },
    h('option', { value: '' }, 'any state'),
    ['running', 'stopped', 'paused', 'crashed', 'migrating', 'starting', 'stopping', 'creating']
      .map((s) => h('option', { value: s }, s)));
  const count = h('span', { class: 'hint', id: 'vm-count' });
  const tbody = h('tbody', {});
  const drawn = new Map();
  let limit = PAGE_ROWS;
  const more = h('button', { id: 'vm-more', type: 'button', onclick: () => { limit += PAGE_ROWS; draw(); } });
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const s = stateFilter.value;
    const matching = vms.filter((vm) => (!q || searchText(vm).includes(q)) && (!s || vm.state === s));
    const frag = document.createDocumentFragment();
    drawn.clear();
    for (const vm of matching.slice(0, limit)) {
      const row = vmRow(vm);
      drawn.set(vm.name, row);
      frag.append(row);
    }
    tbody.replaceChildren(frag);
    count.textContent = `${matching.length} of ${vms.length}`;
    const rest = matching.length - drawn.size;
    more.hidden = rest <= 0;
    more.textContent = `Show ${Math.min(PAGE_ROWS, rest)} more (${rest} not shown)`;
  };
  filter.addEventListener('input', () => { limit = PAGE_ROWS; draw(); });
  stateFilter.addEventListener('change', () => { limit = PAGE_ROWS; draw(); });
  draw();
  show(gen, 'Virtual machines',
    h('div', { class: 'toolbar' }, filter, stateFilter, count,
      h('a', { href: '#/create', class: 'button' }, 'Create VM')),
    h('div', { class: 'scroll' }, h('table', { id: 'vm-table' },
      h('thead', {}, h('tr', {}, ['Name', 'State', 'Node', 'CPUs', 'Memory', 'Addresses', 'Created']
        .map((t, i) => h('th', { class: i >= 5 ? 'hide-narrow' : null }, t)))),
      tbody)),
    h('p', {}, more));
  // When the list has been painted and answers input (the browser test times loads by it).
  requestAnimationFrame(() => setTimeout(() => performance.mark('novacron:vm-list-rendered'), 0));
  const byName = new Map(vms.map((vm) => [vm.name, vm]));
  const reload = debounced(() => refresh(viewVms), 1500);
  onEvent((ev) => {
    if (ev.kind === 'vm' && ev.action === 'state' && ev.data && ev.data.state) {
      const name = ev.resource.replace(/^vm\//, '');
      const vm = byName.get(name);
      if (vm) {
        vm.state = ev.data.state;
        const row = drawn.get(name);
        if (row) {
          paintState(row.querySelector('td.state'), ev.data.state);
          row.dataset.state = ev.data.state;
        }
        return;
      }
    }
    if (ev.kind === 'vm' || ev.kind === 'gap' || ev.kind === 'migration') reload();
  });
}

function searchText(vm) {
  if (!vm.searchText) {
    vm.searchText = [vm.name, vm.node || '', ...Object.entries(vm.labels || {}).map(([k, v]) => `${k}=${v}`)]
      .join(' ').toLowerCase();
  }
  return vm.searchText;
}

function addresses(vm) {
  return (vm.nics || []).flatMap((n) => n.ips || []).join(', ');
}

function vmRow(vm) {
  return h('tr', { dataset: { vm: vm.name, state: vm.state } },
    h('td', {}, h('a', { href: `#/vms/${encodeURIComponent(vm.name)}` }, vm.name)),
    stateCell(vm.state),
    h('td', {}, vm.node || '—'),
    h('td', {}, String(vm.cpus)),
    h('td', {}, bytes(vm.memory_bytes)),
    h('td', { class: 'hide-narrow' }, addresses(vm) || '—'),
    h('td', { class: 'hide-narrow' }, ago(vm.created_at)));
}

// VM detail ---------------------------------------------------------------------------------

// Loads a script of the console's own once (a vendored library needed by one page only).
const loadedScripts = new Map();
function loadScript(src) {
  if (!loadedScripts.has(src)) {
    loadedScripts.set(src, new Promise((resolve, reject) => {
      const el = document.createElement('script');
      el.src = src;
      el.onload = resolve;
      el.onerror = () => { loadedScripts.delete(src); reject(new Error(`cannot load ${src}`)); };
      document.head.appendChild(el);
    }));
  }
  return loadedScripts.get(src);
}

async function viewVm(name, gen) {
  const [vm, nodes, repos, metrics] = await Promise.all([
    api('GET', vmPath(name)),
    clusterOptional('/api/v1/nodes'),
    clusterOptional('/api/v1/backup/repos'),
    apiOptional(`${vmPath(name)}/metrics`),
  ]);
  const props = [
    ['State', paintState(h('span', { id: 'vm-state' }), vm.state)],
    ['Reason', vm.state_reason],
    ['Node', vm.node || '—'],
    ['CPUs', vm.pending_cpus ? `${vm.cpus} (next start: ${vm.pending_cpus})` : String(vm.cpus)],
    ['Memory', vm.pending_memory_bytes ? `${bytes(vm.memory_bytes)} (next start: ${bytes(vm.pending_memory_bytes)})` : bytes(vm.memory_bytes)],
    ['Disk', vm.disk_bytes ? bytes(vm.disk_bytes) : null],
    ['Added disks', (vm.data_disks || []).map((d) => `${d.name} ${bytes(d.size_bytes)}`).join(', ') || null],
    ['Image', vm.image],
    ['CD-ROM', vm.iso],
    ['Consoles', vm.vnc ? 'serial, graphical (VNC)' : null],
    ['Accelerator', vm.accel_in_use || vm.accel],
    ['HA', vm.ha],
    ['Description', vm.description],
    ['Labels', Object.entries(vm.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || null],
    ['Created', ago(vm.created_at)],
  ].filter(([, v]) => v !== null && v !== undefined && v !== '');
  const dl = h('dl', { class: 'props' }, props.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

  const act = (label, action, opts = {}) => h('button', {
    type: 'button', dataset: { action }, class: opts.danger ? 'danger' : null,
    onclick: () => runAction(vm, action),
  }, label);
  const actions = h('div', { class: 'toolbar', id: 'vm-actions' },
    act('Start', 'start'), act('Stop', 'stop'), act('Reboot', 'reboot'),
    act('Pause', 'pause'), act('Resume', 'resume'), act('Delete', 'delete', { danger: true }));
  enableActions(actions, vm.state);

  const others = (nodes || []).filter((n) => n.name !== vm.node && n.state === 'ready');
  const target = h('select', { id: 'migrate-to', 'aria-label': 'Destination node' },
    h('option', { value: '' }, 'any node (scheduler chooses)'),
    others.map((n) => h('option', { value: n.name }, n.name)));
  const migrate = h('form', { class: 'toolbar', id: 'migrate-form' }, 'Live-migrate to', target,
    h('button', { id: 'migrate-submit', type: 'submit' }, 'Migrate'));
  migrate.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const body = target.value ? { to: target.value } : {};
      const r = await api('POST', `${vmPath(vm.name)}/migrate`, body);
      flash(`Migration of ${vm.name} to ${r.migration.destination} started.`);
      location.hash = '#/migrations';
    } catch (err) { failed(err); }
  });

  const repo = h('select', { id: 'backup-repo', 'aria-label': 'Backup repository' },
    (repos || []).map((r) => h('option', { value: r.name }, r.name)));
  const backup = h('form', { class: 'toolbar', id: 'backup-form' }, 'Back up to', repo,
    h('button', { type: 'submit', disabled: !(repos && repos.length) }, 'Back up'));
  backup.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', `${vmPath(vm.name)}/backup`, { repo: repo.value });
      flash(`Backup of ${vm.name} to ${repo.value} started.`);
    } catch (err) { failed(err); }
  });

  const nics = (vm.nics || []).length ? h('div', { class: 'scroll' }, h('table', { id: 'vm-nics' },
    h('thead', {}, h('tr', {}, ['Network', 'MAC', 'Addresses'].map((t) => h('th', {}, t)))),
    h('tbody', {}, vm.nics.map((n) => h('tr', {}, h('td', {}, n.network), h('td', {}, n.mac),
      h('td', {}, (n.ips || []).join(', '))))))) : null;
  // What the guest itself reports through its qemu-guest-agent (its agent leaves loopback out).
  const guestIfs = vm.guest_interfaces || [];
  const guestNics = guestIfs.length ? h('div', { class: 'scroll' }, h('table', { id: 'vm-guest-nics' },
    h('thead', {}, h('tr', {}, ['Interface', 'MAC', 'Addresses'].map((t) => h('th', {}, t)))),
    h('tbody', {}, guestIfs.map((i) => h('tr', { dataset: { ifname: i.name } }, h('td', {}, i.name),
      h('td', {}, i.mac || '—'), h('td', {}, (i.ips || []).join(', '))))))) : null;

  const consolePre = h('pre', { class: 'console', id: 'vm-console', tabindex: '0', 'aria-label': 'Serial console' }, '');
  const consoleStatus = h('span', { class: 'hint', id: 'console-status', role: 'status' });
  const terminalBox = h('div', { id: 'vm-terminal', class: 'terminal', hidden: true });
  const graphs = h('div', { class: 'graphs', id: 'vm-graphs' });
  drawGraphs(graphs, metrics);
  const screenStatus = h('span', { class: 'hint', id: 'screen-status', role: 'status' });
  const screenBox = h('div', { id: 'vm-screen', class: 'screen', hidden: true });
  const screenOpen = h('button', { type: 'button', id: 'screen-open', onclick: () => openScreen() }, 'Open screen');
  const screen = vm.vnc ? [
    h('h2', {}, 'Screen'),
    h('p', { class: 'hint' }, 'The graphical console: what the guest shows on its display, with keyboard and mouse. Or `novacron vm console ', vm.name, ' --vnc` for a VNC viewer.'),
    h('div', { class: 'toolbar' },
      screenOpen, screenStatus),
    screenBox,
  ] : null;

  show(gen, `VM ${vm.name}`, h('div', { id: 'vm-detail', dataset: { vm: vm.name } },
    actions, dl,
    nics ? [h('h2', {}, 'Network interfaces'), nics] : null,
    guestNics ? [h('h2', {}, 'In the guest'), h('p', { class: 'hint' }, 'As the guest\'s qemu-guest-agent reports them.'), guestNics] : null,
    h('h2', {}, 'Move and protect'), migrate, repos && repos.length ? backup : null,
    h('h2', {}, 'Usage'), graphs,
    screen,
    h('h2', {}, 'Serial console'),
    h('p', { class: 'hint' }, 'What the guest writes on its serial console, as it writes it. Open the terminal to type into it (press Enter for a prompt), or use `novacron vm console ', vm.name, '`.'),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', id: 'console-open', onclick: () => openTerminal() }, 'Open terminal'),
      consoleStatus),
    consolePre, terminalBox));

  // The interactive console: xterm.js over the API's console WebSocket.
  let terminal = null;
  let socket = null;
  const openTerminal = () => {
    if (terminal || typeof Terminal === 'undefined') return;
    consolePre.hidden = true;
    terminalBox.hidden = false;
    $('#console-open').disabled = true;
    terminal = new Terminal({ fontSize: 13, scrollback: 5000, cursorBlink: true });
    terminal.open(terminalBox);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}${vmPath(vm.name)}/console/ws?project=${encodeURIComponent(session.project)}`;
    socket = new WebSocket(url, ['novacron.console.v1', `novacron.bearer.${session.token}`]);
    socket.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    consoleStatus.textContent = 'connecting';
    socket.onopen = () => { consoleStatus.textContent = 'connected'; terminal.focus(); };
    socket.onmessage = (e) => terminal.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
    socket.onclose = () => {
      consoleStatus.textContent = 'disconnected';
      if (terminal) terminal.write('\r\n[console closed]\r\n');
    };
    terminal.onData((d) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(d)); });
  };

  // The screen: noVNC (loaded on first use) over the API's VNC WebSocket.
  let rfb = null;
  const openScreen = async () => {
    if (rfb) return;
    screenOpen.disabled = true;
    screenStatus.textContent = 'connecting';
    try {
      await loadScript('/ui/vendor/novnc.js');
    } catch (_) {
      screenStatus.textContent = 'the VNC viewer did not load';
      screenOpen.disabled = false;
      return;
    }
    screenBox.hidden = false;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}${vmPath(vm.name)}/vnc/ws?project=${encodeURIComponent(session.project)}`;
    rfb = new window.NovncRFB(screenBox, url, { wsProtocols: ['binary', `novacron.bearer.${session.token}`] });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => { screenStatus.textContent = 'connected'; rfb.focus(); });
    rfb.addEventListener('desktopname', (e) => { screenBox.dataset.name = e.detail.name; });
    rfb.addEventListener('disconnect', () => {
      // Held elements, not looked up: this may come after the page was left.
      screenStatus.textContent = 'disconnected';
      rfb = null;
      screenOpen.disabled = false;
    });
  };

  let stopped = false;
  const pollConsole = async () => {
    if (stopped) return;
    try {
      const log = await api('GET', `${vmPath(vm.name)}/console?tail_bytes=32768`);
      log.text = printable(log.text);
      const atEnd = consolePre.scrollTop + consolePre.clientHeight >= consolePre.scrollHeight - 4;
      // After a migration the new node's log starts empty: keep what the guest wrote before.
      if (!log.text && !consolePre.textContent) {
        consolePre.textContent = `(the guest has written nothing on ${vm.node || 'its node'} yet)`;
      } else if (log.text && consolePre.textContent !== log.text) {
        consolePre.textContent = log.text;
        if (atEnd) consolePre.scrollTop = consolePre.scrollHeight;
      }
    } catch (_) { /* the VM may not run: keep what was shown */ }
    if (!stopped) pollConsole.timer = setTimeout(pollConsole, 1500);
  };
  pollConsole();
  const pollMetrics = setInterval(async () => {
    const m = await apiOptional(`${vmPath(vm.name)}/metrics`).catch(() => null);
    drawGraphs(graphs, m);
  }, 10000);
  current.onLeave = () => {
    stopped = true;
    clearTimeout(pollConsole.timer);
    clearInterval(pollMetrics);
    if (socket) socket.close();
    if (terminal) terminal.dispose();
    if (rfb) rfb.disconnect();
  };

  // A reload would close an open terminal: while one is open, state changes show in place.
  const reload = debounced(() => { if (!terminal && !rfb) refresh((g) => viewVm(name, g)); }, 500);
  onEvent((ev) => {
    if (ev.kind === 'gap') { reload(); return; }
    if (ev.resource === `vm/${vm.name}` || (ev.related || []).includes(`vm/${vm.name}`)) {
      if (ev.kind === 'vm' && ev.action === 'state' && ev.data && ev.data.state) {
        paintState($('#vm-state'), ev.data.state);
        enableActions(actions, ev.data.state);
      }
      if (ev.kind === 'vm' && ev.action === 'deleted') {
        flash(`VM ${vm.name} was deleted.`);
        location.hash = '#/vms';
        return;
      }
      reload();
    }
  });
}

function enableActions(actions, state) {
  const allowed = {
    start: ['stopped', 'crashed'],
    stop: ['running', 'paused', 'starting'],
    reboot: ['running'],
    pause: ['running'],
    resume: ['paused'],
    delete: null,
  };
  for (const b of actions.querySelectorAll('button[data-action]')) {
    const ok = allowed[b.dataset.action];
    b.disabled = ok !== null && !ok.includes(state);
  }
}

async function runAction(vm, action) {
  try {
    if (action === 'delete') {
      const state = $('#vm-state') ? $('#vm-state').textContent : vm.state;
      const runs = !['stopped', 'crashed', 'creating'].includes(state);
      const text = runs
        ? `${vm.name} is ${state}: deleting it kills its QEMU at once, then removes its disk. This cannot be undone.`
        : `This removes ${vm.name} and its disk. This cannot be undone.`;
      if (!(await confirmTyped(`Delete VM ${vm.name}?`, text, vm.name))) return;
      await api('DELETE', `${vmPath(vm.name)}${runs ? '?force=true' : ''}`);
      flash(`Deleting ${vm.name}.`);
      location.hash = '#/vms';
      return;
    }
    const body = action === 'stop' ? {} : undefined;
    await api('POST', `${vmPath(vm.name)}/${action}`, body);
    flash(`${action} ${vm.name}: requested.`);
  } catch (err) { failed(err); }
}

// The console log as text: terminal control sequences (colours, cursor queries) and other
// control characters removed, line breaks and tabs kept.
function printable(text) {
  return text
    .replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, '')
    .replace(/\x1b[@-_]/g, '')
    .replace(/\r\n?/g, '\n')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

// A confirmation that needs the resource's name typed in, so a stray click deletes nothing.
function confirmTyped(title, text, expected) {
  const dialog = $('#confirm-dialog');
  const input = $('#confirm-input');
  const ok = $('#confirm-ok');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-expected').textContent = expected;
  input.value = '';
  ok.disabled = true;
  input.oninput = () => { ok.disabled = input.value !== expected; };
  dialog.returnValue = '';
  dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok' && input.value === expected), { once: true });
  });
}

// Small line graphs of the metrics history: CPU (per cent of one host CPU) and QEMU's RSS.
function drawGraphs(container, metrics) {
  const samples = (metrics && metrics.samples) || [];
  if (samples.length < 2) {
    container.replaceChildren(h('p', { class: 'hint' }, 'No usage yet: samples arrive every few seconds while the VM runs.'));
    return;
  }
  const cpu = [];
  for (let i = 1; i < samples.length; i += 1) {
    const dt = (samples[i].at_ms - samples[i - 1].at_ms) / 1000;
    if (dt > 0) cpu.push([samples[i].at_ms, Math.max(0, (samples[i].usage.cpu_seconds - samples[i - 1].usage.cpu_seconds) / dt * 100)]);
  }
  const rss = samples.map((s) => [s.at_ms, s.usage.rss_bytes / 1048576]);
  container.replaceChildren(graph('CPU %', cpu, 'cpu'), graph('Memory (RSS, MiB)', rss, 'rss'));
}

function graph(label, points, id) {
  const ns = 'http://www.w3.org/2000/svg';
  const W = 560;
  const H = 120;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'graph');
  svg.setAttribute('role', 'img');
  svg.setAttribute('id', `graph-${id}`);
  const max = Math.max(1, ...points.map((p) => p[1]));
  const t0 = points[0][0];
  const t1 = Math.max(t0 + 1, points[points.length - 1][0]);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', points.map(([t, v]) =>
    `${((t - t0) / (t1 - t0) * (W - 10) + 5).toFixed(1)},${(H - 18 - v / max * (H - 30)).toFixed(1)}`).join(' '));
  const last = points[points.length - 1][1];
  const title = document.createElementNS(ns, 'text');
  title.setAttribute('x', '6');
  title.setAttribute('y', String(H - 4));
  title.textContent = `${label}: now ${last.toFixed(1)}, max ${max.toFixed(1)}`;
  svg.setAttribute('aria-label', title.textContent);
  svg.append(line, title);
  return svg;
}

// Create --------------------------------------------------------------------------------------

async function viewCreate(gen) {
  const [images, nodes, networks] = await Promise.all([
    api('GET', '/api/v1/images'),
    clusterOptional('/api/v1/nodes'),
    apiOptional(`/api/v1/networks?${inProject()}`),
  ]);
  const name = h('input', { id: 'create-name', required: true, pattern: NAME_PATTERN, maxlength: '63', autocomplete: 'off' });
  const image = h('select', { id: 'create-image', required: true },
    images.map((i) => h('option', { value: i.name }, `${i.name} (${i.kind})`)));
  const cpus = h('input', { id: 'create-cpus', type: 'number', min: '1', max: '256', value: '1', required: true });
  const memory = h('input', { id: 'create-memory', type: 'number', min: '16', step: '16', value: '256', required: true });
  const node = h('select', { id: 'create-node' }, h('option', { value: '' }, 'any (scheduler chooses)'),
    (nodes || []).filter((n) => n.state === 'ready').map((n) => h('option', { value: n.name }, n.name)));
  const accel = h('select', { id: 'create-accel' }, ['auto', 'kvm', 'tcg'].map((a) => h('option', { value: a }, a)));
  const network = h('select', { id: 'create-network' },
    h('option', { value: 'user' }, 'user-mode NAT on the node'),
    h('option', { value: 'none' }, 'no network'),
    (networks || []).map((n) => h('option', { value: `net:${n.name}` }, `network ${n.name}`)));
  const start = h('input', { id: 'create-start', type: 'checkbox', checked: true });
  const vnc = h('input', { id: 'create-vnc', type: 'checkbox' });
  const error = h('p', { id: 'create-error', class: 'error', role: 'alert' });
  const submit = h('button', { id: 'create-submit', class: 'primary', type: 'submit' }, 'Create');
  const form = h('form', { class: 'stack', id: 'create-form' },
    h('label', {}, 'Name', name, h('span', { class: 'hint' }, 'Lower-case letters, digits and dashes.')),
    h('label', {}, 'Image', image),
    h('label', {}, 'CPUs', cpus),
    h('label', {}, 'Memory (MiB)', memory),
    h('label', {}, 'Node', node),
    h('label', {}, 'Accelerator', accel),
    h('label', {}, 'Network', network),
    h('label', { class: 'check' }, vnc, ' Graphical console (a screen: installers, desktops)'),
    h('label', { class: 'check' }, start, ' Start it'),
    submit, error);
  if (!images.length) error.textContent = 'There is no image yet: import one with `novacron image import` or build the tiny one with `novacron image build-tiny tiny`.';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    const body = {
      name: name.value.trim(),
      image: image.value,
      cpus: Number(cpus.value),
      memory_bytes: Number(memory.value) * 1048576,
      accel: accel.value,
      start: start.checked,
      vnc: vnc.checked,
    };
    if (node.value) body.node = node.value;
    if (network.value === 'none') body.network = { mode: 'none' };
    else if (network.value.startsWith('net:')) {
      body.network = { mode: 'none' };
      body.nics = [{ network: network.value.slice(4) }];
    }
    try {
      await api('POST', '/api/v1/vms', body);
      flash(`Creating ${body.name}.`);
      location.hash = `#/vms/${encodeURIComponent(body.name)}`;
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  show(gen, 'Create a VM', form);
  name.focus();
}

// Migrations ----------------------------------------------------------------------------------

async function viewMigrations(gen) {
  const migrations = await api('GET', '/api/v1/migrations');
  migrations.sort((a, b) => b.created_at - a.created_at);
  const active = (m) => ['preparing', 'running', 'committed'].includes(m.state);
  const rows = migrations.map((m) => {
    const p = m.progress || {};
    const fraction = m.state === 'succeeded' ? 1 : progressOf(m);
    const cancel = active(m) && m.state !== 'committed'
      ? h('button', { type: 'button', class: 'danger', onclick: async () => {
        try { await api('POST', `/api/v1/migrations/${encodeURIComponent(m.id)}/cancel`); flash('Cancelling.'); } catch (err) { failed(err); }
      } }, 'Cancel')
      : null;
    return h('tr', { dataset: { migration: m.id, state: m.state } },
      h('td', {}, h('a', { href: `#/vms/${encodeURIComponent(m.vm)}` }, m.vm)),
      h('td', {}, `${m.source} → ${m.destination}`),
      stateCell(m.state),
      h('td', {}, h('progress', { max: '100', value: String(Math.round(fraction * 100)), 'aria-label': 'progress' }),
        ` ${Math.round(fraction * 100)} %`),
      h('td', { class: 'hide-narrow' }, p.phase || ''),
      h('td', { class: 'hide-narrow' }, `${bytes(p.bytes_sent)} sent`),
      h('td', { class: 'hide-narrow' }, p.downtime_ms !== undefined && p.downtime_ms !== null ? `${p.downtime_ms} ms` : ''),
      h('td', { class: 'hide-narrow' }, m.message || ''),
      h('td', {}, cancel));
  });
  show(gen, 'Migrations', h('div', { class: 'scroll' }, h('table', { id: 'migration-table' },
    h('thead', {}, h('tr', {}, ['VM', 'Route', 'State', 'Progress', 'Phase', 'Sent', 'Pause', 'Message', '']
      .map((t, i) => h('th', { class: i >= 4 && i <= 7 ? 'hide-narrow' : null }, t)))),
    h('tbody', {}, rows))),
  migrations.length ? null : h('p', { class: 'hint' }, 'No migrations yet: start one from a VM\'s page or with `novacron vm migrate`.'));
  onEvent(debounced(() => refresh(viewMigrations), 500));
}

// How far a migration is, from what was carried against what remains.
function progressOf(m) {
  if (['failed', 'cancelled'].includes(m.state)) return 0;
  if (m.state === 'committed') return 0.99;
  const p = m.progress || {};
  const done = p.payload_bytes || 0;
  const left = (p.remaining_ram_bytes || 0) + (p.disk_remaining_bytes || 0);
  if (!done && !left) return 0;
  return Math.min(0.98, done / (done + left));
}

// Nodes ---------------------------------------------------------------------------------------

async function viewNodes(gen) {
  const nodes = await clusterOptional('/api/v1/nodes');
  if (nodes === null) {
    show(gen, 'Nodes', h('p', { class: 'hint' }, 'Nodes need a cluster role (cluster-viewer or cluster-admin).'));
    return;
  }
  const nodeAction = (n, action) => h('button', { type: 'button', dataset: { action }, onclick: async () => {
    try { await api('POST', `/api/v1/nodes/${encodeURIComponent(n.name)}/${action}`); flash(`${action} ${n.name}: done.`); refresh(viewNodes); } catch (err) { failed(err); }
  } }, action);
  show(gen, 'Nodes', h('div', { class: 'scroll' }, h('table', { id: 'node-table' },
    h('thead', {}, h('tr', {}, ['Node', 'State', 'VMs', 'CPUs', 'Memory', 'Disk', 'QEMU', 'Heartbeat', 'Actions']
      .map((t, i) => h('th', { class: i === 6 || i === 7 ? 'hide-narrow' : null }, t)))),
    h('tbody', {}, nodes.map((n) => h('tr', { dataset: { node: n.name } },
      h('td', {}, n.name), stateCell(n.state), h('td', {}, String(n.vms)),
      h('td', {}, `${n.allocated.cpus} / ${n.capacity.cpus}`),
      h('td', {}, `${bytes(n.allocated.memory_bytes)} / ${bytes(n.capacity.memory_bytes)}`),
      h('td', {}, `${bytes(n.allocated.disk_bytes)} / ${bytes(n.capacity.disk_bytes)}`),
      h('td', { class: 'hide-narrow' }, n.qemu_version),
      h('td', { class: 'hide-narrow' }, ago(n.last_heartbeat)),
      h('td', {}, n.state === 'ready' ? [nodeAction(n, 'cordon'), ' ', nodeAction(n, 'drain')] : nodeAction(n, 'uncordon'))))))),
  h('p', { class: 'hint' }, 'Drain moves every VM off the node by live migration; `novacron node evacuate` plans the moves first.'));
  const reload = debounced(() => refresh(viewNodes), 1000);
  onEvent((ev) => { if (ev.kind === 'node' || ev.kind === 'gap') reload(); });
}

// Networks ------------------------------------------------------------------------------------

// The project goes in the query too: the network list reads only that (without it, the list
// holds the networks of every project the caller sees).
const inProject = () => `project=${encodeURIComponent(session.project)}`;

async function viewNetworks(gen) {
  // The list reloads on events; the form below it stays as the user left it.
  const list = h('div', { id: 'network-list' });
  const load = async () => {
    const [networks, vms] = await Promise.all([
      api('GET', `/api/v1/networks?${inProject()}`),
      api('GET', '/api/v1/vms'),
    ]);
    networks.sort((a, b) => a.name.localeCompare(b.name));
    // The VMs with a NIC on each network (the network's record does not list them).
    const users = new Map();
    for (const vm of vms) {
      for (const nic of vm.nics || []) {
        if (!users.has(nic.network)) users.set(nic.network, []);
        users.get(nic.network).push(vm.name);
      }
    }
    const rows = networks.map((n) => h('tr', { dataset: { network: n.name } },
      h('td', {}, n.name),
      h('td', {}, n.subnet),
      h('td', { class: 'hide-narrow' }, n.gateway),
      h('td', {}, n.dhcp ? 'on' : 'off'),
      h('td', { class: 'hide-narrow' }, String(n.mtu)),
      h('td', { class: 'network-vms' }, (users.get(n.name) || []).map((v, i) => [i ? ', ' : null,
        h('a', { href: `#/vms/${encodeURIComponent(v)}` }, v)])),
      h('td', {}, h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' },
        onclick: () => removeNetwork(n, users.get(n.name) || [], load) }, 'Delete'))));
    list.replaceChildren();
    append(list, [
      table('network-table', ['Name', 'Subnet', ['Gateway', 'hide-narrow'], 'DHCP', ['MTU', 'hide-narrow'], 'VMs', ''], rows),
      networks.length ? null : h('p', { class: 'hint' }, `No overlay network in project ${session.project} yet.`)]);
  };
  await load();

  const name = h('input', { id: 'network-name', required: true, pattern: NAME_PATTERN, maxlength: '63', autocomplete: 'off' });
  const subnet = h('input', { id: 'network-subnet', required: true, placeholder: '10.10.0.0/24', autocomplete: 'off' });
  const gateway = h('input', { id: 'network-gateway', placeholder: 'the subnet\'s first address', autocomplete: 'off' });
  const dhcp = h('input', { id: 'network-dhcp', type: 'checkbox', checked: true });
  const error = h('p', { id: 'network-error', class: 'error', role: 'alert' });
  const submit = h('button', { id: 'network-submit', class: 'primary', type: 'submit' }, 'Create network');
  const form = h('form', { class: 'stack', id: 'network-form' },
    h('label', {}, 'Name', name),
    h('label', {}, 'Subnet (CIDR)', subnet),
    h('label', {}, 'Gateway (optional)', gateway),
    h('label', { class: 'check' }, dhcp, ' Hand out addresses by DHCP'),
    submit, error);
  onCreate(form, submit, error, 'Network', () => `/api/v1/networks?${inProject()}`, () => {
    const body = { name: name.value.trim(), subnet: subnet.value.trim(), dhcp: dhcp.checked };
    if (gateway.value.trim()) body.gateway = gateway.value.trim();
    return body;
  }, load);
  show(gen, 'Networks', list,
    h('h2', {}, 'Create a network'), form,
    h('p', { class: 'hint' }, 'NAT, DNS and the MTU: `novacron network create --help`.'));
  const reload = debounced(() => load().catch(failed), 500);
  onEvent((ev) => { if (['network', 'vm', 'gap'].includes(ev.kind)) reload(); });
}

async function removeNetwork(n, using, then) {
  const text = using.length
    ? `VM(s) ${using.join(', ')} have a NIC on ${n.name}: the API refuses to delete it while they do.`
    : `This removes network ${n.name} and frees its subnet ${n.subnet}.`;
  if (!(await confirmTyped(`Delete network ${n.name}?`, text, n.name))) return;
  try {
    await api('DELETE', `/api/v1/networks/${encodeURIComponent(n.name)}?${inProject()}`);
    flash(`Network ${n.name} deleted.`);
    await then();
  } catch (err) { failed(err); }
}

// Projects ------------------------------------------------------------------------------------

async function viewProjects(gen) {
  // The list reloads on events; the form below it stays as the user left it.
  const list = h('div', { id: 'project-list' });
  const load = async () => {
    const projects = await api('GET', '/api/v1/projects');
    projects.sort((a, b) => a.name.localeCompare(b.name));
    fillProjects(projects);
    // Usage needs a role in the project: a project the caller only sees listed shows none.
    const usage = await Promise.all(projects.map((p) =>
      apiOptional(`/api/v1/projects/${encodeURIComponent(p.name)}/usage`).catch(() => null)));
    const rows = projects.map((p, i) => {
      const u = usage[i] ? usage[i].usage : null;
      const l = p.limits || {};
      const cells = u
        ? [usageCell(u.vms, l.max_vms), usageCell(u.cpus, l.max_cpus),
          usageCell(u.memory_bytes, l.max_memory_bytes, bytes), usageCell(u.networks, l.max_networks),
          usageCell(u.disk_bytes, l.max_disk_bytes, bytes, 'hide-narrow')]
        : [h('td', { colspan: '4', class: 'hint' }, 'no role here'), h('td', { class: 'hide-narrow' })];
      return h('tr', { dataset: { project: p.name } },
        h('td', {}, p.name, p.deleting ? ' (deleting)' : null),
        h('td', { class: 'hide-narrow' }, p.description),
        cells,
        h('td', {}, h('button', { type: 'button', class: 'danger', dataset: { action: 'delete' },
          onclick: () => removeProject(p, load) }, 'Delete')));
    });
    list.replaceChildren(table('project-table',
      ['Project', ['Description', 'hide-narrow'], 'VMs', 'CPUs', 'Memory', 'Networks', ['Disk', 'hide-narrow'], ''], rows));
  };
  await load();

  const name = h('input', { id: 'project-name', required: true, pattern: NAME_PATTERN, maxlength: '63', autocomplete: 'off' });
  const description = h('input', { id: 'project-description', autocomplete: 'off' });
  const error = h('p', { id: 'project-error', class: 'error', role: 'alert' });
  const submit = h('button', { id: 'project-submit', class: 'primary', type: 'submit' }, 'Create project');
  const form = h('form', { class: 'stack', id: 'project-form' },
    h('label', {}, 'Name', name), h('label', {}, 'Description', description), submit, error);
  onCreate(form, submit, error, 'Project', () => '/api/v1/projects',
    () => ({ name: name.value.trim(), description: description.value.trim() }), load);
  show(gen, 'Projects', list,
    h('p', { class: 'hint' }, 'What each project holds, against its limit where it has one (`novacron project set`). Creating and deleting projects needs the cluster-admin role.'),
    h('h2', {}, 'Create a project'), form);
  // Projects make no events of their own: their audit records say when one changed.
  const reload = debounced(() => load().catch(failed), 1000);
  onEvent((ev) => {
    if (ev.kind === 'gap' || ev.kind === 'vm' || ev.kind === 'network'
      || (ev.kind === 'audit' && ev.action === 'ok' && /\/api\/v1\/projects/.test(ev.data.action || ''))) reload();
  });
}

// What a project holds against its limit: "3 / 10", or "3" without a limit.
function usageCell(used, limit, format = String, cls = null) {
  return h('td', { class: cls }, limit === null || limit === undefined ? format(used) : `${format(used)} / ${format(limit)}`);
}

async function removeProject(p, then) {
  const text = `This deletes project ${p.name}. The API refuses while it holds VMs, networks or images.`;
  if (!(await confirmTyped(`Delete project ${p.name}?`, text, p.name))) return;
  try {
    await api('DELETE', `/api/v1/projects/${encodeURIComponent(p.name)}`);
    flash(`Project ${p.name} deleted.`);
    await then();
  } catch (err) { failed(err); }
}

// Audit log -----------------------------------------------------------------------------------

// Records shown: the newest this many.
const AUDIT_ROWS = 500;

async function viewAudit(gen) {
  // The log is read oldest first in pages; a cluster role reads the head and starts near it.
  const head = await clusterOptional('/api/v1/audit/head');
  let after = head ? Math.max(0, head.seq - AUDIT_ROWS) : 0;
  let records = [];
  for (;;) {
    const page = await api('GET', `/api/v1/audit?after=${after}&limit=10000`);
    records = records.concat(page.records).slice(-AUDIT_ROWS);
    if (!page.next_after) break;
    after = page.next_after;
  }
  let last = records.length ? records[records.length - 1].seq : after;
  const list = table('audit-table', ['Time', 'Principal', 'Action', ['Target', 'hide-narrow'], ['Project', 'hide-narrow'], 'Outcome'],
    records.slice().reverse().map(auditRow));
  const tbody = $('tbody', list);
  show(gen, 'Audit log',
    h('p', { class: 'hint' }, `Every change and every refused request, newest first (the last ${AUDIT_ROWS}); new records appear as they are written. \`novacron audit verify\` checks the hash chain.`),
    list,
    records.length ? null : h('p', { class: 'hint', id: 'audit-empty' }, 'No records you may read yet.'));
  // An audit event says a record was written; read the records after the last one shown.
  const more = debounced(async () => {
    try {
      for (;;) {
        const page = await api('GET', `/api/v1/audit?after=${last}&limit=10000`);
        // Another read may have shown some of them meanwhile.
        const fresh = page.records.filter((r) => r.seq > last);
        if (page.records.length) last = Math.max(last, page.records[page.records.length - 1].seq);
        if (fresh.length) {
          tbody.prepend(...fresh.reverse().map(auditRow));
          if ($('#audit-empty')) $('#audit-empty').remove();
          while (tbody.children.length > AUDIT_ROWS) tbody.lastChild.remove();
        }
        if (!page.next_after) break;
      }
    } catch (err) { failed(err); }
  }, 300);
  onEvent((ev) => {
    if (ev.kind === 'gap') refresh(viewAudit);
    else if (ev.kind === 'audit') more();
  });
}

function auditRow(r) {
  // Date and time each in one piece: on a phone the cell wraps between them only.
  const [day, time] = when(r.time).split(' ');
  return h('tr', { dataset: { seq: String(r.seq), outcome: r.outcome } },
    h('td', {}, h('span', { class: 'nowrap' }, day), ' ', h('span', { class: 'nowrap' }, time)),
    h('td', {}, r.user || r.actor),
    h('td', {}, r.action),
    h('td', { class: 'hide-narrow' }, r.target),
    h('td', { class: 'hide-narrow' }, r.project || '—'),
    paintState(h('td', { title: `HTTP ${r.status}` }), r.outcome));
}

// Backups -------------------------------------------------------------------------------------

async function viewBackups(gen) {
  const [repos, schedules] = await Promise.all([
    clusterOptional('/api/v1/backup/repos'),
    apiOptional('/api/v1/backup/schedules'),
  ]);
  // Listing backups opens every repository: one that cannot be read is said, not fatal.
  // The project's backups are its own to read, even by a caller who may not list the
  // cluster's repositories (repos is then null).
  let backups = null;
  let backupsError = null;
  if (!repos || repos.length) {
    try { backups = await api('GET', '/api/v1/backups'); } catch (err) { backupsError = err.message; }
  }
  const where = (r) => (r.location.kind === 'dir' ? r.location.path : r.location.url);
  const repoPart = repos === null
    ? h('p', { class: 'hint' }, 'Repositories need a cluster role (cluster-viewer or cluster-admin).')
    : [table('repo-table', ['Repository', 'Location', 'Encrypted', ['Added', 'hide-narrow']],
      repos.map((r) => h('tr', { dataset: { repo: r.name } },
        h('td', {}, r.name), h('td', {}, where(r)), h('td', {}, r.key_file ? 'yes' : 'no'),
        h('td', { class: 'hide-narrow' }, ago(r.created_at))))),
    repos.length ? null : h('p', { class: 'hint' }, 'No repository yet: add one with `novacron backup repo add NAME --path DIR`.')];

  let backupPart = null;
  if (backupsError) backupPart = h('p', { class: 'error', id: 'backup-error' }, backupsError);
  else if (backups) {
    backups.reverse();
    const pick = h('select', { id: 'restore-backup', 'aria-label': 'Backup' },
      backups.filter((b) => !b.error).map((b) => h('option', { value: b.id, dataset: { repo: b.repo } },
        `${b.vm || '?'} ${b.created_unix_ms ? when(b.created_unix_ms / 1000) : ''} (${b.id})`)));
    const as = h('input', { id: 'restore-as', required: true, pattern: NAME_PATTERN, maxlength: '63', autocomplete: 'off', 'aria-label': 'New VM name' });
    const restore = h('form', { class: 'toolbar', id: 'restore-form' }, 'Restore', pick, 'as a new VM', as,
      h('button', { type: 'submit' }, 'Restore'));
    restore.addEventListener('submit', async (e) => {
      e.preventDefault();
      const opt = pick.selectedOptions[0];
      if (!opt) return;
      try {
        await api('POST', `/api/v1/backups/${encodeURIComponent(opt.value)}/restore`, { as: as.value.trim(), repo: opt.dataset.repo });
        flash(`Restoring ${opt.value} as ${as.value.trim()}.`);
        location.hash = `#/vms/${encodeURIComponent(as.value.trim())}`;
      } catch (err) { failed(err); }
    });
    backupPart = [table('backup-table', ['VM', 'Taken', 'Size', ['Repository', 'hide-narrow'], ['Disks', 'hide-narrow'], ['Backup', 'hide-narrow']],
      backups.map((b) => h('tr', { dataset: { backup: b.id } },
        h('td', {}, b.vm ? h('a', { href: `#/vms/${encodeURIComponent(b.vm)}` }, b.vm) : '—'),
        h('td', {}, b.created_unix_ms ? when(b.created_unix_ms / 1000) : '—'),
        h('td', { class: b.error ? 'error' : null }, b.error || bytes(b.size_bytes)),
        h('td', { class: 'hide-narrow' }, b.repo),
        h('td', { class: 'hide-narrow' }, b.disks.join(', ')),
        h('td', { class: 'hide-narrow' }, b.id)))),
    backups.length ? restore : h('p', { class: 'hint' }, 'No backup yet: back a VM up from its page or with `novacron backup create`.')];
  }

  const keep = (k) => Object.entries(k || {}).filter(([, v]) => v).map(([key, v]) => `${key.replace(/^keep_/, '')} ${v}`).join(', ') || '—';
  const every = (s) => (s % 86400 === 0 ? `${s / 86400}d` : s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`);
  const schedulePart = schedules === null ? null : [
    table('schedule-table', ['VM', 'Repository', 'Every', ['Keep', 'hide-narrow'], 'Last run'],
      schedules.map((s) => h('tr', { dataset: { vm: s.vm } },
        h('td', {}, h('a', { href: `#/vms/${encodeURIComponent(s.vm)}` }, s.vm)), h('td', {}, s.repo),
        h('td', {}, every(s.every_seconds)), h('td', { class: 'hide-narrow' }, keep(s.retention)),
        h('td', {}, s.last_run ? ago(s.last_run) : 'not yet')))),
    schedules.length ? null : h('p', { class: 'hint' }, 'No schedule: `novacron backup schedule VM --repo R --every 1d`.')];

  show(gen, 'Backups',
    h('h2', {}, 'Repositories'), repoPart,
    backupPart ? [h('h2', {}, 'Backups'), backupPart] : null,
    schedulePart ? [h('h2', {}, `Schedules in project ${session.project}`), schedulePart] : null);
  // Repositories and schedules make no events of their own: their audit records do.
  const reload = debounced(() => refresh(viewBackups), 1000);
  onEvent((ev) => {
    if (ev.kind === 'gap' || (ev.kind === 'backup' && ev.action !== 'progress')
      || (ev.kind === 'audit' && ev.action === 'ok' && /\/api\/v1\/backup/.test(ev.data.action || ''))) reload();
  });
}

// ---------------------------------------------------------------------------------------------
// Routing

async function refresh(view) {
  if (!session.token) return;
  const hash = location.hash;
  try {
    const main = $('#main');
    const focus = document.activeElement && document.activeElement.id;
    const scroll = window.scrollY;
    leave();
    live.countAtStart = live.count;
    await view(++generation);
    if (location.hash !== hash) return;
    window.scrollTo(0, scroll);
    if (focus) { const el = document.getElementById(focus); if (el && main.contains(el)) el.focus(); }
  } catch (e) { if (!(e instanceof Superseded)) failed(e); }
}

async function route() {
  if (!session.token) { viewLogin(); return; }
  leave();
  const hash = location.hash.replace(/^#/, '') || '/';
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  let nav = 'overview';
  let view = viewOverview;
  if (parts[0] === 'login') { await enter(); return; }
  if (parts[0] === 'vms' && parts[1]) { nav = 'vms'; view = (g) => viewVm(parts[1], g); }
  else if (parts[0] === 'vms') { nav = 'vms'; view = viewVms; }
  else if (parts[0] === 'create') { nav = 'create'; view = viewCreate; }
  else if (parts[0] === 'migrations') { nav = 'migrations'; view = viewMigrations; }
  else if (parts[0] === 'nodes') { nav = 'nodes'; view = viewNodes; }
  else if (parts[0] === 'networks') { nav = 'networks'; view = viewNetworks; }
  else if (parts[0] === 'projects') { nav = 'projects'; view = viewProjects; }
  else if (parts[0] === 'audit') { nav = 'audit'; view = viewAudit; }
  else if (parts[0] === 'backups') { nav = 'backups'; view = viewBackups; }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const gen = ++generation;
  live.countAtStart = live.count;
  try {
    await view(gen);
    $('#main').focus({ preventScroll: true });
  } catch (e) {
    if (e instanceof Superseded || gen !== generation) return;
    show(gen, 'Something went wrong', h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#logout').addEventListener('click', () => logout(''));
  $('#project').addEventListener('change', (e) => {
    session.project = e.target.value;
    localStorage.setItem(PROJECT_KEY, session.project);
    route();
  });
  window.addEventListener('hashchange', route);
  if (session.token) enter().catch((e) => viewLogin(e.message));
  else viewLogin();
});
