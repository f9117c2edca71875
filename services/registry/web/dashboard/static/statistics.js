// Statistics charts, drawn with Apache ECharts (vendored: static/vendor/echarts, Apache-2.0).
// ECharts was chosen over Vega-Lite because one self-contained file draws every chart here with
// no eval (the pages' CSP allows only 'self' scripts), and its `aria` option writes a text
// description of each chart's data for screen readers. The data is the JSON block the server
// embedded: the same model GET /v1/registry/statistics returns.
"use strict";

(function () {
  const source = document.getElementById("statistics-data");
  if (!source || !window.echarts) return;
  const figures = JSON.parse(source.textContent);
  const colour = window.caseshareStateColour || (() => "#5b6570");
  const BASE = {
    aria: { enabled: true, decal: { show: false } },
    animation: false,
    grid: { left: 48, right: 16, top: 40, bottom: 56, containLabel: true },
    tooltip: { trigger: "axis" },
    textStyle: { fontFamily: "system-ui, sans-serif" },
  };

  function empty(text) {
    return { title: { text: text, left: "center", top: "middle", textStyle: { fontSize: 14, fontWeight: "normal", color: "#4a525c" } } };
  }

  const charts = {
    "per-day": () => ({
      legend: { top: 0 },
      xAxis: { type: "category", data: figures.per_day.map((d) => d.day.slice(5)) },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: "responses", type: "bar", color: "#1f5fbf", data: figures.per_day.map((d) => d.responses) },
        { name: "requests", type: "line", color: "#8a5a00", data: figures.per_day.map((d) => d.requests) },
      ],
      points: figures.per_day.reduce((n, d) => n + d.responses + d.requests, 0),
    }),
    latency: () => {
      const rows = figures.acknowledgement_latency;
      return {
        ...(rows.length ? {} : empty("No acknowledgements in this window")),
        legend: { top: 0 },
        xAxis: { type: "category", data: rows.map((r) => r.jurisdiction) },
        yAxis: { type: "value", name: "seconds" },
        series: [
          { name: "p50", type: "bar", color: "#17803d", data: rows.map((r) => r.p50_seconds) },
          { name: "p95", type: "bar", color: "#8a5a00", data: rows.map((r) => r.p95_seconds) },
        ],
        points: rows.length,
      };
    },
    states: () => {
      const rows = figures.deliveries_by_state;
      return {
        xAxis: { type: "category", data: rows.map((r) => r.state) },
        yAxis: { type: "value", minInterval: 1 },
        series: [{
          name: "deliveries",
          type: "bar",
          data: rows.map((r) => ({ value: r.deliveries, itemStyle: { color: colour(r.state) } })),
          label: { show: true, position: "top" },
        }],
        points: rows.reduce((n, r) => n + r.deliveries, 0),
      };
    },
    deadlines: () => {
      const rows = figures.deadline_compliance;
      const names = rows.map((r) => r.platform + " · " + r.request_type);
      const series = [["on_time", "on time", "#17803d"], ["late", "late", "#b42318"], ["open_overdue", "open, overdue", "#8a5a00"]];
      return {
        ...(rows.length ? {} : empty("No legal requests with deadlines recorded yet")),
        legend: { top: 0 },
        xAxis: { type: "category", data: names },
        yAxis: { type: "value", minInterval: 1 },
        series: series.map(([key, name, c]) => ({ name: name, type: "bar", stack: "all", color: c, data: rows.map((r) => r[key]) })),
        points: rows.length,
      };
    },
  };

  const drawn = [];
  for (const container of document.querySelectorAll("[data-chart]")) {
    const build = charts[container.dataset.chart];
    if (!build) continue;
    const { points, ...option } = build();
    const chart = window.echarts.init(container, null, { renderer: "canvas" });
    chart.setOption({ ...BASE, ...option });
    container.dataset.points = String(points);
    container.dataset.rendered = "true";
    drawn.push(chart);
  }
  window.addEventListener("resize", () => drawn.forEach((chart) => chart.resize()));
})();
