// Fan-out as a picture: platform → hub → recipients, each spoke coloured by its delivery state,
// and the excluded jurisdictions grouped by reason. Drawn from the section's own tables (which
// the live stream keeps current), so the picture and the accessible tables never disagree.
// Colours are keyed by state name with a neutral fallback: a state added later still draws.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = {
    pending: "#8a5a00",
    held: "#6f42c1",
    published: "#1f5fbf",
    acknowledged: "#17803d",
    failed: "#b42318",
    withheld: "#7a4b00",
    recalled: "#a4379b",
  };
  const DASHED = { pending: "6 4", held: "2 4", withheld: "2 4", recalled: "8 3 2 3" };
  const FALLBACK = "#5b6570";
  const ROW = 34;
  const WIDTH = 440;
  const END = 340; // where spokes reach their recipient

  function colour(state) {
    return Object.prototype.hasOwnProperty.call(COLOURS, state) ? COLOURS[state] : FALLBACK;
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function node(x, y, full, kind) {
    const label = full.length > 11 ? full.slice(0, 10) + "…" : full; // the title has it whole
    const group = el("g", { class: "node node-" + kind });
    const width = Math.max(64, label.length * 8 + 20);
    group.append(
      el("rect", { x: x - width / 2, y: y - 14, width: width, height: 28, rx: 6 }),
      el("text", { x: x, y: y + 5, "text-anchor": "middle" }, label),
    );
    return group;
  }

  function read(scope) {
    const recipients = [...scope.querySelectorAll('tbody[data-list="deliveries"] tr[data-delivery-id]')].map(
      (row) => ({ jurisdiction: row.dataset.jurisdiction, state: row.dataset.state }),
    );
    const groups = new Map();
    for (const item of scope.querySelectorAll("[data-exclusion-id]")) {
      const reason = item.dataset.reason || "excluded";
      if (!groups.has(reason)) groups.set(reason, []);
      groups.get(reason).push(item.dataset.jurisdiction);
    }
    const platform = (scope.querySelector('[data-field="platform"]') || {}).textContent || "platform";
    return { platform: platform.trim() || "platform", recipients, groups };
  }

  function spoke(hub, y, item) {
    const stroke = colour(item.state);
    const group = el("g", {
      class: "spoke",
      "data-jurisdiction": item.jurisdiction,
      "data-state": item.state,
    });
    const bend = (hub.x + END + 30) / 2;
    group.append(
      el("path", {
        d: `M${hub.x + 40},${hub.y} C${bend},${hub.y} ${bend},${y} ${END},${y}`,
        fill: "none",
        stroke: stroke,
        "stroke-width": 3,
        "stroke-dasharray": DASHED[item.state] || "none",
      }),
      el("circle", { cx: END, cy: y, r: 6, fill: stroke }),
      el("text", { x: END + 14, y: y - 3, class: "code" }, item.jurisdiction),
      el("text", { x: END + 14, y: y + 12, class: "state", fill: stroke }, item.state),
    );
    return group;
  }

  function describe(data) {
    const parts = data.recipients.map((r) => r.jurisdiction + " " + r.state);
    const excluded = [...data.groups].map(([reason, codes]) => codes.length + " " + reason.replaceAll("_", " "));
    return (
      "Response from " + data.platform + " through the hub to " + data.recipients.length +
      " recipient" + (data.recipients.length === 1 ? "" : "s") +
      (parts.length ? ": " + parts.join(", ") : "") +
      (excluded.length ? ". Excluded: " + excluded.join(", ") : "") + "."
    );
  }

  function drawSvg(data) {
    const n = Math.max(data.recipients.length, 1);
    const height = Math.max(3, n) * ROW + 24;
    const hub = { x: 190, y: height / 2 };
    const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", class: "spokes" });
    svg.append(el("title", {}, describe(data)));
    svg.append(el("line", { x1: 118, y1: hub.y, x2: hub.x - 40, y2: hub.y, class: "trunk" }));
    svg.append(node(60, hub.y, data.platform, "platform"), node(hub.x, hub.y, "hub", "hub"));
    data.recipients.forEach((item, i) => {
      const y = data.recipients.length === 1 ? hub.y : 12 + ROW / 2 + i * ((height - 24 - ROW) / (n - 1 || 1));
      svg.append(spoke(hub, y, item));
    });
    if (!data.recipients.length) {
      svg.append(el("text", { x: END - 40, y: hub.y + 5, class: "waiting" }, "no recipients yet"));
    }
    return svg;
  }

  function drawGroups(data) {
    const list = document.createElement("ul");
    list.className = "excluded-groups";
    for (const [reason, codes] of [...data.groups].sort((a, b) => b[1].length - a[1].length)) {
      const item = document.createElement("li");
      item.dataset.reason = reason;
      item.dataset.count = String(codes.length);
      const label = document.createElement("strong");
      label.textContent = reason.replaceAll("_", " ") + " (" + codes.length + ")";
      item.append(label, ": " + [...codes].sort().join(" "));
      list.append(item);
    }
    return list;
  }

  function legend(data) {
    const states = [...new Set(data.recipients.map((r) => r.state))].sort();
    const list = document.createElement("ul");
    list.className = "spoke-key";
    for (const state of states) {
      const item = document.createElement("li");
      const swatch = el("svg", { width: 28, height: 10, "aria-hidden": "true" });
      swatch.append(el("line", { x1: 0, y1: 5, x2: 28, y2: 5, stroke: colour(state), "stroke-width": 3, "stroke-dasharray": DASHED[state] || "none" }));
      item.append(swatch, " " + state);
      list.append(item);
    }
    return list;
  }

  function draw(scope) {
    const figure = scope.querySelector("[data-picture]");
    if (!figure) return;
    const data = read(scope);
    const caption = figure.querySelector("figcaption");
    figure.replaceChildren(drawSvg(data), legend(data), drawGroups(data));
    if (caption) figure.append(caption);
  }

  window.caseshareFanoutPicture = draw;
  window.caseshareStateColour = colour;
  for (const scope of document.querySelectorAll("section.fanout[data-response-id]")) {
    if (scope.dataset.responseId) draw(scope);
  }
})();
