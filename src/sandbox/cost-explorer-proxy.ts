import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A Cost Explorer stand-in for tests and rehearsals. moto serves GetCostAndUsage from results
 * seeded through its static API ({@link seedCostAndUsage}) but has no GetCostForecast or
 * GetReservationPurchaseRecommendation (it answers an HTML error page), so this proxy in front
 * of moto answers those two itself, in Cost Explorer's JSON 1.1 as AWS does, and passes every
 * other operation through. It counts requests by operation and can refuse them all with
 * AccessDeniedException, as for a role lacking `ce:*`.
 *
 * @example const ce = await startCostExplorerProxy(moto.endpoint); env.AWS_ENDPOINT_URL_COST_EXPLORER = ce.url;
 */
export interface CostExplorerProxy {
  /** http://127.0.0.1:port */
  url: string;
  /** requests by operation ("GetCostAndUsage", "GetCostForecast", …) */
  counts: Map<string, number>;
  /** "deny": every operation is refused; "forecast-denied": only GetCostForecast */
  mode: "normal" | "deny" | "forecast-denied";
  /** what GetCostForecast answers: fixed figures, or figures for the period asked */
  forecast: ForecastFigures | ((period: { start: string; end: string }) => ForecastFigures);
  /** what GetReservationPurchaseRecommendation answers (for any service) */
  reservation: ReservationFigures;
  close(): Promise<void>;
}

/** A forecast as Cost Explorer writes it: decimal strings in USD. */
export interface ForecastFigures {
  amount: string;
  low: string;
  high: string;
}

/** One RDS reservation recommendation, one year all upfront; decimal strings in USD. */
export interface ReservationFigures {
  instanceType: string;
  engine: string;
  count: number;
  upfrontCost: string;
  monthlySavings: string;
  savingsPercent: string;
  breakEvenMonths: string;
}

/** The figures the proxy answers unless told otherwise. */
export const DEFAULT_FORECAST: ForecastFigures = { amount: "30.50", low: "25.00", high: "36.00" };
export const DEFAULT_RESERVATION: ReservationFigures = {
  instanceType: "db.t4g.micro",
  engine: "PostgreSQL",
  count: 1,
  upfrontCost: "105.00",
  monthlySavings: "6.10",
  savingsPercent: "41.5",
  breakEvenMonths: "7.2",
};

export async function startCostExplorerProxy(
  upstream: string,
  opts: { forecast?: CostExplorerProxy["forecast"]; reservation?: ReservationFigures } = {},
): Promise<CostExplorerProxy> {
  const base = upstream.replace(/\/$/, "");
  const proxy: CostExplorerProxy = {
    url: "",
    counts: new Map(),
    mode: "normal",
    forecast: opts.forecast ?? DEFAULT_FORECAST,
    reservation: opts.reservation ?? DEFAULT_RESERVATION,
    close: async () => undefined,
  };
  const json = (res: ServerResponse, status: number, body: unknown, errorType?: string) => {
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.1",
      ...(errorType ? { "x-amzn-errortype": errorType } : {}),
    });
    res.end(JSON.stringify(body));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const op =
      String(req.headers["x-amz-target"] ?? "")
        .split(".")
        .pop() ?? "";
    proxy.counts.set(op, (proxy.counts.get(op) ?? 0) + 1);
    if (proxy.mode === "deny" || (proxy.mode === "forecast-denied" && op === "GetCostForecast")) {
      return json(
        res,
        400,
        {
          __type: "AccessDeniedException",
          message: `User: arn:aws:iam::123456789012:user/cutover-bot is not authorized to perform: ce:${op} on resource: *`,
        },
        "AccessDeniedException",
      );
    }
    if (op === "GetCostForecast") {
      const asked = parse(body) as { TimePeriod?: { Start?: string; End?: string } };
      const start = asked.TimePeriod?.Start ?? "";
      const end = asked.TimePeriod?.End ?? "";
      const f = typeof proxy.forecast === "function" ? proxy.forecast({ start, end }) : proxy.forecast;
      return json(res, 200, {
        Total: { Amount: f.amount, Unit: "USD" },
        ForecastResultsByTime: [
          {
            TimePeriod: { Start: start, End: end },
            MeanValue: f.amount,
            PredictionIntervalLowerBound: f.low,
            PredictionIntervalUpperBound: f.high,
          },
        ],
      });
    }
    if (op === "GetReservationPurchaseRecommendation") {
      const r = proxy.reservation;
      return json(res, 200, {
        Recommendations: [
          {
            AccountScope: "PAYER",
            LookbackPeriodInDays: "THIRTY_DAYS",
            TermInYears: "ONE_YEAR",
            PaymentOption: "ALL_UPFRONT",
            RecommendationDetails: [
              {
                InstanceDetails: {
                  RDSInstanceDetails: { InstanceType: r.instanceType, DatabaseEngine: r.engine },
                },
                RecommendedNumberOfInstancesToPurchase: String(r.count),
                UpfrontCost: r.upfrontCost,
                EstimatedMonthlySavingsAmount: r.monthlySavings,
                EstimatedMonthlySavingsPercentage: r.savingsPercent,
                EstimatedBreakEvenInMonths: r.breakEvenMonths,
                CurrencyCode: "USD",
              },
            ],
            RecommendationSummary: {
              TotalEstimatedMonthlySavingsAmount: r.monthlySavings,
              TotalEstimatedMonthlySavingsPercentage: r.savingsPercent,
              CurrencyCode: "USD",
            },
          },
        ],
      });
    }
    // everything else (GetCostAndUsage) is moto's
    const answer = await fetch(`${base}${req.url ?? "/"}`, {
      method: req.method ?? "POST",
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => k !== "host" && k !== "content-length") as Array<
          [string, string]
        >,
      ),
      body,
    });
    res.writeHead(answer.status, {
      "content-type": answer.headers.get("content-type") ?? "application/json",
    });
    res.end(Buffer.from(await answer.arrayBuffer()));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // moto gone or the request cut: answer as an unreachable service would, never crash the process
      if (!res.headersSent) json(res, 502, { __type: "ServiceUnavailableException", message: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

function parse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8") || "{}");
  } catch {
    return {};
  }
}

/** One day of a GetCostAndUsage result grouped by SERVICE, as Cost Explorer writes it. */
export function costAndUsageDay(date: string, costs: Record<string, number>) {
  const next = new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  return {
    TimePeriod: { Start: date, End: next },
    Total: {},
    Groups: Object.entries(costs).map(([service, amount]) => ({
      Keys: [service],
      Metrics: { UnblendedCost: { Amount: amount.toFixed(4), Unit: "USD" } },
    })),
    Estimated: false,
  };
}

/**
 * Queues GetCostAndUsage answers in moto (POST /moto-api/static/ce/cost-and-usage-results). moto
 * gives each new set of request parameters the next queued result (the same parameters get the
 * same result again), so queue `copies` when several different requests should see the days.
 */
export async function seedCostAndUsage(
  motoEndpoint: string,
  days: ReadonlyArray<ReturnType<typeof costAndUsageDay>>,
  copies = 1,
): Promise<void> {
  const result = { ResultsByTime: days, DimensionValueAttributes: [] };
  const res = await fetch(`${motoEndpoint.replace(/\/$/, "")}/moto-api/static/ce/cost-and-usage-results`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ results: Array.from({ length: copies }, () => result) }),
  });
  if (res.status !== 201)
    throw new Error(`moto refused the Cost Explorer results: HTTP ${res.status} ${await res.text()}`);
}
