// The "MPI pools" sidebar: polls the server while it is shown (not when hidden), draws the
// pools with render(), and turns the buttons into requests, asking before it stops busy ranks.
import { Dialog, showDialog } from "@jupyterlab/apputils";
import { Widget } from "@lumino/widgets";
import { Message } from "@lumino/messaging";
import { ISignal, Signal } from "@lumino/signaling";

import { listPools, restartPool, startPool, stopPool } from "./api";
import { Actions, PanelState, PoolInfo, render } from "./render";

export class PoolsPanel extends Widget implements Actions {
  constructor(private attachTo: (pool: PoolInfo) => Promise<string>) {
    super();
    this.addClass("wb-panel");
    this.id = "workbench-pools";
    this.title.caption = "MPI pools";
    render(this.node, this.state, this);
  }

  /** Seconds between two looks at the pools while the panel is shown (settings). */
  interval = 2;

  /** Emitted after each refresh, with the pools (the status bar listens). */
  get changed(): ISignal<this, PoolInfo[]> {
    return this._changed;
  }

  get pools(): PoolInfo[] {
    return this.state.pools ?? [];
  }

  async refresh(): Promise<void> {
    try {
      this.state.pools = await listPools();
      this.state.error = null;
    } catch (e) {
      this.state.error = (e as Error).message;
    }
    this.draw();
    this._changed.emit(this.pools);
  }

  start(ranks: number, slurm: Record<string, string | number> | null): void {
    if (!Number.isInteger(ranks) || ranks < 1) {
      this.say(null, "ranks must be a positive whole number");
      return;
    }
    this.act("start", slurm ? `submitting a Slurm job for ${ranks} ranks…` :
      `starting ${ranks} MPI engines…`, () => startPool(ranks, slurm));
  }

  attach(pool: PoolInfo): void {
    this.act(pool.id, null, async () => ({ message: await this.attachTo(pool) }));
  }

  restart(pool: PoolInfo): void {
    this.act(pool.id, "restarting…", () => restartPool(pool.id));
  }

  async stop(pool: PoolInfo): Promise<void> {
    const busy = pool.ranks.filter(r => r.state === "busy").length;
    if (busy) {
      const answer = await showDialog({
        title: "Stop a busy pool?",
        body: `${busy} of its ranks are running work; stopping ends that work.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: "Stop" })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    this.act(pool.id, "stopping…", () => stopPool(pool.id));
  }

  protected onAfterShow(msg: Message): void {
    this.schedule(0);
  }

  protected onAfterHide(msg: Message): void {
    this.cancel();
  }

  protected onBeforeDetach(msg: Message): void {
    this.cancel();
  }

  private act(key: string, pending: string | null, call: () => Promise<{ message: string }>) {
    this.state.busy.add(key);
    this.say(pending, null);
    call()
      .then(answer => this.say(answer.message, null))
      .catch(e => this.say(null, (e as Error).message))
      .finally(() => {
        this.state.busy.delete(key);
        void this.refresh();
      });
  }

  private say(message: string | null, error: string | null): void {
    this.state.message = message;
    this.state.error = error;
    this.draw();
  }

  private draw(): void {
    render(this.node, this.state, this);
  }

  private schedule(delay: number): void {
    this.cancel();
    this.timer = window.setTimeout(async () => {
      await this.refresh();
      if (this.isVisible) {
        this.schedule(this.interval * 1000);
      }
    }, delay);
  }

  private cancel(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private state: PanelState = { pools: null, error: null, busy: new Set(), message: null };
  private timer: number | null = null;
  private _changed = new Signal<this, PoolInfo[]>(this);
}
