// The operator page: fetches /operator/snapshot.json every few seconds and draws it.
// Plain DOM and inline SVG, no library, nothing from another host. Every value from the server
// goes in as text (textContent, attributes), never as markup: key names are client input.
"use strict";

(() => {
  const SNAPSHOT = "/operator/snapshot.json";
  const REFRESH_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN = "ratekeeper.operator.token";

  // A token in the fragment (#token=...) is kept for this tab and taken out of the address.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN, fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function num(x, digits = 1) {
    if (x === null || x === undefined) return "–";
    if (Math.abs(x) >= 1e6) return (x / 1e6).toFixed(digits) + "M";
    if (Math.abs(x) >= 1e4) return (x / 1e3).toFixed(digits) + "k";
    return Number.isInteger(x) ? String(x) : x.toFixed(digits);
  }

  function ago(s) {
    if (s < 1) return "just now";
    if (s < 120) return Math.round(s) + " s ago";
    return Math.round(s / 60) + " min ago";
  }

  // One plot: two rates per bucket (lines) and the policy's rate (a dashed line).
  // The x axis spans what the series covers (at least a minute, at most the window).
  function plot(series, names, policy, maxS) {
    const W = 420, H = 120, L = 44, R = 8, T = 8, B = 18;
    const root = svg("svg", { class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}` });
    const t = series.t, a = series[names[0]], b = series[names[1]];
    const windowS = Math.min(maxS, Math.max(60, t.length ? -t[0] : 0));
    // admitted and the policy share the axis; the second series (rejected) is drawn to its
    // own scale, its peak in the legend, so it never flattens what is compared to the policy
    const top = Math.max(1, policy * 1.5, ...a);
    const peak = Math.max(1, ...b);
    const x = (s) => L + (W - L - R) * (1 + s / windowS);
    const y = (v) => T + (H - T - B) * (1 - v / top);
    root.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#ccd" }));
    root.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#ccd" }));
    for (const v of [0, top / 2, top]) {
      const label = svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" });
      label.textContent = num(v);
      root.append(label);
    }
    for (const [s, anchor] of [[-windowS, "start"], [0, "end"]]) {
      const label = svg("text", { x: x(s), y: H - 4, "text-anchor": anchor });
      label.textContent = s === 0 ? "now" : ago(-s);
      root.append(label);
    }
    if (policy > 0) {
      root.append(svg("line", { class: "policy", x1: L, x2: W - R, y1: y(policy), y2: y(policy) }));
    }
    for (const [values, cls, scale] of [[a, "admitted", 1], [b, "rejected", top / peak]]) {
      const points = t.map((s, i) => `${x(s).toFixed(1)},${y(values[i] * scale).toFixed(1)}`);
      root.append(svg("polyline", { class: cls, points: points.join(" "), "data-points": t.length }));
    }
    root.setAttribute("data-points", t.length);
    return root;
  }

  function legend(first, second, peak, policy) {
    return el("div", { class: "legend" },
      el("span", { class: "admitted" }, "— " + first),
      el("span", { class: "rejected" }, `- - ${second} (own scale, peak ${num(peak)})`),
      policy ? el("span", { class: "policy" }, "– – policy") : "");
  }

  function drawLimited(doc) {
    const box = document.getElementById("limited");
    box.replaceChildren();
    document.getElementById("limited-count").textContent =
      `(${doc.limited_total} tracked, ${doc.hot_total} hot now)`;
    if (!doc.limited.length) box.append(el("p", { class: "muted" }, "No key limited yet."));
    for (const k of doc.limited) {
      const rejecting = k.rejecting_for_s > 0;
      const facts = el("div", { class: "facts" },
        el("div", { class: "name" }, k.key),
        el("div", {},
          el("span", { class: "badge " + (rejecting ? "rejecting" : "ok") },
            rejecting ? `rejecting, ${num(k.rejecting_for_s)} s left` : "admitting"),
          " policy ", k.limits.join(" + ") || "–"),
        el("div", { class: "muted" },
          `admitted ${num(k.admitted)}, rejected ${num(k.rejected)} in the window; ` +
          `last rejection period ${ago(k.last_rejected_s)} (${k.rejections} in all)`),
        legend("admitted / s", "rejected / s", Math.max(0, ...k.series.rejected_per_s),
          k.policy_per_s));
      box.append(el("div", { class: "key limited", "data-key": k.key, "data-hash": k.hash,
        "data-rejecting": rejecting }, facts,
        plot(k.series, ["admitted_per_s", "rejected_per_s"], k.policy_per_s, doc.window_s)));
    }
    const hot = document.getElementById("hot-unnamed");
    hot.replaceChildren();
    if (doc.hot_unnamed.length) {
      hot.append(el("p", { class: "muted" }, "Hot keys reported by id only (not named yet): " +
        doc.hot_unnamed.map((h) => `${h.hash} (${num(h.rejecting_for_s)} s)`).join(", ")));
    }
  }

  function rows(id, items, cells, attrs) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...items.map((item) =>
      el("tr", attrs(item), ...cells(item).map(([v, cls]) => el("td", { class: cls || "" }, v)))));
  }

  function drawRules(doc) {
    document.getElementById("rules-count").textContent = `(${doc.rules_total})`;
    rows("rules", doc.rules, (r) => {
      const over = r.series.over_per_s;
      const recent = over.length ? over[over.length - 1] : 0;
      return [[r.domain], [r.key], [num(r.over_limit), "num"], [num(r.near_limit), "num"],
        [num(r.within_limit), "num"], [num(r.total_hits), "num"], [num(recent), "num"],
        [ago(r.last_over_s), "muted"]];
    }, (r) => ({ class: "rule", "data-domain": r.domain, "data-key": r.key }));
  }

  function drawClients(doc) {
    document.getElementById("clients-count").textContent = `(${doc.clients_total})`;
    rows("clients", doc.clients, (c) => [[c.id], [num(c.reports), "num"], [num(c.keys), "num"],
      [num(c.admitted), "num"], [num(c.rejected), "num"], [num(c.rejecting), "num"],
      [ago(c.last_seen_s), "muted"]], (c) => ({ class: "client", "data-client": c.id }));
  }

  function bar(fill, cls) {
    const inner = el("div", {});
    inner.style.width = `${Math.min(100, fill * 100).toFixed(1)}%`; // CSSOM: allowed by the CSP
    return el("span", { class: "bar " + cls }, inner);
  }

  function drawStore(doc) {
    const s = doc.store, box = document.getElementById("store");
    box.replaceChildren();
    box.append(el("p", {}, "Health: ",
      el("span", { class: "badge " + (s.healthy ? "ok" : "rejecting") },
        s.healthy ? "answering" : "failing")));
    const p = s.pressure;
    if (p) {
      box.append(el("p", { id: "pressure", "data-fill": p.fill }, bar(p.fill, p.under_pressure ?
        "pressure" : ""), ` ${num(p.held)} of ${num(p.capacity)} counters (${(p.fill * 100)
        .toFixed(1)}%); pressure from ${(p.ratio * 100).toFixed(0)}%; `,
      `${num(p.refused_over_budget)} new keys refused over budget`,
      p.at_budget.length ? el("span", { class: "badge warn" }, " at budget: " +
        p.at_budget.join(", ")) : ""));
    } else {
      box.append(el("p", { class: "muted" }, "This store keeps no budgets (Redis bounds itself)."));
    }
    const table = el("table", { id: "store-stats" });
    for (const [name, value] of Object.entries(s.stats)) {
      table.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, num(value, 3))));
    }
    box.append(table);
  }

  function drawCluster(doc) {
    const c = doc.cluster, box = document.getElementById("cluster");
    box.replaceChildren();
    if (!c) {
      box.append(el("p", { class: "muted" }, "Not a cluster member: this server owns every key."));
      return;
    }
    box.append(el("p", {}, `This member: ${c.address} (${c.state}), heartbeats to ${c.target}; `,
      c.generation ? `assignment generation ${c.generation.join(".")}` : "no assignment yet"));
    const members = el("table", { id: "members" }, el("tr", {}, el("th", {}, "member"),
      el("th", { class: "num" }, "slices"), el("th", {}, "share of the hash space")));
    for (const m of c.members) {
      members.append(el("tr", { class: "member", "data-member": m.address },
        el("td", {}, m.address + (m.address === c.address ? " (this one)" : "")),
        el("td", { class: "num" }, m.slices),
        el("td", {}, bar(m.share, ""), ` ${(m.share * 100).toFixed(1)}%`)));
    }
    box.append(members);
    const load = el("table", { id: "load" }, el("tr", {}, el("th", {}, "slice"),
      el("th", { class: "num" }, "hits / s here"), el("th", {}, "owned")));
    for (const l of c.load) {
      load.append(el("tr", { class: "slice" }, el("td", {}, `${l.low}–${l.high}`),
        el("td", { class: "num" }, num(l.per_s)), el("td", {}, l.mine ? "yes" : "no")));
    }
    box.append(load);
  }

  function draw(doc) {
    for (const node of document.querySelectorAll(".window-s")) node.textContent = doc.window_s;
    drawLimited(doc);
    drawRules(doc);
    drawClients(doc);
    drawStore(doc);
    drawCluster(doc);
    document.getElementById("status").textContent =
      "updated " + new Date(doc.now_s * 1000).toLocaleTimeString();
    document.body.dataset.state = "ready";
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  async function refresh() {
    const token = sessionStorage.getItem(TOKEN);
    const headers = token ? { Authorization: "Bearer " + token } : {};
    try {
      const answer = await fetch(SNAPSHOT, { headers, cache: "no-store" });
      if (answer.status === 401) {
        document.getElementById("token-form").hidden = false;
        document.getElementById("status").textContent = "token required";
        document.body.dataset.state = "unauthorized";
        return;
      }
      if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
      draw(await answer.json());
    } catch (err) {
      document.getElementById("status").textContent = "cannot reach the server: " + err.message;
      document.body.dataset.state = "error";
    }
  }

  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, document.getElementById("token-input").value);
    document.getElementById("token-form").hidden = true;
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
