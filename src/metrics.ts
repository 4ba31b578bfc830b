/**
 * A small Prometheus registry: counters and a latency histogram, rendered in the text
 * exposition format at GET /metrics.
 */
type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map(
      (k) => `${k}="${String(labels[k]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");
}

class Counter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines.join("\n");
  }
}

class Histogram {
  private readonly counts = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = key(labels);
    let h = this.counts.get(k);
    if (!h) {
      h = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.counts.set(k, h);
    }
    this.bounds.forEach((b, i) => {
      if (value <= b) h.buckets[i]!++;
    });
    h.sum += value;
    h.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, h] of this.counts) {
      const sep = k ? "," : "";
      this.bounds.forEach((b, i) => {
        lines.push(`${this.name}_bucket{${k}${sep}le="${b}"} ${h.buckets[i]}`);
      });
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${h.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ""} ${h.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ""} ${h.count}`);
    }
    return lines.join("\n");
  }
}

export class Metrics {
  readonly commands = new Counter(
    "cutover_slack_commands_total",
    "Slash commands received, by command and outcome.",
  );
  readonly actions = new Counter(
    "cutover_slack_actions_total",
    "Interactive actions received, by action id.",
  );
  readonly duplicates = new Counter(
    "cutover_slack_duplicate_deliveries_total",
    "Slack deliveries ignored as retries of one already handled.",
  );
  readonly ackSeconds = new Histogram(
    "cutover_slack_ack_seconds",
    "Time from receiving a slash command to acknowledging it.",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  private readonly started = Date.now();

  /** `extra` holds gauges read at scrape time (runs by status, the lock). */
  render(extra: string[] = []): string {
    const mem = process.memoryUsage();
    return `${[
      this.commands.render(),
      this.actions.render(),
      this.duplicates.render(),
      this.ackSeconds.render(),
      "# HELP cutover_process_resident_memory_bytes Resident memory size in bytes.",
      "# TYPE cutover_process_resident_memory_bytes gauge",
      `cutover_process_resident_memory_bytes ${mem.rss}`,
      "# HELP cutover_process_uptime_seconds Seconds since the process started.",
      "# TYPE cutover_process_uptime_seconds gauge",
      `cutover_process_uptime_seconds ${((Date.now() - this.started) / 1000).toFixed(1)}`,
      ...extra,
    ].join("\n")}\n`;
  }
}
