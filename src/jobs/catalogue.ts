/**
 * Every step type a migration file may name, with what it does. A type in this list but not in
 * the registry of this build is reported as "not available in this build" when planned or run,
 * so a file written for a newer Cutover still loads and says plainly what it cannot do yet.
 */
export const STEP_CATALOGUE: Readonly<Record<string, string>> = {
  "db.write-probe":
    "write numbered rows into a table in batches, checkpointing, to prove a database takes writes",
  "http.check": "request a URL and check its status and latency",
  "lightsail.instance": "create or check the Lightsail instance, key pair, static IP and firewall",
  "rds.instance": "create or check the RDS PostgreSQL instance and its security group",
  "s3.bucket": "create or check the S3 bucket, its lifecycle rule and the CloudFront distribution",
  "db.preflight": "check both databases, client tools, extensions, sizes and disk before copying",
  "db.dump": "dump the source database with pg_dump -Fd -j N in a read-only snapshot",
  "db.restore": "restore the dump into the target with pg_restore -j N",
  "db.verify": "compare row counts, content checksums, sequences and object counts on both sides",
  "db.replicate":
    "start logical replication from the source to the target on the slot of the dump's snapshot, and wait until it has caught up",
  "db.replication-teardown":
    "drop every subscription, publication and replication slot Cutover created on either database",
  "storage.sync": "copy objects from the source bucket to the target bucket",
  "storage.verify": "prove every object is on both sides with equal size, content and metadata",
  "cdn.check": "fetch sample objects through the CDN and report the cache hit ratio",
  "host.setup": "set the app host up over SSH with a rendered, idempotent script",
  "app.deploy": "deploy a release to the app host and wait for its health endpoint",
  "verify.functional": "run the functional verification checks",
  "verify.performance": "run the performance verification checks",
  "verify.reliability": "run the reliability verification checks",
  "dns.lower-ttl": "lower the TTL of the records to switch and remember the old values",
  "dns.cutover": "switch DNS and the front end's settings after a second person's approval",
  "kpi.monitor": "sample the configured endpoints and track the KPIs",
  "cost.report": "report cost to date, the forecast and the savings available",
  decommission: "archive the source and list what to shut down, after approval",
};

export const KNOWN_STEP_TYPES: readonly string[] = Object.keys(STEP_CATALOGUE);

/**
 * How long a step of each type may take by default, all attempts together, in seconds; a step's
 * `timeout:` in the migration file overrides it. Types whose time grows with the data (dump,
 * restore, sync, verify of a copy), that wait by design (the cutover's watch window, the KPI
 * monitor) or only prove a database takes writes have none: the stall watchdog
 * (`engine.stallSeconds`) stops them when their progress stops instead.
 */
export const STEP_TIME_LIMITS: Readonly<Record<string, number>> = {
  "http.check": 300,
  "lightsail.instance": 1_800,
  // an RDS instance takes 10–40 minutes to become available, Multi-AZ longer
  "rds.instance": 5_400,
  // a new CloudFront distribution takes up to ~15 minutes to deploy
  "s3.bucket": 2_700,
  "db.preflight": 900,
  "db.replication-teardown": 300,
  "cdn.check": 600,
  "host.setup": 3_600,
  "app.deploy": 1_800,
  "verify.functional": 900,
  "verify.performance": 3_600,
  "verify.reliability": 3_600,
  // a handful of Cloudflare calls; more than a few minutes means Cloudflare is not answering
  "dns.lower-ttl": 120,
  "cost.report": 600,
};
