// Metrics: small charts of what the studio counts (GET /api/v1/stats, sampled every 5 s while the
// page is open; the last 30 minutes are kept in the page). Counters become rates between samples.
import {formatClock, h, replace} from './dom.js';

const EVERY_MS = 5000;
const KEEP = 360;  // 30 minutes of samples
const COLOURS = ['#2f7ed8', '#d8572f', '#2fa37a', '#a32fa3', '#c9a227', '#555'];
const SVG = 'http://www.w3.org/2000/svg';

// How much a counter grew from `before` to `after`. A counter that went down was reset (the
// studio restarted): all of `after` is new since then (as Prometheus's increase() reads it).
function increase(before, after) {
  return after >= before ? after - before : after;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const child of children)
    if (child) el.append(child);
  return el;
}

// A line chart of series {name: [[t, value], ...]} over the sampled window, with a legend.
function lineChart(title, unit, series) {
  const width = 320;
  const height = 120;
  const pad = 4;
  const all = Object.values(series).flat();
  const figure = h('figure', {class: 'chart'}, h('figcaption', {}, title));
  if (all.length < 2) {
    figure.append(h('p', {class: 'muted small'}, 'Collecting samples…'));
    return figure;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(1e-9, ...all.map((p) => p[1]));
  const x = (t) => pad + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (width - 2 * pad));
  const labelRoom = 16;  // the "peak" label's band at the top: no line runs under it
  const y = (v) => height - pad - (v / top) * (height - pad - labelRoom);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `${title}, highest ${top.toFixed(2)} ${unit}`,
    class: 'chart-svg'
  });
  chart.append(
      svg('line', {x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, class: 'axis'}));
  const peak = svg('text', {x: width - pad, y: 12, 'text-anchor': 'end', class: 'peak'});
  peak.textContent = `peak ${Number(top.toFixed(2))} ${unit}`;
  chart.append(peak);
  const legend = h('ul', {class: 'legend'});
  Object.entries(series).forEach(([name, points], i) => {
    const colour = COLOURS[i % COLOURS.length];
    if (points.length > 1) {
      chart.append(svg('polyline', {
        fill: 'none',
        stroke: colour,
        'stroke-width': 2,
        points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
      }));
    }
    const last = points.length ? points[points.length - 1][1] : 0;
    legend.append(
        h('li', {}, h('span', {class: 'swatch', style: {background: colour}}),
          `${name}: ${Number(last.toFixed(2))} ${unit}`));
  });
  figure.append(chart, legend);
  return figure;
}

// Horizontal bars of {label: count}.
function barChart(title, counts) {
  const figure = h('figure', {class: 'chart'}, h('figcaption', {}, title));
  const entries = Object.entries(counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) {
    figure.append(h('p', {class: 'muted small'}, 'None.'));
    return figure;
  }
  const top = Math.max(...entries.map(([, n]) => n));
  figure.append(
      h('ul', {class: 'bars'},
        entries.map(
            ([label, n]) =>
                h('li', {}, h('span', {class: 'bar-label'}, label),
                  h('span', {class: 'bar', style: {width: `${Math.max(2, (n / top) * 100)}%`}}),
                  h('span', {class: 'bar-value'}, String(n))))));
  return figure;
}

// A quantile (0..1) of the offer latency from cumulative buckets, in ms (the bucket's bound).
function quantileMs(latency, q) {
  if (!latency || latency.count === 0) return null;
  const want = latency.count * q;
  for (const bucket of latency.buckets) {
    if (bucket.count >= want) return bucket.le === '+Inf' ? Infinity : bucket.le * 1000;
  }
  return null;
}

export function createMetricsView({api}) {
  const summary = h('div', {class: 'tiles'});
  const charts = h('div', {class: 'charts'});
  const status = h('p', {class: 'muted small'});
  const el =
      h('section', {class: 'view'}, h('div', {class: 'view-head'}, h('h1', {}, 'Metrics')), summary,
        charts, status);
  const samples = [];
  // Failures since the page opened, by reason: summed sample to sample, so a studio restart
  // (its counters back at 0) adds what came after it instead of going negative.
  const failures = {};

  function countFailures(before, after) {
    for (const [outcome, n] of Object.entries(after.attemptsEnded)) {
      const label = `attempt ${outcome}`;
      failures[label] = (failures[label] || 0) + increase(before.attemptsEnded[outcome] || 0, n);
    }
    failures['job failed'] =
        (failures['job failed'] || 0) + increase(failedJobs(before), failedJobs(after));
  }

  async function sample() {
    try {
      const stats = await api.get('/api/v1/stats');
      stats.t = Date.now();
      if (samples.length) countFailures(samples[samples.length - 1], stats);
      samples.push(stats);
      if (samples.length > KEEP) samples.shift();
      status.textContent = `Sampled every ${EVERY_MS / 1000} s since this page opened; ` +
          `last ${formatClock(new Date(stats.t).toISOString())}.`;
      status.className = 'muted small';
      if (!el.hidden) render();
    } catch (error) {
      status.textContent = `Could not read the figures: ${error.message}`;
      status.className = 'error';
    }
  }

  function endedByKind(stats) {
    const out = {};
    for (const e of stats.jobsEnded) out[e.kind] = (out[e.kind] || 0) + e.count;
    return out;
  }

  function render() {
    const now = samples[samples.length - 1];
    if (!now) return;
    const queued = Object.values(now.queueDepth).reduce((a, b) => a + b, 0);
    const p50 = quantileMs(now.offerLatency, 0.5);
    const p95 = quantileMs(now.offerLatency, 0.95);
    const tile = (label, value) =>
        h('div', {class: 'tile'}, h('div', {class: 'tile-value'}, value),
          h('div', {class: 'tile-label'}, label));
    replace(
        summary, tile('workers connected', String(now.workersConnected)),
        tile('queued', String(queued)), tile('running', String(now.jobs.claimed)),
        tile('done', String(now.jobs.done)), tile('failed', String(now.jobs.failed)),
        tile('offer latency p50 / p95', p50 === null ? '—' : `≤${fmtMs(p50)} / ≤${fmtMs(p95)}`));

    // Jobs per minute by kind: ended jobs between consecutive samples.
    const perMinute = {};
    const depth = {};
    const latency = {mean: []};
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      const minutes = (b.t - a.t) / 60000;
      const before = endedByKind(a);
      const after = endedByKind(b);
      for (const kind of new Set([...Object.keys(before), ...Object.keys(after)])) {
        (perMinute[kind] ||= []).push([
          b.t, increase(before[kind] || 0, after[kind] || 0) / minutes
        ]);
      }
      const offers = increase(a.offerLatency.count, b.offerLatency.count);
      const seconds = b.offerLatency.count >= a.offerLatency.count ?
          b.offerLatency.sumSeconds - a.offerLatency.sumSeconds :
          b.offerLatency.sumSeconds;
      latency.mean.push([b.t, offers > 0 ? (seconds / offers) * 1000 : 0]);
    }
    for (const s of samples) {
      for (const [kind, n] of Object.entries(s.queueDepth)) (depth[kind] ||= []).push([s.t, n]);
      if (Object.keys(s.queueDepth).length === 0) (depth.all ||= []).push([s.t, 0]);
    }
    const waiting = {};
    for (const w of now.waiting) {
      waiting[w.detail ? `${w.reason} (${w.detail})` : w.reason] = w.count;
    }
    replace(
        charts, lineChart('Jobs per minute, by kind', 'jobs/min', perMinute),
        lineChart('Queue depth, by kind', 'jobs', depth),
        lineChart('Offer latency (mean per interval)', 'ms', latency),
        barChart('Failures since this page opened, by reason', failures),
        barChart('Queued jobs, by why they wait', waiting));
  }

  sample();
  const timer = setInterval(sample, EVERY_MS);
  return {
    el,
    refresh: () => render(),
    show: () => render(),
    dispose: () => clearInterval(timer),
  };
}

function failedJobs(stats) {
  return stats.jobsEnded.filter((e) => e.status === 'failed').reduce((a, e) => a + e.count, 0);
}

function fmtMs(ms) {
  if (ms === Infinity) return '>30 s';
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}
