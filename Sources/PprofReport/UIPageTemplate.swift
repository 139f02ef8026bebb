extension UIPage {
    /// The page: one canvas for the flame graph (fast at 100,000 nodes), a top table, the controls.
    /// `__PPROF_CONFIG__` becomes `{"profiles":[…],"embedded":null|{"title":…,"data":{…}}}`.
    static let template = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>pprof</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#fafafa}
        header{padding:8px 12px;background:#263238;color:#eceff1;display:flex;flex-wrap:wrap;gap:8px;align-items:center}
        header b{font-size:15px;margin-right:8px}
        header label{display:inline-flex;gap:4px;align-items:center}
        .bar{padding:6px 12px;display:flex;flex-wrap:wrap;gap:8px;align-items:center;border-bottom:1px solid #ddd;background:#fff}
        input,select,button{font:inherit}
        input[type=text]{width:13em}
        input.num{width:4em}
        button{cursor:pointer}
        #status{margin-left:auto;opacity:.85}
        #status.error{color:#ff8a80;opacity:1}
        #head{padding:4px 12px;color:#555;white-space:pre-wrap;font:12px ui-monospace,monospace}
        #chart{position:relative;padding:0 12px}
        canvas{display:block;width:100%;cursor:pointer}
        #tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #999;padding:6px 8px;
        box-shadow:0 2px 6px rgba(0,0,0,.2);font:12px ui-monospace,monospace;display:none;max-width:640px;z-index:2}
        #match{font-weight:600}
        table{border-collapse:collapse;margin:8px 12px;font:12px ui-monospace,monospace}
        th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
        td:last-child,th:last-child{text-align:left;white-space:normal}
        th{cursor:pointer;background:#eceff1;position:sticky;top:0}
        th.sorted{text-decoration:underline}
        tr:hover td{background:#fff8e1}
        .legend{font-size:12px;color:#555}
        .grow{color:#c62828}.shrink{color:#2e7d32}
        </style></head><body>
        <header><b>pprof</b>
        <label>profile <select id="profile"></select></label>
        <label>seconds <input id="seconds" class="num" type="text" inputmode="numeric"></label>
        <label title="compare with a base: for CPU the window before, for other kinds the profile N seconds earlier">
        <input id="diff" type="checkbox"> diff</label>
        <button id="load">Load</button>
        <span id="status"></span></header>
        <div class="bar">
        <label>sample <select id="type"></select></label>
        <span id="filters"><label>label <select id="label"><option value="">any</option></select></label>
        <select id="labelmode"><option value="tagfocus">only</option><option value="tagignore">without</option></select>
        <label>focus <input id="focus" type="text" placeholder="regex"></label>
        <label>ignore <input id="ignore" type="text" placeholder="regex"></label>
        <button id="apply">Apply</button></span>
        <label>search <input id="search" type="text" placeholder="regex"></label><span id="match"></span>
        <select id="view"><option value="icicle">icicle (root on top)</option><option value="flame">flame graph</option></select>
        <button id="reset">Reset zoom</button>
        <span class="legend" id="legend"></span>
        </div>
        <div id="head"></div>
        <div id="chart"><canvas id="canvas" height="40"></canvas></div>
        <div id="tip"></div>
        <table id="top"><thead><tr><th data-k="flat">flat</th><th data-k="flat">flat%</th><th>sum%</th>
        <th data-k="cum">cum</th><th data-k="cum">cum%</th><th data-k="name">name</th></tr></thead><tbody></tbody></table>
        <pre id="pprof-test" hidden></pre>
        <script>
        "use strict";
        const PPROF = __PPROF_CONFIG__;
        const $ = id => document.getElementById(id);
        const ROW = 18, FONT = "11px ui-monospace,Menlo,Consolas,monospace";
        const S = {data: null, type: 0, zoom: 0, search: null, sort: "default", rects: null, query: null,
          loadMs: 0, renderMs: 0, error: ""};

        // ---- values and units, as go tool pprof prints them
        const UNITS = {
          nanoseconds: [[1, "ns"], [1e3, "us"], [1e6, "ms"], [1e9, "s"], [60e9, "mins"], [3600e9, "hrs"]],
          microseconds: [[1, "us"], [1e3, "ms"], [1e6, "s"]],
          milliseconds: [[1, "ms"], [1e3, "s"]],
          seconds: [[1, "s"], [60, "mins"], [3600, "hrs"]],
          bytes: [[1, "B"], [1024, "kB"], [1048576, "MB"], [1073741824, "GB"], [1099511627776, "TB"]],
        };
        function fmt(v, unit) {
          const scale = UNITS[unit];
          if (!scale) return String(v) + (unit && unit !== "count" ? " " + unit : "");
          const a = Math.abs(v);
          let s = scale[0];
          for (const e of scale) if (a >= e[0]) s = e;
          const x = v / s[0];
          return (Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 10 ? 2 : 1)) + s[1];
        }
        // A regular expression matching `text` as it is.
        const literal = text => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        const pct = (v, t) => t ? (100 * v / t).toFixed(2) + "%" : "0%";

        // ---- the data: totals per node from the self values (children follow their parents)
        function prepare(d) {
          const n = d.parentOffset.length, parent = new Int32Array(n), name = Int32Array.from(d.name);
          parent[0] = -1;
          for (let i = 1; i < n; i++) parent[i] = i - d.parentOffset[i];
          const totals = arr => arr.map(self => {
            const t = Float64Array.from(self);
            for (let i = n - 1; i > 0; i--) t[parent[i]] += t[i];
            return t;
          });
          d.n = n; d.p = parent; d.nm = name;
          d.tot = totals(d.self);
          d.diff = !!d.baseSelf;
          if (d.diff) d.baseTot = totals(d.baseSelf);
          // Children lists, alphabetical, so the layout stays put when the sample type changes.
          const count = new Int32Array(n + 1);
          for (let i = 1; i < n; i++) count[parent[i] + 1]++;
          for (let i = 0; i < n; i++) count[i + 1] += count[i];
          const kids = new Int32Array(Math.max(n - 1, 0)), fill = count.slice(0, n);
          for (let i = 1; i < n; i++) kids[fill[parent[i]]++] = i;
          for (let i = 0; i < n; i++) {
            const a = count[i], b = count[i + 1];
            if (b - a > 1) {
              const part = Array.from(kids.subarray(a, b)).sort((x, y) =>
                d.names[name[x]] < d.names[name[y]] ? -1 : d.names[name[x]] > d.names[name[y]] ? 1 : 0);
              kids.set(part, a);
            }
          }
          d.kidStart = count; d.kids = kids;
          let depth = new Int32Array(n), max = 0;
          for (let i = 1; i < n; i++) { depth[i] = depth[parent[i]] + 1; if (depth[i] > max) max = depth[i]; }
          d.depth = depth; d.maxDepth = max;
          return d;
        }
        // The width a node gets: its value, or in a diff its value in both profiles together.
        function width(d, t, i) {
          return d.diff ? Math.abs(d.tot[t][i]) + Math.abs(d.baseTot[t][i]) : Math.abs(d.tot[t][i]);
        }
        const value = (d, t, i) => d.diff ? d.tot[t][i] - d.baseTot[t][i] : d.tot[t][i];
        const selfValue = (d, t, i) => {
          let v = d.self[t][i];
          if (d.diff) v -= d.baseSelf[t][i];
          return v;
        };

        // ---- drawing
        const canvas = $("canvas"), ctx = canvas.getContext("2d");
        function hue(s) {
          let h = 0;
          for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
          return h >>> 0;
        }
        function color(d, t, i, matched) {
          if (matched) return "#e040fb";
          if (d.diff) {
            const now = d.tot[t][i], base = d.baseTot[t][i], m = Math.max(Math.abs(now), Math.abs(base));
            const r = m ? (now - base) / m : 0, k = Math.round(215 - 150 * Math.min(1, Math.abs(r)));
            if (Math.abs(r) < 0.02) return "rgb(200,200,200)";
            return r > 0 ? "rgb(235," + k + "," + k + ")" : "rgb(" + k + ",225," + k + ")";
          }
          const h = hue(d.names[d.nm[i]]);
          return "hsl(" + (10 + h % 40) + "," + (65 + (h >> 8) % 25) + "%," + (55 + (h >> 16) % 15) + "%)";
        }
        function layout() {
          const d = S.data, t = S.type, rects = {node: [], x: [], w: [], depth: []};
          if (!d || d.n === 0) return rects;
          const cw = rects.cw = canvas.clientWidth || 1000;
          const chain = [];
          for (let i = S.zoom; i > 0; i = d.p[i]) chain.push(i);
          chain.push(0); chain.reverse();
          for (const i of chain.slice(0, -1)) { rects.node.push(i); rects.x.push(0); rects.w.push(cw); rects.depth.push(d.depth[i]); }
          rects.chain = rects.node.length;  // the zoomed node's ancestors, drawn full width in grey
          const rootW = width(d, t, S.zoom);
          if (rootW <= 0) { rects.node.push(S.zoom); rects.x.push(0); rects.w.push(cw); rects.depth.push(d.depth[S.zoom]); return rects; }
          const scale = cw / rootW, stack = [S.zoom, 0];
          while (stack.length) {
            const x = stack.pop(), i = stack.pop(), w = width(d, t, i) * scale;
            rects.node.push(i); rects.x.push(x); rects.w.push(w); rects.depth.push(d.depth[i]);
            let cx = x;
            const a = d.kidStart[i], b = d.kidStart[i + 1];
            const next = [];
            for (let k = a; k < b; k++) {
              const c = d.kids[k], cwid = width(d, t, c) * scale;
              if (cwid >= 0.35) next.push(c, cx);
              cx += cwid;
            }
            for (let k = next.length - 2; k >= 0; k -= 2) stack.push(next[k], next[k + 1]);
          }
          return rects;
        }
        function matches(i) {
          return S.search !== null && S.search.test(S.data.names[S.data.nm[i]]);
        }
        function draw() {
          const t0 = performance.now(), d = S.data;
          let r = layout(), maxDepth = 0;
          for (const z of r.depth) if (z > maxDepth) maxDepth = z;
          const h = (maxDepth + 1) * ROW + 2;
          canvas.style.height = h + "px";
          // A new height can bring or take the page's scrollbar, and with it the canvas's width.
          if ((canvas.clientWidth || 1000) !== r.cw) r = layout();
          S.rects = r;
          const dpr = window.devicePixelRatio || 1, cw = r.cw;
          canvas.width = Math.round(cw * dpr); canvas.height = Math.round(h * dpr);
          ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
          ctx.clearRect(0, 0, cw, h);
          ctx.font = FONT; ctx.textBaseline = "middle";
          const charW = ctx.measureText("m").width || 6.6, flame = $("view").value === "flame";
          r.highlighted = 0;
          for (let k = 0; k < r.node.length; k++) {
            const i = r.node[k], x = r.x[k], w = r.w[k], y = flame ? h - (r.depth[k] + 1) * ROW : r.depth[k] * ROW;
            const m = matches(i);
            if (m) r.highlighted++;
            ctx.fillStyle = k < r.chain ? "#cfd8dc" : color(d, S.type, i, m);
            ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
            if (w > 3 * charW) {
              const label = i === 0 ? "root" : d.names[d.nm[i]], fit = Math.floor((w - 6) / charW);
              ctx.fillStyle = "#111";
              ctx.fillText(label.length > fit ? label.slice(0, Math.max(fit - 1, 1)) + "…" : label, x + 3, y + ROW / 2);
            }
          }
          S.renderMs = performance.now() - t0;
          showMatch();
        }
        function hit(ev) {
          const r = S.rects;
          if (!r) return -1;
          const box = canvas.getBoundingClientRect(), x = ev.clientX - box.left, y = ev.clientY - box.top;
          const flame = $("view").value === "flame", h = box.height;
          const depth = Math.floor(flame ? (h - y) / ROW : y / ROW);
          for (let k = 0; k < r.node.length; k++)
            if (r.depth[k] === depth && x >= r.x[k] && x < r.x[k] + r.w[k]) return r.node[k];
          return -1;
        }

        // ---- search: the matched share counts each stack once (the topmost match)
        function matchedShare() {
          const d = S.data, t = S.type;
          let sum = 0;
          const walk = [0];
          while (walk.length) {
            const i = walk.pop();
            if (i !== 0 && matches(i)) { sum += value(d, t, i); continue; }
            for (let k = d.kidStart[i]; k < d.kidStart[i + 1]; k++) walk.push(d.kids[k]);
          }
          return sum;
        }
        function showMatch() {
          if (S.search === null || !S.data) { $("match").textContent = ""; return; }
          const d = S.data, t = S.type, sum = matchedShare();
          $("match").textContent = "matched " + fmt(sum, d.sampleTypes[t].unit) + " (" + pct(sum, d.totals[t]) + ")";
        }

        // ---- the top table: go tool pprof -top's flat and cum per function
        function topRows() {
          const d = S.data, t = S.type, flat = new Float64Array(d.names.length), cum = new Float64Array(d.names.length);
          const seen = new Int32Array(d.names.length), stack = [0, 0];
          while (stack.length) {
            const state = stack.pop(), i = stack.pop(), nm = d.nm[i];
            if (state === 1) { if (i) seen[nm]--; continue; }
            if (i) {
              flat[nm] += selfValue(d, t, i);
              if (seen[nm] === 0) cum[nm] += value(d, t, i);
              seen[nm]++;
            }
            stack.push(i, 1);
            for (let k = d.kidStart[i]; k < d.kidStart[i + 1]; k++) stack.push(d.kids[k], 0);
          }
          const rows = [];
          for (let k = 1; k < d.names.length; k++) if (flat[k] || cum[k]) rows.push({name: d.names[k], flat: flat[k], cum: cum[k]});
          const by = S.sort;
          rows.sort((a, b) => {
            if (by === "cum" && Math.abs(a.cum) !== Math.abs(b.cum)) return Math.abs(b.cum) - Math.abs(a.cum);
            if (by === "name") return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
            if (Math.abs(a.flat) !== Math.abs(b.flat)) return Math.abs(b.flat) - Math.abs(a.flat);
            if (a.name !== b.name) return a.name < b.name ? -1 : 1;
            return Math.abs(b.cum) - Math.abs(a.cum);
          });
          return rows;
        }
        function table() {
          const d = S.data, t = S.type, unit = d.sampleTypes[t].unit, total = d.totals[t], rows = topRows();
          const body = document.createElement("tbody");
          let sum = 0;
          const limit = Math.min(rows.length, 5000);
          for (let k = 0; k < limit; k++) {
            const row = rows[k], tr = document.createElement("tr");
            sum += row.flat;
            tr.dataset.name = row.name; tr.dataset.flat = row.flat; tr.dataset.cum = row.cum;
            for (const text of [fmt(row.flat, unit), pct(row.flat, total), pct(sum, total), fmt(row.cum, unit), pct(row.cum, total), row.name]) {
              const td = document.createElement("td");
              td.textContent = text;
              if (d.diff && text !== row.name) td.className = row.cum > 0 ? "grow" : row.cum < 0 ? "shrink" : "";
              tr.appendChild(td);
            }
            body.appendChild(tr);
          }
          if (rows.length > limit) {
            const tr = document.createElement("tr"), td = document.createElement("td");
            td.colSpan = 6; td.textContent = (rows.length - limit) + " more functions (narrow with focus or search)";
            tr.appendChild(td); body.appendChild(tr);
          }
          $("top").replaceChild(body, $("top").tBodies[0]);
          for (const th of document.querySelectorAll("th")) th.classList.toggle("sorted", th.dataset.k === S.sort || (S.sort === "default" && th.dataset.k === "flat"));
          return rows;
        }

        // ---- loading
        function params() {
          const q = new URLSearchParams();
          q.set("profile", $("profile").value);
          if ($("seconds").value.trim()) q.set("seconds", $("seconds").value.trim());
          if ($("diff").checked) q.set("diff", "1");
          const lab = $("label").value;
          if (lab) q.set($("labelmode").value, lab.replace(/=.*/, "") + "=^" + literal(lab.replace(/^[^=]*=/, "")) + "$");
          if ($("focus").value) q.set("focus", $("focus").value);
          if ($("ignore").value) q.set("ignore", $("ignore").value);
          return q;
        }
        async function load(extra) {
          const q = params();
          if (extra) for (const k in extra) if (extra[k] === null) q.delete(k); else q.set(k, extra[k]);
          S.query = q.toString();
          const secs = Number(q.get("seconds") || 0) * (q.get("diff") ? 2 : 1);
          status("loading " + q.get("profile") + (secs ? " (" + secs + " s)" : "") + "…");
          const t0 = performance.now();
          let response;
          try {
            response = await fetch("ui/data?" + S.query, {cache: "no-store"});
          } catch (e) {
            return fail("cannot reach the server: " + e);
          }
          const text = await response.text();
          if (!response.ok) return fail(text.trim() || ("HTTP " + response.status));
          let data;
          try { data = JSON.parse(text); } catch (e) { return fail("the server sent no profile data: " + e); }
          show(data, performance.now() - t0);
          history.replaceState(null, "", "?" + S.query + location.hash);
        }
        function fail(message) {
          S.error = message;
          status(message, true);
        }
        function status(text, error) {
          $("status").textContent = text;
          $("status").className = error ? "error" : "";
        }
        function show(data, fetchMs) {
          const t0 = performance.now();
          S.data = prepare(data); S.zoom = 0; S.error = "";
          const types = $("type");
          types.innerHTML = "";
          data.sampleTypes.forEach((st, k) => types.add(new Option(st.type + " (" + st.unit + ")", k)));
          S.type = Math.min(data.defaultIndex, data.sampleTypes.length - 1);
          types.value = S.type;
          const labels = $("label"), keep = labels.value;
          labels.innerHTML = '<option value="">any</option>';
          for (const key of Object.keys(data.labels))
            for (const v of data.labels[key]) labels.add(new Option(key + "=" + v, key + "=" + v));
          labels.value = [...labels.options].some(o => o.value === keep) ? keep : "";
          redraw();
          S.loadMs = performance.now() - t0 + (fetchMs || 0);
          S.buildMs = performance.now() - t0;
          status(data.n + " nodes, " + fmt(data.totals[S.type], data.sampleTypes[S.type].unit) + " total" +
            (data.filters.length ? "; " + data.filters.join(", ") : ""));
        }
        function redraw() {
          const d = S.data;
          if (!d) return;
          $("head").textContent = d.header.filter(l => !l.startsWith("Type:")).join("\n");
          $("legend").innerHTML = d.diff ? '<span class="grow">■ grew</span> <span class="shrink">■ shrank</span> against the base (width: both profiles)' : "";
          draw();
          table();
        }

        // ---- controls
        function setSearch(text) {
          $("search").value = text;
          if (!text) S.search = null;
          else {
            try { S.search = new RegExp(text); } catch (e) { S.search = new RegExp(literal(text)); }
          }
          draw();
        }
        $("search").addEventListener("input", () => setSearch($("search").value));
        $("type").addEventListener("change", () => { S.type = Number($("type").value); redraw(); });
        $("view").addEventListener("change", draw);
        $("reset").addEventListener("click", () => { S.zoom = 0; draw(); });
        $("load").addEventListener("click", () => load());
        $("apply").addEventListener("click", () => load());
        $("profile").addEventListener("change", () => {
          const timed = ["profile", "wall"].includes($("profile").value);
          $("seconds").value = timed ? "10" : "";
        });
        canvas.addEventListener("click", ev => { const i = hit(ev); if (i >= 0) { S.zoom = i; draw(); } });
        canvas.addEventListener("mousemove", ev => {
          const i = hit(ev), tip = $("tip");
          if (i < 0) { tip.style.display = "none"; return; }
          const d = S.data, t = S.type, unit = d.sampleTypes[t].unit, total = d.totals[t];
          let text = (i === 0 ? "root" : d.names[d.nm[i]]) + "\ntotal " + fmt(value(d, t, i), unit) + " (" + pct(value(d, t, i), total) + ")" +
            "\nself  " + fmt(selfValue(d, t, i), unit) + " (" + pct(selfValue(d, t, i), total) + ")";
          if (d.diff) text += "\nnow " + fmt(d.tot[t][i], unit) + ", base " + fmt(d.baseTot[t][i], unit);
          tip.textContent = text; tip.style.whiteSpace = "pre";
          tip.style.display = "block";
          tip.style.left = Math.min(ev.clientX + 12, innerWidth - tip.offsetWidth - 8) + "px";
          tip.style.top = ev.clientY + 14 + "px";
        });
        canvas.addEventListener("mouseleave", () => { $("tip").style.display = "none"; });
        document.addEventListener("keydown", ev => { if (ev.key === "Escape") { S.zoom = 0; draw(); } });
        for (const th of document.querySelectorAll("th[data-k]"))
          th.addEventListener("click", () => { S.sort = th.dataset.k === "flat" ? "default" : th.dataset.k; table(); });
        $("top").addEventListener("click", ev => { const tr = ev.target.closest("tr"); if (tr && tr.dataset.name) setSearch("^" + literal(tr.dataset.name) + "$"); });
        addEventListener("resize", () => { if (S.data) draw(); });

        // ---- the browser tests' hook: #test=<JSON steps>; results go to #pprof-test
        function snapshot(step) {
          const d = S.data, r = S.rects, out = {label: step.report, error: S.error, query: S.query};
          if (!d || !r) return out;
          const cw = r.cw;
          out.sampleType = d.sampleTypes[S.type].type; out.nodes = d.n; out.drawn = r.node.length;
          out.highlighted = r.highlighted; out.match = $("match").textContent; out.diff = d.diff;
          out.zoom = S.zoom ? d.names[d.nm[S.zoom]] : "root"; out.filters = d.filters;
          out.renderMs = S.renderMs; out.loadMs = S.loadMs; out.buildMs = S.buildMs;
          out.shares = {};
          for (const name of step.watch || []) {
            // Each drawn frame of the function whose drawn ancestors are not the function too.
            let sum = 0;
            for (let k = r.chain; k < r.node.length; k++) {
              const i = r.node[k];
              if (i === 0 || d.names[d.nm[i]] !== name) continue;
              let outer = false;
              for (let a = d.p[i]; a > 0 && a !== d.p[S.zoom]; a = d.p[a]) if (d.names[d.nm[a]] === name) { outer = true; break; }
              if (!outer) sum += r.w[k];
            }
            out.shares[name] = sum / cw;
          }
          let red = 0, green = 0;
          if (d.diff) for (const i of r.node) { const v = value(d, S.type, i); if (v > 0) red++; else if (v < 0) green++; }
          out.grew = red; out.shrank = green;
          out.top = [...document.querySelectorAll("#top tbody tr")].slice(0, step.rows || 40)
            .filter(tr => tr.dataset.name).map(tr => [tr.dataset.name, Number(tr.dataset.flat), Number(tr.dataset.cum)]);
          return out;
        }
        async function runTest(steps) {
          const results = [];
          for (const step of steps) {
            if (step.search !== undefined) setSearch(step.search);
            if (step.zoom !== undefined) {
              const r = S.rects;
              let best = -1, bw = -1;
              for (let k = 0; k < r.node.length; k++) if (S.data.names[S.data.nm[r.node[k]]] === step.zoom && r.w[k] > bw) { best = r.node[k]; bw = r.w[k]; }
              if (best >= 0) { S.zoom = best; draw(); }
            }
            if (step.reset) { S.zoom = 0; draw(); }
            if (step.view) { $("view").value = step.view; draw(); }
            if (step.sampleType !== undefined) {
              const k = S.data.sampleTypes.findIndex(st => st.type === step.sampleType);
              S.type = k >= 0 ? k : Number(step.sampleType); $("type").value = S.type; redraw();
            }
            if (step.sort) { S.sort = step.sort; table(); }
            if (step.load) await load(step.load);
            if (step.report !== undefined) results.push(snapshot(step));
          }
          $("pprof-test").textContent = JSON.stringify(results);
          document.title = "pprof test done";
        }

        // ---- start
        (async () => {
          const picker = $("profile"), query = new URLSearchParams(location.search);
          for (const name of PPROF.profiles) picker.add(new Option(name === "profile" ? "cpu (profile)" : name, name));
          if (PPROF.embedded) {
            $("filters").hidden = true;
            for (const id of ["profile", "seconds", "diff", "load"]) $(id).closest("label, button").hidden = true;
            document.title = "pprof: " + PPROF.embedded.title;
            status(PPROF.embedded.title);
            show(PPROF.embedded.data, 0);
          } else {
            const wanted = query.get("profile") || (PPROF.profiles.includes("profile") ? "profile" : PPROF.profiles[0]);
            picker.value = wanted;
            $("seconds").value = query.get("seconds") || (["profile", "wall"].includes(wanted) ? "10" : "");
            $("diff").checked = query.get("diff") === "1";
            $("focus").value = query.get("focus") || "";
            $("ignore").value = query.get("ignore") || "";
            const tag = query.get("tagfocus") || query.get("tagignore");
            if (tag) {
              $("labelmode").value = query.get("tagfocus") ? "tagfocus" : "tagignore";
              const key = tag.replace(/=.*/, ""), v = tag.replace(/^[^=]*=\^?/, "").replace(/\$$/, "").replace(/\\(.)/g, "$1");
              $("label").add(new Option(key + "=" + v, key + "=" + v)); $("label").value = key + "=" + v;
            }
            await load(query.get("sample_index") ? {sample_index: query.get("sample_index")} : null);
          }
          if (query.get("search")) setSearch(query.get("search"));
          const hash = new URLSearchParams(location.hash.slice(1));
          if (hash.get("test")) {
            let steps;
            try { steps = JSON.parse(hash.get("test")); } catch (e) { steps = [{report: "bad test steps: " + e}]; }
            await runTest(steps);
          }
        })();
        </script></body></html>
        """#
}
