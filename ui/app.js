// The dashboard: plain JavaScript over the server's public API, with the user's key (kept in
// sessionStorage, sent as Bearer). Pages are addressed by the URL's fragment, so a link
// reproduces a view:
//   #/                                   projects
//   #/<entity>/<project>?range=&tz=&…     overview (tiles, charts, per-op table)
//   #/<entity>/<project>/traces?…        recent root calls
//   #/<entity>/<project>/call/<id>       a trace as a waterfall, with the call selected
'use strict';

const KEY = 'weave-trace-server.key';
const PRESETS = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 };
// A granularity longer than any window the server accepts: exactly one bucket, whose numbers
// (percentiles too) are those of the whole window.
const WHOLE_WINDOW = 1e9;
const COLORS = ['#1f6feb', '#c62828', '#2e7d32', '#8a3ab9', '#b26a00', '#00838f', '#6d4c41', '#ad1457', '#546e7a', '#7cb342'];
const PAGE = 50;
const browserTz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

let key = sessionStorage.getItem(KEY);
let renderToken = 0;

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'text') el.textContent = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const fmtInt = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
const fmtMs = (ms) => {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
};
const fmtCost = (usd) => {
  if (usd === null || usd === undefined) return '—';
  if (usd === 0) return '$0';
  return usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toPrecision(3)}`;
};
const fmtPct = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%`);

/// An instant as wall-clock time in `tz`: `2025-03-09 03:00:00`.
function fmtTime(iso, tz) {
  if (!iso) return '—';
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(iso));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/// The UTC instant at which the wall clock in `tz` reads `local` (`YYYY-MM-DDTHH:MM`).
function zonedToUtc(local, tz) {
  const guess = new Date(local + 'Z');
  for (let i = 0, t = guess.getTime(); i < 3; i++) {
    const shown = new Date(fmtTime(new Date(t).toISOString(), tz).replace(' ', 'T') + 'Z').getTime();
    const diff = shown - guess.getTime();
    if (diff === 0) return new Date(t);
    t -= diff;
    if (i === 2) return new Date(t);
  }
  return guess;
}

/// An op name's family: every version of a Weave op (`weave:///e/p/op/name:digest`) is one op.
function opFamily(opName) {
  const m = /^weave:\/\/\/[^/]*\/[^/]*\/op\/([^:]*):/.exec(opName);
  return m ? { key: opName.slice(0, opName.lastIndexOf(':')) + ':*', label: m[1] } : { key: opName, label: opName };
}

/// Op families with every name (version) each holds: filtering by exact names lets the server
/// answer from its per-op rollups.
function families(opNames) {
  const out = new Map();
  for (const name of opNames) {
    const f = opFamily(name);
    if (!out.has(f.key)) out.set(f.key, { ...f, names: [] });
    out.get(f.key).names.push(name);
  }
  return [...out.values()];
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    // The key goes in the header only; `omit` also keeps a 401's Basic challenge from opening
    // the browser's password dialog.
    credentials: 'omit',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const json = JSON.parse(text);
      message = json.reason || (json.detail || []).map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ') || message;
    } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, message);
  }
  if (path === '/calls/stream_query') return text.split('\n').filter(Boolean).map((line) => JSON.parse(line));
  return JSON.parse(text);
}

/// Run `tasks` (functions returning promises) at most `n` at a time.
async function pool(tasks, n) {
  const results = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return results;
}

// ---------- routing ----------

function route() {
  const raw = location.hash.slice(1) || '/';
  const [path, query = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

function link(parts, params) {
  const query = params && params.toString();
  return '#/' + parts.map(encodeURIComponent).join('/') + (query ? '?' + query : '');
}

function crumbs(project, page) {
  const nav = document.getElementById('crumbs');
  nav.replaceChildren();
  if (!project) return;
  const [entity, name] = project.split('/');
  nav.append(
    h('a', { href: link([entity, name], carry()) }, project),
    h('a', { href: link([entity, name, 'traces'], carry()), 'data-testid': 'nav-traces' }, 'Traces'),
  );
  if (page && page !== 'Traces') nav.append(h('span', {}, page));
}

/// The view settings shared by the pages (range, timezone), to keep them across links.
function carry() {
  const params = route().params;
  const out = new URLSearchParams();
  for (const name of ['range', 'start', 'end', 'tz']) if (params.get(name)) out.set(name, params.get(name));
  return out;
}

async function render() {
  const token = ++renderToken;
  const main = document.getElementById('main');
  const signout = document.getElementById('signout');
  signout.hidden = !key;
  if (!key) {
    crumbs(null);
    return signIn(main);
  }
  const { parts, params } = route();
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const alive = () => token === renderToken;
  try {
    if (parts.length < 2) {
      crumbs(null);
      return await projectList(main, alive);
    }
    const project = `${parts[0]}/${parts[1]}`;
    if (parts.length === 2) return await overview(main, alive, project, params);
    if (parts[2] === 'traces') return await traceList(main, alive, project, params);
    if (parts[2] === 'call' && parts[3]) return await traceView(main, alive, project, parts[3], params);
    main.replaceChildren(h('p', { class: 'error' }, 'No such page.'));
  } catch (error) {
    if (!alive()) return;
    if (error.status === 401) return signOut('Your key is no longer accepted (401). Sign in again.');
    main.replaceChildren(h('p', { class: 'error', 'data-testid': 'error' }, error.message));
  }
}

function signOut(message) {
  key = null;
  sessionStorage.removeItem(KEY);
  document.getElementById('signout').hidden = true;
  crumbs(null);
  signIn(document.getElementById('main'), message);
}

function signIn(main, message) {
  const input = h('input', { type: 'password', id: 'key', autocomplete: 'off', placeholder: 'wts_…', 'aria-label': 'API key' });
  const error = h('p', { class: 'error', 'data-testid': 'signin-error' }, message || '');
  const form = h('form', {
    class: 'panel signin',
    onsubmit: async (event) => {
      event.preventDefault();
      key = input.value.trim();
      error.textContent = '';
      try {
        await api('/projects');
        sessionStorage.setItem(KEY, key);
        render();
      } catch (e) {
        key = null;
        error.textContent = e.status === 401
          ? 'That key was not accepted (401 Unauthorized). Check it and try again.'
          : `Could not sign in: ${e.message}`;
      }
    },
  },
  h('h2', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Paste an API key of this server. It stays in this browser tab only (sessionStorage) and is sent to this server alone.'),
  input,
  h('button', { type: 'submit' }, 'Sign in'),
  error);
  main.replaceChildren(form);
  input.focus();
}

// ---------- projects ----------

async function projectList(main, alive) {
  const { projects } = await api('/projects');
  if (!alive()) return;
  const rows = projects.map((p) => {
    const [entity, name] = p.project_id.split('/');
    return h('tr', { 'data-testid': 'project-row' },
      h('td', {}, h('a', { href: link([entity, name]) }, p.project_id)),
      h('td', {}, p.last_call_at ? fmtTime(p.last_call_at, browserTz) : 'no calls yet'));
  });
  main.replaceChildren(h('div', { class: 'panel' },
    h('h3', {}, 'Projects'),
    projects.length
      ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'project'), h('th', {}, 'latest call'))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'This key sees no project yet: send traces with the weave SDK first.')));
}

// ---------- overview ----------

/// The window and timezone of a view: a preset ending now, or `start`/`end` given.
function windowOf(params) {
  const tz = params.get('tz') || browserTz;
  const range = params.get('range') || '24h';
  if (range === 'custom' && params.get('start') && params.get('end')) {
    return { tz, range, start: new Date(params.get('start')), end: new Date(params.get('end')) };
  }
  const seconds = PRESETS[range] || PRESETS['24h'];
  const end = new Date(Math.ceil(Date.now() / 60000) * 60000);
  return { tz, range: PRESETS[range] ? range : '24h', start: new Date(end.getTime() - seconds * 1000), end };
}

function statsBody(project, win, filter, granularity, tz) {
  return {
    project_id: project, start: win.start.toISOString(), end: win.end.toISOString(),
    timezone: tz, granularity, filter,
    call_metrics: [
      { metric: 'call_count' }, { metric: 'error_count' },
      { metric: 'latency_ms', aggregations: [], percentiles: granularity === WHOLE_WINDOW ? [50, 99] : [50, 95, 99] },
    ],
    usage_metrics: [{ metric: 'total_tokens' }, { metric: 'total_cost' }],
  };
}

/// The whole window's numbers from a one-bucket answer.
function totalsOf(answer) {
  const b = answer.call_buckets[0] || {};
  const usage = answer.usage_buckets;
  const sum = (key) => usage.reduce((s, u) => s + (u[key] || 0), 0);
  const calls = b.sum_call_count || 0;
  return {
    calls, errors: b.sum_error_count || 0, errorRate: calls ? (b.sum_error_count || 0) / calls : null,
    p50: b.p50_latency_ms ?? null, p99: b.p99_latency_ms ?? null,
    tokens: sum('sum_total_tokens'), cost: sum('sum_total_cost'), unpriced: sum('unpriced_count'),
  };
}

async function overview(main, alive, project, params) {
  crumbs(project);
  const win = windowOf(params);
  const roots = params.get('roots') === '1';
  const ops = params.getAll('op');
  const opNames = await api('/calls/op_names', { project_id: project });
  const all = families(opNames.op_names);
  const chosen = all.filter((f) => ops.includes(f.key));
  // The chosen ops' exact names (the families' `:*` patterns when none is known any more).
  const names = chosen.length ? chosen.flatMap((f) => f.names) : ops;
  const filter = { trace_roots_only: roots || null, op_names: ops.length ? names : null };
  const [series, whole, projects] = await Promise.all([
    api('/calls/stats', statsBody(project, win, filter, undefined, win.tz)),
    api('/calls/stats', statsBody(project, win, filter, WHOLE_WINDOW, 'UTC')),
    api('/projects'),
  ]);
  if (!alive()) return;
  const totals = totalsOf(whole);

  const view = h('div', {});
  view.append(controls(project, params, win, all, ops, roots));
  const info = projects.projects.find((p) => p.project_id === project);
  if (totals.calls === 0 && info && info.last_call_at && new Date(info.last_call_at) < win.start) {
    const end = new Date(Math.ceil((new Date(info.last_call_at).getTime() + 1) / 3600000) * 3600000);
    const next = new URLSearchParams(params);
    next.set('range', 'custom');
    next.set('start', new Date(end.getTime() - 86400000).toISOString());
    next.set('end', end.toISOString());
    view.append(h('p', { class: 'panel', 'data-testid': 'no-calls' },
      `No calls in this range. The latest call started ${fmtTime(info.last_call_at, win.tz)}: `,
      h('a', { href: link(project.split('/'), next) }, 'show the 24 hours before it')));
  }
  view.append(tiles(totals));
  const chartsBox = h('div', { class: 'charts' });
  view.append(chartsBox);
  const opsPanel = h('div', { class: 'panel' }, h('h3', {}, 'Ops'), h('p', { class: 'muted' }, 'Loading…'));
  view.append(opsPanel);
  main.replaceChildren(view);
  drawCharts(chartsBox, series, win.tz);

  // One request for every op's row: LangSmith-style run statistics grouped by name, which the
  // server answers from its run rollups. A call renamed with a display name is counted under
  // that name (its row links to a text search instead of an op).
  const select = ['run_count', 'error_rate', 'latency_p50', 'latency_p99', 'total_tokens', 'total_cost'];
  const group_by = { attribute: 'name', max_groups: 100 };
  if (ops.length) group_by.groups = chosen.map((f) => f.label);
  const byName = await api('/api/v1/runs/stats', {
    session: [project], start_time: win.start.toISOString(), end_time: win.end.toISOString(),
    ...(roots ? { is_root: true } : {}), select, group_by,
  });
  if (!alive()) return;
  const ms = (s) => (s === null || s === undefined ? null : s * 1000);
  const rows = Object.entries(byName).filter(([, s]) => s.run_count > 0).map(([name, s]) => ({
    family: all.find((f) => f.label === name) || { key: null, label: name },
    calls: s.run_count, errorRate: s.error_rate, p50: ms(s.latency_p50), p99: ms(s.latency_p99),
    tokens: s.total_tokens, cost: s.total_cost,
  }));
  opsPanel.replaceChildren(h('h3', {}, 'Ops'), opTable(project, params, rows));
}

function controls(project, params, win, families, ops, roots) {
  const go = (change) => {
    const next = new URLSearchParams(params);
    change(next);
    location.hash = link(project.split('/'), next);
  };
  const presetButtons = Object.keys(PRESETS).map((name) => h('button', {
    type: 'button', class: win.range === name ? 'active' : null, 'data-testid': `range-${name}`,
    onclick: () => go((p) => { p.set('range', name); p.delete('start'); p.delete('end'); }),
  }, name));
  const localValue = (date) => fmtTime(date.toISOString(), win.tz).replace(' ', 'T').slice(0, 16);
  const from = h('input', { type: 'datetime-local', value: localValue(win.start), 'aria-label': 'from' });
  const to = h('input', { type: 'datetime-local', value: localValue(win.end), 'aria-label': 'to' });
  const apply = h('button', {
    type: 'button',
    onclick: () => go((p) => {
      p.set('range', 'custom');
      p.set('start', zonedToUtc(from.value, win.tz).toISOString());
      p.set('end', zonedToUtc(to.value, win.tz).toISOString());
    }),
  }, 'Apply');
  const zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : [browserTz]);
  const tzSelect = h('select', {
    'aria-label': 'timezone', 'data-testid': 'tz',
    onchange: (e) => go((p) => p.set('tz', e.target.value)),
  }, [...new Set(['UTC', browserTz, win.tz, ...zones])].map((z) => h('option', { value: z, selected: z === win.tz }, z)));
  const rootBox = h('input', { type: 'checkbox', checked: roots, onchange: (e) => go((p) => (e.target.checked ? p.set('roots', '1') : p.delete('roots'))) });
  const opSelect = h('select', {
    multiple: true, size: Math.min(4, Math.max(2, families.length)), 'aria-label': 'ops',
    onchange: (e) => go((p) => {
      p.delete('op');
      for (const option of e.target.selectedOptions) p.append('op', option.value);
    }),
  }, families.map((f) => h('option', { value: f.key, selected: ops.includes(f.key) }, f.label)));
  return h('div', { class: 'panel controls' },
    ...presetButtons,
    h('label', {}, 'from', from), h('label', {}, 'to', to), apply,
    h('label', {}, 'timezone', tzSelect),
    h('label', {}, rootBox, 'roots only'),
    h('label', {}, 'ops', opSelect),
    ops.length ? h('button', { type: 'button', onclick: () => go((p) => p.delete('op')) }, 'all ops') : null);
}

function tiles(t) {
  const tile = (id, label, value, text, hint) => h('div', { class: 'tile', 'data-testid': `tile-${id}`, dataset: { value: value === null ? '' : String(value) } },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, text), hint ? h('div', { class: 'hint' }, hint) : null);
  return h('div', { class: 'tiles' },
    tile('calls', 'Calls', t.calls, fmtInt(t.calls)),
    tile('error-rate', 'Error rate', t.errorRate, fmtPct(t.errorRate)),
    tile('p50', 'p50 latency', t.p50, fmtMs(t.p50)),
    tile('p99', 'p99 latency', t.p99, fmtMs(t.p99)),
    tile('tokens', 'Tokens', t.tokens, fmtInt(t.tokens)),
    tile('cost', 'Cost', t.cost, fmtCost(t.cost)),
    tile('unpriced', 'Unpriced usage rows', t.unpriced, fmtInt(t.unpriced),
      t.unpriced ? 'Some models have no price: add one with POST /cost/create.' : null));
}

const COMPACT = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

function drawCharts(box, answer, tz) {
  const buckets = answer.call_buckets;
  const labels = buckets.map((b) => b.timestamp);
  const xs = labels.map((ts) => Date.parse(ts) / 1000);
  const index = new Map(labels.map((ts, i) => [ts, i]));
  const perModel = (key) => {
    const models = new Map();
    for (const u of answer.usage_buckets) {
      if (!models.has(u.model)) models.set(u.model, new Array(xs.length).fill(0));
      const i = index.get(u.timestamp);
      if (i !== undefined) models.get(u.model)[i] = u[key] || 0;
    }
    return [...models.entries()].map(([model, values]) => ({ label: model, values }));
  };
  const charts = [
    ['calls', 'Calls and errors', [
      { label: 'calls', values: buckets.map((b) => b.sum_call_count) },
      { label: 'errors', values: buckets.map((b) => b.sum_error_count) }], fmtInt],
    ['latency', 'Latency (ms)', [
      { label: 'p50', values: buckets.map((b) => b.p50_latency_ms) },
      { label: 'p95', values: buckets.map((b) => b.p95_latency_ms) },
      { label: 'p99', values: buckets.map((b) => b.p99_latency_ms) }], (v) => (v === null ? '—' : v.toFixed(1))],
    ['tokens', 'Tokens per model', perModel('sum_total_tokens'), fmtInt],
    ['cost', 'Cost per model (USD)', perModel('sum_total_cost'), fmtCost],
  ];
  // Lay out every panel first, so each chart is sized to its own grid cell.
  const panels = [];
  for (const [id, title, series, fmt] of charts) {
    const plot = h('div', { class: 'plot', 'data-testid': `chart-${id}`, dataset: { points: String(xs.length), series: String(series.length) } });
    const table = h('table', { 'data-testid': `chart-table-${id}` },
      h('thead', {}, h('tr', {}, h('th', {}, `time (${tz})`), series.map((s) => h('th', { class: 'num' }, s.label)))),
      h('tbody', {}, labels.map((ts, i) => h('tr', {},
        // The server labels buckets in the requested timezone already: its wall-clock part.
        h('td', {}, ts.slice(0, 16).replace('T', ' ')),
        series.map((s) => h('td', { class: 'num' }, fmt(s.values[i])))))));
    box.append(h('div', { class: 'panel chart' }, h('h3', {}, title), plot,
      h('details', { class: 'data' }, h('summary', {}, 'data'), table)));
    panels.push([plot, series, fmt]);
  }
  for (const [plot, series, fmt] of panels) {
    if (!xs.length || !series.length) {
      plot.append(h('p', { class: 'muted' }, 'No data in this range.'));
      continue;
    }
    const width = Math.max(320, plot.clientWidth || 520);
    // eslint-disable-next-line no-undef
    new uPlot({
      width, height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      scales: { x: { time: true } },
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { show: xs.length <= 48 } }))],
      // Axis labels past six digits in compact form (20M), so they fit beside the plot.
      axes: [{}, { size: 72, values: (u, values) => values.map((v) => (v === null ? '' : Math.abs(v) >= 1e6 ? COMPACT.format(v) : fmt(v))) }],
      legend: { show: true },
    }, [xs, ...series.map((s) => s.values)], plot);
  }
}

function opTable(project, params, rows) {
  const sort = params.get('sort') || 'calls';
  const asc = params.get('asc') === '1';
  const columns = [
    ['op', 'op', (r) => r.family.label],
    ['calls', 'calls', (r) => r.calls],
    ['error_rate', 'error rate', (r) => r.errorRate],
    ['p50', 'p50', (r) => r.p50],
    ['p99', 'p99', (r) => r.p99],
    ['tokens', 'tokens', (r) => r.tokens],
    ['cost', 'cost', (r) => r.cost],
  ];
  const [, , by] = columns.find(([id]) => id === sort) || columns[1];
  rows.sort((a, b) => {
    const x = by(a), y = by(b);
    const order = x === y ? 0 : x === null ? -1 : y === null ? 1 : x < y ? -1 : 1;
    return asc ? order : -order;
  });
  const head = columns.map(([id, label]) => h('th', {
    class: ['sortable', id === 'op' ? '' : 'num', id === sort ? 'sorted' : '', id === sort && asc ? 'asc' : ''].join(' ').trim(),
    'data-testid': `sort-${id}`,
    onclick: () => {
      const next = new URLSearchParams(params);
      next.set('sort', id);
      if (id === sort && !asc) next.set('asc', '1'); else next.delete('asc');
      location.hash = link(project.split('/'), next);
    },
  }, label));
  const [entity, name] = project.split('/');
  const body = rows.map((r) => {
    const traces = carry();
    if (r.family.key) traces.set('op', r.family.key); else traces.set('q', r.family.label);
    return h('tr', { 'data-testid': 'op-row', dataset: { op: r.family.key || '', calls: String(r.calls) } },
      h('td', {}, h('a', { href: link([entity, name, 'traces'], traces), title: r.family.key || r.family.label }, r.family.label)),
      h('td', { class: 'num' }, fmtInt(r.calls)),
      h('td', { class: 'num' }, fmtPct(r.errorRate)),
      h('td', { class: 'num' }, fmtMs(r.p50)),
      h('td', { class: 'num' }, fmtMs(r.p99)),
      h('td', { class: 'num' }, fmtInt(r.tokens)),
      h('td', { class: 'num' }, fmtCost(r.cost)));
  });
  if (!rows.length) return h('p', { class: 'muted', 'data-testid': 'op-table' }, 'No calls in this range.');
  return h('table', { 'data-testid': 'op-table' }, h('thead', {}, h('tr', {}, head)), h('tbody', {}, body));
}

// ---------- traces ----------

async function traceList(main, alive, project, params) {
  crumbs(project, 'Traces');
  const tz = params.get('tz') || browserTz;
  const op = params.get('op') || '';
  const status = params.get('status') || '';
  const text = params.get('q') || '';
  const page = Math.max(0, Number(params.get('page') || 0));
  const conditions = [];
  if (status) conditions.push({ $eq: [{ $getField: 'summary.weave.status' }, { $literal: status }] });
  if (text) {
    const contains = (field) => ({ $contains: { input: { $getField: field }, substr: { $literal: text }, case_insensitive: true } });
    conditions.push({ $or: [contains('summary.weave.trace_name'), contains('inputs'), contains('output')] });
  }
  const [calls, opNames] = await Promise.all([
    api('/calls/stream_query', {
      project_id: project, filter: { trace_roots_only: true, op_names: op ? [op] : null },
      query: conditions.length ? { $expr: conditions.length === 1 ? conditions[0] : { $and: conditions } } : null,
      sort_by: [{ field: 'started_at', direction: 'desc' }], limit: PAGE + 1, offset: page * PAGE,
    }),
    api('/calls/op_names', { project_id: project }),
  ]);
  const shown = calls.slice(0, PAGE);
  let usage = {};
  if (shown.length) {
    try {
      usage = (await api('/calls/usage', { project_id: project, call_ids: shown.map((c) => c.id), include_costs: true })).call_usage;
    } catch (_) { usage = {}; /* a trace over the rollup limit: no usage column */ }
  }
  if (!alive()) return;
  const go = (change) => {
    const next = new URLSearchParams(params);
    change(next);
    next.delete('page');
    location.hash = link([...project.split('/'), 'traces'], next);
  };
  const search = h('input', { type: 'search', value: text, placeholder: 'text in name, inputs or output', 'aria-label': 'search' });
  const filters = h('form', {
    class: 'panel controls',
    onsubmit: (e) => { e.preventDefault(); go((p) => (search.value ? p.set('q', search.value) : p.delete('q'))); },
  },
  h('label', {}, 'op', h('select', { 'aria-label': 'op', onchange: (e) => go((p) => (e.target.value ? p.set('op', e.target.value) : p.delete('op'))) },
    h('option', { value: '' }, 'all'), families(opNames.op_names).map((f) => h('option', { value: f.key, selected: f.key === op }, f.label)))),
  h('label', {}, 'status', h('select', { 'aria-label': 'status', onchange: (e) => go((p) => (e.target.value ? p.set('status', e.target.value) : p.delete('status'))) },
    ['', 'success', 'error', 'descendant_error', 'running'].map((s) => h('option', { value: s, selected: s === status }, s || 'any')))),
  search, h('button', { type: 'submit' }, 'Search'));
  const [entity, name] = project.split('/');
  const rows = shown.map((c) => {
    const models = Object.values(usage[c.id] || {});
    const tokens = models.reduce((s, m) => s + (m.total_tokens || 0), 0);
    const cost = models.reduce((s, m) => s + (m.prompt_tokens_total_cost || 0) + (m.completion_tokens_total_cost || 0)
      + (m.cache_read_input_tokens_total_cost || 0) + (m.cache_creation_input_tokens_total_cost || 0), 0);
    const weave = (c.summary && c.summary.weave) || {};
    return h('tr', { 'data-testid': 'trace-row', dataset: { callId: c.id } },
      h('td', {}, fmtTime(c.started_at, tz)),
      h('td', {}, h('a', { href: link([entity, name, 'call', c.id], carry()) }, weave.trace_name || c.op_name)),
      h('td', {}, h('span', { class: `status ${weave.status}` }, weave.status)),
      h('td', { class: 'num' }, weave.status === 'running' ? 'running' : fmtMs(weave.latency_ms)),
      h('td', { class: 'num' }, models.length ? fmtInt(tokens) : '—'),
      h('td', { class: 'num' }, models.length ? fmtCost(cost) : '—'));
  });
  const pager = h('div', { class: 'pager' },
    page > 0 ? h('a', { href: link([entity, name, 'traces'], withPage(params, page - 1)) }, '← newer') : null,
    h('span', { class: 'muted' }, `page ${page + 1}`),
    calls.length > PAGE ? h('a', { href: link([entity, name, 'traces'], withPage(params, page + 1)), 'data-testid': 'next-page' }, 'older →') : null);
  main.replaceChildren(filters, h('div', { class: 'panel' },
    h('h3', {}, 'Recent traces'),
    shown.length
      ? h('table', { 'data-testid': 'trace-table' },
        h('thead', {}, h('tr', {}, h('th', {}, `started (${tz})`), h('th', {}, 'name'), h('th', {}, 'status'),
          h('th', { class: 'num' }, 'latency'), h('th', { class: 'num' }, 'tokens (trace)'), h('th', { class: 'num' }, 'cost (trace)'))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No traces match.'),
    pager));
}

function withPage(params, page) {
  const next = new URLSearchParams(params);
  if (page) next.set('page', String(page)); else next.delete('page');
  return next;
}

// ---------- one trace ----------

const MAX_TRACE_CALLS = 10000;

function usageTotals(models) {
  let tokens = 0;
  let cost = 0;
  let priced = false;
  for (const m of Object.values(models || {})) {
    tokens += m.total_tokens || 0;
    for (const k of ['prompt_tokens_total_cost', 'completion_tokens_total_cost', 'cache_read_input_tokens_total_cost', 'cache_creation_input_tokens_total_cost']) {
      if (typeof m[k] === 'number') { cost += m[k]; priced = true; }
    }
  }
  return { tokens, cost: priced ? cost : null, models: Object.keys(models || {}).length };
}

async function traceView(main, alive, project, callId, params) {
  crumbs(project, 'Trace');
  const tz = params.get('tz') || browserTz;
  const { call } = await api('/call/read', { project_id: project, id: callId });
  if (!call) throw new ApiError(404, `No call ${callId} in ${project}.`);
  const calls = await api('/calls/stream_query', {
    project_id: project, filter: { trace_ids: [call.trace_id] }, include_costs: true,
    sort_by: [{ field: 'started_at', direction: 'asc' }], limit: MAX_TRACE_CALLS,
  });
  // Every call's usage over its subtree, a thousand ids a request.
  const rolled = {};
  const ids = calls.map((c) => c.id);
  const chunks = [];
  for (let i = 0; i < ids.length; i += 1000) chunks.push(ids.slice(i, i + 1000));
  try {
    const answers = await pool(chunks.map((chunk) => () => api('/calls/usage', { project_id: project, call_ids: chunk, include_costs: true })), 2);
    for (const a of answers) Object.assign(rolled, a.call_usage);
  } catch (_) { /* over the server's rollup limit: own usage only */ }
  if (!alive()) return;

  // Depth-first order under each parent, by start.
  const byId = new Map(calls.map((c) => [c.id, c]));
  const children = new Map();
  const tops = [];
  for (const c of calls) {
    if (c.parent_id && byId.has(c.parent_id)) {
      if (!children.has(c.parent_id)) children.set(c.parent_id, []);
      children.get(c.parent_id).push(c);
    } else tops.push(c);
  }
  const order = [];
  const walk = (c, depth) => {
    order.push([c, depth]);
    for (const child of children.get(c.id) || []) walk(child, depth + 1);
  };
  tops.forEach((c) => walk(c, 0));
  const now = Date.now();
  const t0 = Math.min(...calls.map((c) => Date.parse(c.started_at)));
  const t1 = Math.max(...calls.map((c) => (c.ended_at ? Date.parse(c.ended_at) : now)));
  const span = Math.max(1, t1 - t0);

  const detail = h('div', { class: 'panel', 'data-testid': 'call-detail' });
  const rows = order.map(([c, depth]) => {
    const weave = (c.summary && c.summary.weave) || {};
    const own = usageTotals(c.summary && c.summary.usage);
    const ownCost = usageTotals(weave.costs || {}).cost;
    const total = usageTotals(rolled[c.id]);
    const start = Date.parse(c.started_at);
    const end = c.ended_at ? Date.parse(c.ended_at) : now;
    const running = weave.status === 'running';
    const row = h('div', {
      class: 'wf-row', 'data-testid': 'wf-row',
      dataset: { callId: c.id, status: weave.status, ownTokens: String(own.tokens), totalTokens: String(total.tokens) },
      onclick: () => select(c.id),
    },
    h('div', { class: 'wf-name', style: `padding-left:${depth * 14}px`, title: c.op_name },
      weave.trace_name || c.op_name, ' ', h('span', { class: `status ${weave.status}` }, running ? 'running' : weave.status)),
    h('div', { class: 'wf-track' }, h('div', {
      class: `wf-bar ${running ? 'running' : weave.status === 'error' ? 'error' : ''}`,
      style: `left:${((start - t0) / span) * 100}%;width:${((end - start) / span) * 100}%`,
      title: running ? 'running' : fmtMs(weave.latency_ms),
    })),
    h('div', { class: 'wf-usage' },
      running ? 'running' : fmtMs(weave.latency_ms),
      total.tokens ? ` · ${fmtInt(own.tokens)}/${fmtInt(total.tokens)} tok` : '',
      total.cost ? ` · ${fmtCost(total.cost)}` : (ownCost ? ` · ${fmtCost(ownCost)}` : '')));
    return row;
  });
  const select = (id) => {
    for (const row of rows) row.classList.toggle('selected', row.dataset.callId === id);
    showCall(detail, byId.get(id), rolled[id], tz);
    const [entity, name] = project.split('/');
    history.replaceState(null, '', link([entity, name, 'call', id], params));
  };
  const traceNote = calls.length >= MAX_TRACE_CALLS ? h('p', { class: 'muted' }, `Showing the first ${MAX_TRACE_CALLS} calls of this trace.`) : null;
  main.replaceChildren(h('div', { class: 'layout-trace' },
    h('div', { class: 'panel waterfall', 'data-testid': 'waterfall' },
      h('h3', {}, `Trace ${call.trace_id} · ${calls.length} call${calls.length === 1 ? '' : 's'} · ${fmtMs(t1 - t0)}`),
      h('p', { class: 'muted' }, 'Bars from start to end on one time axis; tokens are own/with descendants.'),
      traceNote, rows),
    detail));
  select(callId);
}

function showCall(panel, c, rolled, tz) {
  if (!c) return;
  const weave = (c.summary && c.summary.weave) || {};
  const section = (title, value, open) => h('details', { open }, h('summary', {}, title), h('div', { class: 'json' }, jsonTree(value)));
  const usageTable = (title, models, testid) => {
    const entries = Object.entries(models || {});
    if (!entries.length) return null;
    return h('div', {}, h('h4', {}, title), h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, ['model', 'prompt', 'completion', 'total', 'cost'].map((t, i) => h('th', { class: i ? 'num' : null }, t)))),
      h('tbody', {}, entries.map(([model, u]) => {
        const cost = usageTotals({ [model]: u }).cost;
        const weaveCost = weave.costs && weave.costs[model] ? weave.costs[model].total_cost : null;
        return h('tr', {}, h('td', {}, model),
          h('td', { class: 'num' }, fmtInt(u.prompt_tokens ?? u.input_tokens)),
          h('td', { class: 'num' }, fmtInt(u.completion_tokens ?? u.output_tokens)),
          h('td', { class: 'num' }, fmtInt(u.total_tokens)),
          h('td', { class: 'num' }, fmtCost(cost ?? weaveCost)));
      }))));
  };
  panel.replaceChildren(...[
    h('h3', {}, weave.trace_name || c.op_name, ' ', h('span', { class: `status ${weave.status}` }, weave.status)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'id'), h('dd', {}, c.id),
      h('dt', {}, 'op'), h('dd', {}, c.op_name),
      h('dt', {}, 'started'), h('dd', {}, `${fmtTime(c.started_at, tz)} (${tz})`),
      h('dt', {}, 'ended'), h('dd', {}, c.ended_at ? fmtTime(c.ended_at, tz) : 'still running'),
      h('dt', {}, 'latency'), h('dd', {}, weave.status === 'running' ? 'running' : fmtMs(weave.latency_ms))),
    c.exception ? h('pre', { class: 'exception' }, c.exception) : null,
    usageTable('Own usage', c.summary && c.summary.usage, 'own-usage'),
    usageTable('With descendants', rolled, 'rolled-usage'),
    section('inputs', c.inputs, true),
    section('output', c.output, true),
    section('attributes', c.attributes, false),
    section('summary', c.summary, false),
  ].filter(Boolean));
}

function jsonTree(value, depth = 0) {
  if (value === null) return h('span', { class: 'z' }, 'null');
  if (typeof value === 'string') return h('span', { class: 's' }, JSON.stringify(value));
  if (typeof value === 'number') return h('span', { class: 'n' }, String(value));
  if (typeof value === 'boolean') return h('span', { class: 'b' }, String(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const brackets = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return h('span', {}, brackets.join(''));
  return h('details', { open: depth < 2 },
    h('summary', {}, `${brackets[0]} ${entries.length} ${Array.isArray(value) ? 'items' : 'keys'} ${brackets[1]}`),
    entries.map(([k, v]) => h('div', {}, h('span', { class: 'k' }, `${k}: `), jsonTree(v, depth + 1))));
}

// ---------- start ----------

document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', render);
render();
