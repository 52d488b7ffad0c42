// The sweep's trial table (anywidget front end): one column per parameter, click a header to
// sort (again to reverse), the full value of a cell on hover, long tables scroll inside.
// The sort order is kept by the view, so it survives the live updates of the rows.

function compare(a, b) {
  // nulls last; numbers as numbers, anything else as text
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function render({ model, el }) {
  let sortKey = null;
  let ascending = true;
  const box = document.createElement("div");
  box.className = "workbench-sweep-scroll";
  el.appendChild(box);

  function draw() {
    const columns = model.get("columns");
    const rows = [...model.get("rows")];
    const at = columns.findIndex((c) => c.key === sortKey);
    if (at >= 0) {
      rows.sort((a, b) => {
        const ka = a.cells[at][2], kb = b.cells[at][2];
        if (ka === null || kb === null) return compare(ka, kb);  // nulls stay last
        return ascending ? compare(ka, kb) : compare(kb, ka);
      });
    }
    const table = document.createElement("table");
    table.className = "workbench-sweep-table";
    const caption = model.get("caption");
    if (caption) table.createCaption().textContent = caption;
    const head = table.createTHead().insertRow();
    columns.forEach((c) => {
      const th = document.createElement("th");
      th.dataset.key = c.key;
      th.title = c.title || "click to sort";
      th.textContent = c.label + (c.key === sortKey ? (ascending ? " ▲" : " ▼") : "");
      if (c.numeric) th.classList.add("workbench-num");
      th.addEventListener("click", () => {
        ascending = sortKey === c.key ? !ascending : true;
        sortKey = c.key;
        draw();
      });
      head.appendChild(th);
    });
    const body = table.createTBody();
    const best = model.get("best");
    if (!rows.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = columns.length;
      td.className = "workbench-empty";
      td.textContent = "no trials yet";
    }
    rows.forEach((row) => {
      const tr = body.insertRow();
      tr.dataset.trial = row.id;
      tr.dataset.state = row.state;
      if (row.title) tr.title = row.title;
      if (row.id === best) tr.classList.add("workbench-best");
      row.cells.forEach(([text, full], i) => {
        const td = tr.insertCell();
        td.textContent = text;
        if (full && full !== text) td.title = full;
        if (columns[i].numeric) td.classList.add("workbench-num");
        if (columns[i].key === "state") td.classList.add("workbench-state-" + row.state);
      });
    });
    box.replaceChildren(table);
  }

  model.on("change:rows", draw);
  model.on("change:columns", draw);
  model.on("change:caption", draw);
  model.on("change:best", draw);
  draw();
}

export default { render };
