/*
 * osstest live flight view: follows /api/flights/<flight>/events (server-sent events) and keeps the
 * tables of jobs, hosts and steps and the log tail up to date.
 * Everything from the server is placed with textContent or as an attribute value set through the
 * DOM: never parsed as HTML. Links are taken only when they are relative paths the server made.
 */

(() => {
  const root = document.getElementById('live');
  if (!root) return;
  const MAX_LOG_LINES = 500;
  const state = { flight: null, jobs: new Map(), steps: new Map(), hosts: [], log: null, logLines: [] };

  const $ = (id) => document.getElementById(id);

  function statusClass(s) {
    switch (s) {
      case 'pass':
        return 's-pass';
      case 'fail':
        return 's-fail';
      case 'broken':
      case 'blocked':
      case 'aborted':
      case 'starved':
        return 's-other';
      case 'running':
        return 's-running';
      default:
        return 's-none';
    }
  }

  function time(ms) {
    if (ms === null || ms === undefined) return '';
    return new Date(ms)
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, '');
  }

  function duration(ms) {
    if (ms === null || ms === undefined || ms < 0) return '';
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  }

  /** Only the relative links the server builds (`../../logs/…`); anything else is not a link. */
  function safeHref(h) {
    return typeof h === 'string' && /^\.\.\/[A-Za-z0-9._~%/+-]*$/.test(h) ? h : null;
  }

  function td(tr, text, cls) {
    const c = document.createElement('td');
    c.textContent = text;
    if (cls) c.className = cls;
    tr.appendChild(c);
    return c;
  }

  function link(text, href) {
    const safe = safeHref(href);
    if (safe === null) return document.createTextNode(text);
    const a = document.createElement('a');
    a.href = safe;
    a.textContent = text;
    return a;
  }

  const stepKey = (s) => `${s.job}\u0000${s.stepno}`;

  function stepsOf(job) {
    return [...state.steps.values()].filter((s) => s.job === job).sort((a, b) => a.stepno - b.stepno);
  }

  function renderFlight() {
    const f = state.flight;
    if (!f) return;
    $('branch').textContent = f.branch;
    $('blessing').textContent = f.blessing;
    $('started').textContent = f.started === null ? 'not yet' : time(f.started);
  }

  function renderJobs() {
    const rows = [...state.jobs.values()].map((j) => {
      const tr = document.createElement('tr');
      tr.dataset.job = j.job;
      const name = td(tr, '');
      name.appendChild(link(j.job, j.href));
      const st = td(tr, j.status, statusClass(j.status));
      st.dataset.status = j.status;
      const steps = stepsOf(j.job);
      const cur = steps.filter((s) => s.status === 'running').pop();
      td(tr, cur ? `${cur.stepno} ${cur.testid}` : '');
      const el = td(tr, cur ? duration(Date.now() - cur.started) : '', 'num');
      if (cur) el.dataset.since = String(cur.started);
      return tr;
    });
    $('jobs').tBodies[0].replaceChildren(...rows);
  }

  function renderHosts() {
    const rows = state.hosts.map((h) => {
      const tr = document.createElement('tr');
      tr.dataset.host = h.host;
      td(tr, h.host);
      td(tr, h.job);
      td(tr, h.ident);
      const p = td(tr, h.progress || '');
      p.dataset.progress = h.progress || '';
      td(tr, h.activity ? `${time(h.activityAt)} ${h.activity}` : '', 'mono');
      return tr;
    });
    $('hosts').tBodies[0].replaceChildren(...rows);
  }

  function renderSteps() {
    const all = [...state.steps.values()].sort((a, b) =>
      a.job === b.job ? a.stepno - b.stepno : (a.started ?? 0) - (b.started ?? 0),
    );
    const rows = all.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.step = `${s.job}/${s.stepno}`;
      td(tr, s.job);
      td(tr, String(s.stepno), 'num');
      td(tr, s.testid, 'mono');
      td(tr, s.testcase, 'mono');
      const st = td(tr, '', statusClass(s.status));
      st.dataset.status = s.status;
      st.appendChild(link(s.status, s.logHref));
      td(tr, time(s.started));
      const d = td(
        tr,
        s.finished === null ? duration(Date.now() - s.started) : duration(s.finished - s.started),
        'num',
      );
      if (s.finished === null && s.started !== null) d.dataset.since = String(s.started);
      return tr;
    });
    $('steps').tBodies[0].replaceChildren(...rows);
  }

  function renderLog(scroll) {
    const pre = $('log');
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const l = state.log;
    const title = $('log-title');
    title.replaceChildren();
    if (l) title.appendChild(link(`${l.job} step ${l.stepno} ${l.testid}`, l.logHref));
    pre.textContent = state.logLines.join('\n');
    if (scroll || atEnd) pre.scrollTop = pre.scrollHeight;
  }

  function addLog(chunk) {
    if (chunk.reset) state.logLines = [];
    state.log = chunk;
    if (chunk.skipped > 0) state.logLines.push(`[… ${chunk.skipped} bytes not shown …]`);
    state.logLines.push(...chunk.lines);
    if (state.logLines.length > MAX_LOG_LINES)
      state.logLines.splice(0, state.logLines.length - MAX_LOG_LINES);
    renderLog(chunk.reset);
  }

  function renderAll() {
    renderFlight();
    renderJobs();
    renderHosts();
    renderSteps();
  }

  function connection(text, cls) {
    const c = $('connection');
    c.textContent = text;
    c.className = `heading ${cls}`;
  }

  const on = (src, type, fn) =>
    src.addEventListener(type, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      fn(data);
    });

  const src = new EventSource(root.dataset.events);
  src.addEventListener('open', () => connection('live', 's-pass'));
  src.addEventListener('error', () => connection('reconnecting', 's-other'));
  on(src, 'snapshot', (d) => {
    state.flight = d.flight;
    state.jobs = new Map(d.jobs.map((j) => [j.job, j]));
    state.steps = new Map(d.steps.map((s) => [stepKey(s), s]));
    state.hosts = d.hosts;
    state.log = null;
    state.logLines = [];
    if (d.log) addLog(d.log);
    else renderLog(true);
    renderAll();
  });
  on(src, 'flight', (d) => {
    state.flight = d;
    renderFlight();
  });
  on(src, 'job', (d) => {
    state.jobs.set(d.job, d);
    renderJobs();
  });
  on(src, 'step', (d) => {
    state.steps.set(stepKey(d), d);
    renderSteps();
    renderJobs();
  });
  on(src, 'hosts', (d) => {
    state.hosts = d;
    renderHosts();
  });
  on(src, 'log', addLog);
  on(src, 'problem', (d) => {
    $('problem').textContent = d.message;
  });
  on(src, 'gone', () => {
    connection('flight deleted', 's-fail');
    src.close();
  });

  // Elapsed times of what is running tick by themselves.
  setInterval(() => {
    for (const el of document.querySelectorAll('[data-since]')) {
      el.textContent = duration(Date.now() - Number(el.dataset.since));
    }
  }, 1000);
})();
