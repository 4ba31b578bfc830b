import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface DenyingCostExplorer {
  /** what the bot's environment needs to reach it (endpoint, keys, one attempt) */
  env: Record<string, string>;
  /** the requests it has refused so far */
  calls(): number;
  stop(): Promise<void>;
}

/**
 * A Cost Explorer endpoint that refuses every request with AccessDeniedException (JSON 1.1, as
 * AWS answers a role lacking ce:GetCostAndUsage), `message` as its text.
 */
export async function startDenyingCostExplorer(message: string): Promise<DenyingCostExplorer> {
  let calls = 0;
  const server = createServer((req, res) => {
    calls++;
    req.resume();
    res.writeHead(400, {
      "content-type": "application/x-amz-json-1.1",
      "x-amzn-errortype": "AccessDeniedException",
    });
    res.end(JSON.stringify({ __type: "AccessDeniedException", message }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    env: {
      AWS_ENDPOINT_URL_COST_EXPLORER: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_MAX_ATTEMPTS: "1",
    },
    calls: () => calls,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}
