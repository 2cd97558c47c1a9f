/**
 * The cluster view's page: one HTML document with its script, no assets. It polls `stats.json`
 * beside itself and computes rates from two answers in a row. Every value goes in as text.
 */
export function clusterViewPage(refreshMs: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wscale cluster</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  table { border-collapse: collapse; min-width: 40rem; }
  th, td { padding: .3rem .7rem; border-bottom: 1px solid #ddd; text-align: right; }
  th:first-child, td:first-child { text-align: left; font-family: monospace; }
  tr.missing td { color: #b00; }
  .ready { color: #070; } .bad { color: #b00; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>wscale cluster</h1>
<div id="status">loading…</div>
<h2>Nodes</h2>
<table>
  <thead><tr><th>node</th><th>broker</th><th>clients</th><th>rooms</th><th>memberships</th>
  <th>in/s</th><th>out/s</th><th>dropped</th><th>slow closes</th><th>resumes ok / partial / failed</th></tr></thead>
  <tbody id="nodes"></tbody>
</table>
<h2>Recent resumes</h2>
<table>
  <thead><tr><th>client</th><th>node</th><th>result</th><th>reason</th><th>when</th></tr></thead>
  <tbody id="resumes"></tbody>
</table>
<script>
(() => {
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  const previous = new Map();
  const sum = (record) => Object.values(record).reduce((a, b) => a + b, 0);
  const row = (cells, className) => {
    const tr = document.createElement('tr');
    if (className) tr.className = className;
    for (const cell of cells) {
      const td = document.createElement('td');
      if (Array.isArray(cell)) { td.textContent = cell[0]; td.className = cell[1]; }
      else td.textContent = String(cell);
      tr.append(td);
    }
    return tr;
  };
  const rate = (node, name, value) => {
    const before = previous.get(node.nodeId);
    if (!before || node.at <= before.at) return '–';
    return ((value - before[name]) / ((node.at - before.at) / 1000)).toFixed(1);
  };
  async function refresh() {
    try {
      const response = await fetch(base + 'stats.json', { cache: 'no-store' });
      if (!response.ok) throw new Error(response.status + ' ' + (await response.text()));
      const view = await response.json();
      const rows = [];
      const resumes = [];
      for (const node of view.nodes) {
        const s = node.stats;
        const out = sum(s.messagesOut);
        const tr = row([
          node.nodeId,
          [node.broker, node.broker === 'ready' ? 'ready' : 'bad'],
          s.connections, s.rooms, s.subscriptions,
          rate(node, 'in', s.messagesIn), rate(node, 'out', out),
          s.dropped, s.slowConsumersClosed,
          s.resumes.recovered + ' / ' + sum(s.resumes.partial) + ' / ' + sum(s.resumes.failed),
        ], 'live');
        tr.dataset.node = node.nodeId;
        rows.push(tr);
        previous.set(node.nodeId, { at: node.at, in: s.messagesIn, out });
        for (const resume of node.recentResumes) resumes.push({ ...resume, node: node.nodeId });
      }
      for (const id of view.missing) {
        const tr = row([id, 'not answering', '', '', '', '', '', '', '', ''], 'missing');
        tr.dataset.node = id;
        rows.push(tr);
      }
      document.getElementById('nodes').replaceChildren(...rows);
      resumes.sort((a, b) => b.at - a.at);
      document.getElementById('resumes').replaceChildren(...resumes.slice(0, 20).map((r) =>
        row([r.client, r.node, r.result, r.reason ?? '', new Date(r.at).toLocaleTimeString()])));
      document.getElementById('status').textContent =
        view.nodes.length + ' node(s) answering' +
        (view.missing.length ? ', ' + view.missing.length + ' not answering' : '') +
        ' · asked ' + view.node + ' · ' + new Date().toLocaleTimeString();
    } catch (error) {
      document.getElementById('status').textContent = 'no answer: ' + error.message;
    }
  }
  refresh();
  setInterval(refresh, ${JSON.stringify(refreshMs)});
})();
</script>
</body>
</html>
`;
}
