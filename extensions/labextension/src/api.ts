// Requests to the server extension (/workbench/api/pools), authenticated like every
// JupyterLab request (ServerConnection adds the token and the XSRF header).
import { URLExt } from "@jupyterlab/coreutils";
import { ServerConnection } from "@jupyterlab/services";

import { PoolInfo } from "./render";

const settings = ServerConnection.makeSettings();

/** A readable error from a failed request: the server's reason, not a stack. */
export class ApiError extends Error {}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const url = URLExt.join(settings.baseUrl, "workbench", "api", "pools", path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (e) {
    throw new ApiError(`the Jupyter server did not answer (${(e as Error).message})`);
  }
  const text = await response.text();
  if (!response.ok) {
    let reason = response.statusText;
    try {
      reason = JSON.parse(text).message || reason;
    } catch {
      // not JSON: keep the status text
    }
    if (response.status === 404 && path === "") {
      reason = "the workbench server extension is not enabled in this Jupyter server";
    }
    throw new ApiError(reason || `HTTP ${response.status}`);
  }
  return (text ? JSON.parse(text) : {}) as T;
}

export async function listPools(): Promise<PoolInfo[]> {
  return (await request<{ pools: PoolInfo[] }>("")).pools;
}

export async function startPool(
  ranks: number,
  slurm: Record<string, string | number> | null
): Promise<{ cluster_file: string; message: string }> {
  return request("", { method: "POST", body: JSON.stringify({ ranks, slurm }) });
}

export async function stopPool(id: string): Promise<{ message: string }> {
  return request(encodeURIComponent(id), { method: "DELETE" });
}

export async function restartPool(id: string): Promise<{ message: string }> {
  return request(encodeURIComponent(id), {
    method: "POST",
    body: JSON.stringify({ action: "restart" })
  });
}
