// Small SVG line charts for an instance's stats (Linode's [ms, value] series), each with a
// text summary beside it for screen readers and a table-free fallback when there is no data.

import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 140;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function human(value, unit) {
  if (unit === 'bits/s') {
    const steps = [[1e9, 'Gb/s'], [1e6, 'Mb/s'], [1e3, 'kb/s']];
    for (const [size, name] of steps) if (value >= size) return `${(value / size).toFixed(1)} ${name}`;
    return `${value.toFixed(0)} b/s`;
  }
  return `${value.toFixed(1)} ${unit}`;
}

// series: [{name, points: [[ms, value]...], className}]
export function lineChart(title, unit, series) {
  const all = series.flatMap(s => s.points);
  const box = h('figure', { class: 'chart', dataset: { chart: title } }, h('figcaption', {}, title));
  if (all.length < 2) { box.append(h('p', { class: 'muted' }, 'No readings yet.')); return box; }
  const t0 = Math.min(...all.map(p => p[0]));
  const t1 = Math.max(...all.map(p => p[0]));
  const top = Math.max(1, ...all.map(p => p[1])) * 1.1;
  const x = t => ((t - t0) / Math.max(1, t1 - t0)) * W;
  const y = v => H - (v / top) * H;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true', class: 'chart-svg' });
  for (const frac of [0.25, 0.5, 0.75]) chart.append(svg('line', { x1: 0, x2: W, y1: H * frac, y2: H * frac, class: 'grid' }));
  for (const s of series) {
    if (!s.points.length) continue;
    chart.append(svg('polyline', { points: s.points.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '),
      class: `line ${s.className}` }));
  }
  const summary = series.map(s => {
    const values = s.points.map(p => p[1]);
    const last = values.length ? values[values.length - 1] : 0;
    return `${s.name}: now ${human(last, unit)}, peak ${human(Math.max(0, ...values), unit)}`;
  }).join('; ');
  box.append(chart, h('p', { class: 'chart-legend' }, series.map(s => h('span', { class: `key ${s.className}` }, s.name)),
    h('span', { class: 'muted' }, ` ${summary}`)));
  return box;
}
