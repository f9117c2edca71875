// Live fan-out: applies the dashboard stream's events to the server-rendered tables.
// Everything is built with DOM methods and textContent, never from HTML strings.
"use strict";

(function () {
  const root = document.getElementById("fanouts");
  if (!root || !window.EventSource) return;
  const template = document.getElementById("fanout-template");
  const status = document.getElementById("stream-status");
  const single = root.dataset.single || null;
  const MAX_SECTIONS = 20;
  // A row only moves forward: held waits for the originator, pending for the router; failed,
  // withheld and recalled are final (a recall still follows a failure: the hub drops the
  // ciphertext of every delivery not acknowledged). An unknown state never replaces a known one.
  const RANK = { held: -1, pending: 0, published: 1, acknowledged: 2, failed: 3, withheld: 4, recalled: 5 };
  const MARK = {
    held: "⏸", pending: "…", published: "↗", acknowledged: "✓", failed: "✕",
    withheld: "⊘", recalled: "↩", excluded: "⊘",
  };

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function when(iso) {
    const time = document.createElement("time");
    time.dateTime = iso;
    time.textContent = iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
    return time;
  }

  function badge(kind, text) {
    const span = document.createElement("span");
    span.className = "badge state-" + kind;
    const mark = document.createElement("span");
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = MARK[kind] || "";
    span.append(mark, " " + text);
    return span;
  }

  function cell(tag, content, field) {
    const td = document.createElement(tag);
    if (tag === "th") td.scope = "row";
    if (field) td.dataset.field = field;
    td.append(content);
    return td;
  }

  function fill(field, scope, content) {
    const target = scope.querySelector('[data-field="' + field + '"]');
    if (target) target.replaceChildren(content);
  }

  function section(responseId, facts) {
    let found = root.querySelector('section[data-response-id="' + CSS.escape(responseId) + '"]');
    if (found) return found;
    if (single && single !== responseId) return null;
    found = template.content.firstElementChild.cloneNode(true);
    found.dataset.responseId = responseId;
    const heading = found.querySelector("h2");
    heading.id = "r-" + responseId;
    found.setAttribute("aria-labelledby", heading.id);
    found.querySelector('[data-field="link"]').href = "/dashboard/responses/" + responseId;
    fill("platform", found, facts.platform || "a platform");
    fill("handling_code", found, facts.handling_code || "?");
    fill("received_at", found, facts.received_at ? when(facts.received_at) : "—");
    document.getElementById("no-responses").hidden = true;
    root.insertBefore(found, root.firstElementChild);
    const all = root.querySelectorAll("section.fanout");
    for (let i = MAX_SECTIONS; i < all.length; i++) all[i].remove();
    return found;
  }

  function summarise(scope) {
    const rows = scope.querySelectorAll('tbody[data-list="deliveries"] tr[data-delivery-id]');
    const acked = scope.querySelectorAll('tr[data-state="acknowledged"]').length;
    const excluded = scope.querySelectorAll("[data-exclusion-id]").length;
    const n = rows.length;
    fill("summary", scope, n + " recipient" + (n === 1 ? "" : "s") + ", " + acked + " acknowledged, " + excluded + " excluded");
    if (window.caseshareFanoutPicture) window.caseshareFanoutPicture(scope);
  }

  function insert(scope, list, row) {
    const body = scope.querySelector('tbody[data-list="' + list + '"]');
    body.querySelector("tr.empty").hidden = true;
    const rows = [...body.querySelectorAll("tr:not(.empty)")];
    const after = rows.find((r) => r.dataset.jurisdiction > row.dataset.jurisdiction);
    body.insertBefore(row, after || body.querySelector("tr.empty"));
  }

  function delivery(data, state, at) {
    const scope = section(data.response_id, {});
    if (!scope) return;
    let row = scope.querySelector('tr[data-delivery-id="' + CSS.escape(data.delivery_id) + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.deliveryId = data.delivery_id;
      row.dataset.jurisdiction = data.jurisdiction;
      row.dataset.state = "pending";
      row.append(
        cell("th", data.jurisdiction),
        cell("td", badge("pending", "pending")),
        cell("td", (data.rule || "—").replaceAll("_", " "), "rule"),
        cell("td", "—", "published_at"),
        cell("td", "—", "acknowledged_at"),
        cell("td", "0", "attempts"),
      );
      insert(scope, "deliveries", row);
    }
    if (data.attempt) fill("attempts", row, String(data.attempt));
    if (at) fill(at[0], row, when(at[1]));
    advance(row, state);
    summarise(scope);
  }

  function advance(row, state) {
    if (!(RANK[state] > RANK[row.dataset.state])) return;
    row.dataset.state = state;
    row.querySelector("td").replaceChildren(badge(state, state));
    row.querySelector("td").firstChild.dataset.field = "state";
  }

  function recalled(data) {
    // every delivery not acknowledged is withdrawn; an acknowledged one stays acknowledged
    // while its recipient is asked to delete it (as the server-rendered page shows it)
    const scope = section(data.response_id, {});
    if (!scope) return;
    for (const row of scope.querySelectorAll('tbody[data-list="deliveries"] tr[data-delivery-id]')) {
      if (row.dataset.state !== "acknowledged") advance(row, "recalled");
    }
    summarise(scope);
  }

  function quietExclusion(scope, data) {
    const list = scope.querySelector('[data-list="quiet"]');
    const code = document.createElement("span");
    code.dataset.exclusionId = data.exclusion_id;
    code.dataset.jurisdiction = data.jurisdiction;
    code.dataset.reason = data.reason;
    code.textContent = data.jurisdiction;
    list.append(code, " ");
    const details = scope.querySelector("details.quiet");
    details.hidden = false;
    fill("quiet_count", details, String(list.querySelectorAll("[data-exclusion-id]").length));
  }

  function exclusion(data) {
    const scope = section(data.response_id, {});
    if (!scope) return;
    if (scope.querySelector('[data-exclusion-id="' + CSS.escape(data.exclusion_id) + '"]')) return;
    if (data.reason === "no_open_case") {
      quietExclusion(scope, data);
      summarise(scope);
      return;
    }
    const row = document.createElement("tr");
    row.dataset.exclusionId = data.exclusion_id;
    row.dataset.jurisdiction = data.jurisdiction;
    row.dataset.reason = data.reason;
    const reason = badge("excluded", data.reason.replaceAll("_", " "));
    reason.dataset.field = "reason";
    row.append(cell("th", data.jurisdiction), cell("td", reason), cell("td", data.detail, "detail"));
    insert(scope, "exclusions", row);
    summarise(scope);
  }

  function released(data) {
    // released: the row waits for the router (pending) until its publication arrives
    if (data.state === "released") {
      delivery(data, "pending", null);
      return;
    }
    // a withheld or lapsed delivery never goes out: its row leaves; the exclusion replaces it
    const scope = section(data.response_id, {});
    if (!scope) return;
    const row = scope.querySelector('[data-delivery-id="' + CSS.escape(data.delivery_id) + '"]');
    if (row) row.remove();
    summarise(scope);
  }

  const handlers = {
    "response.received": (d) => {
      const scope = section(d.response_id, d);
      if (scope && window.caseshareFanoutPicture) window.caseshareFanoutPicture(scope);
    },
    "delivery.published": (d) => delivery(d, "published", ["published_at", d.published_at]),
    "delivery.acknowledged": (d) => delivery(d, "acknowledged", ["acknowledged_at", d.acknowledged_at]),
    "delivery.failed": (d) => delivery(d, "failed", null),
    "delivery.excluded": (d) => exclusion(d),
    "release.decided": (d) => released(d),
    "response.recalled": (d) => recalled(d),
    // per recipient, should the stream ever carry it: deletion asked of an acknowledged one
    "delivery.recalled": (d) => {
      if (!d.deletion_required) delivery(d, "recalled", null);
    },
  };

  const source = new EventSource(root.dataset.stream);
  source.addEventListener("open", () => setStatus("live", "Live: updates appear as they happen."));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("down", "Live updates stopped. Reload the page to resume (you may be asked to sign in).");
    } else {
      setStatus("connecting", "Reconnecting to live updates…");
    }
  });
  // The stream's token expired: the server closes it, and the browser reconnects with the
  // session's current token (or is refused, and the message above asks to sign in again).
  source.addEventListener("reauthenticate", () => setStatus("connecting", "Sign-in expired; reconnecting to live updates…"));
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handle(JSON.parse(event.data).data));
  }
})();
