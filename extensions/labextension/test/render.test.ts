// The panel's rendering of pool states, in jsdom: hooks, rows, words, buttons, errors.
import { beforeEach, describe, expect, it, vi } from "vitest";

import { Actions, PanelState, PoolInfo, describe as where, render, summary } from "../src/render";

function pool(over: Partial<PoolInfo> = {}): PoolInfo {
  return {
    id: "default:123-abcd",
    cluster_file: "/home/u/.ipython/profile_default/security/cluster-123-abcd.json",
    cluster_id: "123-abcd",
    state: "running",
    backend: "local",
    requested: 2,
    registered: 2,
    hosts: ["nid001"],
    ranks: [
      { rank: 0, host: "nid001", pid: 11, state: "idle", memory: 200 * 2 ** 20 },
      { rank: 1, host: "nid001", pid: 12, state: "busy", memory: 3 * 2 ** 30 }
    ],
    ...over
  };
}

function state(pools: PoolInfo[] | null, over: Partial<PanelState> = {}): PanelState {
  return { pools, error: null, busy: new Set(), message: null, ...over };
}

let actions: Actions;
let root: HTMLElement;

beforeEach(() => {
  actions = { start: vi.fn(), attach: vi.fn(), restart: vi.fn(), stop: vi.fn() };
  root = document.createElement("div");
});

describe("render", () => {
  it("shows a pool with a row per rank and the stable hooks", () => {
    render(root, state([pool()]), actions);
    expect(root.id).toBe("workbench-pools");
    const node = root.querySelector<HTMLElement>(".wb-pool")!;
    expect(node.dataset.clusterFile).toContain("cluster-123-abcd.json");
    const rows = [...root.querySelectorAll<HTMLElement>(".wb-rank")];
    expect(rows.map(r => [r.dataset.rank, r.dataset.state])).toEqual([["0", "idle"], ["1", "busy"]]);
    expect(rows[1].textContent).toContain("3.0 GiB");
    expect(rows[0].textContent).toContain("200 MiB");
    expect(node.textContent).toContain("local on nid001 · 2/2 ranks");
    for (const cls of ["wb-start", "wb-attach", "wb-restart", "wb-stop"]) {
      expect(root.querySelector(`.${cls}`), cls).not.toBeNull();
    }
  });

  it("turns clicks into actions on that pool", () => {
    const p = pool();
    render(root, state([p]), actions);
    root.querySelector<HTMLButtonElement>(".wb-stop")!.click();
    root.querySelector<HTMLButtonElement>(".wb-attach")!.click();
    expect(actions.stop).toHaveBeenCalledWith(p);
    expect(actions.attach).toHaveBeenCalledWith(p);
  });

  it("starts a local or a Slurm pool from the form", () => {
    render(root, state([]), actions);
    const form = root.querySelector<HTMLFormElement>(".wb-start-form")!;
    root.querySelector<HTMLInputElement>(".wb-ranks-input")!.value = "4";
    form.dispatchEvent(new Event("submit"));
    expect(actions.start).toHaveBeenLastCalledWith(4, null);
    const slurm = root.querySelector<HTMLInputElement>(".wb-slurm-toggle")!;
    slurm.checked = true;
    slurm.dispatchEvent(new Event("change"));
    expect(root.querySelector<HTMLElement>(".wb-slurm-fields")!.hidden).toBe(false);
    root.querySelector<HTMLInputElement>(".wb-slurm-nodes")!.value = "2";
    root.querySelector<HTMLInputElement>(".wb-slurm-time")!.value = "1:00:00";
    form.dispatchEvent(new Event("submit"));
    expect(actions.start).toHaveBeenLastCalledWith(4, { nodes: 2, time: "1:00:00" });
  });

  it("keeps what the user typed across updates", () => {
    render(root, state([]), actions);
    const input = root.querySelector<HTMLInputElement>(".wb-ranks-input")!;
    input.value = "16";
    render(root, state([pool()]), actions);
    expect(root.querySelector<HTMLInputElement>(".wb-ranks-input")).toBe(input);
    expect(input.value).toBe("16");
  });

  it("shows a Slurm pool pending with its reason, then running with time left", () => {
    const pending = pool({ backend: "slurm", job_id: "42", job_state: "PENDING",
      job_reason: "Priority", state: "pending", ranks: [], registered: 0, hosts: [] });
    render(root, state([pending]), actions);
    expect(root.textContent).toContain("Slurm job 42 · 0/2 ranks · pending (Priority)");
    expect(root.textContent).toContain("waiting for the engines to register");
    expect(root.querySelector<HTMLButtonElement>(".wb-attach")!.disabled).toBe(true);
    expect(root.querySelector(".wb-stop")!.textContent).toBe("Stop"); // cancels the job
    const running = pool({ backend: "slurm", job_id: "42", job_state: "RUNNING",
      nodes: "node[1-2]", time_left: "59:30" });
    expect(where(running)).toBe("Slurm job 42 on node[1-2] · 2/2 ranks · running · 59:30 left");
  });

  it("shows a gone pool's error and offers to remove it", () => {
    const gone = pool({ state: "gone", ranks: [], error: "its controller is not running" });
    render(root, state([gone]), actions);
    expect(root.querySelector(".wb-pool .wb-error")!.textContent).toContain("not running");
    expect(root.querySelector(".wb-stop")!.textContent).toBe("Remove");
    expect(root.querySelector<HTMLButtonElement>(".wb-restart")!.disabled).toBe(true);
  });

  it("says what there is before, without and besides pools", () => {
    render(root, state(null), actions);
    expect(root.textContent).toContain("looking for pools");
    render(root, state([]), actions);
    expect(root.querySelector(".wb-empty")!.textContent).toContain("workbench pool start");
    render(root, state([], { error: "the Jupyter server did not answer" }), actions);
    expect(root.querySelector(".wb-panel-error")!.textContent).toContain("did not answer");
  });

  it("disables a pool's buttons while an action on it is in flight", () => {
    const p = pool();
    render(root, state([p], { busy: new Set([p.id]) }), actions);
    const buttons = [...root.querySelectorAll<HTMLButtonElement>(".wb-pool button")];
    expect(buttons.every(b => b.disabled)).toBe(true);
  });
});

describe("summary", () => {
  it("counts ranks, busy and dead ones for the status bar", () => {
    expect(summary(pool())).toBe("2 ranks · 1 busy");
    const dead = pool({ ranks: [{ rank: 0, host: "h", pid: 1, state: "dead", memory: null }] });
    expect(summary(dead)).toBe("1 rank · 1 dead");
  });
});
