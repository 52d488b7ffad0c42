// What the panel shows, as plain DOM built from the server's pool descriptions: no JupyterLab
// imports here, so the unit tests render it in jsdom. Stable hooks for tests and users'
// automation: the root #workbench-pools, one .wb-pool per pool (data-cluster-file), one
// .wb-rank row per rank (data-rank, data-state), buttons .wb-start .wb-attach .wb-restart
// .wb-stop.

export interface RankInfo {
  rank: number;
  engine_id?: number;
  host: string;
  pid: number;
  state: string; // idle | busy | dead
  memory: number | null;
}

export interface PoolInfo {
  id: string;
  cluster_file: string;
  cluster_id?: string;
  profile?: string;
  state: string; // running | starting | pending | gone | unreadable
  backend?: string; // local | slurm
  job_id?: string | null;
  job_state?: string | null;
  job_reason?: string | null;
  time_left?: string | null;
  nodes?: string | null;
  hosts?: string[];
  requested?: number | null;
  registered?: number;
  ranks: RankInfo[];
  kernels?: string[];
  error?: string | null;
}

export interface PanelState {
  pools: PoolInfo[] | null; // null: nothing heard from the server yet
  error: string | null; // the last failed request, shown as a readable line
  busy: Set<string>; // pool ids with an action in flight
  message: string | null; // the last action's answer
}

export interface Actions {
  start(ranks: number, slurm: Record<string, string | number> | null): void;
  attach(pool: PoolInfo): void;
  restart(pool: PoolInfo): void;
  stop(pool: PoolInfo): void;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function formatMemory(bytes: number | null): string {
  if (bytes === null || bytes === undefined) {
    return "–";
  }
  const mib = bytes / 2 ** 20;
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${Math.round(mib)} MiB`;
}

/** One line on where the pool runs and how far it got. */
export function describe(pool: PoolInfo): string {
  const where =
    pool.backend === "slurm"
      ? `Slurm job ${pool.job_id}${pool.nodes ? ` on ${pool.nodes}` : ""}`
      : `local${pool.hosts && pool.hosts.length ? ` on ${pool.hosts.join(", ")}` : ""}`;
  const ranks = `${pool.registered ?? 0}/${pool.requested ?? "?"} ranks`;
  const parts = [where, ranks];
  if (pool.backend === "slurm" && pool.job_state) {
    const reason = pool.job_state === "PENDING" && pool.job_reason ? ` (${pool.job_reason})` : "";
    parts.push(`${pool.job_state.toLowerCase()}${reason}`);
  }
  if (pool.time_left) {
    parts.push(`${pool.time_left} left`);
  }
  return parts.join(" · ");
}

/** "4 ranks · 2 busy" (the status bar's words for a pool). */
export function summary(pool: PoolInfo): string {
  const busy = pool.ranks.filter(r => r.state === "busy").length;
  const dead = pool.ranks.filter(r => r.state === "dead").length;
  const n = pool.ranks.length || pool.registered || 0;
  let text = `${n} rank${n === 1 ? "" : "s"}`;
  if (busy) {
    text += ` · ${busy} busy`;
  }
  if (dead) {
    text += ` · ${dead} dead`;
  }
  if (pool.state !== "running") {
    text += ` · ${pool.state}`;
  }
  return text;
}

function button(cls: string, label: string, title: string, onClick: () => void, disabled = false) {
  const b = el("button", `wb-button ${cls}`, label);
  b.title = title;
  b.disabled = disabled;
  b.addEventListener("click", onClick);
  return b;
}

function rankTable(pool: PoolInfo): HTMLTableElement {
  const table = el("table", "wb-ranks");
  const head = table.createTHead().insertRow();
  for (const h of ["rank", "host", "pid", "state", "memory"]) {
    head.appendChild(el("th", undefined, h));
  }
  const body = table.createTBody();
  for (const r of pool.ranks) {
    const row = body.insertRow();
    row.className = `wb-rank wb-state-${r.state}`;
    row.dataset.rank = String(r.rank);
    row.dataset.state = r.state;
    for (const v of [String(r.rank), r.host, String(r.pid), r.state, formatMemory(r.memory)]) {
      row.appendChild(el("td", undefined, v));
    }
  }
  return table;
}

function poolNode(pool: PoolInfo, state: PanelState, actions: Actions): HTMLElement {
  const node = el("div", `wb-pool wb-pool-${pool.state}`);
  node.dataset.clusterFile = pool.cluster_file;
  node.dataset.state = pool.state;
  const head = el("div", "wb-pool-head");
  head.appendChild(el("span", "wb-pool-name", pool.cluster_id || pool.id));
  head.appendChild(el("span", "wb-pool-where", describe(pool)));
  node.appendChild(head);
  if (pool.error) {
    node.appendChild(el("div", "wb-error", pool.error));
  }
  if (pool.ranks.length) {
    node.appendChild(rankTable(pool));
  } else if (pool.state === "pending" || pool.state === "starting") {
    node.appendChild(el("div", "wb-note", "waiting for the engines to register…"));
  }
  const inFlight = state.busy.has(pool.id);
  const running = pool.state === "running";
  const bar = el("div", "wb-actions");
  bar.appendChild(
    button("wb-attach", "Attach", "run %wb attach in the active notebook", () =>
      actions.attach(pool), inFlight || !running)
  );
  bar.appendChild(
    button("wb-restart", "Restart", "fresh engines on the same controller", () =>
      actions.restart(pool), inFlight || !running)
  );
  const live = running || pool.state === "pending" || pool.state === "starting";
  bar.appendChild(
    button("wb-stop", live ? "Stop" : "Remove", live ? "stop the pool (cancels a queued job)" :
      "remove what is left of it", () => actions.stop(pool), inFlight)
  );
  node.appendChild(bar);
  return node;
}

function startForm(actions: Actions): HTMLElement {
  const form = el("form", "wb-start-form");
  const ranks = el("input", "wb-ranks-input");
  ranks.type = "number";
  ranks.min = "1";
  ranks.value = "2";
  ranks.title = "number of MPI ranks (engines)";
  const slurm = el("input", "wb-slurm-toggle");
  slurm.type = "checkbox";
  slurm.title = "start the engines as a Slurm job";
  const fields: Record<string, HTMLInputElement> = {};
  const details = el("div", "wb-slurm-fields");
  details.hidden = true;
  for (const [name, hint] of [
    ["nodes", "nodes"],
    ["partition", "partition"],
    ["time", "time (e.g. 1:00:00)"],
    ["account", "account"],
    ["extra", "extra sbatch options"],
    ["controller_ip", "controller address the nodes reach"]
  ]) {
    const input = el("input", `wb-slurm-${name}`);
    input.placeholder = hint;
    input.name = name;
    fields[name] = input;
    details.appendChild(input);
  }
  slurm.addEventListener("change", () => {
    details.hidden = !slurm.checked;
  });
  const submit = button("wb-start", "Start pool", "start a pool of MPI engines", () => undefined);
  submit.type = "submit";
  form.addEventListener("submit", event => {
    event.preventDefault();
    const n = Number(ranks.value);
    let options: Record<string, string | number> | null = null;
    if (slurm.checked) {
      options = {};
      for (const [name, input] of Object.entries(fields)) {
        if (input.value.trim()) {
          options[name] = name === "nodes" ? Number(input.value) : input.value.trim();
        }
      }
    }
    actions.start(n, options);
  });
  const label = el("label", "wb-slurm-label");
  label.appendChild(slurm);
  label.appendChild(document.createTextNode(" Slurm"));
  form.append(el("span", undefined, "ranks"), ranks, label, submit, details);
  return form;
}

/** Draw the panel into ``root``: the title and start form once (what the user typed there
 * survives the updates), the messages and the pools every time. */
export function render(root: HTMLElement, state: PanelState, actions: Actions): void {
  root.id = "workbench-pools";
  root.classList.add("wb-panel");
  let status = root.querySelector<HTMLElement>(".wb-status");
  let list = root.querySelector<HTMLElement>(".wb-list");
  if (!status || !list) {
    status = el("div", "wb-status");
    list = el("div", "wb-list");
    root.replaceChildren(el("h2", "wb-title", "MPI pools"), startForm(actions), status, list);
  }
  const notes: HTMLElement[] = [];
  if (state.error) {
    notes.push(el("div", "wb-error wb-panel-error", state.error));
  }
  if (state.message) {
    notes.push(el("div", "wb-message", state.message));
  }
  status.replaceChildren(...notes);
  if (state.pools === null) {
    list.replaceChildren(el("div", "wb-note", "looking for pools…"));
  } else if (!state.pools.length) {
    list.replaceChildren(
      el(
        "div",
        "wb-note wb-empty",
        "No pools yet. Start one here, with %wb start in a notebook, or with " +
          "workbench pool start --detach in a terminal."
      )
    );
  } else {
    list.replaceChildren(...state.pools.map(pool => poolNode(pool, state, actions)));
  }
}
