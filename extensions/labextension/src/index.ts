// workbench's JupyterLab extension: the "MPI pools" sidebar, its commands, and a status-bar
// item for the active notebook's pool ("MPI pool · 4 ranks · 2 busy"; click opens the panel).
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from "@jupyterlab/application";
import { Clipboard, ICommandPalette } from "@jupyterlab/apputils";
import { INotebookTracker, NotebookActions, NotebookPanel } from "@jupyterlab/notebook";
import { ISettingRegistry } from "@jupyterlab/settingregistry";
import { IStatusBar } from "@jupyterlab/statusbar";
import { LabIcon } from "@jupyterlab/ui-components";
import { Widget } from "@lumino/widgets";

import { PoolsPanel } from "./panel";
import { PoolInfo, summary } from "./render";

const PLUGIN = "workbench-pools:plugin";

const icon = new LabIcon({
  name: "workbench-pools:icon",
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161"><rect x="1" y="2" width="6" height="5" rx="1"/>' +
    '<rect x="9" y="2" width="6" height="5" rx="1"/><rect x="1" y="9" width="6" height="5" rx="1"/>' +
    '<rect x="9" y="9" width="6" height="5" rx="1"/></g></svg>'
});

function kernelId(panel: NotebookPanel | null): string | null {
  return panel?.sessionContext.session?.kernel?.id ?? null;
}

async function attachNotebook(tracker: INotebookTracker | null, pool: PoolInfo): Promise<string> {
  const line = `%wb attach ${pool.cluster_file}`;
  const panel = tracker?.currentWidget ?? null;
  if (!panel) {
    Clipboard.copyToSystem(line);
    return `no notebook open: copied "${line}"`;
  }
  const notebook = panel.content;
  const model = notebook.model;
  if (!model) {
    throw new Error("the active notebook is not ready yet");
  }
  const index = model.cells.length;
  model.sharedModel.insertCell(index, { cell_type: "code", source: line });
  notebook.activeCellIndex = index;
  await NotebookActions.run(notebook, panel.sessionContext);
  return `attached ${panel.title.label}`;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN,
  description: "The MPI pools of workbench: see, start, attach to and stop them.",
  autoStart: true,
  optional: [ILabShell, ISettingRegistry, IStatusBar, INotebookTracker, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    settings: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    tracker: INotebookTracker | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new PoolsPanel(pool => attachNotebook(tracker, pool));
    panel.title.icon = icon;
    app.shell.add(panel, "left", { rank: 900 });

    if (settings) {
      void settings.load(PLUGIN).then(s => {
        const apply = () => {
          panel.interval = (s.get("pollInterval").composite as number) || 2;
        };
        apply();
        s.changed.connect(apply);
      });
    }

    // the active notebook's pool: the one its kernel noted (see workbench.pool._binding)
    const activePool = (): PoolInfo | null => {
      const id = kernelId(tracker?.currentWidget ?? null);
      return (id && panel.pools.find(p => (p.kernels ?? []).includes(id))) || null;
    };
    const target = (): PoolInfo | null =>
      activePool() ?? panel.pools.find(p => p.state === "running") ?? null;

    const commands: [string, string, (pool: PoolInfo) => void][] = [
      ["workbench:stop-pool", "Workbench: Stop pool", pool => void panel.stop(pool)],
      ["workbench:restart-pool", "Workbench: Restart pool", pool => panel.restart(pool)],
      ["workbench:attach-pool", "Workbench: Attach notebook to pool", pool => panel.attach(pool)]
    ];
    app.commands.addCommand("workbench:start-pool", {
      label: "Workbench: Start pool",
      execute: () => {
        app.shell.activateById(panel.id);
        panel.node.querySelector<HTMLInputElement>(".wb-ranks-input")?.focus();
      }
    });
    palette?.addItem({ command: "workbench:start-pool", category: "Workbench" });
    for (const [id, label, act] of commands) {
      app.commands.addCommand(id, {
        label,
        execute: async () => {
          await panel.refresh();
          const pool = target();
          app.shell.activateById(panel.id);
          if (pool) {
            act(pool);
          }
        }
      });
      palette?.addItem({ command: id, category: "Workbench" });
    }

    if (statusBar) {
      const item = new Widget();
      item.id = "workbench-statusbar";
      item.addClass("wb-statusbar");
      item.node.title = "workbench: open the MPI pools panel";
      item.node.addEventListener("click", () => app.shell.activateById(panel.id));
      const update = () => {
        const pool = activePool();
        item.node.textContent = pool ? `MPI pool · ${summary(pool)}` : "";
        item.setHidden(!pool);
      };
      statusBar.registerStatusItem("workbench-pools:status", {
        item,
        align: "left",
        rank: 4,
        isActive: () => true
      });
      panel.changed.connect(update);
      // while the panel is hidden nothing polls: refresh when the active notebook changes
      // or its kernel goes busy/idle (a cell that starts or stops a pool ends that way)
      let pending = 0;
      const soon = () => {
        window.clearTimeout(pending);
        pending = window.setTimeout(() => void panel.refresh(), 300);
      };
      tracker?.currentChanged.connect((_, nb) => {
        soon();
        nb?.sessionContext.statusChanged.connect(soon);
      });
      labShell?.currentChanged.connect(update);
      update();
    }
  }
};

export default plugin;
