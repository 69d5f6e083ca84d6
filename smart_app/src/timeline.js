// The case drawn in time (SVG, no library): a lane of events (diagnosis, transplant, relapse,
// GVHD, the order), donor chimerism 0-100 %, and the counts (ANC, platelets, hemoglobin), each
// on one time axis. Events from POST /smart/api/case `timeline` (oldest first).

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 760;
const LEFT = 118;
const RIGHT = 16;
const EVENT_KINDS = { diagnosis: "#5b6570", transplant: "#1d6fb8", relapse: "#c62828", gvhd: "#8e44ad", order: "#1b7f3b" };
const SERIES = [
  { kind: "chimerism", title: "Chimerism", color: "#1d6fb8", min: 0, max: 100 },
  { kind: "anc", title: "ANC", color: "#a86b00" },
  { kind: "platelets", title: "Platelets", color: "#8e44ad" },
  { kind: "hemoglobin", title: "Hemoglobin", color: "#c62828" },
];

function node(tag, attributes, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attributes)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

const day = (iso) => Date.parse(`${iso}T00:00:00Z`) / 86400000;

function eventsLane(svg, events, x, top) {
  const height = 30 + 16 * Math.min(events.length, 8);
  svg.append(node("text", { x: 4, y: top + 14, class: "lane-title" }, "Events"));
  events.forEach((event, i) => {
    const cx = x(event.date);
    const row = top + 16 + (i % 8) * 16;
    const color = EVENT_KINDS[event.kind] ?? "#333";
    svg.append(node("line", { x1: cx, x2: cx, y1: top + 4, y2: top + height, stroke: color, "stroke-dasharray": "3 3" }));
    const g = node("g", { class: `event event-${event.kind}`, "data-kind": event.kind });
    g.append(node("circle", { cx, cy: row, r: 4, fill: color }));
    const text = `${event.date} ${event.label}`.slice(0, 70);
    const anchor = cx + 7 + text.length * 6 > WIDTH ? "end" : "start"; // ~6 px a character
    g.append(node("text", { x: anchor === "end" ? cx - 7 : cx + 7, y: row + 4, "text-anchor": anchor, class: "event-label" }, text));
    svg.append(g);
  });
  return top + height + 8;
}

function seriesChart(svg, series, points, x, top) {
  const height = 70;
  const values = points.map((p) => p.value);
  const min = series.min ?? Math.min(0, ...values);
  const max = series.max ?? Math.max(...values) * 1.15;
  const y = (v) => top + height - ((v - min) / (max - min || 1)) * height;
  const unit = series.kind === "chimerism" ? "(% donor)" : points[0]?.unit ? `(${points[0].unit})` : "";
  svg.append(node("text", { x: 4, y: top + 12, class: "lane-title" }, series.title));
  svg.append(node("text", { x: 4, y: top + 26, class: "lane-unit" }, unit));
  svg.append(node("rect", { x: LEFT, y: top, width: WIDTH - LEFT - RIGHT, height, class: "lane-box" }));
  const g = node("g", { class: `series series-${series.kind}`, "data-kind": series.kind });
  g.append(node("polyline", { points: points.map((p) => `${x(p.date)},${y(p.value)}`).join(" "), fill: "none", stroke: series.color, "stroke-width": 2 }));
  for (const p of points) {
    const dot = node("circle", { cx: x(p.date), cy: y(p.value), r: 3.5, fill: series.color });
    dot.append(node("title", {}, `${p.date}: ${p.label}`));
    g.append(dot);
    g.append(node("text", { x: x(p.date), y: y(p.value) - 6, "text-anchor": "middle", class: "point-label" }, `${p.value}`));
  }
  svg.append(g);
  return top + height + 14;
}

/** Draw `events` into `container` (replacing what was there). */
export function drawTimeline(container, events) {
  container.replaceChildren();
  if (!events.length) {
    container.textContent = "No dated events in the record.";
    return;
  }
  const days = events.map((e) => day(e.date));
  const first = Math.min(...days) - 10;
  const last = Math.max(...days) + 10;
  const x = (iso) => LEFT + ((day(iso) - first) / (last - first)) * (WIDTH - LEFT - RIGHT);
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} 10`, role: "img", class: "timeline-svg" });
  svg.append(node("title", {}, "Case timeline"));
  const marks = events.filter((e) => e.kind in EVENT_KINDS);
  let top = eventsLane(svg, marks, x, 4);
  for (const series of SERIES) {
    const points = events.filter((e) => e.kind === series.kind);
    if (points.length) top = seriesChart(svg, series, points, x, top);
  }
  let previous = -Infinity; // month labels at least 70 px apart
  for (const month of [...new Set(events.map((e) => e.date.slice(0, 7)))]) {
    const at = x(`${month}-01`);
    if (at < LEFT || at - previous < 70) continue;
    svg.append(node("text", { x: at, y: top + 10, "text-anchor": "middle", class: "axis-label" }, month));
    previous = at;
  }
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${top + 16}`);
  container.append(svg);
}
